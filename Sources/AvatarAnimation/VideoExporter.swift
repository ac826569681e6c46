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
    /// times for this audio) the lips follow the phonemes; without, the audio alone.
    /// `isCancelled` is asked between batches: when true, ffmpeg is stopped and `AnimationError.cancelled` thrown.
    public func export(audioPath: String, audio: AudioSamples, timings: SpeechTimings? = nil, emotion: String, intensity: Double, output: String,
                       progress: (Int, Int) -> Void = { _, _ in }, isCancelled: () -> Bool = { false }) throws {
        let mouth = MouthTrack(timings: timings, audio: audio, fps: fps)
        let expression = ExpressionTrack(duration: audio.duration, emotion: emotion, intensity: intensity)
        let frames = mouth.shapes.count
        let errorPath = NSTemporaryDirectory() + "avatar-ffmpeg-\(UUID().uuidString).log"
        _ = FileManager.default.createFile(atPath: errorPath, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: errorPath) }

        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "ffmpeg", "-v", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "\(FaceRig.size)x\(FaceRig.size)", "-r", String(Int(fps)), "-i", "-",
            "-i", audioPath,
            "-map", "0:v", "-map", "1:a",
            "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-crf", "18", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", "96k",
            "-t", String(format: "%.3f", audio.duration), "-movflags", "+faststart", output,
        ]
        let input = Pipe()
        process.standardInput = input
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle(forWritingAtPath: errorPath)
        do { try process.run() } catch { throw AnimationError.encoderFailed("ffmpeg not found; run `avatar setup`") }

        // Pipelined: while one batch is written to ffmpeg (which encodes it on its own threads), the next is
        // rendered on every core into the other half of a double buffer.
        let frameBytes = FaceRig.size * FaceRig.size * 3
        let batch = max(2, ProcessInfo.processInfo.activeProcessorCount * 4)
        let buffers = (0..<2).map { _ in UnsafeMutableBufferPointer<UInt8>.allocate(capacity: frameBytes * batch) }
        defer { buffers.forEach { $0.deallocate() } }
        let writer = FrameWriter(handle: input.fileHandleForWriting)
        var next = 0, slot = 0
        var cancelled = false
        while next < frames, !writer.failed {
            if isCancelled() {
                cancelled = true
                break
            }
            let count = min(batch, frames - next)
            let first = next
            let poses = (0..<count).map { i in expression.pose(at: Double(first + i) / fps, mouth: mouth.shapes[first + i]) }
            let base = UnsafeSendablePointer(buffers[slot].baseAddress!)
            DispatchQueue.concurrentPerform(iterations: count) { i in
                renderer.render(poses[i], to: base.pointer + i * frameBytes)
            }
            writer.write(base, bytes: count * frameBytes)
            next += count
            slot = 1 - slot
            progress(next, frames)
        }
        writer.finish()
        let writeFailed = writer.failed
        if cancelled { process.terminate() }
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
        if cancelled {
            try? FileManager.default.removeItem(atPath: output)
            throw AnimationError.cancelled
        }
        guard process.terminationStatus == 0, !writeFailed else {
            let log = FileManager.default.contents(atPath: errorPath).map { String(decoding: $0.suffix(400), as: UTF8.self) } ?? ""
            throw AnimationError.encoderFailed("ffmpeg exited with \(process.terminationStatus): \(log)")
        }
    }
}

/// Writes rendered batches to ffmpeg on its own thread, one batch in flight: `write` waits only until the
/// previous batch is written, so rendering the next batch overlaps the pipe write and ffmpeg's encoding.
final class FrameWriter: @unchecked Sendable {
    private let handle: FileHandle
    private let idle = DispatchSemaphore(value: 1)
    private let lock = NSLock()
    private var error = false

    init(handle: FileHandle) { self.handle = handle }

    var failed: Bool { lock.withLock { error } }

    /// Starts writing `bytes` at `pointer`; the memory must stay untouched until the next `write` or `finish` returns.
    func write(_ pointer: UnsafeSendablePointer, bytes: Int) {
        idle.wait()
        let thread = Thread { [self] in
            do {
                try handle.write(contentsOf: Data(bytesNoCopy: pointer.pointer, count: bytes, deallocator: .none))
            } catch {
                lock.withLock { self.error = true }
            }
            idle.signal()
        }
        thread.start()
    }

    /// Waits for the last write.
    func finish() {
        idle.wait()
        idle.signal()
    }
}

/// A raw pointer handed to parallel workers that each write a disjoint range of it.
struct UnsafeSendablePointer: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<UInt8>
    init(_ pointer: UnsafeMutablePointer<UInt8>) { self.pointer = pointer }
}
