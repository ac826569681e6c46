import AvatarCache
import Foundation

/// Frequent questions per persona, answered from the cache (exact and normalised text, with a TTL).
///
/// Only self-contained questions are cached, and only answers generated with no personal memory in
/// the prompt (no remembered facts, no summary): a cached answer therefore never carries what one
/// user told the avatar into another conversation.
public actor ResponseCache {
    public struct Metrics: Sendable, Equatable {
        public var hits = 0
        public var misses = 0
        public var stores = 0
        /// Questions not looked up because they refer to the user or the conversation.
        public var personal = 0
    }

    let cache: CacheManager
    let ttl: Double
    private var metrics = Metrics()

    /// Words that tie a question to the user or to earlier turns.
    static let personalWords: Set<String> = [
        "i", "i'm", "im", "me", "my", "mine", "myself", "we", "our", "us", "remember", "it", "that", "this", "he", "she", "they", "him", "her", "them", "again", "earlier",
        "я", "мне", "меня", "мной", "мой", "моя", "моё", "мое", "мои", "моего", "моей", "мы", "нас", "наш", "помнишь", "это", "он", "она", "они", "его", "её", "ее", "их", "снова", "раньше",
    ]

    public init(cache: CacheManager, ttl: Double = 24 * 3600) {
        self.cache = cache
        self.ttl = ttl
    }

    /// Lower case, ё→е, punctuation dropped, whitespace collapsed.
    public static func normalise(_ text: String) -> String {
        let lowered = text.lowercased().replacingOccurrences(of: "ё", with: "е")
        let cleaned = String(lowered.map { $0.isLetter || $0.isNumber || $0 == "'" ? $0 : " " })
        return cleaned.split(separator: " ").joined(separator: " ")
    }

    /// Whether the question stands on its own (no reference to the user or earlier turns).
    public static func isSelfContained(_ text: String) -> Bool {
        let words = normalise(text).split(separator: " ").map(String.init)
        return !words.isEmpty && !words.contains(where: personalWords.contains)
    }

    static func key(persona: String, language: String, question: String) -> String {
        "\(persona):\(language):\(normalise(question))"
    }

    public func lookup(persona: String, language: String, question: String) async -> String? {
        guard Self.isSelfContained(question) else {
            metrics.personal += 1
            return nil
        }
        guard let bytes = await cache.get("reply", Self.key(persona: persona, language: language, question: question)) else {
            metrics.misses += 1
            return nil
        }
        metrics.hits += 1
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Stores an answer; refused when the prompt held personal memory or the question is not self-contained.
    public func store(persona: String, language: String, question: String, answer: String, usedPersonalMemory: Bool) async {
        guard !usedPersonalMemory, Self.isSelfContained(question), !answer.isEmpty else { return }
        await cache.set("reply", Self.key(persona: persona, language: language, question: question), Array(answer.utf8), ttl: ttl)
        metrics.stores += 1
    }

    public func currentMetrics() -> Metrics { metrics }
}
