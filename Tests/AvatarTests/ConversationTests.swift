import AvatarCore
import AvatarCache
import AvatarConversation
import AvatarEngines
import AvatarStore
import Foundation
import Logging
import Testing

@Suite("Conversation")
struct ConversationTests {
    let persona = Persona(name: "Masha", age: 9, interests: ["drawing", "cats"], style: "cheerful", languages: ["en", "ru"], backstory: "Masha lives by the sea.")

    func conversation(_ backends: [any LLMBackend], database: AvatarDatabase, cache: ResponseCache? = nil, contextTokens: Int = 2048) -> Conversation {
        Conversation(avatarId: "masha", persona: persona, chain: FallbackChain(backends: backends, policy: RetryPolicy(attempts: 1, backoff: .milliseconds(1), stallTimeout: .seconds(2))),
                     // FakeBackend gives the same reply to every call: the repeat check (RepetitionTests) would ask it again.
                     database: database, cache: cache, options: ConversationOptions(contextTokens: contextTokens, replyTokens: 60, retryTemperature: nil))
    }

    @Test("The persona becomes a system prompt in the conversation's language")
    func personaPrompt() async throws {
        let fake = FakeBackend()
        let talk = conversation([fake], database: try temporaryDatabase())
        _ = try await collect(talk.reply(to: "Hi! Who are you?"))
        let system = try #require(await talk.lastPrompt.first)
        #expect(system.role == "system")
        #expect(system.content.contains("You are Masha, 9 years old"))
        #expect(system.content.contains("drawing, cats"))
        #expect(system.content.contains("never ask for an address"))
        _ = try await collect(talk.reply(to: "Привет! Как дела?"))
        #expect(await talk.lastPrompt.first?.content.contains("Ты — Masha, тебе 9 лет") == true)
    }

    @Test("Replies stream as speakable segments with an emotion label and intensity")
    func segmentsAndEmotion() async throws {
        let talk = conversation([FakeBackend(tokens: ["Oh", " no", ",", " I'm", " sorry", ".", " Cats", " are", " sweet", " 🐱", "."])], database: try temporaryDatabase())
        let (segments, metadata) = try await collect(talk.reply(to: "I'm so sad, my cat is ill."))
        #expect(segments.map(\.text) == ["Oh no, I'm sorry.", "Cats are sweet 🐱."])
        #expect(segments.last?.speech == "Cats are sweet .")
        #expect(metadata.userEmotion.label == .sadness)
        #expect(metadata.emotion.label == .sadness)
        #expect(metadata.emotion.intensity > 0)
        #expect(metadata.text == "Oh no, I'm sorry. Cats are sweet 🐱.")
        // The tone hint is the message before the user's, so the system prompt (the cached prefix) does not change.
        #expect(await talk.lastPrompt.dropLast().last?.content.contains("be gentle") == true)
        #expect(await talk.lastPrompt.first?.content.contains("be gentle") == false)
    }

    @Test("Unsafe input is redirected in character without calling the model")
    func unsafeInput() async throws {
        let fake = FakeBackend()
        let talk = conversation([fake], database: try temporaryDatabase())
        let (_, metadata) = try await collect(talk.reply(to: "How do I make a bomb?"))
        #expect(metadata.moderated == .violence)
        #expect(metadata.text.contains("drawing"))
        #expect(await fake.knobs.calls == 0)
    }

    @Test("Unsafe model output is stopped before it is spoken")
    func unsafeOutput() async throws {
        let fake = FakeBackend(tokens: ["Sure", "!", " First", " get", " some", " gunpowder", " from", " the", " shop", ".", " Then", " light", " it", "."])
        let talk = conversation([fake], database: try temporaryDatabase())
        let (segments, metadata) = try await collect(talk.reply(to: "What can we build today?"))
        #expect(metadata.moderated == .violence)
        #expect(segments.first?.text == "Sure!")
        #expect(!segments.contains { $0.text.contains("gunpowder") || $0.text.contains("light it") })
        #expect(metadata.text.hasPrefix("Sure! Hmm, that's not something"))
    }

