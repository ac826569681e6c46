import AvatarEngines
import Foundation

/// Speech clips with a real recording of background noise under them: someone speaking several
/// sentences, with pauses, in a noisy room. Used by `avatar bench asr --noise` and the noise-reduction
/// test, so that both measure the same mixture.
public struct NoisySession: Sendable {
    /// 16 kHz mono: noise alone for `gap` s, then each clip with the noise under it followed by `gap` s more.
    public var samples: [Float]
    /// Where each clip lies in `samples`.
    public var clipRanges: [Range<Int>]

    /// The noise is `noise` looped from `offset`, at one steady level: the RMS of all the clips' samples
    /// over the RMS of the noise is `snr` dB.
    public init(clips: [[Float]], noise: [Float], snr: Double, gap: Double = 1.5, offset: Int = 0) {
        precondition(!noise.isEmpty, "noise must not be empty")
        let gapSamples = Int(gap * Double(PCM.sampleRate))
        var speech = [Float](repeating: 0, count: gapSamples)
        var ranges: [Range<Int>] = []
        for clip in clips {
            ranges.append(speech.count..<(speech.count + clip.count))
            speech += clip
            speech += [Float](repeating: 0, count: gapSamples)
        }
        let bed = (0..<speech.count).map { noise[($0 + offset) % noise.count] }
        let speechRMS = Self.rms(clips.joined())
        let gain = Float(speechRMS / max(Self.rms(bed), 1e-9) / pow(10, snr / 20))
        samples = zip(speech, bed).map { $0 + gain * $1 }
        clipRanges = ranges
    }

    static func rms<S: Sequence<Float>>(_ samples: S) -> Double {
        var sum = 0.0, count = 0
        for sample in samples { sum += Double(sample) * Double(sample); count += 1 }
        return (sum / Double(max(count, 1))).squareRoot()
    }
}

extension NoisySession {
    /// The finals of the session streamed through a `StreamingSpeechRecognizer` (language set, no
    /// partials, 0.5 s pushes), with noise reduction `denoise`.
    public func finals(host: EngineHostClient, language: String = "en", denoise: Bool) async throws -> [TranscriptEvent] {
        var options = RecognizerOptions()
        options.language = language
        options.partialInterval = 0
        options.denoise = denoise
        let events = try await StreamingSpeechRecognizer(host: host, cache: nil, options: options).transcribe(samples: samples, chunkSeconds: 0.5)
        return events.filter { $0.kind == .final }
    }
}
