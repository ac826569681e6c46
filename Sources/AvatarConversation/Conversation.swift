import AvatarCore
import AvatarEngines
import AvatarStore
import Foundation

/// What the voice, the face and the API learn about a finished reply.
public struct ReplyMetadata: Sendable, Equatable {
    /// The whole reply as shown (emoji kept).
    public var text: String
    /// The conversation's language for this turn ("en", "ru").
    public var language: String
    /// The user's emotion as detected.
    public var userEmotion: Emotion
    /// The emotion the avatar expresses in this reply.
    public var emotion: Emotion
    /// How the reply was produced (backend, failures, canned), or nil when moderation or the cache answered.
    public var chain: ChainStatus?
    /// The moderation category that changed the reply, for the user's message or the model's.
    public var moderated: ChildSafetyModerator.Category?
    /// Whether the reply came from the response cache.
    public var cached: Bool
    /// Set when the active model cannot serve this language: what is wrong and how to fix it.
    public var capabilityNotice: String?
    /// The model's first reply repeated one of its recent replies and was asked for again (hotter sampling);
    /// the repeat itself was never shown, spoken or stored.
    public var regenerated: Bool = false
}

/// Events of one reply, in order: the reply's emotion (before its first segment, so the voice and the face can
/// take it from the first clause on), speakable segments as early as possible, then the metadata.
public enum ConversationEvent: Sendable, Equatable {
    case emotion(Emotion)
    case segment(SpeakableSegment)
    case done(ReplyMetadata)
}

/// Limits of one conversation.
public struct ConversationOptions: Sendable {
    /// Tokens the prompt (system, memory, recent turns, message) may use.
    public var contextTokens: Int
    /// Tokens reserved for the reply.
    public var replyTokens: Int
    public var temperature: Double
    /// Penalties against repeating itself (see `ChatOptions`): a small model copies text in its context.
    public var repeatPenalty: Double?
    public var frequencyPenalty: Double?
    public var presencePenalty: Double?
    /// A reply that repeats one of the last `repeatWindow` replies is asked for once more at this temperature
    /// (and a stronger repeat penalty); nil turns the check off.
    public var retryTemperature: Double?
    public var repeatWindow: Int

    public init(contextTokens: Int = 2048, replyTokens: Int = 160, temperature: Double = 0.7,
                repeatPenalty: Double? = 1.15, frequencyPenalty: Double? = 0.4, presencePenalty: Double? = 0.2,
                retryTemperature: Double? = 1.0, repeatWindow: Int = 6) {
        self.contextTokens = contextTokens
        self.replyTokens = replyTokens
        self.temperature = temperature
        self.repeatPenalty = repeatPenalty
        self.frequencyPenalty = frequencyPenalty
        self.presencePenalty = presencePenalty
        self.retryTemperature = retryTemperature
        self.repeatWindow = repeatWindow
    }

    /// The sampling options for a first try, or for the retry after a repeated reply.
    func chatOptions(retry: Bool) -> ChatOptions {
        guard retry, let hotter = retryTemperature else {
            return ChatOptions(maxTokens: replyTokens, temperature: temperature, repeatPenalty: repeatPenalty, frequencyPenalty: frequencyPenalty, presencePenalty: presencePenalty)
        }
        return ChatOptions(maxTokens: replyTokens, temperature: max(hotter, temperature), repeatPenalty: (repeatPenalty ?? 1.1) + 0.1,
                           frequencyPenalty: min(2, (frequencyPenalty ?? 0) + 0.3), presencePenalty: presencePenalty)
    }
}

