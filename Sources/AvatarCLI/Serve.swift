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
            throw CLIFailure(error.userMessage, code: 2)
        }
        let logger = bootstrapLogging(settings)
        let runtime = try makeRuntime(settings, logger)
        logger.info("avatar starting", metadata: [
            "version": .string(avatarVersion), "address": .string("http://\(settings.host):\(settings.port)"),
            "data_dir": .string(settings.dataDir), "config_file": .string(settings.configFile ?? "none"),
        ])
        do {
            let (owner, issued) = try runtime.database.ensureOwner()
            if let issued {
                print("Created the owner account (\(owner.name)). Sign in from a browser on this machine:\n  \(signInURL(settings, issued.secret))\nAPI token (shown once, stored hashed): \(issued.secret)")
            } else {
                print("Avatar on http://\(settings.host):\(settings.port) — make a sign-in link with `avatar token create`.")
            }
            fflush(nil)
        } catch {
            throw CLIFailure("cannot prepare the owner account: \(error)")
        }
        if !["127.0.0.1", "localhost", "::1"].contains(settings.host) {
            logger.warning("listening on \(settings.host), not loopback: tokens and media travel in clear text unless TLS (a reverse proxy) is in front")
            FileHandle.standardError.write(Data("avatar: warning: AVATAR_HOST=\(settings.host) is reachable from the network; put TLS (a reverse proxy) in front, tokens travel in clear text otherwise\n".utf8))
        }
        let app: any ApplicationProtocol
        do {
            app = try buildApplication(runtime: runtime)
        } catch let error as any AvatarError {
            throw CLIFailure(error.userMessage)
        } catch {
            throw CLIFailure("\(error)")
        }
        do {
            try await app.runService()
        } catch {
            if let io = error as? IOError, io.errnoCode == EADDRINUSE {
                throw CLIFailure("port \(settings.port) on \(settings.host) is already in use: stop the other server or choose another port with AVATAR_PORT", code: 2)
            }
            throw CLIFailure("server stopped: \(error)")
        }
    }
}
