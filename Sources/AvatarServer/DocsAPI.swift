import AvatarCore
import Foundation
import Hummingbird

/// `/openapi.yaml` (the spec, OpenAPI 3.1) and `/docs` (Swagger UI from the PyPI package `swagger-ui-bundle`
/// in the engine venv; no CDN).
enum APIDocs {
    /// The spec in the checkout: next to the web root's folder, else next to this source tree.
    static func specPath(_ settings: AvatarSettings) -> String? {
        let webRoot = settings.webRoot.hasPrefix("/") ? settings.webRoot : FileManager.default.currentDirectoryPath + "/" + settings.webRoot
        let candidates = [
            ((webRoot as NSString).deletingLastPathComponent as NSString).appendingPathComponent("openapi.yaml"),
            URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("openapi.yaml").path,
        ]
        return candidates.first { FileManager.default.fileExists(atPath: $0) }
    }

    /// Swagger UI 4.15.5 (the newest swagger-ui-bundle, 1.1.0) renders only `openapi: 3.0.x`: it gets a copy
    /// with that version line and without `info.summary`, the one 3.1-only member the spec uses.
    static func swaggerUICopy(_ spec: String) -> String {
        var lines = spec.components(separatedBy: "\n")
        if let index = lines.firstIndex(where: { $0.hasPrefix("openapi: 3.1") }) { lines[index] = "openapi: 3.0.3" }
        if let info = lines.firstIndex(of: "info:"),
           let summary = lines[info...].firstIndex(where: { $0.hasPrefix("  summary:") }) { lines.remove(at: summary) }
        return lines.joined(separator: "\n")
    }

    /// The folder of Swagger UI's static files in the venv, or nil when `avatar setup` has not installed it.
    static func swaggerUIDirectory(_ settings: AvatarSettings) -> String? {
        let lib = settings.venvDir + "/lib"
        guard let pythons = try? FileManager.default.contentsOfDirectory(atPath: lib) else { return nil }
        for python in pythons.sorted() where python.hasPrefix("python3") {
            let vendor = "\(lib)/\(python)/site-packages/swagger_ui_bundle/vendor"
            if let versions = try? FileManager.default.contentsOfDirectory(atPath: vendor),
               let version = versions.sorted().last(where: { $0.hasPrefix("swagger-ui-") }) {
                return vendor + "/" + version
            }
        }
        return nil
    }

    static let assets: [String: String] = [
        "swagger-ui.css": "text/css", "index.css": "text/css", "swagger-ui-bundle.js": "text/javascript",
        "swagger-ui-standalone-preset.js": "text/javascript", "favicon-32x32.png": "image/png", "favicon-16x16.png": "image/png",
    ]

    static let page = """
    <!DOCTYPE html>
    <html lang="en">
    <head><meta charset="UTF-8"><title>Avatar API</title>
    <link rel="stylesheet" href="/docs/swagger-ui.css"><link rel="stylesheet" href="/docs/index.css">
    <link rel="icon" type="image/png" href="/docs/favicon-32x32.png" sizes="32x32"></head>
    <body><div id="swagger-ui"></div>
    <script src="/docs/swagger-ui-bundle.js"></script><script src="/docs/swagger-ui-standalone-preset.js"></script>
    <script>
    window.onload = function () {
      window.ui = SwaggerUIBundle({ url: "/docs/openapi.yaml", dom_id: "#swagger-ui", deepLinking: true, validatorUrl: null,
        presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset], layout: "StandaloneLayout" });
    };
    </script></body></html>
    """
}

func addDocsRoutes(_ router: Router<AppRequestContext>, settings: AvatarSettings) {
    @Sendable func spec() throws -> String {
        guard let path = APIDocs.specPath(settings), let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw Problem(.serviceUnavailable, "spec-missing", "Spec missing", detail: "openapi.yaml was not found next to the web root (\(settings.webRoot))",
                          fix: "run the server from the checkout, or set AVATAR_WEB_ROOT to the checkout's Public folder")
        }
        return text
    }
    @Sendable func yaml(_ text: String) -> Response {
        Response(status: .ok, headers: [.contentType: "application/yaml; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }
    router.get("/openapi.yaml") { _, _ in yaml(try spec()) }
    router.get("/docs/openapi.yaml") { _, _ in yaml(APIDocs.swaggerUICopy(try spec())) }
    router.get("/docs") { _, _ -> Response in
        guard APIDocs.swaggerUIDirectory(settings) != nil else {
            throw Problem(.serviceUnavailable, "docs-missing", "API browser not installed",
                          detail: "Swagger UI (PyPI swagger-ui-bundle) is not in the venv \(settings.venvDir)",
                          fix: "run `avatar setup`; the spec itself is at /openapi.yaml")
        }
        return Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: APIDocs.page)))
    }
    router.get("/docs/:asset") { request, context -> Response in
        let name = context.parameters.get("asset") ?? ""
        guard let type = APIDocs.assets[name], let directory = APIDocs.swaggerUIDirectory(settings) else {
            throw Problem(.notFound, "no-such-route", "Not found", detail: "there is no such file of the API browser", fix: "open /docs")
        }
        return try await FileResponder.respond(directory + "/" + name, contentType: type, request: request, context: context)
    }
}
