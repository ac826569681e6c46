import ArgumentParser
import AsyncHTTPClient
import AvatarConversation
import AvatarCore
import AvatarEngines
import AvatarServer
import AvatarStore
import Foundation
import Logging

/// `avatar chat --avatar NAME`: a streaming conversation in the terminal.
struct Chat: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Talk with an avatar in the terminal (streaming, with its persona and memory).")

    @Option(help: "The avatar's name; created with --persona (or a default persona) when it does not exist.")
    var avatar: String

    @Option(help: "Persona JSON for a new avatar: {\"age\":9,\"interests\":[…],\"style\":…,\"languages\":[\"en\"],\"backstory\":…,\"childSafe\":true}.")
    var persona: String?

    func run() async throws {
        var settings = try await loadSettings()
        if settings.logLevel == "info" { settings.logLevel = "warning" }
        let session = try await LLMSession.start(settings: settings)
        defer { session.stop() }
        let record = try session.avatar(named: avatar, personaFile: persona)
        let persona: Persona
        do {
            persona = try Persona.decode(json: record.persona, name: record.name)
        } catch {
            throw CLIFailure("the stored persona of \(record.name) is not valid JSON: \(error)")
        }
        let talk = session.runtime.conversation(avatarId: record.id, persona: persona, chain: session.chain)
        print("Chatting with \(persona.name) (models: \(session.chain.backends.map(\.name).joined(separator: " → ")) → canned reply; child-safe: \(persona.isChildSafe ? "on" : "off")). Empty line or Ctrl-D ends.")
        while true {
            print("\nyou> ", terminator: "")
            fflush(nil)
            guard let line = readLine(), !line.trimmingCharacters(in: .whitespaces).isEmpty else { break }
            print("\(persona.name)> ", terminator: "")
            fflush(nil)
            let started = ContinuousClock.now
            do {
                for try await event in await talk.reply(to: line) {
                    switch event {
                    case .emotion:
                        break
                    case .segment(let segment):
                        print(segment.text + " ", terminator: "")
                        fflush(nil)
                    case .done(let metadata):
                        let elapsed = (ContinuousClock.now - started).seconds
                        var notes = [String(format: "%@ %.1f", metadata.emotion.label.rawValue, metadata.emotion.intensity), String(format: "%.1f s", elapsed)]
                        if metadata.cached { notes.append("cached") }
                        if let moderated = metadata.moderated { notes.append("child-safe: \(moderated.rawValue)") }
                        if let chain = metadata.chain { notes.append(chain.summary) }
                        print("\n  [\(notes.joined(separator: " · "))]")
                        if let notice = metadata.capabilityNotice { print("  note: \(notice)") }
                    }
                }
            } catch let error as any AvatarError {
                print("\n  error: \(error.userMessage)")
            }
        }
    }
}

/// The runtime with its engines started and the model chain ready, for `chat` and `bench llm`.
struct LLMSession {
    let runtime: AvatarRuntime
    let chain: FallbackChain
    let http: HTTPClient
    let supervision: Task<Void, any Error>?

    static func start(settings: AvatarSettings, policy: RetryPolicy = RetryPolicy(firstTokenTimeout: .seconds(60))) async throws -> LLMSession {
        let logger = bootstrapLogging(settings)
        let runtime: AvatarRuntime
        do {
            runtime = try AvatarRuntime.make(settings: settings, logger: logger)
        } catch let error as any AvatarError {
            throw CLIFailure(error.userMessage)
        }
        var supervision: Task<Void, any Error>?
        if let supervisor = runtime.supervisor, let llm = supervisor.engine(named: "llm") {
            supervision = Task { try await supervisor.run() }
            print("Starting the embedded model…")
            let deadline = ContinuousClock.now + .seconds(settings.engineStartTimeout)
            while await llm.status().state != .ready {
                if ContinuousClock.now > deadline {
                    throw CLIFailure("the embedded model did not start within \(Int(settings.engineStartTimeout)) s; see \(settings.dataDir)/logs/llm.log")
                }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: LLMChainFactory.failFastConfiguration())
        let chain = LLMChainFactory.make(settings: settings, embedded: runtime.embeddedLLM, http: http, policy: policy)
        if chain.backends.isEmpty {
            throw CLIFailure("no model configured: set AVATAR_LLM_URL and AVATAR_LLM_MODEL, or enable the embedded model (AVATAR_ENGINES_ENABLED, AVATAR_LLM_EMBEDDED)", code: 2)
        }
        return LLMSession(runtime: runtime, chain: chain, http: http, supervision: supervision)
    }

    func stop() {
        supervision?.cancel()
        try? http.syncShutdown()
    }

    /// The stored avatar, created (with the persona file or a default persona) when missing.
    func avatar(named name: String, personaFile: String?) throws -> AvatarRecord {
        if let existing = try runtime.database.avatar(named: name) { return existing }
        var json = #"{"age": 30, "interests": ["stories", "the sea"], "style": "warm and curious", "languages": ["en"]}"#
        if let personaFile {
            guard let data = FileManager.default.contents(atPath: personaFile) else { throw CLIFailure("cannot read \(personaFile)", code: 2) }
            json = String(decoding: data, as: UTF8.self)
            do {
                _ = try Persona.decode(json: json, name: name)
            } catch {
                throw CLIFailure("\(personaFile) is not a valid persona: \(error)", code: 2)
            }
        }
        let record = AvatarRecord(name: name, persona: json)
        try runtime.database.insert(record)
        print("Created avatar \(name).")
        return record
    }
}
