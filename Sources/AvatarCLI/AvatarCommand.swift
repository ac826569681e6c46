import ArgumentParser
import AvatarCore
import AvatarEngines
import AvatarServer
import Foundation
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
}

/// Loads the settings or exits with the one-line reason (status 2).
func loadSettings(environment: [String: String] = ProcessInfo.processInfo.environment) async throws -> AvatarSettings {
    do {
        return try await AvatarSettings.load(environment: environment)
    } catch let error as any AvatarError {
        fail(error.userMessage, code: 2)
    }
}

/// Prints `avatar: message` on stderr and exits.
func fail(_ message: String, code: Int32 = 1) -> Never {
    FileHandle.standardError.write(Data("avatar: \(message)\n".utf8))
    exit(code)
}

func bootstrapLogging(_ settings: AvatarSettings) -> Logger {
    LogSetup.bootstrap(format: settings.logFormat, level: Logger.Level(rawValue: settings.logLevel) ?? .info)
    return Logger(label: "avatar")
}

/// Builds the runtime or exits with the one-line reason.
func makeRuntime(_ settings: AvatarSettings, _ logger: Logger) -> AvatarRuntime {
    do {
        return try AvatarRuntime.make(settings: settings, logger: logger)
    } catch let error as any AvatarError {
        fail(error.userMessage)
    } catch {
        fail("\(error)")
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
            fail("engines not ready within \(Int(timeout)) s: \(pending.joined(separator: ", ")); see \(logs)")
        }
        try await Task.sleep(for: .milliseconds(100))
    }
    return readyAt
}

/// The runtime with its engines being supervised; `stop()` ends the supervision (and the children).
struct RunningEngines {
    let runtime: AvatarRuntime
    let supervisor: EngineSupervisor
    let host: EngineHostClient
    let supervision: Task<Void, any Error>

    func stop() { supervision.cancel() }
}

/// Starts the engine host alone (no LLM, no Redis), runs `body`, stops it; an `AvatarError` from `body`
/// becomes a one-line failure.
func withEngineHost<T>(_ body: (RunningEngines, AvatarSettings) async throws -> T) async throws -> T {
    var settings = try await loadSettings()
    settings.llmEmbedded = false
    settings.redis = .off
    settings.logLevel = "warning"
    let engines = startEngines(settings, bootstrapLogging(settings))
    defer { engines.stop() }
    _ = try await waitUntilReady(engines.supervisor, timeout: settings.engineStartTimeout, logs: settings.dataDir + "/logs/")
    do {
        return try await body(engines, settings)
    } catch let error as any AvatarError {
        fail(error.userMessage)
    }
}

/// Builds the runtime and starts supervising its engines, or exits when engines are disabled.
func startEngines(_ settings: AvatarSettings, _ logger: Logger) -> RunningEngines {
    let runtime = makeRuntime(settings, logger)
    guard let supervisor = runtime.supervisor, let host = runtime.engineHost else {
        fail("the engines are disabled (AVATAR_ENGINES_ENABLED=false); this command needs them", code: 2)
    }
    return RunningEngines(runtime: runtime, supervisor: supervisor, host: host, supervision: Task { try await supervisor.run() })
}
