import AvatarConversation
import AvatarEngines
import AvatarStore
import Foundation
import Testing

/// A backend that answers each call with the next scripted reply (the last one again when they run out) and
/// records the sampling options of every call.
struct ScriptedBackend: LLMBackend {
    actor Log {
        var calls: [ChatOptions] = []
        var prompts: [[ChatMessage]] = []
        func record(_ options: ChatOptions, _ prompt: [ChatMessage]) -> Int {
            calls.append(options)
            prompts.append(prompt)
            return calls.count - 1
        }
    }

    let name = "scripted"
    let capabilities = LLMCapabilities()
    let replies: [String]
    let log = Log()

    func stream(_ messages: [ChatMessage], options: ChatOptions) -> AsyncThrowingStream<String, any Error> {
        AsyncThrowingStream { continuation in
            let task = Task {
                let index = await log.record(options, messages)
                // Word by word, as a model streams.
                for word in replies[min(index, replies.count - 1)].split(separator: " ", omittingEmptySubsequences: false) {
                    continuation.yield(String(word) + " ")
                }
                continuation.finish()
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}

@Suite("Repetition")
struct RepetitionTests {
    let persona = Persona(name: "Lumi", age: 10, interests: ["the sea"], style: "cheerful", languages: ["en"])

    func conversation(_ backend: ScriptedBackend) throws -> Conversation {
        Conversation(avatarId: "lumi", persona: persona, chain: FallbackChain(backends: [backend], policy: RetryPolicy(attempts: 1, backoff: .milliseconds(1), stallTimeout: .seconds(2))),
                     database: try temporaryDatabase(), options: ConversationOptions(replyTokens: 60))
    }

    @Test("The detector: same or nearly the same words repeat; short replies and different ones do not")
    func detector() {
        let detector = RepetitionDetector(recentReplies: ["A: No way! You're too.", "Yes!", "The sea is big and blue, and fish live in it."])
        #expect(detector.repeats("a: no way!  you're too"))
        #expect(detector.repeats("A: No way! You're two."))            // one word in five changed
        #expect(!detector.repeats("A: No way! You are so tall."))       // three of six changed
        #expect(detector.repeats("The sea is big and blue, and many fish live in it."))
        #expect(!detector.repeats("Yes!"))                               // too short to count
        #expect(!detector.repeats("Pandas eat bamboo, lots of it."))
        #expect(!detector.repeats("The sea is big."))                     // a beginning is not a repeat
        #expect(detector.couldRepeat("The sea is big and"))
        #expect(!detector.couldRepeat("The moon is far"))
        #expect(!detector.couldRepeat("A: No way! You're too. And also very funny, you know, really"))
    }

    @Test("A reply that repeats a recent one is never shown; the model is asked again, hotter, and that reply goes out")
    func regenerates() async throws {
        let backend = ScriptedBackend(replies: ["A: No way! You're too.", "A: No way! You're too.", "Pandas eat bamboo all day long."])
        let talk = try conversation(backend)
        let (first, firstMetadata) = try await collect(talk.reply(to: "Tell me a joke?"))
        #expect(first.map(\.text).joined(separator: " ") == "A: No way! You're too.")
        #expect(!firstMetadata.regenerated)
        let (second, metadata) = try await collect(talk.reply(to: "What do pandas eat?"))
        #expect(second.map(\.text) == ["Pandas eat bamboo all day long."])
        #expect(metadata.text == "Pandas eat bamboo all day long.")
        #expect(metadata.regenerated)
        let calls = await backend.log.calls
        #expect(calls.count == 3)
        #expect(calls[1].temperature == 0.7 && calls[2].temperature == 1.0)
        #expect(calls[1].repeatPenalty == 1.15)
        #expect((calls[2].repeatPenalty ?? 0) > (calls[1].repeatPenalty ?? 0))
        #expect((calls[2].frequencyPenalty ?? 0) > (calls[1].frequencyPenalty ?? 0))
    }

    @Test("A reply that begins like a recent one but goes on differently streams as usual, not regenerated")
    func divergingReplyIsKept() async throws {
        let backend = ScriptedBackend(replies: ["I love the sea. It is so big and blue.", "I love the sea. Fish sleep with their eyes open, did you know?"])
        let talk = try conversation(backend)
        _ = try await collect(talk.reply(to: "Do you like the sea?"))
        let (segments, metadata) = try await collect(talk.reply(to: "Can fish sleep?"))
        #expect(segments.map(\.text).joined(separator: " ") == "I love the sea. Fish sleep with their eyes open, did you know?")
        #expect(!metadata.regenerated)
        #expect(await backend.log.calls.count == 2)
    }

    @Test("The model is not shown its own repeated replies: later copies leave the prompt's history")
    func historyWithoutCopies() async throws {
        // The model insists: even the hotter retry repeats, and that reply is kept (one retry, no more).
        let backend = ScriptedBackend(replies: ["A: No way! You're too."])
        let talk = try conversation(backend)
        for message in ["Tell me a joke?", "Why is the sky blue?", "What do pandas eat?"] {
            let (segments, _) = try await collect(talk.reply(to: message))
            #expect(segments.map(\.text).joined(separator: " ") == "A: No way! You're too.")
        }
        #expect(await backend.log.calls.count == 5)   // 1 + 2 + 2
        let prompt = await talk.lastPrompt
        #expect(prompt.filter { $0.role == "assistant" }.count == 1)
        #expect(prompt.filter { $0.role == "user" }.map(\.content) == ["Tell me a joke?", "Why is the sky blue?", "What do pandas eat?"])
    }

    @Test("Penalties reach the wire: repeat_penalty only where the server takes it, frequency/presence as OpenAI names them")
    func penaltiesInRequestBodies() async throws {
        let options = ChatOptions(maxTokens: 8, temperature: 0.7, repeatPenalty: 1.15, frequencyPenalty: 0.4, presencePenalty: 0.2)
        for accepts in [true, false] {
            let client = OpenAIChatClient(endpoint: StaticEndpoint(engineName: "fake-openai", url: PythonServer.faults.url + "/echo"), client: .shared, model: "fake", timeout: 5, acceptsRepeatPenalty: accepts)
            var echo = ""
            for try await delta in client.stream([.user("Hi")], options: options) { echo += delta }
            let body = try #require(try JSONSerialization.jsonObject(with: Data(echo.utf8)) as? [String: Any])
            #expect((body["repeat_penalty"] as? Double) == (accepts ? 1.15 : nil))
            #expect(body["frequency_penalty"] as? Double == 0.4)
            #expect(body["presence_penalty"] as? Double == 0.2)
        }
        let ollama = OllamaChatClient(endpoint: StaticEndpoint(engineName: "fake-ollama", url: PythonServer.faults.url + "/echo"), client: .shared, model: "fake", timeout: 5)
        var echo = ""
        for try await delta in ollama.stream([.user("Hi")], options: options) { echo += delta }
        let body = try #require(try JSONSerialization.jsonObject(with: Data(echo.utf8)) as? [String: Any])
        let sampling = try #require(body["options"] as? [String: Any])
        #expect(sampling["repeat_penalty"] as? Double == 1.15)
        #expect(sampling["frequency_penalty"] as? Double == 0.4)
    }
}
