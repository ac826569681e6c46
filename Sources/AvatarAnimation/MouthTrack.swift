import AvatarCore
import Foundation

/// Mouth shapes per video frame for a whole clip.
public struct MouthTrack: Sendable {
    public var fps: Double
    public var shapes: [MouthShape]
    public var open: [Double] { shapes.map(\.open) }

    /// From the audio alone (see `MouthEstimator`).
    public init(audio: AudioSamples, fps: Double = 25) {
        self.fps = fps
        shapes = Self.estimate(audio, fps: fps)
    }

    /// From phoneme timings (visemes with co-articulation, see `VisemeTimeline`), the jaw still following the
    /// audio's loudness a little. `nil` timings fall back to the audio alone.
    public init(timings: SpeechTimings?, audio: AudioSamples, fps: Double = 25) {
        self.fps = fps
        let fromAudio = Self.estimate(audio, fps: fps)
        guard let timings, !timings.phonemes.isEmpty else {
            shapes = fromAudio
            return
        }
        let timeline = VisemeTimeline(timings)
        shapes = fromAudio.enumerated().map { k, heard in
            Self.combine(timeline.shape(at: Double(k) / fps), heard: heard)
        }
    }

    /// A viseme shape scaled by what the audio says: loud → the full target, quiet → 60 % of it.
    static func combine(_ viseme: (open: Double, width: Double, close: Double, teeth: Double, tongue: Double), heard: MouthShape) -> MouthShape {
        let loudness = min(heard.loudness / 0.6, 1)
        return MouthShape(open: viseme.open * (0.6 + 0.4 * loudness), width: viseme.width, stress: heard.stress,
                          close: viseme.close, teeth: viseme.teeth, loudness: heard.loudness, tongue: viseme.tongue)
    }

    static func estimate(_ audio: AudioSamples, fps: Double) -> [MouthShape] {
        let frames = Int((audio.duration * fps).rounded(.up))
        var estimator = MouthEstimator(sampleRate: audio.sampleRate, fps: fps)
        // Prime the level range on the clip's first seconds, as a live stream does while the avatar speaks.
        var shapes = [MouthShape](repeating: .rest, count: frames)
        audio.samples.withUnsafeBufferPointer { s in
            for k in 0..<min(frames, Int(3 * fps)) { _ = estimator.next(s, frame: k) }
            estimator.resetMotion()
            for k in 0..<frames { shapes[k] = estimator.next(s, frame: k) }
        }
        return shapes
    }
}
