import AvatarCore
import AvatarEngines
import Foundation

/// Facts a user states about themselves, found with readable patterns (ru/en).
public struct FactExtractor: Sendable {
    struct Pattern: Sendable {
        let regex: String
        /// Builds (key, fact) from the capture groups.
        let make: @Sendable ([String]) -> (String, String)
    }

    static let patterns: [Pattern] = [
        .init(regex: #"\bmy name is (\p{L}+)"#) { ("name", "The user's name is \($0[0].capitalized).") },
        .init(regex: #"\bi(?:'m| am) (\d{1,2}) years? old"#) { ("age", "The user is \($0[0]) years old.") },
        .init(regex: #"\bmy fav(?:ou?rite)? (\p{L}+) is ([^.,!?;]+)"#) { ("favourite:\($0[0])", "The user's favourite \($0[0]) is \($0[1]).") },
        .init(regex: #"\bi have an? (\p{L}+) (?:called|named) (\p{L}+)"#) { ("has:\($0[0])", "The user has a \($0[0]) called \($0[1].capitalized).") },
        .init(regex: #"\bi (?:really )?(?:like|love) ([^.,!?;]+)"#) { ("likes:\($0[0])", "The user likes \($0[0]).") },
        .init(regex: #"меня зовут (\p{L}+)"#) { ("name", "Собеседника зовут \($0[0].capitalized).") },
        .init(regex: #"мне (\d{1,2}) (?:год|года|лет)\b"#) { ("age", "Собеседнику \($0[0]) лет.") },
        .init(regex: #"мо(?:й|я|ё|е) любим(?:ый|ая|ое) (\p{L}+)\s*(?:—|-|это)?\s*([^.,!?;]+)"#) { ("favourite:\($0[0])", "Любимый \($0[0]) собеседника — \($0[1]).") },
        .init(regex: #"у меня есть (\p{L}+) по имени (\p{L}+)"#) { ("has:\($0[0])", "У собеседника есть \($0[0]) по имени \($0[1].capitalized).") },
        .init(regex: #"я (?:очень )?(?:люблю|обожаю) ([^.,!?;]+)"#) { ("likes:\($0[0])", "Собеседник любит \($0[0]).") },
    ]

    private let compiled: [(NSRegularExpression, Pattern)]

    public init() {
        // Literal patterns in this file, covered by tests.
        compiled = Self.patterns.map { (try! NSRegularExpression(pattern: $0.regex, options: [.caseInsensitive]), $0) }
    }

    /// Every (key, fact) stated in a user message.
    public func facts(in text: String) -> [(key: String, fact: String)] {
        let lowered = text.lowercased()
        let range = NSRange(lowered.startIndex..., in: lowered)
        var found: [(key: String, fact: String)] = []
        for (regex, pattern) in compiled {
            for match in regex.matches(in: lowered, range: range) {
                let groups = (1..<match.numberOfRanges).compactMap { Range(match.range(at: $0), in: lowered).map { String(lowered[$0]).trimmingCharacters(in: .whitespaces) } }
                guard groups.count == match.numberOfRanges - 1 else { continue }
                let (key, fact) = pattern.make(groups)
                if !found.contains(where: { $0.key == key }) { found.append((key, fact)) }
            }
        }
        return found
    }
}

/// Rough token count: about four characters per token in English, three in Russian.
public enum TokenEstimate {
    public static func tokens(_ text: String) -> Int {
        let cyrillic = text.unicodeScalars.contains { (0x0400...0x04FF).contains($0.value) }
        return Int((Double(text.count) / (cyrillic ? 3.0 : 4.0)).rounded(.up)) + 4
    }
}

/// Folds older turns into a short extractive summary: the first sentence of each, newest kept when
/// the summary outgrows its budget. No model is involved, so summarising cannot fail or invent.
public enum TurnSummarizer {
    public static func fold(_ summary: String, turns: [(role: String, text: String)], speaker: String, budgetTokens: Int) -> String {
        var lines = summary.isEmpty ? [] : summary.components(separatedBy: "\n")
        for turn in turns {
            let first = firstSentence(turn.text)
            guard !first.isEmpty else { continue }
            lines.append("\(turn.role == "user" ? "User" : speaker): \(first)")
        }
        while lines.count > 1, TokenEstimate.tokens(lines.joined(separator: "\n")) > budgetTokens {
            lines.removeFirst()
        }
        return lines.joined(separator: "\n")
    }

    static func firstSentence(_ text: String) -> String {
        let sentence = SpeakableSegmenter.firstSentence(of: text)
        return sentence.count > 160 ? String(sentence.prefix(157)) + "…" : sentence
    }
}
