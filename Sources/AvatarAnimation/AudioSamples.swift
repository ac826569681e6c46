import AvatarCore
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
    public static func load(_ path: String) async throws -> AudioSamples {
        let result = await ChildProcess.output(of: ["ffmpeg", "-v", "error", "-i", path, "-vn", "-ac", "1", "-ar", "16000", "-f", "s16le", "-"])
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
