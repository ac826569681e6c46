import AvatarMedia
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle

/// CORS for the origins in `AVATAR_CORS_ORIGINS` (off when empty): an allowed origin gets its own origin back
/// with credentials (the sign-in cookie), a preflight is answered here; any other origin gets no CORS headers,
/// so the browser blocks it.
struct CORSPolicy: RouterMiddleware {
    typealias Context = AppRequestContext
    let origins: Set<String>
    let any: Bool

    init(origins: [String]) {
        self.origins = Set(origins)
        any = origins.contains("*")
    }

    func handle(_ request: Request, context: AppRequestContext, next: (Request, AppRequestContext) async throws -> Response) async throws -> Response {
        guard let origin = request.headers[.origin], any || origins.contains(origin) else {
            return try await next(request, context)
        }
        var headers: HTTPFields = [.accessControlAllowOrigin: origin, .vary: "Origin"]
        headers[.accessControlAllowCredentials] = "true"
        headers[.accessControlExposeHeaders] = "X-Request-Id, Retry-After, Location, Content-Range"
        if request.method == .options, request.headers[.accessControlRequestMethod] != nil {
            headers[.accessControlAllowMethods] = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
            headers[.accessControlAllowHeaders] = "Authorization, Content-Type, Range, Accept"
            headers[.accessControlMaxAge] = "600"
            return Response(status: .noContent, headers: headers)
        }
        var response = try await next(request, context)
        response.headers.append(contentsOf: headers)
        return response
    }
}

/// Removes temp files (uploads cut off by a crash or a dropped connection) older than an hour, every 10 minutes.
struct TempCleaner: Service {
    let media: MediaFiles
    let logger: Logger

    func run() async throws {
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            let removed = media.cleanTemp(olderThan: 3600)
            if removed > 0 { logger.info("removed stale temp files", metadata: ["count": .stringConvertible(removed)]) }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(600)) }
        }
    }
}
