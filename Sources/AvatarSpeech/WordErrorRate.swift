import Foundation

/// Word error rate, as the tests and `avatar bench asr` score transcripts.
public enum WordErrorRate {
    /// Word edits (substitutions, insertions, deletions) over reference words, after `words(_:)`.
    public static func of(reference: String, hypothesis: String) -> Double {
        let ref = words(reference)
        return Double(editDistance(ref, words(hypothesis))) / Double(max(ref.count, 1))
    }

    /// Word-level Levenshtein distance.
    public static func editDistance(_ a: [String], _ b: [String]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }

    /// Lower case, punctuation and hyphens to spaces, common abbreviations and English contractions
    /// spelled out ("it's" = "it is": a recognizer's choice between the two is not an error), ё as е.
    public static func words(_ text: String) -> [String] {
        let lowered = text.lowercased().replacingOccurrences(of: "ё", with: "е").replacingOccurrences(of: "\u{2019}", with: "'")
        let cleaned = String(lowered.map { $0.isLetter || $0.isNumber || $0 == "'" ? $0 : " " })
        return cleaned.split(separator: " ").flatMap { expand($0.trimmingCharacters(in: CharacterSet(charactersIn: "'"))) }
    }

    private static let spelled: [String: [String]] = [
        "mr": ["mister"], "mrs": ["missus"], "dr": ["doctor"],
        "won't": ["will", "not"], "can't": ["can", "not"], "cannot": ["can", "not"], "let's": ["let", "us"],
    ]
    /// Words whose "'s" is "is" (elsewhere "'s" is usually a possessive and stays).
    private static let isContractions: Set<String> = ["it", "that", "what", "there", "here", "he", "she", "where", "who", "how"]
    private static let suffixes: [(String, String)] = [("n't", "not"), ("'re", "are"), ("'ll", "will"), ("'ve", "have"), ("'m", "am")]

    private static func expand(_ word: String) -> [String] {
        if word.isEmpty { return [] }
        if let whole = spelled[word] { return whole }
        if word.hasSuffix("'s"), isContractions.contains(String(word.dropLast(2))) { return [String(word.dropLast(2)), "is"] }
        for (suffix, full) in suffixes where word.hasSuffix(suffix) && word.count > suffix.count {
            return [String(word.dropLast(suffix.count)), full]
        }
        return [word]
    }
}
