import AvatarCore
import Foundation

/// A visible mouth shape class: the phonemes that look alike on the lips.
///
/// The set follows the usual lip-sync visemes (Preston Blair / Oculus): what matters is the jaw, the lip width
/// or rounding, and two contacts the audio loudness cannot show — the lips pressed together (m, b, p) and the
/// lower lip against the upper teeth (f, v).
public enum Viseme: String, CaseIterable, Sendable {
    /// A pause: the mouth at rest.
    case rest
    /// m b p: lips fully closed.
    case bilabial
    /// f v: lower lip to the upper teeth.
    case labiodental
    /// θ ð: tongue between the teeth, jaw a little open.
    case dental
    /// t d n l ɾ: jaw nearly closed, lips neutral.
    case alveolar
    /// s z: teeth together, lips spread.
    case sibilant
    /// ʃ ʒ tʃ dʒ: lips pushed forward and rounded.
    case postalveolar
    /// k g ŋ h: made at the back; the lips take the neighbours' shape.
    case velar
    /// ɹ r: slightly rounded.
    case rhotic
    /// a ɑ æ ʌ ɐ ɒ: jaw wide open.
    case open
    /// e ɛ ə ɜ: jaw half open, lips a little spread.
    case mid
    /// i ɪ j: jaw nearly closed, lips spread wide.
    case spread
    /// o ɔ ø: jaw half open, lips rounded.
    case rounded
    /// u ʊ w y: lips tightly rounded, jaw nearly closed.
    case closeRounded

    /// Where the mouth goes for this viseme.
    public struct Target: Sendable, Equatable {
        /// Jaw opening 0…1.
        public var open: Double
        /// -1 rounded … 1 spread.
        public var width: Double
        /// How strongly this viseme holds its shape against its neighbours (co-articulation dominance).
        public var dominance: Double
    }

    public var target: Target {
        switch self {
        case .rest: return Target(open: 0, width: 0, dominance: 1)
        case .bilabial: return Target(open: 0, width: 0, dominance: 2)
        case .labiodental: return Target(open: 0.1, width: 0.1, dominance: 1.5)
        case .dental: return Target(open: 0.25, width: 0.15, dominance: 0.7)
        case .alveolar: return Target(open: 0.22, width: 0.15, dominance: 0.5)
        case .sibilant: return Target(open: 0.12, width: 0.45, dominance: 0.8)
        case .postalveolar: return Target(open: 0.22, width: -0.55, dominance: 1.2)
        case .velar: return Target(open: 0.32, width: 0, dominance: 0.35)
        case .rhotic: return Target(open: 0.22, width: -0.4, dominance: 0.7)
        case .open: return Target(open: 0.95, width: 0.15, dominance: 1)
        case .mid: return Target(open: 0.6, width: 0.35, dominance: 1)
        case .spread: return Target(open: 0.32, width: 0.85, dominance: 1)
        case .rounded: return Target(open: 0.58, width: -0.7, dominance: 1)
        case .closeRounded: return Target(open: 0.28, width: -1, dominance: 1.1)
        }
    }

    /// The visemes of one phoneme written in IPA (espeak-ng style).
    ///
    /// - `""` and punctuation / utterance marks (`. , ? ! ; : ^ $ _ |`) are a pause: `[.rest]`.
    /// - Stress and length marks, spaces and unknown symbols alone are transparent: `[]` (the neighbours'
    ///   time covers them).
    /// - A diphthong gives its two vowels (`aɪ` → open, spread); an affricate its most visible part
    ///   (`tʃ` → postalveolar); diacritics (ʲ ʰ ̃ ː ˈ) are ignored.
    public static func sequence(forIPA ipa: String) -> [Viseme] {
        if ipa.isEmpty { return [.rest] }
        var visemes: [Viseme] = []
        var sawPauseMark = false
        for scalar in ipa.unicodeScalars {
            if pauseMarks.contains(scalar) {
                sawPauseMark = true
                continue
            }
            guard let viseme = byCharacter[scalar] else { continue }
            visemes.append(viseme)
        }
        if visemes.isEmpty { return sawPauseMark ? [.rest] : [] }
        let vowels = visemes.filter(\.isVowel)
        if vowels.count >= 2 { return Array(vowels.prefix(2)) }
        if vowels.count == 1 { return vowels }
        // A consonant cluster in one symbol (affricate, syllabic): the most visible part wins.
        return [visemes.max { $0.visibility < $1.visibility }!]
    }

