import ArgumentParser
import AvatarCore
import AvatarServer
import Foundation
import Hummingbird
import Logging
import NIOCore

/// `avatar serve`: the HTTP server with its supervised engines.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the server (engines are started and supervised).")

    func run() async throws {
        let settings = try await loadSettings()
        do {
            try settings.prepareDataDirectory()
        } catch let error as any AvatarError {
            fail(error.userMessage, code: 2)
        }
        let logger = bootstrapLogging(settings)
        let runtime = makeRuntime(settings, logger)
        logger.info("avatar starting", metadata: [
            "version": .string(avatarVersion), "address": .string("http://\(settings.host):\(settings.port)"),
            "data_dir": .string(settings.dataDir), "config_file": .string(settings.configFile ?? "none"),
        ])
        let app = buildApplication(runtime: runtime)
        do {
            try await app.runService()
        } catch {
            if let io = error as? IOError, io.errnoCode == EADDRINUSE {
                fail("port \(settings.port) on \(settings.host) is already in use: stop the other server or choose another port with AVATAR_PORT", code: 2)
            }
            fail("server stopped: \(error)")
        }
    }
}
