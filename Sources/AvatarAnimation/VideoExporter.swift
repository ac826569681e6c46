import AvatarCore
import Foundation

/// Renders a photo + audio into an MP4 (H.264 + AAC, 512×512, 25 fps) through an ffmpeg pipe.
public struct VideoExporter: Sendable {
    public let renderer: FaceRenderer
    public let fps: Double

    public init(renderer: FaceRenderer, fps: Double = 25) {
        self.renderer = renderer
        self.fps = fps
    }

    /// Writes `output`; `progress` gets (frames done, frames total). With `timings` (the synthesizer's phoneme
    /// times for this audio) the lips follow the phonemes; without, the audio alone. Cancelling the calling task
    /// stops ffmpeg and throws `CancellationError`; `isCancelled` (a job's cancel flag) is asked between batches:
    /// when true, the frames so far are closed off, the partial file removed and `AnimationError.cancelled` thrown.
    public func export(audioPath: String, audio: AudioSamples, timings: SpeechTimings? = nil, emotion: Emotion.Label, intensity: Double, output: String,
                       progress: @escaping @Sendable (Int, Int) -> Void = { _, _ in },
                       isCancelled: @escaping @Sendable () -> Bool = { false }) async throws {
        let mouth = MouthTrack(timings: timings, audio: audio, fps: fps)
        let expression = ExpressionTrack(duration: audio.duration, emotion: emotion, intensity: intensity)
        let frames = mouth.shapes.count
        let arguments = [
            "ffmpeg", "-v", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "\(FaceRig.size)x\(FaceRig.size)", "-r", String(Int(fps)), "-i", "-",
            "-i", audioPath,
            "-map", "0:v", "-map", "1:a",
            "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-crf", "18", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", "96k",
            "-t", String(format: "%.3f", audio.duration), "-movflags", "+faststart", output,
        ]
        let renderer = self.renderer
        let fps = self.fps
        let outcome: (value: Bool, result: ChildProcess.Result)
        do {
            outcome = try await ChildProcess.withStandardInput(arguments) { input in
                // Pipelined: while one batch is written to ffmpeg (which encodes it on its own threads), the next is
                // rendered on every core — on Dispatch's threads, not Swift's cooperative pool.
                let frameBytes = FaceRig.size * FaceRig.size * 3
                let batch = max(2, ProcessInfo.processInfo.activeProcessorCount * 4)
                var next = 0
                var writing: Task<Void, any Error>?
                while next < frames {
                    if isCancelled() { break }
                    let count = min(batch, frames - next)
                    let poses = (0..<count).map { i in expression.pose(at: Double(next + i) / fps, mouth: mouth.shapes[next + i]) }
                    let pixels = await Self.render(poses, renderer: renderer, frameBytes: frameBytes)
                    try await writing?.value
                    try Task.checkCancellation()
                    writing = Task { try await input.write(pixels) }
                    next += count
                    progress(next, frames)
                }
                try await writing?.value
                return next >= frames
            }
        } catch let error as ChildProcessError {
            if case .notFound = error { throw AnimationError.encoderFailed("ffmpeg not found; run `avatar setup`") }
            throw AnimationError.encoderFailed(error.message)
        }
        guard outcome.value else {
            try? FileManager.default.removeItem(atPath: output)
            throw AnimationError.cancelled
        }
        guard outcome.result.status == 0 else {
            throw AnimationError.encoderFailed("ffmpeg exited with \(outcome.result.status): \(Self.tail(outcome.result))")
        }
    }

    private static func tail(_ result: ChildProcess.Result) -> String {
        String(decoding: result.error.suffix(400), as: UTF8.self)
    }

    /// Renders `poses` into one buffer, in parallel on Dispatch's threads.
    private static func render(_ poses: [FacePose], renderer: FaceRenderer, frameBytes: Int) async -> Data {
        await withCheckedContinuation { continuation in
            DispatchQueue.global(qos: .userInitiated).async {
                var pixels = Data(count: poses.count * frameBytes)
                pixels.withUnsafeMutableBytes { raw in
                    let base = UnsafeSendablePointer(raw.bindMemory(to: UInt8.self).baseAddress!)
                    DispatchQueue.concurrentPerform(iterations: poses.count) { i in
                        renderer.render(poses[i], to: base.pointer + i * frameBytes)
                    }
                }
                continuation.resume(returning: pixels)
            }
        }
    }
}

/// A raw pointer handed to parallel workers that each write a disjoint range of it.
struct UnsafeSendablePointer: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<UInt8>
    init(_ pointer: UnsafeMutablePointer<UInt8>) { self.pointer = pointer }
}
