import AvatarCore
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle

/// The running product's version, shown by `/healthz` and `avatar --version`.
public let avatarVersion = "0.1.0"

/// Builds the HTTP application around a runtime. Tests build the same app with their own settings.
public func buildApplication(runtime: AvatarRuntime) -> some ApplicationProtocol {
    let router = buildRouter(runtime: runtime)
    var app = Application(
        router: router,
        configuration: .init(address: .hostname(runtime.settings.host, port: runtime.settings.port), serverName: "avatar"),
        logger: runtime.logger
    )
    if let supervisor = runtime.supervisor {
        app.addServices(supervisor)
    }
    return app
}

/// The routes, separate from the server so `HummingbirdTesting` can drive them without a socket.
public func buildRouter(runtime: AvatarRuntime) -> Router<BasicRequestContext> {
    let router = Router()
    router.add(middleware: RequestIDMiddleware())
    router.add(middleware: LogRequestsMiddleware(.info))
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
    return router
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

/// Echoes the request id (the one on every log line of the request) in `X-Request-Id`.
struct RequestIDMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response = try await next(request, context)
        response.headers[.init("X-Request-Id")!] = context.id
        return response
    }
}