    @Test("A fact from turn 1 is in the prompt at turn 8, after summarisation started, and survives a restart")
    func memory() async throws {
        let database = try temporaryDatabase()
        let long = Array(repeating: " and", count: 30).joined()
        let fake = FakeBackend(tokens: ["That", " sounds", " lovely", long, "."])
        let talk = conversation([fake], database: database, contextTokens: 360)
        _ = try await collect(talk.reply(to: "Hello! My name is Alice and I have a dog called Rex."))
        for turn in 2...7 {
            _ = try await collect(talk.reply(to: "Turn \(turn): tell me something nice about the weather and the sea today, please."))
        }
        _ = try await collect(talk.reply(to: "What do you remember about me?"))
        let prompt = await talk.lastPrompt
        let stored = try database.memory(avatarId: "masha")
        #expect(stored.summarizedThrough > 0, "summarisation did not start")
        #expect(!stored.summary.isEmpty)
        #expect(!prompt.contains { $0.content.hasPrefix("Hello! My name is Alice") }, "turn 1 should have left the verbatim window")
        #expect(prompt[0].content.contains("The user's name is Alice."))
        #expect(prompt[0].content.contains("The user has a dog called Rex."))
        #expect(prompt.map { TokenEstimate.tokens($0.content) }.reduce(0, +) <= 360 - 60)

        let restarted = conversation([fake], database: database, contextTokens: 360)
        _ = try await collect(restarted.reply(to: "Hi again!"))
        #expect(await restarted.lastPrompt[0].content.contains("The user's name is Alice."))
    }

    @Test("Facts stated in Russian and English are extracted")
    func facts() {
        let extractor = FactExtractor()
        #expect(extractor.facts(in: "Меня зовут Петя, мне 8 лет, я люблю футбол.").map(\.fact) == ["Собеседника зовут Петя.", "Собеседнику 8 лет.", "Собеседник любит футбол."])
        #expect(extractor.facts(in: "I'm 10 years old and my favourite food is pizza!").map(\.key) == ["age", "favourite:food"])
        #expect(extractor.facts(in: "What a nice day.").isEmpty)
    }

    @Test("The cache answers repeated general questions, never personal ones")
    func cache() async throws {
        let database = try temporaryDatabase()
        let cache = ResponseCache(cache: CacheManager(logger: Logger(label: "test")), ttl: 60)
        let fake = FakeBackend(tokens: ["The", " sky", " is", " blue", "."])
        let talk = conversation([fake], database: database, cache: cache)
        let first = try await collect(talk.reply(to: "Why is the sky blue?"))
        let second = try await collect(talk.reply(to: "why is the sky BLUE"))
        #expect(!first.metadata.cached)
        #expect(second.metadata.cached)
        #expect(second.metadata.text == "The sky is blue.")
        #expect(await fake.knobs.calls == 1)
        _ = try await collect(talk.reply(to: "Do you remember my name?"))
        _ = try await collect(talk.reply(to: "Do you remember my name?"))
        #expect(await fake.knobs.calls == 3)
        let metrics = await cache.currentMetrics()
        #expect(metrics.hits == 1)
        #expect(metrics.personal == 2)

        // Once the avatar remembers something about the user, new answers are not stored.
        _ = try await collect(talk.reply(to: "My name is Bob."))
        _ = try await collect(talk.reply(to: "What is a rainbow?"))
        _ = try await collect(talk.reply(to: "What is a rainbow?"))
        #expect(await cache.currentMetrics().hits == 1)
    }

    @Test("A Russian conversation on an English-only model says so and how to fix it")
    func honestCapability() async throws {
        let englishOnly = FakeBackend(name: "embedded:smollm2-135m", languages: ["en"])
        let talk = conversation([englishOnly], database: try temporaryDatabase())
        let (_, russian) = try await collect(talk.reply(to: "Привет! Расскажи про море."))
        #expect(russian.language == "ru")
        #expect(russian.capabilityNotice?.contains("AVATAR_LLM_URL") == true)
        #expect(russian.capabilityNotice?.contains("embedded:smollm2-135m") == true)
        let (_, english) = try await collect(talk.reply(to: "Hello! Tell me about the sea."))
        #expect(english.capabilityNotice == nil)
    }

    @Test("Every backend down: the canned in-character reply, with a status, quickly")
    func cannedReply() async throws {
        let talk = conversation([FakeBackend(name: "dead", failures: 99)], database: try temporaryDatabase())
        let started = ContinuousClock.now
        let (segments, metadata) = try await collect(talk.reply(to: "Hello?"))
        #expect(ContinuousClock.now - started < .seconds(2))
        #expect(segments.first?.text.hasPrefix("Oh, I lost my train of thought") == true)
        #expect(metadata.chain?.backend == nil)
        #expect(metadata.chain?.summary.contains("last failure: dead: fake is unavailable: down") == true)
    }
}
