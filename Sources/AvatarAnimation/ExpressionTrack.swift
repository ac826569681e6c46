import AvatarCore
import Foundation

/// Blinks, head sway and the emotion layer over time, reproducible from a seed.
public struct ExpressionTrack: Sendable {
    public internal(set) var blinkTimes: [Double]
    /// Times and targets of gaze shifts (fractions of the iris's travel).
    public internal(set) var saccades: [(Double, Point2)]
    public let emotionSmile: Double
    public let emotionBrows: Double

    /// - Parameters:
    ///   - duration: seconds to cover.
    ///   - emotion: the expression's emotion (`Emotion.Label.expression` gives its smile and brows).
    ///   - intensity: 0…1.
    public init(duration: Double, emotion: Emotion.Label = .neutral, intensity: Double = 0.7, seed: UInt64 = 7) {
        var random = SplitMix(seed: seed)
        var times: [Double] = []
        var t = 0.6 + random.next() * 1.5
        while t < duration - 0.3 {
            times.append(t)
            t += 2.6 + random.next() * 2.4 // 2.6–5.0 s apart: about 16 blinks a minute
        }
        blinkTimes = times
        var shifts: [(Double, Point2)] = []
        var s = 1.0 + random.next()
        while s < duration {
            let away = random.next() < 0.45
            shifts.append((s, away ? Point2(random.next() * 2 - 1, (random.next() * 2 - 1) * 0.5) : Point2(0, 0)))
            s += 1.2 + random.next() * 2.5
        }
        saccades = shifts
        let k = min(max(intensity, 0), 1)
        let expression = emotion.expression
        (emotionSmile, emotionBrows) = (expression.smile * k, expression.brows * k)
    }

    /// Eyelid closure at time `t`: 80 ms closing, 40 ms closed, 120 ms opening.
    public func blink(at t: Double) -> Double {
        for start in blinkTimes {
            let d = t - start
            if d < 0 { break }
            if d < 0.08 { return d / 0.08 }
            if d < 0.12 { return 1 }
            if d < 0.24 { return 1 - (d - 0.12) / 0.12 }
        }
        return 0
    }

    /// Pose at time `t` with the mouth from the lip-sync track.
    public func pose(at t: Double, mouth: MouthShape) -> FacePose {
        var pose = FacePose()
        pose.jawOpen = mouth.open
        pose.lipWidth = mouth.width * 0.6
        pose.lipClose = mouth.close
        pose.lipToTeeth = mouth.teeth
        pose.tongueRaise = mouth.tongue
        pose.blink = blink(at: t)
        pose.gaze = gaze(at: t)
        pose.smile = emotionSmile
        pose.brows = emotionBrows + 0.15 * mouth.stress
        pose.headRoll = 0.018 * sin(2 * .pi * t / 6.3) + 0.008 * sin(2 * .pi * t / 2.9)
        // Slow sway, a slight drop with the jaw, and a nod on stressed syllables.
        pose.headOffset = Point2(2.5 * sin(2 * .pi * t / 7.7), 1.5 * sin(2 * .pi * t / 4.1) + 2.0 * mouth.open + 3.5 * mouth.stress)
        return pose
    }

    /// Where the eyes look at time `t`: small saccades every 1.2–3.7 s, mostly back towards the camera.
    public func gaze(at t: Double) -> Point2 {
        var current = Point2(0, 0)
        for (time, target) in saccades {
            if time > t { break }
            current = target
        }
        return current
    }
}

extension Emotion.Label {
    /// The face's expression at full intensity: smile (−1 frown … 1 smile) and brows (−1 lowered … 1 raised).
    public var expression: (smile: Double, brows: Double) {
        switch self {
        case .neutral: return (0, 0)
        case .joy: return (0.9, 0.15)
        case .sadness: return (-0.6, -0.2)
        case .surprise: return (0.1, 0.9)
        case .anger: return (-0.3, -0.8)
        case .fear: return (-0.35, 0.7)
        case .calm: return (0.2, 0.1)
        }
    }
}
