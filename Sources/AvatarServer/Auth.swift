import AvatarStore
import Foundation
import Hummingbird

/// The request context of the app: who is calling (set by `AuthMiddleware` under `/api/v1`).
public struct AppRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public var account: Account?
    public var tokenId: String?
    /// The avatar of a seed alias path (`?avatar_id=`), where there is no `:id` in the path.
    public var aliasAvatarId: String?

    public init(source: Source) {
        coreContext = .init(source: source)
    }

    /// JSON bodies (avatar, chat) are small; uploads stream and have their own limits.
    public var maxUploadSize: Int { 256 * 1024 }

    /// The caller's account; only called on routes under `AuthMiddleware`.
    func requireAccount() throws -> Account {
        guard let account else { throw Problem.unauthorized("no token") }
        return account
    }
}

/// The cookie the one-click link sets.
let tokenCookieName = "avatar_token"

extension Problem {
    static func unauthorized(_ why: String) -> Problem {
        Problem(.unauthorized, "unauthorized", "Not signed in",
                detail: "this API needs a valid token (\(why))",
                fix: "send 'Authorization: Bearer TOKEN' or open the link `avatar serve` printed; make a new token with `avatar token create`",
                headers: [.wwwAuthenticate: #"Bearer realm="avatar""#])
    }
}

/// Every `/api/v1` request needs a token: `Authorization: Bearer avt_…` or the `avatar_token` cookie.
/// A missing, malformed, unknown or revoked token is 401 — the same answer for each, so nothing is learned.
struct AuthMiddleware: RouterMiddleware {
    let database: AvatarDatabase

    func handle(_ request: Request, context: AppRequestContext, next: (Request, AppRequestContext) async throws -> Response) async throws -> Response {
        guard let token = Self.token(in: request) else { throw Problem.unauthorized("none was sent") }
        guard let (account, stored) = try database.authenticate(token: token) else { throw Problem.unauthorized("it is unknown or revoked") }
        var context = context
        context.account = account
        context.tokenId = stored.id
        context.logger[metadataKey: "account"] = .string(account.id)
        return try await next(request, context)
    }

    static func token(in request: Request) -> String? {
        if let header = request.headers[.authorization] {
            let parts = header.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "bearer" { return String(parts[1]).trimmingCharacters(in: .whitespaces) }
            return nil
        }
        return cookie(tokenCookieName, in: request)
    }

    static func cookie(_ name: String, in request: Request) -> String? {
        for header in request.headers[values: .cookie] {
            for pair in header.split(separator: ";") {
                let kv = pair.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                if kv.count == 2, kv[0] == name { return kv[1] }
            }
        }
        return nil
    }
}

/// The seed's paths carry the avatar as `?avatar_id=`: it stands in for the `:id` of the paths they alias.
struct AliasMiddleware: RouterMiddleware {
    func handle(_ request: Request, context: AppRequestContext, next: (Request, AppRequestContext) async throws -> Response) async throws -> Response {
        guard let id = request.uri.queryParameters["avatar_id"].map(String.init), !id.isEmpty else {
            throw Problem.badRequest("missing-avatar-id", "this path needs ?avatar_id=", fix: "add ?avatar_id=ID (from GET /api/v1/avatars), or use the /api/v1/avatars/{id}/… path it aliases")
        }
        var context = context
        context.aliasAvatarId = id
        return try await next(request, context)
    }
}

/// `GET /login?token=…`: the one-click link. A valid token becomes an HttpOnly cookie and the browser goes to `/`;
/// the token leaves the address bar at once.
func addLoginRoute(_ router: Router<AppRequestContext>, database: AvatarDatabase) {
    router.get("/login") { request, context -> Response in
        guard let token = request.uri.queryParameters["token"].map(String.init),
              try database.authenticate(token: token) != nil else {
            throw Problem.unauthorized("the link's token is unknown or revoked")
        }
        var headers: HTTPFields = [.location: "/"]
        headers[.setCookie] = "\(tokenCookieName)=\(token); Path=/; HttpOnly; SameSite=Strict; Max-Age=31536000"
        headers[.cacheControl] = "no-store"
        return Response(status: .seeOther, headers: headers)
    }
}
