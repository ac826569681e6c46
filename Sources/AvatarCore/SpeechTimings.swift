/// Phoneme and word timings of a synthesised utterance, as a TTS engine reports them.
///
/// The speech synthesizer produces them (Piper alignments, Festival segment times, espeak-ng
/// phoneme events); the animator consumes them to drive visemes instead of guessing from audio.
/// Times are seconds from the start of the utterance's audio.
public struct SpeechTimings: Sendable, Codable, Equatable {
    public struct Phoneme: Sendable, Codable, Equatable {
        /// The phoneme as IPA (espeak-ng style, e.g. "æ", "ʃ", "p", "ɑː"); "" for a pause.
        public var ipa: String
        /// The engine's own symbol (Festival "aa", espeak mnemonic, …), kept for debugging.
        public var symbol: String
        public var start: Double
        public var end: Double

        public init(ipa: String, symbol: String, start: Double, end: Double) {
            self.ipa = ipa
            self.symbol = symbol
            self.start = start
            self.end = end
        }

        public var isPause: Bool { ipa.isEmpty }
    }

    public struct Word: Sendable, Codable, Equatable {
        public var text: String
        public var start: Double
        public var end: Double

        public init(text: String, start: Double, end: Double) {
            self.text = text
            self.start = start
            self.end = end
        }
    }

    /// Where the timings came from: "piper-alignment", "festival-segments", "espeak-events".
    public var source: String
    public var phonemes: [Phoneme]
    public var words: [Word]

    public init(source: String, phonemes: [Phoneme], words: [Word] = []) {
        self.source = source
        self.phonemes = phonemes
        self.words = words
    }

    /// The same timings moved by `offset` seconds (to place an utterance on a session clock).
    public func shifted(by offset: Double) -> SpeechTimings {
        SpeechTimings(
            source: source,
            phonemes: phonemes.map { Phoneme(ipa: $0.ipa, symbol: $0.symbol, start: $0.start + offset, end: $0.end + offset) },
            words: words.map { Word(text: $0.text, start: $0.start + offset, end: $0.end + offset) })
    }

    /// The phoneme sounding at time `t`, if any.
    public func phoneme(at t: Double) -> Phoneme? {
        var lo = 0, hi = phonemes.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if phonemes[mid].end <= t { lo = mid + 1 } else { hi = mid }
        }
        guard lo < phonemes.count, phonemes[lo].start <= t else { return nil }
        return phonemes[lo]
    }
}
