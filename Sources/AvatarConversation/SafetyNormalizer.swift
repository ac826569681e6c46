import Foundation

/// Turns a message into the spellings the child-safety lexicons are written against, so that disguised text
/// matches the same rules as plain text: case, `ё`, invisible characters, leetspeak (`k1ll`, `s3x`), letters spaced
/// or dotted apart (`s.e.x`), stretched letters (`kiiill`), Cyrillic look-alikes inside Latin words and the other way
/// round, and Russian written in Latin letters (`kak sdelat bombu` → `как сделат бомбу`).
public enum SafetyNormalizer {
    /// The normalised text and, when it contains Latin letters, its Latin → Cyrillic transliteration.
    public static func variants(of text: String) -> [String] {
        let base = normalize(text)
        var result = [base]
        if base.unicodeScalars.contains(where: { ("a"..."z").contains($0) }) {
            let cyrillic = transliterate(base)
            if cyrillic != base { result.append(cyrillic) }
        }
        return result
    }

    /// Lower case, no invisible characters, leetspeak decoded, spaced and stretched letters joined, mixed-script
    /// words in one script.
    public static func normalize(_ text: String) -> String {
        var lowered = text.lowercased().replacingOccurrences(of: "ё", with: "е")
        lowered.unicodeScalars.removeAll { invisible.contains($0.value) }
        let words = lowered.split(separator: " ", omittingEmptySubsequences: false).map { unifyScript(decodeLeet(String($0))) }
        var joined = words.joined(separator: " ")
        joined = joinSpacedLetters(joined)
        joined = squeezeRepeats(joined)
        return correctSpelling(joined)
    }

    /// The words the lexicons are built on. A word one typo away from one of them is read as
    /// it: `stabb`, `posion`, `secrit`, `сигореты`, `встритимся`. Only words of five letters or more are corrected
    /// (`hill` must not become `kill`),
    /// and only towards this list, so ordinary words stay as they are.
    static let vocabulary: [String] = [
        // en
        "kill", "killing", "murder", "stab", "poison", "weapon", "weapons", "knife", "knives", "bomb", "explosive", "gunpowder",
        "suicide", "myself", "yourself", "bleed", "nudes", "porn", "sexy", "undress", "secret", "secrets", "little",
        "anyone", "anybody", "parents", "delete", "number", "phone", "address", "password", "weed", "cocaine",
        "cigarettes", "alcohol", "vodka", "drunk", "bleach", "ammonia", "chlorine", "cyanide", "antifreeze", "toxic",
        "hitler", "nazi", "ignore", "instructions", "rules", "filter", "meet", "tonight", "tell",
        // ru
        "убить", "убей", "умереть", "умирать", "покончить", "повеситься", "порезать", "зарезать", "отравить", "оружие",
        "бомбу", "взрывчатку", "сделать", "голые", "голую", "раздеться", "секрет", "никому", "кому", "говори", "расскажи",
        "меня", "родителям", "переписку", "номер", "телефона", "адрес", "живешь", "пароль", "наркотики", "сигареты",
        "курить", "водки", "напиться", "хлорку", "крысиного", "смешать", "евреев", "цыгане", "нацисты", "правила",
        "инструкции", "игнорируй", "забудь", "встретимся", "встретиться", "увидимся", "вживую", 
    ]
    static let vocabularySet = Set(vocabulary)

    static func correctSpelling(_ text: String) -> String {
        var out: [String] = []
        for token in text.split(separator: " ", omittingEmptySubsequences: false) {
            let word = token.trimmingCharacters(in: .punctuationCharacters)
            guard word.count >= 5, !vocabularySet.contains(word), word.allSatisfy(\.isLetter) else { out.append(String(token)); continue }
            let limit = 1
            let cyrillic = word.unicodeScalars.contains { (0x0400...0x04FF).contains($0.value) }
            var best: (String, Int)?
            for candidate in vocabulary where abs(candidate.count - word.count) <= limit {
                // A Russian word that differs only in its ending is another form of the word, not a typo
                // (`родители` is not `родителям`); the stems in the lexicon already match it.
                let shared = word.commonPrefix(with: candidate).count
                if cyrillic, shared >= 5, shared >= min(word.count, candidate.count) - 2 { continue }
                let distance = editDistance(Array(word), Array(candidate), limit: limit)
                if distance <= limit, distance < (best?.1 ?? Int.max) { best = (candidate, distance) }
            }
            if let best { out.append(token.replacingOccurrences(of: word, with: best.0)) } else { out.append(String(token)) }
        }
        return out.joined(separator: " ")
    }

