import ArgumentParser
import AvatarCore
import AvatarEngines
import AvatarServer
import Foundation
import Hummingbird
import Logging

@main
struct AvatarCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "avatar",
        abstract: "A self-hosted conversational digital avatar: one photo, a voice, a persona.",
        discussion: """
        Configuration: defaults < $AVATAR_HOME/config.json (or AVATAR_CONFIG) < AVATAR_* environment variables.
        See README.md for every key.
        """,
        version: avatarVersion,
        subcommands: [Serve.self, Generate.self, Chat.self, Transcribe.self, Speak.self, VoiceCommand.self, TokenCommand.self, Setup.self, Doctor.self, Bench.self],
        defaultSubcommand: Serve.self
    )

    /// The one place that turns a command's failure into an exit status: `CLIFailure` → its line and code, an
    /// `AvatarError` → its user message and 1, anything else → ArgumentParser's own report.
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let failure as CLIFailure {
            FileHandle.standardError.write(Data("avatar: \(failure.message)\n".utf8))
            Foundation.exit(failure.code)
        } catch let error as any AvatarError {
            FileHandle.standardError.write(Data("avatar: \(error.userMessage)\n".utf8))
            Foundation.exit(1)
        } catch {
            Self.exit(withError: error)
        }
    }
}

/// Loads the settings or exits with the one-line reason (status 2).
func loadSettings(environment: [String: String] = ProcessInfo.processInfo.environment) async throws -> AvatarSettings {
    do {
        return try await AvatarSettings.load(environment: environment)
    } catch let error as any AvatarError {
        throw CLIFailure(error.userMessage, code: 2)
    }
}

/// A command's failure with the one line a person reads and the exit status; `AvatarCommand.main` prints it as
/// `avatar: message` and exits with `code` — after every `defer` on the way up has run (children stopped,
/// files closed), which a helper calling `exit()` would skip.
struct CLIFailure: Error, CustomStringConvertible {
    let message: String
    let code: Int32

    init(_ message: String, code: Int32 = 1) {
        self.message = message
        self.code = code
    }

    var description: String { message }
}

func bootstrapLogging(_ settings: AvatarSettings) -> Logger {
    LogSetup.bootstrap(format: settings.logFormat, level: Logger.Level(rawValue: settings.logLevel) ?? .info)
    return Logger(label: "avatar")
}

/// Builds the runtime, or fails with the one-line reason.
func makeRuntime(_ settings: AvatarSettings, _ logger: Logger) throws -> AvatarRuntime {
    do {
        return try AvatarRuntime.make(settings: settings, logger: logger)
    } catch let error as any AvatarError {
        throw CLIFailure(error.userMessage)
    } catch {
        throw CLIFailure("\(error)")
    }
}

/// Landmarks of a photo, retrying while a just-started engine host is still loading its models.
func landmarksWhenReady(_ host: EngineHostClient, image: Data, filename: String = "photo", timeout: Double) async throws -> FaceLandmarks {
    let deadline = ContinuousClock.now + .seconds(timeout)
    while true {
        do {
            return try await host.landmarks(image: image, filename: filename, multiple: .largest)
        } catch let error as EngineError {
            guard case .unavailable = error, ContinuousClock.now < deadline else { throw error }
            try await Task.sleep(for: .milliseconds(200))
        }
    }
}

/// Waits until every supervised engine is ready; returns how long each took. Exits with the pending ones and
/// where their logs are when `timeout` passes.
func waitUntilReady(_ supervisor: EngineSupervisor, timeout: Double, logs: String) async throws -> [String: Duration] {
    let started = ContinuousClock.now
    var readyAt: [String: Duration] = [:]
    while readyAt.count < supervisor.engines.count {
        for engine in supervisor.engines where readyAt[engine.engineName] == nil {
            if await engine.status().state == .ready { readyAt[engine.engineName] = ContinuousClock.now - started }
        }
        if ContinuousClock.now - started > .seconds(timeout) {
            let pending = supervisor.engines.map(\.engineName).filter { readyAt[$0] == nil }
            throw CLIFailure("engines not ready within \(Int(timeout)) s: \(pending.joined(separator: ", ")); see \(logs)")
        }
        try await Task.sleep(for: .milliseconds(100))
    }
    return readyAt
}

/// The runtime with its engines, supervised while `withEngines`' body runs.
struct RunningEngines {
    let runtime: AvatarRuntime
    let supervisor: EngineSupervisor
    let host: EngineHostClient
}

/// Starts the engine host alone (no LLM, no Redis), waits until it is ready, runs `body`, stops it.
func withEngineHost<T>(_ body: (RunningEngines, AvatarSettings) async throws -> T) async throws -> T {
    var settings = try await loadSettings()
    settings.llmEmbedded = false
    settings.redis = .off
    settings.logLevel = "warning"
    let logger = bootstrapLogging(settings)
    return try await withEngines(settings, logger) { engines in
        _ = try await waitUntilReady(engines.supervisor, timeout: settings.engineStartTimeout, logs: settings.dataDir + "/logs/")
        return try await body(engines, settings)
    }
}

/// Builds the runtime and supervises its engines in a child task for exactly as long as `body` runs (structured:
/// when `body` returns or throws, the supervision is cancelled and awaited, and with it the engines' processes).
/// Fails when the engines are disabled.
func withEngines<T>(_ settings: AvatarSettings, _ logger: Logger, _ body: (RunningEngines) async throws -> T) async throws -> T {
    let runtime = try makeRuntime(settings, logger)
    guard let supervisor = runtime.supervisor, let host = runtime.engineHost else {
        throw CLIFailure("the engines are disabled (AVATAR_ENGINES_ENABLED=false); this command needs them", code: 2)
    }
    return try await withThrowingTaskGroup(of: Void.self, returning: T.self) { group in
        group.addTask { try await supervisor.run() }
        defer { group.cancelAll() }
        return try await body(RunningEngines(runtime: runtime, supervisor: supervisor, host: host))
    }
}

/// Serves `runtime` on a kernel-chosen loopback port, its engines supervised, for exactly as long as `body` runs
/// (the benches' in-process server): the server and the supervision are child tasks, cancelled and awaited when
/// `body` returns or throws.
func withServer<T>(_ runtime: AvatarRuntime, _ body: (_ port: Int) async throws -> T) async throws -> T {
    let port = PortAllocator.freeLoopbackPort()
    let app: any ApplicationProtocol
    do { app = try buildApplication(runtime: runtime, superviseEngines: false, port: port) } catch { throw CLIFailure("\(error)") }
    return try await withThrowingTaskGroup(of: Void.self, returning: T.self) { group in
        if let supervisor = runtime.supervisor { group.addTask { try await supervisor.run() } }
        group.addTask { try await app.runService() }
        defer { group.cancelAll() }
        return try await body(port)
    }
}
