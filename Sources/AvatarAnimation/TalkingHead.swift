import AvatarCore
import Foundation

/// One frame of the real-time stream.
public struct VideoFrame: Sendable {
    /// Position on the stream's 25 fps clock.
    public let index: Int
    public let time: Double
    public let jpeg: [UInt8]
    /// Whether the frame shows speech (false: idle/listening).
    public let speaking: Bool
    /// The jaw opening used, 0…1 (for metrics, not for checking sync: tests measure the pixels).
    public let jawOpen: Double
}

/// The real-time face: push speech audio as it is synthesised, take frames at 25 fps, `clear()` on barge-in.
///
/// Between utterances the face idles (blinks, slow sway, mouth at rest). Frames follow the stream's own clock:
/// the caller takes one per 40 ms (`frames()` paces them) and plays the pushed audio from the frame at which it
/// was pushed.
public actor TalkingHead {
    public let fps: Double
    let renderer: FaceRenderer
    let encoder: JPEGEncoder
    var expression: ExpressionTrack
    var estimator: MouthEstimator
    var frame: [UInt8] = []
    var clock = 0
    /// Speech not yet fully shown, and the clock frame its first sample belongs to.
    var speech: [Float] = []
    var speechStart: Int?
    /// Visemes of the current utterance from the synthesizer's phoneme timings (utterance clock), if it sent any.
    var visemes = VisemeTimeline()
    var utteranceFinished = false
    var smile = 0.0
    var brows = 0.0
    /// 0 idle … 1 listening (eased), and where it is heading.
    var attention = 0.0
    var listening = false

    public init(renderer: FaceRenderer, emotion: Emotion.Label = .neutral, intensity: Double = 0.6, jpegQuality: Int = 80, fps: Double = 25) throws {
        self.renderer = renderer
        self.fps = fps
        encoder = try JPEGEncoder(quality: jpegQuality)
        expression = ExpressionTrack(duration: 3600, emotion: emotion, intensity: intensity)
        estimator = MouthEstimator(sampleRate: 16000, fps: fps)
    }

    /// Adds speech (16 kHz mono). The first push of an utterance starts it at the next frame.
    ///
    /// - Parameter timings: the synthesizer's phoneme timings for these samples, in seconds from the chunk's
    ///   first sample. With them the lips follow the phonemes (visemes, closures for m/b/p, co-articulation)
    ///   and the jaw still follows the loudness a little; without them the audio alone drives the mouth.
    /// - Returns: where the samples start on the stream's 16 kHz sample clock (frame `k` begins at sample
    ///   `k · 16000 / fps`), so a client can play them in step with the frames.
    @discardableResult
    public func push(_ samples: [Float], timings: SpeechTimings? = nil) -> Int {
        if let start = speechStart {
            // An underrun (the next clause came late): the frames already went past the pending speech, so the new
            // audio starts at the next frame, after silence, instead of at a time that has already been shown.
            let due = Int(Double(clock - start) / fps * 16000)
            if due > speech.count { speech += [Float](repeating: 0, count: due - speech.count) }
        } else {
            speechStart = clock
            utteranceFinished = false
            estimator.resetMotion()
            visemes = VisemeTimeline()
        }
        if let timings, !timings.phonemes.isEmpty {
            visemes.append(timings.shifted(by: Double(speech.count) / 16000))
        }
        let position = Int(Double(speechStart ?? clock) / fps * 16000) + speech.count
        speech += samples
        return position
    }

    /// The index of the next frame `nextFrame()` renders.
    public var frameClock: Int { clock }

    /// Whether speech is pending or being shown.
    public var isSpeaking: Bool { speechStart != nil }

    /// No more audio for this utterance: its last frames no longer wait for look-ahead.
    public func finishUtterance() {
        utteranceFinished = true
    }

    /// Barge-in: drops the pending speech; the next frame has the mouth at rest.
    public func clear() {
        speech.removeAll()
        speechStart = nil
        utteranceFinished = false
        estimator.resetMotion()
        visemes = VisemeTimeline()
    }

    /// While the person speaks: the head tilts a little, the brows lift, the eyes stay on the camera.
    public func setListening(_ on: Bool) {
        listening = on
    }

    /// Changes the emotion layer (takes effect on the next frame).
    public func setEmotion(_ emotion: Emotion.Label, intensity: Double) {
        let (blinks, saccades) = (expression.blinkTimes, expression.saccades)
        expression = ExpressionTrack(duration: 3600, emotion: emotion, intensity: intensity)
        expression.blinkTimes = blinks
        expression.saccades = saccades
    }

    /// Advances the clock by one frame without drawing it (the renderer fell behind real time): the mouth, the
    /// emotions and the speech position move on as if it had been shown, so the audio stays in step.
    public func skipFrame() {
        _ = try? advance(render: false)
    }

    /// Renders the frame for the next 40 ms of the clock.
    public func nextFrame() throws -> VideoFrame {
        try advance(render: true)
    }

    private func advance(render: Bool) throws -> VideoFrame {
        let index = clock
        clock += 1
        let time = Double(index) / fps
        var mouth = MouthShape.rest
        var speaking = false
        if let start = speechStart {
            let local = index - start
            let frameSamples = Int(Double(local) / fps * 16000)
            if frameSamples < speech.count {
                speaking = true
                mouth = speech.withUnsafeBufferPointer { estimator.next($0, frame: local) }
                let t = Double(local) / fps
                if visemes.covers(t) { mouth = MouthTrack.combine(visemes.shape(at: t), heard: mouth) }
            } else if utteranceFinished {
                clear()
            }
        }
        var pose = expression.pose(at: time.truncatingRemainder(dividingBy: 3600), mouth: mouth)
        // Emotions change smoothly: ~0.4 s to the new expression.
        let step = 1 / (0.4 * fps)
        smile += max(-step, min(step, pose.smile - smile))
        brows += max(-step, min(step, pose.brows - brows))
        attention += max(-step, min(step, (listening && !speaking ? 1 : 0) - attention))
        pose.smile = smile
        pose.brows = brows + 0.25 * attention
        pose.headRoll += 0.035 * attention
        pose.gaze = Point2.mix(pose.gaze, Point2(0, 0), attention)
        guard render else { return VideoFrame(index: index, time: time, jpeg: [], speaking: speaking, jawOpen: mouth.open) }
        renderer.render(pose, into: &frame)
        let jpeg = try frame.withUnsafeBufferPointer { try encoder.encode($0.baseAddress!, width: FaceRig.size, height: FaceRig.size) }
        return VideoFrame(index: index, time: time, jpeg: jpeg, speaking: speaking, jawOpen: mouth.open)
    }

    /// Frames paced at `fps` in real time until the consumer stops iterating.
    public nonisolated func frames() -> AsyncThrowingStream<VideoFrame, any Error> {
        AsyncThrowingStream { continuation in
            let task = Task {
                let clock = ContinuousClock()
                var deadline = clock.now
                do {
                    while !Task.isCancelled {
                        continuation.yield(try await self.nextFrame())
                        deadline += .milliseconds(Int64(1000 / fps))
                        try await clock.sleep(until: deadline)
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}