/// One avatar's conversation: persona, memory, moderation, emotion, cache and the model chain,
/// turned into a stream of speakable segments.
public actor Conversation {
    public let avatarId: String
    public let persona: Persona
    let chain: FallbackChain
    let database: AvatarDatabase
    let cache: ResponseCache?
    let options: ConversationOptions
    /// Child-safe mode's checks (lexicon, and the semantic classifier when one is given).
    let safety: ChildSafetyGuard
    /// The user's previous message, so the input check can read an escalation across two turns.
    private var previousUserMessage: String?
    let emotions = EmotionDetector()
    let facts = FactExtractor()
    /// The messages sent to the model for the latest reply (for diagnostics and tests).
    public private(set) var lastPrompt: [ChatMessage] = []
    /// Replies are numbered so an interruption amends the right one, whether or not it was stored yet.
    private var replyCount = 0
    /// Stored assistant rows per reply, and replies whose memory an interruption already set.
    private var storedReply: [Int: Int64] = [:]
    private var amendedReplies: [Int: String] = [:]

    public init(avatarId: String, persona: Persona, chain: FallbackChain, database: AvatarDatabase, cache: ResponseCache? = nil, options: ConversationOptions = ConversationOptions(), safety: ChildSafetyGuard = ChildSafetyGuard()) {
        self.safety = safety
        self.avatarId = avatarId
        self.persona = persona
        self.chain = chain
        self.database = database
        self.cache = cache
        self.options = options
    }

    /// Answers one user message. Cancelling the consumer stops generation (barge-in).
    public func reply(to message: String) -> AsyncThrowingStream<ConversationEvent, any Error> {
        AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    let number = await self.nextReplyNumber()
                    try await self.produce(message, reply: number) { continuation.yield($0) }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    private func nextReplyNumber() -> Int {
        replyCount += 1
        return replyCount
    }

    /// Barge-in: the latest reply was cut off, and the person heard only `heard` of it. The memory keeps just that
    /// (nothing, when nothing was heard) — now if the reply was stored already, else when it is.
    public func amendLatestReply(heard: String) throws {
        let number = replyCount
        guard number > 0 else { return }
        let heard = heard.trimmingCharacters(in: .whitespacesAndNewlines)
        amendedReplies[number] = heard
        if let row = storedReply[number] {
            if heard.isEmpty { try database.deleteTurn(id: row) } else { try database.updateTurnText(id: row, text: heard) }
        } else if !heard.isEmpty {
            // Stored now, right after its question, before the person's next message; the reply's own end stores nothing.
            storedReply[number] = try database.appendTurn(StoredTurn(avatarId: avatarId, role: "assistant", text: heard)).id
        }
    }

    private func produce(_ message: String, reply number: Int, emit: @Sendable (ConversationEvent) -> Void) async throws {
        let language = LanguageGuess.detect(message)
        let userEmotion = emotions.detect(message)
        var metadata = ReplyMetadata(text: "", language: language, userEmotion: userEmotion, emotion: .neutral, chain: nil, moderated: nil, cached: false, capabilityNotice: nil)
        let childSafe = persona.isChildSafe
        // Child-safe mode checks the message before anything else: a refused message reaches neither the model nor
        // the remembered facts (an address the child typed is not kept), only the history with the script after it.
        let inputVerdict = childSafe ? await safety.checkInput(message, previous: previousUserMessage) : .allowed
        previousUserMessage = message
        _ = try database.appendTurn(StoredTurn(avatarId: avatarId, role: "user", text: message))
        if let category = inputVerdict.category {
            let redirect = ChildSafetyModerator.redirect(category, persona: persona, language: language)
            metadata.moderated = category
            try finish(redirect, segments: nil, metadata: metadata, reply: number, emit: emit)
            return
        }
        for fact in facts.facts(in: message) {
            try database.saveFact(avatarId: avatarId, key: fact.key, fact: fact.fact)
        }

        if let active = await chain.activeBackend(), !active.capabilities.supports(language: language) {
            metadata.capabilityNotice = Self.capabilityNotice(backend: active, language: language)
        }

        let memory = try database.memory(avatarId: avatarId)
        let usesPersonalMemory = !memory.facts.isEmpty || !memory.summary.isEmpty
        if let cache, let answer = await cache.lookup(persona: cacheScope, language: language, question: message) {
            metadata.cached = true
            try finish(answer, segments: nil, metadata: metadata, reply: number, emit: emit)
            return
        }

        let prompt = try buildPrompt(message, language: language, emotion: userEmotion, memory: memory)
        lastPrompt = prompt
        // A reply that begins like one of the recent replies is held back until it differs; if it ends as a repeat
        // (the same words, or nearly), it is dropped unseen and the model is asked once more, hotter.
        let detector = RepetitionDetector(recentReplies: options.retryTemperature == nil ? [] : try recentReplies())
        // The reply's emotion is decided from the user's and the first clause, before that clause is emitted.
        var decided: Emotion?
        let emotions = self.emotions
        func emitSegment(_ segment: SpeakableSegment) {
            if decided == nil {
                let emotion = EmotionDetector.replyEmotion(for: userEmotion, replyText: segment.text, detector: emotions)
                decided = emotion
                emit(.emotion(emotion))
            }
            emit(.segment(segment))
        }
        var segmenter = SpeakableSegmenter()
        var spoken: [SpeakableSegment] = []
        var held: [SpeakableSegment] = []
        var status: ChainStatus?
        var retry = false
        attempts: while true {
            var holding = true
            // Emits what was held back once the reply can no longer be a repeat.
            func release() {
                holding = false
                for segment in held { spoken.append(segment); emitSegment(segment) }
                held.removeAll()
            }
            // In child-safe mode every clause is checked before it is emitted (shown, spoken) or stored; the first
            // flagged clause ends the reply, and the stream to the model is cancelled with it.
            events: for await event in chain.stream(prompt, options: options.chatOptions(retry: retry), canned: persona.cannedReply(language: language)) {
                switch event {
                case .token(let token):
                    for segment in segmenter.feed(token) {
                        if childSafe, let category = await safety.checkOutput(segment.text, previous: (held.last ?? spoken.last)?.text).category {
                            metadata.moderated = category
                            break events
                        }
                        if holding {
                            held.append(segment)
                            if !detector.couldRepeat(held.map(\.text).joined(separator: " ")) { release() }
                        } else {
                            spoken.append(segment)
                            emitSegment(segment)
                        }
                    }
                case .finished(let finished):
                    status = finished
                }
            }
            if metadata.moderated == nil, let last = segmenter.flush() {
                if childSafe, let category = await safety.checkOutput(last.text, previous: (held.last ?? spoken.last)?.text).category {
                    metadata.moderated = category
                } else if holding {
                    held.append(last)
                } else {
                    spoken.append(last)
                    emitSegment(last)
                }
            }
            if !retry, metadata.moderated == nil, holding, let status, status.backend != nil, !status.interrupted,
               detector.repeats(held.map(\.text).joined(separator: " ")) {
                retry = true
                metadata.regenerated = true
                held.removeAll()
                segmenter = SpeakableSegmenter()
                continue attempts
            }
            release()
            break attempts
        }
        metadata.chain = status
        if let category = metadata.moderated {
            // The unsafe clause was never shown, spoken or stored: what was said stays, and the redirection (a fixed
            // script for secrecy, meeting, personal data and sexual topics; for the model's own self-harm words a
            // change of subject, since the child's message passed) follows it.
            let redirect = ChildSafetyModerator.replyRedirect(category, persona: persona, language: language)
            try finish(redirect, segments: spoken, decided: decided, metadata: metadata, reply: number, emit: emit)
            return
        }
        let reply = spoken.map(\.text).joined(separator: " ")
        try finish(reply, segments: spoken, decided: decided, metadata: metadata, reply: number, emit: emit)
        if let cache, let status, status.backend != nil, !status.usedFallback, !status.interrupted {
            await cache.store(persona: cacheScope, language: language, question: message, answer: reply, usedPersonalMemory: usesPersonalMemory)
        }
    }

    /// Emits `text` as segments (unless they were already streamed), stores the turn and the metadata.
    /// `decided`: the reply's emotion when it was already emitted with the first streamed segment.
    private func finish(_ text: String, segments alreadySpoken: [SpeakableSegment]?, decided: Emotion? = nil, metadata: ReplyMetadata, reply number: Int,
                        emit: @Sendable (ConversationEvent) -> Void) throws {
        var metadata = metadata
        var shown = alreadySpoken?.map(\.text) ?? []
        var emotion = decided
        if alreadySpoken == nil || metadata.moderated != nil {
            let pieces = SpeakableSegmenter.segments(of: text)
            if emotion == nil {
                let decidedNow = EmotionDetector.replyEmotion(for: metadata.userEmotion, replyText: pieces.first?.text ?? text, detector: emotions)
                emotion = decidedNow
                emit(.emotion(decidedNow))
            }
            for piece in pieces { emit(.segment(piece)) }
            shown += pieces.map(\.text)
        }
        metadata.text = shown.joined(separator: " ")
        metadata.emotion = emotion ?? EmotionDetector.replyEmotion(for: metadata.userEmotion, replyText: metadata.text, detector: emotions)
        // An interruption that came first has already decided what is remembered of this reply.
        if amendedReplies[number] == nil {
            storedReply[number] = try database.appendTurn(StoredTurn(avatarId: avatarId, role: "assistant", text: metadata.text)).id
        }
        storedReply = storedReply.filter { $0.key > number - 4 }
        amendedReplies = amendedReplies.filter { $0.key > number - 4 }
        emit(.done(metadata))
    }

    /// The avatar's last replies (newest last), for the repetition check.
    func recentReplies() throws -> [String] {
        let turns = try database.turns(avatarId: avatarId)
        return Array(turns.filter { $0.role == "assistant" }.suffix(options.repeatWindow).map(\.text))
    }

    /// The persona's cache namespace: a changed persona never reads the old persona's answers.
    var cacheScope: String {
        let description = "\(persona.name)|\(persona.age ?? -1)|\(persona.style)|\(persona.interests)|\(persona.backstory)"
        return "\(avatarId):\(ContentHash.of(description))"
    }

    /// System prompt + remembered facts + summary, then as many recent turns as fit, then the message.
    /// Turns that no longer fit are folded into the summary and persisted.
    func buildPrompt(_ message: String, language: String, emotion: Emotion, memory: StoredMemory) throws -> [ChatMessage] {
        var memory = memory
        var recent = try database.turns(avatarId: avatarId, after: memory.summarizedThrough)
        // The current message was stored already; it goes last, on its own.
        if recent.last?.role == "user", recent.last?.text == message { recent.removeLast() }

        // The system prompt changes only when memory does: llama.cpp reuses the evaluated prefix of the previous
        // prompt, and a changed first message makes it evaluate the whole history again (seconds per turn on one CPU
        // thread, past the first-token timeout late in a conversation). The turn's tone hint goes last instead.
        func system() -> String {
            var parts = [persona.systemPrompt(language: language)]
            if !memory.facts.isEmpty {
                parts.append((language == "ru" ? "Что ты знаешь о собеседнике:\n" : "What you know about the user:\n") + memory.facts.keys.sorted().compactMap { memory.facts[$0] }.map { "- " + $0 }.joined(separator: "\n"))
            }
            if !memory.summary.isEmpty {
                parts.append((language == "ru" ? "Раньше в разговоре:\n" : "Earlier in the conversation:\n") + memory.summary)
            }
            return parts.joined(separator: "\n\n")
        }

        let hint = EmotionDetector.toneHint(for: emotion, language: language)
        let budget = options.contextTokens - options.replyTokens
        let summaryBudget = max(64, budget / 5)
        let fixed = TokenEstimate.tokens(system()) + TokenEstimate.tokens(message) + (hint.map(TokenEstimate.tokens) ?? 0)
        var kept: [StoredTurn] = []
        // When the history no longer fits, fold it down to 60 % of the budget, not just by the one turn that
        // overflowed: the prompt's prefix then stays the same for the next several turns (prompt cache).
        let total = recent.reduce(fixed) { $0 + TokenEstimate.tokens($1.text) }
        let target = total > budget ? Int(Double(budget) * 0.6) : budget
        var used = fixed
        for turn in recent.reversed() {
            let cost = TokenEstimate.tokens(turn.text)
            if used + cost > target { break }
            used += cost
            kept.insert(turn, at: 0)
        }
        let folded = recent.prefix(recent.count - kept.count)
        if let lastFolded = folded.last?.id {
            memory.summary = TurnSummarizer.fold(memory.summary, turns: folded.map { ($0.role, $0.text) }, speaker: persona.name, budgetTokens: summaryBudget)
            memory.summarizedThrough = lastFolded
            try database.saveSummary(avatarId: avatarId, summary: memory.summary, through: lastFolded)
        }
        return [.system(system())] + Self.withoutRepeatedReplies(kept).map { ChatMessage(role: $0.role, content: $0.text) } + (hint.map { [.system($0)] } ?? []) + [.user(message)]
    }

    /// The history without the avatar's replies that repeat (nearly) an earlier reply in it: a small model copies
    /// what its context shows it said, and each copy makes the next one likelier. Only later copies go, so the
    /// prompt's prefix stays the same from turn to turn (llama.cpp's prompt cache).
    static func withoutRepeatedReplies(_ turns: [StoredTurn]) -> [StoredTurn] {
        var seen: [[String]] = []
        return turns.filter { turn in
            guard turn.role == "assistant" else { return true }
            let words = RepetitionDetector.words(turn.text)
            guard words.count >= RepetitionDetector.minimumWords else { return true }
            if seen.contains(where: { RepetitionDetector.nearlyEqual($0, words) }) { return false }
            seen.append(words)
            return true
        }
    }

    static func capabilityNotice(backend: any LLMBackend, language: String) -> String {
        let speaks = backend.capabilities.languages.map { $0.sorted().joined(separator: ", ") } ?? "?"
        return "The active model (\(backend.name)) speaks only \(speaks), not '\(language)'; replies may be poor. Connect a multilingual model, e.g. Ollama: AVATAR_LLM_URL=http://127.0.0.1:11434 AVATAR_LLM_MODEL=qwen2.5:1.5b (AVATAR_LLM_API=ollama)."
    }
}