    /// Damerau–Levenshtein distance (adjacent swaps count once), giving up above `limit`.
    static func editDistance(_ a: [Character], _ b: [Character], limit: Int) -> Int {
        if a == b { return 0 }
        var previous2 = [Int](repeating: 0, count: b.count + 1)
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + [Int](repeating: 0, count: b.count)
            var rowMinimum = current[0]
            for j in 1...max(1, b.count) where b.count > 0 {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] { current[j] = min(current[j], previous2[j - 2] + 1) }
                rowMinimum = min(rowMinimum, current[j])
            }
            if rowMinimum > limit { return limit + 1 }
            previous2 = previous
            previous = current
        }
        return previous[b.count]
    }

    static let invisible: Set<UInt32> = [0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF, 0x00AD]

    static let leet: [Character: Character] = ["0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i", "|": "l", "€": "e"]

    /// Digits and symbols read as letters, only inside a word that has letters (`k1ll`, `s3x`, `p0rn`), so numbers
    /// ("I am 9", "3 cats") stay numbers.
    static func decodeLeet(_ word: String) -> String {
        let letters = word.filter(\.isLetter).count
        guard letters > 0, letters < word.count else { return word }
        let core = word.trimmingCharacters(in: CharacterSet(charactersIn: ".,?!:;\"'()"))
        guard core.filter(\.isLetter).count > 0, core.contains(where: { leet[$0] != nil }) else { return word }
        // "5" in "5th" or "2nd" is an ordinal, not a letter.
        if core.range(of: #"^\d+(st|nd|rd|th|s|am|pm|d|h|m|k|kg|km|cm)?$"#, options: .regularExpression) != nil { return word }
        var out = ""
        for (index, character) in core.enumerated() {
            // A trailing "!" is punctuation, not an "i".
            if character == "!", index == core.count - 1 { out.append(character); continue }
            out.append(leet[character] ?? character)
        }
        return word.replacingOccurrences(of: core, with: out)
    }

    static let cyrillicToLatin: [Character: Character] = ["а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x", "к": "k", "м": "m", "т": "t", "в": "b", "н": "h", "і": "i"]
    static let latinToCyrillic: [Character: Character] = Dictionary(uniqueKeysWithValues: cyrillicToLatin.map { ($0.value, $0.key) })

    /// A word mixing scripts (`sеx` with a Cyrillic `е`) is written in its majority script.
    static func unifyScript(_ word: String) -> String {
        var cyrillic = 0
        var latin = 0
        for scalar in word.unicodeScalars {
            if (0x0400...0x04FF).contains(scalar.value) { cyrillic += 1 } else if ("a"..."z").contains(scalar) { latin += 1 }
        }
        guard cyrillic > 0, latin > 0 else { return word }
        if latin >= cyrillic { return String(word.map { cyrillicToLatin[$0] ?? $0 }) }
        return String(word.map { latinToCyrillic[$0] ?? $0 })
    }

    /// `s.e.x`, `s e x`, `k-i-l-l`, `p*o*r*n` → `sex`, `kill`, `porn`: runs of three or more single letters.
    static func joinSpacedLetters(_ text: String) -> String {
        guard let regex = try? NSRegularExpression(pattern: #"(?<![\p{L}])\p{L}(?:[ .\-*_]\p{L}(?![\p{L}])){2,}"#) else { return text }
        let range = NSRange(text.startIndex..., in: text)
        var result = text
        for match in regex.matches(in: text, range: range).reversed() {
            guard let found = Range(match.range, in: result) else { continue }
            let joined = result[found].filter(\.isLetter)
            result.replaceSubrange(found, with: joined)
        }
        // An asterisk inside a word hides one letter (`f*ck`); drop it so stems around it still match.
        return result.replacingOccurrences(of: #"(?<=\p{L})\*+(?=\p{L})"#, with: "", options: .regularExpression)
    }

    /// Three or more of the same letter become one (`kiiill` → `kill`, `сееекс` → `секс`).
    static func squeezeRepeats(_ text: String) -> String {
        text.replacingOccurrences(of: #"(\p{L})\1{2,}"#, with: "$1", options: .regularExpression)
    }

    /// Russian typed in Latin letters, read back in Cyrillic (a common, lossy scheme: `zh`, `sh`, `ch`, `ya`…).
    static func transliterate(_ text: String) -> String {
        let digraphs: [(String, String)] = [
            ("shch", "щ"), ("sch", "щ"), ("zh", "ж"), ("kh", "х"), ("ch", "ч"), ("sh", "ш"), ("ts", "ц"),
            ("yu", "ю"), ("ju", "ю"), ("oy", "ой"), ("ay", "ай"), ("ey", "ей"), ("ya", "я"), ("ja", "я"), ("yo", "е"), ("jo", "е"), ("iy", "ий"), ("yy", "ый"),
        ]
        let single: [Character: String] = [
            "a": "а", "b": "б", "v": "в", "w": "в", "g": "г", "d": "д", "e": "е", "z": "з", "i": "и", "j": "й", "k": "к",
            "l": "л", "m": "м", "n": "н", "o": "о", "p": "п", "r": "р", "s": "с", "t": "т", "u": "у", "f": "ф", "h": "х",
            "c": "ц", "y": "ы", "x": "кс", "q": "к", "'": "ь",
        ]
        var out = ""
        var index = text.startIndex
        outer: while index < text.endIndex {
            for (latin, cyrillic) in digraphs where text[index...].hasPrefix(latin) {
                out += cyrillic
                index = text.index(index, offsetBy: latin.count)
                continue outer
            }
            let character = text[index]
            out += single[character] ?? String(character)
            index = text.index(after: index)
        }
        // Typed Russian drops the soft sign: infinitives (`ubit`, `kurit`) and the 2nd person (`zhivesh`) get it back.
        return out.replacingOccurrences(of: #"(?<=\p{L}{2})([тш])(?=$|[^\p{L}])"#, with: "$1ь", options: .regularExpression)
    }
}
