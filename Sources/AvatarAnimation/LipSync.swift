import Foundation

/// Mono PCM audio as floats in -1…1.
public struct AudioSamples: Sendable {
    public var samples: [Float]
    public var sampleRate: Int

    public var duration: Double { Double(samples.count) / Double(sampleRate) }

    public init(samples: [Float], sampleRate: Int) {
        self.samples = samples
        self.sampleRate = sampleRate
    }

    /// Decodes any audio ffmpeg reads, converted to 16 kHz mono.
    public static func load(_ path: String) throws -> AudioSamples {
        let result = Media.run(["ffmpeg", "-v", "error", "-i", path, "-vn", "-ac", "1", "-ar", "16000", "-f", "s16le", "-"])
        guard result.status == 0 else {
            let lines = String(decoding: result.error, as: UTF8.self).split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            let reason = lines.first { $0.lowercased().contains("invalid") || $0.lowercased().contains("no such file") } ?? "not an audio file ffmpeg can decode"
            throw AnimationError.unreadableAudio(String(reason.prefix(160)))
        }
        guard result.output.count >= 3200 else { throw AnimationError.unreadableAudio("shorter than 0.1 s") }
        let samples = result.output.withUnsafeBytes { raw in
            raw.bindMemory(to: Int16.self).map { Float(Int16(littleEndian: $0)) / 32768 }
        }
        return AudioSamples(samples: samples, sampleRate: 16000)
    }
}

/// The mouth for one frame.
public struct MouthShape: Sendable, Equatable {
    /// Jaw opening 0…1.
    public var open: Double
    /// -1 rounded … 1 wide.
    public var width: Double
    /// 0…1, high just after a loud onset (a stressed syllable): drives a small nod.
    public var stress: Double

    public static let rest = MouthShape(open: 0, width: 0, stress: 0)

    public init(open: Double, width: Double, stress: Double) {
        self.open = open
        self.width = width
        self.stress = stress
    }
}

/// Mouth shapes per video frame for a whole clip, estimated from the audio itself (see `MouthEstimator`).
public struct MouthTrack: Sendable {
    public var fps: Double
    public var shapes: [MouthShape]
    public var open: [Double] { shapes.map(\.open) }

    public init(audio: AudioSamples, fps: Double = 25) {
        self.fps = fps
        let frames = Int((audio.duration * fps).rounded(.up))
        var estimator = MouthEstimator(sampleRate: audio.sampleRate, fps: fps)
        // Prime the level range on the clip's first seconds, as a live stream does while the avatar speaks.
        var shapes = [MouthShape](repeating: .rest, count: frames)
        audio.samples.withUnsafeBufferPointer { s in
            for k in 0..<min(frames, Int(3 * fps)) { _ = estimator.next(s, frame: k) }
            estimator.resetMotion()
            for k in 0..<frames { shapes[k] = estimator.next(s, frame: k) }
        }
        self.shapes = shapes
    }
}

/// Streaming mouth-shape estimator: loudness drives the jaw, the zero-crossing rate (a cheap proxy for
/// sibilance / the second formant) drives lip width. Frame k looks at [t − 20 ms, t + 40 ms]: at most 40 ms of
/// look-ahead. The loudness range adapts (peak falls slowly, the noise floor rises slowly), so the same
/// estimator serves a live stream and a whole file.
public struct MouthEstimator: Sendable {
    public let sampleRate: Int
    public let fps: Double
    private var floor = -60.0
    private var peak = -25.0
    private var previous = 0.0
    private var recentLevels: [Double] = []
    private var stress = 0.0

    public init(sampleRate: Int = 16000, fps: Double = 25) {
        self.sampleRate = sampleRate
        self.fps = fps
    }

    /// Samples needed after frame k's time: the look-ahead.
    public var lookAheadSamples: Int { Int(0.04 * Double(sampleRate)) }

    /// Forgets the mouth's motion (not the level range): silence after a barge-in.
    public mutating func resetMotion() {
        previous = 0
        stress = 0
        recentLevels.removeAll()
    }

    /// The mouth for frame `frame` of `samples` (whose sample 0 is at time 0).
    public mutating func next(_ samples: UnsafeBufferPointer<Float>, frame: Int) -> MouthShape {
        let rate = Double(sampleRate)
        let t = Double(frame) / fps
        let start = max(0, Int((t - 0.02) * rate)), end = min(samples.count, Int((t + 0.04) * rate))
        var level = -100.0
        var crossings = 0.0
        if end > start + 1 {
            var energy = 0.0
            var zc = 0
            for i in start..<end {
                energy += Double(samples[i]) * Double(samples[i])
                if i > start, (samples[i] >= 0) != (samples[i - 1] >= 0) { zc += 1 }
            }
            level = 10 * log10(energy / Double(end - start) + 1e-10)
            crossings = Double(zc) / Double(end - start)
        }
        if level > peak { peak = level } else { peak = max(peak - 0.03, floor + 25) }
        if level < floor { floor = max(level, -90) } else { floor = min(floor + 0.02, peak - 25) }
        let gate = max(floor + 8, peak - 35)
        let range = max(peak - gate, 6)
        let raw = pow(min(max((level - gate) / range, 0), 1), 0.8)
        // Fast opening, slightly slower closing: co-articulation without lag on onsets.
        let value = raw > previous ? previous + (raw - previous) * 0.85 : previous + (raw - previous) * 0.6
        previous = value
        let open = value < 0.03 ? 0 : value
        let width = open > 0 ? min(max((crossings - 0.08) / 0.12, -1), 1) : 0
        // A stressed syllable: 8 dB louder than the quietest of the last 160 ms, near the top of the range.
        recentLevels.append(level)
        if recentLevels.count > 4 { recentLevels.removeFirst() }
        if level - (recentLevels.min() ?? level) > 8, level > peak - 10 { stress = 1 } else { stress *= 0.75 }
        return MouthShape(open: open, width: width, stress: stress)
    }
}

/// Blinks, head sway and the emotion layer over time, reproducible from a seed.
public struct ExpressionTrack: Sendable {
    public internal(set) var blinkTimes: [Double]
    /// Times and targets of gaze shifts (fractions of the iris's travel).
    public internal(set) var saccades: [(Double, Point2)]
    public let emotionSmile: Double
    public let emotionBrows: Double

    /// - Parameters:
    ///   - duration: seconds to cover.
    ///   - emotion: `neutral`, `happy`, `sad`, `surprised`, `angry` or `thinking`.
    ///   - intensity: 0…1.
    public init(duration: Double, emotion: String = "neutral", intensity: Double = 0.7, seed: UInt64 = 7) {
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
        switch emotion {
        case "happy": (emotionSmile, emotionBrows) = (0.9 * k, 0.15 * k)
        case "sad": (emotionSmile, emotionBrows) = (-0.6 * k, -0.2 * k)
        case "surprised": (emotionSmile, emotionBrows) = (0.1 * k, 0.9 * k)
        case "angry": (emotionSmile, emotionBrows) = (-0.3 * k, -0.8 * k)
        case "thinking": (emotionSmile, emotionBrows) = (-0.1 * k, 0.3 * k)
        default: (emotionSmile, emotionBrows) = (0, 0)
        }
    }

    /// The known emotions.
    public static let emotions = ["neutral", "happy", "sad", "surprised", "angry", "thinking"]

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

/// A small deterministic generator (SplitMix64) for reproducible blinks.
struct SplitMix {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    /// Uniform in 0..<1.
    mutating func next() -> Double {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return Double(z >> 11) / Double(1 << 53)
    }
}
