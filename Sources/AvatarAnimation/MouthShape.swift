import AvatarCore
import Foundation

/// The mouth for one frame.
public struct MouthShape: Sendable, Equatable {
    /// Jaw opening 0…1.
    public var open: Double
    /// -1 rounded … 1 wide.
    public var width: Double
    /// 0…1, high just after a loud onset (a stressed syllable): drives a small nod.
    public var stress: Double
    /// 0…1 lips pressed together (m, b, p).
    public var close: Double
    /// 0…1 lower lip against the upper teeth (f, v).
    public var teeth: Double
    /// 0…1 the audio's loudness within its adapting range (what the jaw follows); drives no vertex itself.
    public var loudness: Double
    /// 0…1 the tongue tip raised (t, d, n, l, θ, ð; from phoneme timings only).
    public var tongue: Double

    public static let rest = MouthShape(open: 0, width: 0, stress: 0)

    public init(open: Double, width: Double, stress: Double, close: Double = 0, teeth: Double = 0, loudness: Double = 0, tongue: Double = 0) {
        self.tongue = tongue
        self.open = open
        self.width = width
        self.stress = stress
        self.close = close
        self.teeth = teeth
        self.loudness = loudness
    }
}
