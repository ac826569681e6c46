import Foundation

/// Notices a reply that repeats one of the avatar's recent replies: the same words (case and punctuation
/// ignored) or nearly — at most one word in five different (word-level edit distance). A small model (SmolLM2-135M)
/// that once answered "A: No way! You're too." copied it for every following turn; this is what catches that.
public struct RepetitionDetector: Sendable {
    /// The recent replies, as words.
    let recent: [[String]]
    /// Replies shorter than this many words ("Yes!", "Okay.") are not counted as repeats.
    public static let minimumWords = 3

    public init(recentReplies: [String]) {
        recent = recentReplies.map(Self.words).filter { $0.count >= Self.minimumWords }
    }

    /// Lower-cased words (letters and digits; apostrophes dropped, so "you're" and "youre" are one word).
    public static func words(_ text: String) -> [String] {
        var words: [String] = []
        var current = ""
        for character in text.lowercased() {
            if character.isLetter || character.isNumber {
                current.append(character)
            } else if character == "'" || character == "’" {
                continue
            } else if !current.isEmpty {
                words.append(current)
                current = ""
            }
        }
        if !current.isEmpty { words.append(current) }
        return words
    }

    /// Whether two word lists are nearly equal: edit distance at most a fifth of the longer one.
    static func nearlyEqual(_ a: [String], _ b: [String]) -> Bool {
        let longer = max(a.count, b.count)
        guard longer > 0 else { return true }
        return distance(a, b) * 5 <= longer
    }

    /// Whether the finished reply repeats a recent one.
    public func repeats(_ reply: String) -> Bool {
        let words = Self.words(reply)
        guard words.count >= Self.minimumWords else { return false }
        return recent.contains { Self.nearlyEqual(words, $0) }
    }

    /// Whether a reply that begins with `partial` could still turn out to repeat a recent one: its words nearly
    /// equal the start of one (while it is shorter than a fifth more than that reply). A reply is held back only
    /// while this is true, so an ordinary reply streams at once.
    public func couldRepeat(_ partial: String) -> Bool {
        let words = Self.words(partial)
        return recent.contains { reply in
            guard words.count * 5 <= reply.count * 6 else { return false }
            return Self.nearlyEqual(words, Array(reply.prefix(words.count)))
        }
    }

    /// Levenshtein distance over words.
    static func distance(_ a: [String], _ b: [String]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }
}