    public var isVowel: Bool {
        switch self {
        case .open, .mid, .spread, .rounded, .closeRounded: return true
        default: return false
        }
    }

    /// How much the lips show it: decides which part of an affricate or cluster is drawn.
    var visibility: Int {
        switch self {
        case .bilabial: return 6
        case .labiodental: return 5
        case .postalveolar: return 4
        case .rhotic, .sibilant: return 3
        case .dental: return 2
        case .alveolar: return 1
        default: return 0
        }
    }

    static let pauseMarks = Set(".,?!;:^$_|‖…".unicodeScalars)

    static let byCharacter: [Unicode.Scalar: Viseme] = {
        var table: [Unicode.Scalar: Viseme] = [:]
        func add(_ characters: String, _ viseme: Viseme) {
            for scalar in characters.unicodeScalars { table[scalar] = viseme }
        }
        add("mbpɓɸβ", .bilabial)
        add("fvʋɱ", .labiodental)
        add("θð", .dental)
        add("tdnlɾɫɬɮʈɖɳɭcɟɲʎ", .alveolar)
        add("szɕʑ", .sibilant)
        add("ʃʒʂʐ", .postalveolar)
        add("kgɡŋxɣqɢhɦʔχħʕ", .velar)
        add("ɹrɻʀʁɚɝ", .rhotic)
        add("aɑæʌɐɒäɶ", .open)
        add("eɛəɜɘɤ", .mid)
        add("iɪjɨɯ", .spread)
        add("oɔɵøœ", .rounded)
        add("uʊwʉyʏɥ", .closeRounded)
        return table
    }()
}

/// Mouth shapes from phoneme timings, with co-articulation.
///
/// Each phoneme's viseme pulls the mouth towards its target with a *dominance* that is full while the phoneme
/// sounds and falls off as a Gaussian outside it — reaching further ahead (60 ms) than behind (40 ms), so the
/// next phoneme's shape blends in before it starts; a short phoneme is outweighed by its neighbours and does not
/// fully reach its target (Cohen & Massaro's dominance model, simplified). The two contacts that must be seen are
/// not averaged away: lip closure for m/b/p and lip-to-teeth for f/v are held for at least 70 / 50 ms around the
/// phoneme (the closure from 30 ms before it), with 40 ms ramps, and the jaw is closed under them.
public struct VisemeTimeline: Sendable {
    /// One viseme over a time span (seconds).
    public struct Segment: Sendable, Equatable {
        public var viseme: Viseme
        public var start: Double
        public var end: Double
    }

    public private(set) var segments: [Segment] = []

    static let ahead = 0.06
    static let behind = 0.04
    static let closureHold = 0.07
    /// The lips close a little before a bilabial's aligned start: a stop's closure is silent, and aligners
    /// (Piper's durations especially) tend to give that silence to the vowel before it.
    static let closureLead = 0.03
    static let teethHold = 0.05
    static let ramp = 0.04

    public init(_ timings: SpeechTimings = SpeechTimings(source: "", phonemes: [])) {
        append(timings)
    }

