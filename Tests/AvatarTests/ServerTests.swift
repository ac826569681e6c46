import AvatarCore
import AvatarServer
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Testing

@Suite("HTTP server")
struct ServerTests {
    func runtime() async throws -> AvatarRuntime {
        let home = temporaryDirectory("avatar-server")
        let settings = try await AvatarSettings.load(environment: [
            "AVATAR_HOME": home, "AVATAR_ENGINES_ENABLED": "false", "AVATAR_REDIS": "off",
            "AVATAR_WEB_ROOT": FileManager.default.currentDirectoryPath + "/Public",
        ])
        return try AvatarRuntime.make(settings: settings, logger: Logger(label: "test"))
    }

    @Test("/healthz answers, with a request id")
    func healthz() async throws {
        let app = try buildApplication(runtime: try await runtime())
        try await app.test(.router) { client in
            try await client.execute(uri: "/healthz", method: .get) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).contains("\"status\":\"ok\""))
                #expect(response.headers[.init("X-Request-Id")!] != nil)
            }
        }
    }

    @Test("/readyz lists the database and cache, and the engines as disabled")
    func readyz() async throws {
        let app = try buildApplication(runtime: try await runtime())
        try await app.test(.router) { client in
            try await client.execute(uri: "/readyz", method: .get) { response in
                #expect(response.status == .ok)
                let object = try JSONSerialization.jsonObject(with: Data(String(buffer: response.body).utf8)) as? [String: Any]
                let components = object?["components"] as? [[String: Any]] ?? []
                let names = components.compactMap { $0["name"] as? String }
                #expect(names.contains("database"))
                #expect(names.contains("cache"))
                #expect(components.first { $0["name"] as? String == "database" }?["state"] as? String == "ready")
                #expect(components.first { $0["name"] as? String == "engines" }?["state"] as? String == "disabled")
            }
        }
    }

    @Test("The web client is served")
    func staticFiles() async throws {
        let app = try buildApplication(runtime: try await runtime())
        try await app.test(.router) { client in
            try await client.execute(uri: "/", method: .get) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).contains("<title>Avatar</title>"))
            }
        }
    }
}
