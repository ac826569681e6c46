import AvatarEngines
import Foundation

/// Limits a voice sample must meet. The defaults suit a speaker embedding and Piper fine-tuning data.
public struct VoiceSampleLimits: Sendable {
    public var minSeconds = 2.0
    /// Longer files are rejected before any decoding (split them).
    public var maxSeconds = 600.0
    public var minSampleRate = 16000
    /// Rate of the converted copies (what Piper fine-tuning wants).
    public var targetSampleRate = 22050
    /// Share of samples at full scale above which a recording counts as clipped.
    public var maxClippedFraction = 0.001
    public var minSNR = 15.0
    public var minSpeechRatio = 0.4
    /// Files above this are converted locally before upload (the engine host takes 50 MB).
    public var maxUploadBytes = 40 * 1024 * 1024

    public init() {}
}

/// The verdict on one voice sample: accepted as is, accepted after conversion, or rejected with reasons.
public struct VoiceSampleReport: Sendable {
    public enum Verdict: String, Sendable {
        case accepted, converted, rejected
    }

    /// A problem that makes a sample unusable, with what to do about it.
    public struct Problem: Sendable, Equatable {
        /// Stable code: `empty`, `unreadable`, `too_short`, `too_long`, `low_sample_rate`, `clipped`, `noisy`, `little_speech`, `no_voice`.
        public var code: String
        public var message: String
    }

    public var path: String
    public var verdict: Verdict
    public var problems: [Problem]
    /// What was converted, e.g. "stereo → mono (channels averaged)".
    public var conversions: [String]
    /// Remarks that do not block the sample (e.g. an extension that does not match the content).
    public var notes: [String]
    /// The engine host's measurements, when the file got that far.
    public var analysis: VoiceAnalysis?
    /// The canonical copy (mono 16-bit WAV) for accepted and converted samples.
    public var convertedPath: String?

    public var usable: Bool { verdict != .rejected }

    /// One line per sample, e.g. `REJECTED a.wav: clipped (…); noisy (…)`.
    public var summary: String {
        var parts: [String] = []
        if let analysis {
            parts.append(String(format: "%.1f s, %d Hz, %d ch, SNR %@ dB, speech %.0f %%, clipped %.2f %%", analysis.duration, analysis.sampleRate,
                                analysis.channels, analysis.snrDb.map { String(format: "%.1f", $0) } ?? "?", analysis.speechRatio * 100, analysis.clippedFraction * 100))
        }
        parts += problems.map { "\($0.code): \($0.message)" }
        parts += conversions.map { "converted: \($0)" }
        parts += notes.map { "note: \($0)" }
        return "\(verdict.rawValue.uppercased()) \(path)" + (parts.isEmpty ? "" : "\n    " + parts.joined(separator: "\n    "))
    }
}
