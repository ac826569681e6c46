import AvatarCore
import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging
import ServiceLifecycle

/// The running product's version, shown by `/healthz` and `avatar --version`.
public let avatarVersion = "0.1.0"

/// Builds the HTTP application around a runtime. Tests build the same app with their own settings;
/// `superviseEngines: false` when the runtime's supervisor already runs elsewhere (the tests' shared engines).
/// `port` overrides the settings' (0: any free port, for tests that need a real socket).
public func buildApplication(runtime: AvatarRuntime, limits: APILimits = APILimits(), sessionLimits: SessionLimits = SessionLimits(),
                             superviseEngines: Bool = true, port: Int? = nil) throws -> some ApplicationProtocol {
    let services = try APIServices(runtime: runtime, limits: limits, sessionLimits: sessionLimits)
    let jobs = JobQueue(services: services, workers: runtime.settings.videoWorkers)
    let router = buildRouter(runtime: runtime, services: services, jobs: jobs)
    var app = Application(
        router: router,
        // Frames up to 1 MiB go out whole (a 512² JPEG is 20–60 KB; the default 16 KiB would fragment every one).
        server: .http1WebSocketUpgrade(webSocketRouter: buildSessionRouter(services: services), configuration: .init(ws: .init(maxFrameSize: 1 << 20))),
        configuration: .init(address: .hostname(runtime.settings.host, port: port ?? runtime.settings.port), serverName: "avatar"),
        logger: runtime.logger
    )
    if superviseEngines, let supervisor = runtime.supervisor {
        app.addServices(supervisor)
    }
    app.addServices(jobs, TempCleaner(media: services.media, logger: runtime.logger))
    return app
}

/// The routes, separate from the server so `HummingbirdTesting` can drive them without a socket.
func buildRouter(runtime: AvatarRuntime, services: APIServices, jobs: JobQueue) -> Router<AppRequestContext> {
    let router = Router(context: AppRequestContext.self)
    router.add(middleware: UnreadBodyMiddleware())
    router.add(middleware: RequestIDMiddleware())
    router.add(middleware: RequestLogMiddleware())
    router.add(middleware: ProblemMiddleware())
    if !runtime.settings.corsOrigins.isEmpty {
        router.add(middleware: CORSPolicy(origins: runtime.settings.corsOrigins))
    }
    router.add(middleware: FileMiddleware(runtime.settings.webRoot, searchForIndexHtml: true, logger: runtime.logger))

    router.get("/healthz") { _, _ in
        HealthResponse(status: "ok", version: avatarVersion)
    }
    router.get("/readyz") { _, _ -> EditedResponse<ReadinessResponse> in
        let components = await runtime.readiness()
        let ready = components.allSatisfy(\.isUsable)
        return EditedResponse(
            status: ready ? .ok : .serviceUnavailable,
            response: ReadinessResponse(status: ready ? "ready" : "not_ready", components: components)
        )
    }
    addLoginRoute(router, database: runtime.database)
    addDocsRoutes(router, settings: runtime.settings)
    let api = router.group("/api/v1").add(middleware: AuthMiddleware(database: runtime.database))
    api.get("/me") { _, context -> MeResponse in
        let account = try context.requireAccount()
        return MeResponse(account: account.id, name: account.name, role: account.role, token: context.tokenId ?? "")
    }
    // The seed's four paths, as aliases with ?avatar_id= (documented in openapi.yaml).
    let alias = router.group().add(middleware: AuthMiddleware(database: runtime.database)).add(middleware: AliasMiddleware())
    addAvatarRoutes(api, runtime: runtime, services: services)
    addCacheRoutes(api, runtime: runtime)
    addPhotoRoutes(api, alias: alias, services: services)
    addChatRoutes(api, alias: alias, services: services)
    addVoiceRoutes(api, alias: alias, services: services)
    addVideoRoutes(api, alias: alias, services: services, jobs: jobs)
    return router
}

struct MeResponse: ResponseEncodable {
    var account: String
    var name: String
    var role: String
    var token: String
}

struct HealthResponse: ResponseEncodable {
    var status: String
    var version: String
}

struct ReadinessResponse: ResponseEncodable {
    var status: String
    var components: [ComponentStatus]
}

extension ComponentStatus: ResponseEncodable {}

/// Logs each request's method, path (never the query: `/login?token=` must not reach the logs), status and time.
struct RequestLogMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = ContinuousClock.now
        let response = try await next(request, context)
        let elapsed = ContinuousClock.now - started
        context.logger.info("request", metadata: [
            "method": .string(request.method.rawValue), "path": .string(request.uri.path), "status": .stringConvertible(response.status.code),
            "ms": .string(String(format: "%.1f", Double(elapsed.components.attoseconds) / 1e15 + Double(elapsed.components.seconds) * 1000)),
        ])
        return response
    }
}

/// Echoes the request id (the one on every log line of the request) in `X-Request-Id`.
struct RequestIDMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response = try await next(request, context)
        response.headers[.init("X-Request-Id")!] = context.id
        return response
    }
}

/// Every route the server has, as `METHOD /path/{param}` (for the OpenAPI conformance test).
public func routeList(runtime: AvatarRuntime) throws -> [String] {
    let services = try APIServices(runtime: runtime)
    let router = buildRouter(runtime: runtime, services: services, jobs: JobQueue(services: services, workers: 1))
    return router.routes.map { "\($0.method.rawValue) \($0.path.description)" }.sorted()
}
