import Foundation

/// A piece of the reply ready for speech: `text` as shown, `speech` as spoken (emoji removed).
public struct SpeakableSegment: Sendable, Equatable {
    public var text: String
    public var speech: String

    public init(text: String, speech: String) {
        self.text = text
        self.speech = speech
    }
}

/// Cuts a token stream into sentences and long clauses as early as possible, so speech can start
/// before the model has finished.
///
/// A sentence ends at `.`, `!`, `?` or `…` followed by whitespace and then by something other than a
/// lower-case word or a dash — not after a known abbreviation ("Dr.", "e.g.", "т. е.", "г.") or a
/// single initial, and never inside a number ("3.14", "1,5").
/// A clause ends at `,`, `;`, `:` or a dash once `minClause` characters have gathered, so long
/// sentences start speaking early while short ones stay whole.
public struct SpeakableSegmenter: Sendable {
    public var minClause: Int
    private var buffer = ""

    static let abbreviations: Set<String> = [
        "mr", "mrs", "ms", "dr", "prof", "st", "vs", "etc", "e.g", "i.e", "a.m", "p.m", "jr", "sr", "approx", "mt",
        "т", "е", "д", "п", "г", "гг", "ул", "др", "пр", "им", "см", "стр", "руб", "коп", "тыс", "млн", "млрд", "т.е", "т.д", "т.п", "т.к",
    ]

    public init(minClause: Int = 40) {
        self.minClause = minClause
    }

    /// Adds streamed text; returns every segment it completes.
    public mutating func feed(_ text: String) -> [SpeakableSegment] {
        buffer += text
        var segments: [SpeakableSegment] = []
        while let cut = nextCut() {
            let piece = String(buffer[..<cut])
            buffer = String(buffer[cut...])
            if let segment = Self.segment(piece) { segments.append(segment) }
        }
        return segments
    }

    /// A whole text cut the same way as a stream: sentences, and clauses of long sentences once `minClause`
    /// characters have gathered; a piece still longer than `maxLength` is cut at its last clause mark (or space)
    /// before the limit, so the first audio of a long sentence comes early. The one splitter for replies,
    /// synthesis and summaries.
    public static func segments(of text: String, minClause: Int = 40, maxLength: Int = 220) -> [SpeakableSegment] {
        var segmenter = SpeakableSegmenter(minClause: minClause)
        var pieces = segmenter.feed(text)
        if let last = segmenter.flush() { pieces.append(last) }
        return pieces.flatMap { capped($0.text, maxLength: maxLength) }.compactMap(segment)
    }

    /// The first sentence of `text` (for extractive summaries).
    public static func firstSentence(of text: String) -> String {
        var segmenter = SpeakableSegmenter(minClause: .max)
        return (segmenter.feed(text).first ?? segmenter.flush())?.text ?? ""
    }

    static func capped(_ text: String, maxLength: Int) -> [String] {
        var rest = Substring(text)
        var parts: [String] = []
        while rest.count > maxLength {
            let head = rest.prefix(maxLength)
            let cut = head.lastIndex(where: { ",;:".contains($0) }).map { head.index(after: $0) }
                ?? head.lastIndex(of: " ") ?? head.endIndex
            parts.append(String(rest[..<cut]))
            rest = rest[cut...].drop(while: \.isWhitespace)
        }
        parts.append(String(rest))
        return parts
    }

    /// The rest of the text when the stream ends.
    public mutating func flush() -> SpeakableSegment? {
        defer { buffer = "" }
        return Self.segment(buffer)
    }

    /// Index just after the first boundary whose following character has already arrived.
    private func nextCut() -> String.Index? {
        let chars = Array(buffer)
        var i = 0
        var offset = buffer.startIndex
        while i < chars.count {
            let c = chars[i]
            let next = i + 1 < chars.count ? chars[i + 1] : nil
            if ".!?…".contains(c) {
                // Run of terminal punctuation and closing quotes/brackets belongs to this sentence.
                var end = i + 1
                while end < chars.count, ".!?…\"'»”)".contains(chars[end]) { end += 1 }
                guard end < chars.count else { return nil }
                if chars[end].isWhitespace, !(c == "." && end == i + 1 && isAbbreviation(chars, dotAt: i)) {
                    // What follows decides: a lower-case word or a dash continues the sentence
                    // ("p.m. yesterday", "«Правда?» — спросила она").
                    var look = end
                    while look < chars.count, chars[look].isWhitespace { look += 1 }
                    guard look < chars.count else { return nil }
                    let following = chars[look]
                    if !(following.isLowercase || "—–-".contains(following)) {
                        return buffer.index(offset, offsetBy: end - i)
                    }
                }
                offset = buffer.index(offset, offsetBy: end - i)
                i = end
                continue
            }
            if ",;:—–".contains(c) || (c == "-" && i > 0 && chars[i - 1] == " ") {
                guard let next else { return nil }
                let isNumberComma = c == "," && next.isNumber && i > 0 && chars[i - 1].isNumber
                if next.isWhitespace, !isNumberComma, spokenLength(chars[0..<i]) >= minClause {
                    return buffer.index(after: offset)
                }
            }
            offset = buffer.index(after: offset)
            i += 1
        }
        return nil
    }

    /// Whether the word before the dot at `dotAt` is an abbreviation or an initial.
    private func isAbbreviation(_ chars: [Character], dotAt: Int) -> Bool {
        var start = dotAt
        while start > 0, chars[start - 1].isLetter || chars[start - 1] == "." { start -= 1 }
        let word = String(chars[start..<dotAt]).lowercased()
        if word.isEmpty { return false }
        if Self.abbreviations.contains(word) { return true }
        // A single capital letter: an initial ("J. R. R. Tolkien", "А. С. Пушкин").
        return word.count == 1 && chars[start].isUppercase
    }

    private func spokenLength(_ chars: ArraySlice<Character>) -> Int {
        chars.reduce(0) { $0 + (Self.isEmoji($1) ? 0 : 1) }
    }

    public static func segment(_ piece: String) -> SpeakableSegment? {
        let text = piece.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !text.isEmpty else { return nil }
        let speech = speakable(text)
        return SpeakableSegment(text: text, speech: speech)
    }

    /// The text without emoji and markdown emphasis, with whitespace collapsed.
    public static func speakable(_ text: String) -> String {
        let kept = text.filter { !isEmoji($0) && $0 != "*" && $0 != "_" && $0 != "#" && $0 != "`" }
        return kept.split(whereSeparator: \.isWhitespace).joined(separator: " ")
    }

    /// Pictographic emoji (including flags, keycaps and ZWJ sequences), but not plain digits or '#'.
    public static func isEmoji(_ character: Character) -> Bool {
        guard let first = character.unicodeScalars.first else { return false }
        if character.unicodeScalars.count > 1, character.unicodeScalars.contains(where: { $0.value == 0xFE0F || $0.value == 0x200D || $0.value == 0x20E3 }) {
            return true
        }
        if (0x1F1E6...0x1F1FF).contains(first.value) { return true }
        return first.properties.isEmojiPresentation || (first.properties.isEmoji && first.value > 0x238C)
    }
}
