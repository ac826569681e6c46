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

    /// Lower case, punctuation and hyphens to spaces, common abbreviations spelled out, ё as е.
    public static func words(_ text: String) -> [String] {
        let lowered = text.lowercased().replacingOccurrences(of: "ё", with: "е")
        let cleaned = String(lowered.map { $0.isLetter || $0.isNumber || $0 == "'" ? $0 : " " })
        let spelled: [String: String] = ["mr": "mister", "mrs": "missus", "dr": "doctor"]
        return cleaned.split(separator: " ").map { spelled[String($0)] ?? String($0) }
    }
}
