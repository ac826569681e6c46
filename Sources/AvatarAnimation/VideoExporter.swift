import Foundation

/// Renders a photo + audio into an MP4 (H.264 + AAC, 512×512, 25 fps) through an ffmpeg pipe.
public struct VideoExporter: Sendable {
    public let renderer: FaceRenderer
    public let fps: Double

    public init(renderer: FaceRenderer, fps: Double = 25) {
        self.renderer = renderer
        self.fps = fps
    }

    /// Writes `output`; `progress` gets (frames done, frames total).
    public func export(audioPath: String, audio: AudioSamples, emotion: String, intensity: Double, output: String,
                       progress: (Int, Int) -> Void = { _, _ in }) throws {
        let mouth = MouthTrack(audio: audio, fps: fps)
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

        // Frames are rendered a batch at a time on every core (each into its own slice of one buffer),
        // then written in order; ffmpeg encodes the previous batch meanwhile.
        let frameBytes = FaceRig.size * FaceRig.size * 3
        let batch = max(2, ProcessInfo.processInfo.activeProcessorCount * 4)
        let buffer = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: frameBytes * batch)
        defer { buffer.deallocate() }
        let base = UnsafeSendablePointer(buffer.baseAddress!)
        var writeFailed = false
        var next = 0
        while next < frames, !writeFailed {
            let count = min(batch, frames - next)
            let first = next
            let poses = (0..<count).map { i in
                let k = first + i
                return expression.pose(at: Double(k) / fps, mouth: mouth.shapes[k])
            }
            DispatchQueue.concurrentPerform(iterations: count) { i in
                renderer.render(poses[i], to: base.pointer + i * frameBytes)
            }
            do {
                try input.fileHandleForWriting.write(contentsOf: Data(bytesNoCopy: buffer.baseAddress!, count: count * frameBytes, deallocator: .none))
            } catch {
                writeFailed = true
            }
            next += count
            progress(next, frames)
        }
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
        guard process.terminationStatus == 0, !writeFailed else {
            let log = FileManager.default.contents(atPath: errorPath).map { String(decoding: $0.suffix(400), as: UTF8.self) } ?? ""
            throw AnimationError.encoderFailed("ffmpeg exited with \(process.terminationStatus): \(log)")
        }
    }
}

/// A raw pointer handed to parallel workers that each write a disjoint range of it.
struct UnsafeSendablePointer: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<UInt8>
    init(_ pointer: UnsafeMutablePointer<UInt8>) { self.pointer = pointer }
}
