import AvatarCore
import Foundation

/// 16 kHz mono float PCM as the engine host expects it on the wire (16-bit WAV).
public enum PCM {
    public static let sampleRate = 16000

    /// A 16-bit PCM WAV file of `samples` (clipped to -1…1).
    public static func wav(_ samples: ArraySlice<Float>) -> Data {
        WAVInfo.pcm16(samples.lazy.map { Int16((max(-1, min(1, $0)) * 32767).rounded()) }, rate: sampleRate)
    }
}
