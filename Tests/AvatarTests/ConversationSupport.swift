import AvatarCore
import AvatarConversation
import AvatarEngines
import AvatarStore
import Foundation

/// A Python HTTP server started for a test: it prints `listening on PORT`, and is stopped on deinit.
final class PythonServer: @unchecked Sendable {
    let process: Process
    let port: Int

    var url: String { "http://127.0.0.1:\(port)" }

    init(python: String = "/usr/bin/env", arguments: [String], workingDirectory: String? = nil) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = python == "/usr/bin/env" ? ["python3"] + arguments : arguments
        if let workingDirectory { process.currentDirectoryURL = URL(fileURLWithPath: workingDirectory) }
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        // The fake server exits when its stdin closes, i.e. when the test process ends.
        process.standardInput = Pipe()
        try process.run()
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let byte = output.fileHandleForReading.readData(ofLength: 1)
            guard !byte.isEmpty else { break }
            line.append(byte)
        }
        let text = String(decoding: line, as: UTF8.self)
        guard text.hasPrefix("listening on "), let port = Int(text.dropFirst("listening on ".count).trimmingCharacters(in: .whitespacesAndNewlines)) else {
            process.terminate()
            throw TestFailure("python server \(arguments) did not start: '\(text)'")
        }
        self.process = process
        self.port = port
    }

    deinit {
        // SIGKILL, not terminate(): a child of the test process may inherit a blocked SIGTERM.
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// The fault server in Tests/AvatarTests/Fakes, shared by the fault tests.
    static let faults: PythonServer = {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fakes/fault_llm_server.py").path
        // A fixture, not a test subject: failing to start it is a broken checkout.
        return try! PythonServer(arguments: [script])
    }()
}

/// An `LLMBackend` with failure knobs, for orchestration tests.
struct FakeBackend: LLMBackend {
    /// Counts calls and fails the first `failures` of them.
    actor Knobs {
        var calls = 0
        var failures: Int
        var prompts: [[ChatMessage]] = []
        init(failures: Int) { self.failures = failures }
        func call(_ messages: [ChatMessage]) -> Bool {
            calls += 1
            prompts.append(messages)
            return calls <= failures
        }
    }

    let name: String
    let capabilities: LLMCapabilities
    let tokens: [String]
    let error: EngineError
    let firstTokenDelay: Duration
    let knobs: Knobs

    init(name: String = "fake", tokens: [String] = ["Hello", " there", ".", " Nice", " to", " meet", " you", "!"], failures: Int = 0,
         error: EngineError = .unavailable(engine: "fake", reason: "down"), firstTokenDelay: Duration = .zero, languages: Set<String>? = nil) {
        self.name = name
        self.capabilities = LLMCapabilities(languages: languages)
        self.tokens = tokens
        self.error = error
        self.firstTokenDelay = firstTokenDelay
        knobs = Knobs(failures: failures)
    }

    func stream(_ messages: [ChatMessage], options: ChatOptions) -> AsyncThrowingStream<String, any Error> {
        AsyncThrowingStream { continuation in
            let task = Task {
                if await knobs.call(messages) {
                    continuation.finish(throwing: error)
                    return
                }
                do {
                    if firstTokenDelay > .zero { try await Task.sleep(for: firstTokenDelay) }
                } catch {
                    continuation.finish(throwing: error)
                    return
                }
                for token in tokens { continuation.yield(token) }
                continuation.finish()
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}

/// Collects a chain's tokens and status.
func collect(_ stream: AsyncStream<ChainEvent>) async -> (text: String, status: ChainStatus?) {
    var text = ""
    var status: ChainStatus?
    for await event in stream {
        switch event {
        case .token(let token): text += token
        case .finished(let finished): status = finished
        }
    }
    return (text, status)
}

/// Collects a conversation reply's segments and metadata.
func collect(_ stream: AsyncThrowingStream<ConversationEvent, any Error>) async throws -> (segments: [SpeakableSegment], metadata: ReplyMetadata) {
    var segments: [SpeakableSegment] = []
    var metadata: ReplyMetadata?
    var emotion: Emotion?
    for try await event in stream {
        switch event {
        case .emotion(let decided):
            // Once per reply, before its first segment.
            guard emotion == nil, segments.isEmpty else { throw TestFailure("the reply's emotion came twice or after a segment") }
            emotion = decided
        case .segment(let segment):
            guard emotion != nil else { throw TestFailure("a segment came before the reply's emotion") }
            segments.append(segment)
        case .done(let done): metadata = done
        }
    }
    guard let metadata else { throw TestFailure("reply ended without metadata") }
    if let emotion, emotion != metadata.emotion { throw TestFailure("the emotion announced (\(emotion)) is not the reply's (\(metadata.emotion))") }
    return (segments, metadata)
}

func temporaryDatabase() throws -> AvatarDatabase {
    try AvatarDatabase(path: temporaryDirectory("avatar-conv") + "/avatar.sqlite")
}