    /// Adds later phonemes (streaming); times on the same clock as those already added.
    public mutating func append(_ timings: SpeechTimings) {
        // Transparent symbols (stress marks, spaces) give their time to the neighbours: a stress mark to the
        // phoneme after it, a length mark to the one before, anything else half and half.
        var pendingStart: Double?
        for phoneme in timings.phonemes where phoneme.end > phoneme.start {
            let visemes = Viseme.sequence(forIPA: phoneme.ipa)
            if visemes.isEmpty {
                let stressOnly = phoneme.ipa.unicodeScalars.allSatisfy { "ˈˌ".unicodeScalars.contains($0) }
                let lengthOnly = phoneme.ipa.unicodeScalars.allSatisfy { "ːˑ".unicodeScalars.contains($0) }
                if lengthOnly, !segments.isEmpty {
                    segments[segments.count - 1].end = max(segments[segments.count - 1].end, phoneme.end)
                } else if stressOnly || segments.isEmpty {
                    pendingStart = pendingStart ?? phoneme.start
                } else {
                    let middle = (phoneme.start + phoneme.end) / 2
                    segments[segments.count - 1].end = max(segments[segments.count - 1].end, middle)
                    pendingStart = pendingStart ?? middle
                }
                continue
            }
            let start = min(pendingStart ?? phoneme.start, phoneme.start)
            pendingStart = nil
            let step = (phoneme.end - start) / Double(visemes.count)
            for (i, viseme) in visemes.enumerated() {
                let segment = Segment(viseme: viseme, start: start + Double(i) * step, end: start + Double(i + 1) * step)
                if let last = segments.last, last.viseme == viseme, abs(last.end - segment.start) < 1e-6, viseme == .rest {
                    segments[segments.count - 1].end = segment.end
                } else {
                    segments.append(segment)
                }
            }
        }
        segments.sort { $0.start < $1.start }
    }

    /// Whether there is any phoneme at or after `t` (the timings still cover the mouth).
    public func covers(_ t: Double) -> Bool {
        guard let first = segments.first, let last = segments.last else { return false }
        return t >= first.start - Self.ahead && t <= last.end + Self.behind
    }

    /// The mouth at time `t` before any loudness scaling: (jaw open, width, lip closure 0…1, lip to teeth 0…1,
    /// tongue tip raised to the teeth or the ridge behind them 0…1: t d n l θ ð).
    public func shape(at t: Double) -> (open: Double, width: Double, close: Double, teeth: Double, tongue: Double) {
        // The first segment that may still matter: its end within 0.3 s before t.
        var lo = 0, hi = segments.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if segments[mid].end < t - 0.3 { lo = mid + 1 } else { hi = mid }
        }
        // A faint background of rest: far from any phoneme the mouth is at rest.
        var weight = 0.02, open = 0.0, width = 0.0, close = 0.0, teeth = 0.0, tongue = 0.0
        var i = lo
        while i < segments.count, segments[i].start <= t + 0.3 {
            let s = segments[i]
            let target = s.viseme.target
            let distance: Double
            if t < s.start { distance = (s.start - t) / Self.ahead } else if t > s.end { distance = (t - s.end) / Self.behind } else { distance = 0 }
            let d = target.dominance * exp(-distance * distance)
            weight += d
            open += d * target.open
            width += d * target.width
            switch s.viseme {
            case .bilabial: close = max(close, Self.contact(s, at: t, hold: Self.closureHold, lead: Self.closureLead))
            case .labiodental: teeth = max(teeth, Self.contact(s, at: t, hold: Self.teethHold, lead: 0))
            case .alveolar, .dental: tongue = max(tongue, Self.contact(s, at: t, hold: Self.teethHold, lead: 0))
            default: break
            }
            i += 1
        }
        open /= weight
        width /= weight
        // Closing lips and a lip on the teeth need the jaw (nearly) shut.
        open *= 1 - max(close, 0.8 * teeth)
        width *= 1 - close
        return (open, width, close, teeth, tongue * (1 - close))
    }

    /// A contact (closure or lip-to-teeth): full from `lead` before the phoneme to its end (at least `hold`
    /// around the middle of that), ramps of 40 ms.
    static func contact(_ s: Segment, at t: Double, hold: Double, lead: Double) -> Double {
        let start = s.start - lead
        let middle = (start + s.end) / 2
        let half = max((s.end - start) / 2, hold / 2)
        let outside = abs(t - middle) - half
        if outside <= 0 { return 1 }
        return 1 - FaceRig.smoothstep(0, ramp, outside)
    }
}
