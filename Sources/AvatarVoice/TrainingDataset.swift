import AvatarCore
import AvatarEngines
import Foundation

/// An LJSpeech-style dataset for Piper/Coqui fine-tuning: `wavs/<id>.wav` (22050 Hz mono 16-bit,
/// loudness-normalised) and `metadata.csv` with `id|text|text` lines.
public struct TrainingDataset: Sendable {
    public var directory: String
    public var clips: [(id: String, seconds: Double, text: String)]
    public var reports: [VoiceSampleReport]
    public var totalSeconds: Double { clips.map(\.seconds).reduce(0, +) }
    public var metadataPath: String { directory + "/metadata.csv" }
}

/// How speech is cut into training clips.
public struct SegmentationOptions: Sendable {
    /// A pause this long splits two clips.
    public var splitSilence = 0.35
    public var minClip = 1.0
    public var maxClip = 12.0
    /// Audio kept before and after each clip's speech.
    public var padding = 0.15
    public init() {}
}

extension VoiceCloner {
    /// Validates the samples, VAD-segments the usable ones (Silero, 32 ms frames), loudness-normalises and
    /// resamples them to 22050 Hz, transcribes each clip with the engine's Whisper, and writes the dataset.
    public func prepareTrainingData(samples: [String], output: String, language: String, options: SegmentationOptions = SegmentationOptions()) async throws -> TrainingDataset {
        let fm = FileManager.default
        try fm.createDirectory(atPath: output + "/wavs", withIntermediateDirectories: true)
        let work = output + "/.work"
        let reports = await validate(samples, workDir: work)
        defer { try? fm.removeItem(atPath: work) }
        guard reports.contains(where: \.usable) else {
            throw VoiceError.noUsableSamples(reasons: reports.map { "\(($0.path as NSString).lastPathComponent): " + $0.problems.map(\.message).joined(separator: "; ") })
        }
        var clips: [(id: String, seconds: Double, text: String)] = []
        var lines: [String] = []
        for (index, report) in reports.enumerated() where report.usable {
            guard let converted = report.convertedPath else { continue }
            let normalized = work + "/norm-\(index).wav"
            try await AudioFile.convert(converted, to: normalized, rate: 22050, normalize: true)
            let (pcm, rate) = try AudioFile.readPCM16(normalized)
            let vad16k = work + "/vad-\(index).wav"
            try await AudioFile.convert(converted, to: vad16k, rate: 16000)
            let activity = try await host.voiceActivity(audio: fm.contents(atPath: vad16k) ?? Data())
            for (number, span) in Self.speechSpans(activity, options: options).enumerated() {
                let start = max(0, Int((span.start - options.padding) * Double(rate)))
                let end = min(pcm.count, Int((span.end + options.padding) * Double(rate)))
                guard end - start >= Int(options.minClip * Double(rate)) else { continue }
                let wav = AudioFile.wav(pcm[start..<end], rate: rate)
                let text = try await host.transcribe(audio: wav, language: language).text.trimmingCharacters(in: .whitespacesAndNewlines)
                guard !text.isEmpty else { continue }
                let id = String(format: "%@_%03d_%03d", Self.slug((report.path as NSString).lastPathComponent), index + 1, number + 1)
                try wav.write(to: URL(fileURLWithPath: output + "/wavs/\(id).wav"))
                let clean = text.replacingOccurrences(of: "|", with: " ").replacingOccurrences(of: "\n", with: " ")
                lines.append("\(id)|\(clean)|\(clean)")
                clips.append((id, Double(end - start) / Double(rate), clean))
            }
        }
        try (lines.joined(separator: "\n") + "\n").write(toFile: output + "/metadata.csv", atomically: true, encoding: .utf8)
        return TrainingDataset(directory: output, clips: clips, reports: reports)
    }

    /// Speech spans (seconds) from VAD frames: frames ≥ 0.5 are speech, pauses ≥ `splitSilence` split,
    /// spans longer than `maxClip` are cut evenly.
    static func speechSpans(_ activity: VoiceActivity, options: SegmentationOptions) -> [(start: Double, end: Double)] {
        let step = activity.frameSeconds
        var spans: [(start: Double, end: Double)] = []
        var open: Double?
        var lastSpeech = 0.0
        for (i, p) in activity.probabilities.enumerated() {
            let t = Double(i) * step
            if p >= 0.5 {
                if open == nil { open = t }
                lastSpeech = t + step
            } else if let start = open, t - lastSpeech >= options.splitSilence {
                spans.append((start, lastSpeech))
                open = nil
            }
        }
        if let start = open { spans.append((start, lastSpeech)) }
        return spans.flatMap { span -> [(start: Double, end: Double)] in
            let length = span.end - span.start
            guard length > options.maxClip else { return [span] }
            let parts = Int((length / options.maxClip).rounded(.up))
            let part = length / Double(parts)
            return (0..<parts).map { (span.start + Double($0) * part, span.start + Double($0 + 1) * part) }
        }
    }

    static func slug(_ name: String) -> String {
        let stem = (name as NSString).deletingPathExtension
        let kept = stem.map { $0.isLetter || $0.isNumber ? $0 : "_" }
        return String(String(kept).prefix(40))
    }
}
