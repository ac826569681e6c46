import ArgumentParser
import AvatarAnimation
import AvatarCore
import AvatarEngines
import AvatarServer
import AvatarSpeech
import Foundation

/// `avatar bench asr`: Whisper's real-time factor, end of speech → final transcript through the
/// streaming recognizer fed in real time, and (with `--noise`) WER with noise reduction off and on.
struct BenchASR: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "asr", abstract: "ASR real-time factor, end-of-speech → final latency, and WER in noise with/without noise reduction.")

    @Option(help: "Folder with the LibriVox clips and their `transcription` file (Debian pocketsphinx-testdata).")
    var clips = "/usr/share/pocketsphinx/test/data/librivox"

    @Option(help: "Silence (seconds) after which the speculative final starts (RecognizerOptions.speculativeFinalAfter).")
    var speculateAfter = RecognizerOptions().speculativeFinalAfter

    @Option(help: "Streamed utterances per clip for the latency figure.")
    var runs = 2

    @Option(help: "Length of each streamed utterance, seconds (cut from the start of each clip).")
    var utterance = 3.0

    @Option(help: "Silence that ends an utterance, seconds.")
    var silence = 0.5

    @Option(help: "A recording of background noise (any format ffmpeg reads) for the WER-in-noise figures; \"none\" skips them.")
    var noise = "/usr/share/games/colobot/sounds/sound044.wav"

    @Option(help: "Starting points in the noise recording to average the WER-in-noise over.")
    var noiseOffsets = 5

    @Flag(help: "Print every partial and final with its timing.")
    var verbose = false

    @Option(help: "Speech-to-noise ratio for --noise, dB.")
    var snr = 5.0

    func run() async throws {
        print("Starting the engine host…")
        try await withEngineHost { engines, _ in try await measure(engines.host) }
    }

    private func measure(_ host: EngineHostClient) async throws {
        let clips = try loadClips()
        var audio: [AudioSamples] = []
        for clip in clips { audio.append(try await AudioSamples.load(clip.path)) }

        // Real-time factor of a whole-clip transcription (language given, as after the lock).
        var rtf: [Double] = []
        var references: [String] = [], hypotheses: [String] = []
        for (clip, samples) in zip(clips, audio) {
            let wav = PCM.wav(samples.samples[...])
            let start = ContinuousClock.now
            let result = try await host.transcribe(audio: wav, language: "en")
            rtf.append((ContinuousClock.now - start).seconds / samples.duration)
            references.append(clip.text)
            hypotheses.append(result.text)
        }
        let clean = WordErrorRate.of(reference: references.joined(separator: " "), hypothesis: hypotheses.joined(separator: " "))
        let rtfStats = Stats(rtf)
        print(String(format: "\nWhisper base int8, %d clips (%.1f s of audio): RTF p50 %.3f p95 %.3f; WER %.1f %%", clips.count, audio.map(\.duration).reduce(0, +), rtfStats.p50, rtfStats.p95, clean * 100))

        // End of speech → final transcript, fed in real time in 0.1 s chunks.
        var latencies: [Double] = []
        var partials = 0
        for _ in 0..<runs {
            for samples in audio {
                let speech = Array(samples.samples.prefix(Int(utterance * 16000)))
                if let measured = try await streamRealTime(host, speech) {
                    latencies.append(measured.latency * 1000)
                    partials += measured.partials
                }
            }
        }
        let lat = Stats(latencies)
        print(String(format: "end of speech → final (%.1f s utterances, %.1f s silence, language set, real-time feed): p50 %.0f ms  p95 %.0f ms  (n=%d, %.1f partials per utterance)", utterance, silence, lat.p50, lat.p95, latencies.count, Double(partials) / Double(max(latencies.count, 1))))

        if noise != "none" { try await noiseFigures(host, clips: clips, audio: audio, noisePath: noise) }
    }

    private func loadClips() throws -> [(path: String, text: String)] {
        guard let transcription = try? String(contentsOfFile: clips + "/transcription", encoding: .utf8) else {
            throw CLIFailure("no \(clips)/transcription: install pocketsphinx-testdata or pass --clips", code: 2)
        }
        return transcription.split(separator: "\n").compactMap { line in
            guard let open = line.lastIndex(of: "("), let close = line.lastIndex(of: ")") else { return nil }
            let text = line[..<open].replacingOccurrences(of: "<s>", with: "").replacingOccurrences(of: "</s>", with: "")
            return ("\(clips)/\(line[line.index(after: open)..<close]).wav", text.trimmingCharacters(in: .whitespaces))
        }
    }

    /// Streams `speech` + 2 s of silence on the real-time schedule; the latency is from the moment the
    /// last speech sample (as the VAD placed it) was due until the final arrived.
    private func streamRealTime(_ host: EngineHostClient, _ speech: [Float]) async throws -> (latency: Double, partials: Int)? {
        var options = RecognizerOptions()
        options.endOfUtteranceSilence = silence
        options.speculativeFinalAfter = speculateAfter
        options.language = "en"
        let recognizer = try StreamingSpeechRecognizer(host: host, cache: nil, options: options)
        let audio = speech + [Float](repeating: 0, count: 32000)
        let chunk = 1600
        let t0 = ContinuousClock.now
        let events = Task { () -> [(TranscriptEvent, ContinuousClock.Instant)] in
            var all: [(TranscriptEvent, ContinuousClock.Instant)] = []
            for try await event in recognizer.events { all.append((event, .now)) }
            return all
        }
        for (index, start) in stride(from: 0, to: audio.count, by: chunk).enumerated() {
            try await Task.sleep(until: t0 + .milliseconds(100 * (index + 1)), clock: .continuous)
            try await recognizer.push(Array(audio[start..<min(start + chunk, audio.count)]))
        }
        try await recognizer.finish()
        let all = try await events.value
        guard let (final, at) = all.first(where: { $0.0.kind == .final }) else { return nil }
        let due = t0 + .milliseconds(Int(final.speechEnd * 1000))
        if verbose { print(all.map { "\($0.0.kind) \(String(format: "%.2f", $0.0.speechStart))-\(String(format: "%.2f", $0.0.speechEnd)) at \(String(format: "%.2f", ($0.1 - t0).seconds)): \($0.0.text)" }.joined(separator: "\n")) }
        return ((at - due).seconds, all.filter { $0.0.kind == .partial }.count)
    }

    /// WER of the clips in a noisy session (noise alone in the pauses, the clips with noise under them),
    /// noise reduction off and on, for `noiseOffsets` starting points in the noise recording: streamed
    /// through the recognizer (the product path; the profile is the session's pauses), and as whole-clip
    /// requests (the profile is the clip's own pauses).
    private func noiseFigures(_ host: EngineHostClient, clips: [(path: String, text: String)], audio: [AudioSamples], noisePath: String) async throws {
        guard FileManager.default.fileExists(atPath: noisePath) else {
            throw CLIFailure("no noise recording at \(noisePath): install colobot-common-sounds (`avatar setup --with-test-tools`), pass --noise FILE, or --noise none", code: 2)
        }
        let noise = try await AudioSamples.load(noisePath).samples
        let reference = Array(repeating: clips.map(\.text).joined(separator: " "), count: noiseOffsets).joined(separator: " ")
        var streamed: [Bool: [String]] = [false: [], true: []], whole: [Bool: [String]] = [false: [], true: []]
        var profiles: [String: Int] = [:]
        for index in 0..<noiseOffsets {
            let session = NoisySession(clips: audio.map(\.samples), noise: noise, snr: snr, offset: index * noise.count / noiseOffsets)
            for denoise in [false, true] {
                let finals = try await session.finals(host: host, denoise: denoise)
                streamed[denoise]!.append(finals.map(\.text).joined(separator: " "))
                for final in finals { if let profile = final.noiseReduction?.profile { profiles["stream: " + profile, default: 0] += 1 } }
                for range in session.clipRanges {
                    let margin = Int(0.3 * Double(PCM.sampleRate))
                    let clip = session.samples[max(0, range.lowerBound - margin)..<min(session.samples.count, range.upperBound + margin)]
                    let result = try await host.transcribe(audio: PCM.wav(clip), language: "en", denoise: denoise)
                    whole[denoise]!.append(result.text)
                    if let profile = result.noiseReduction?.profile { profiles["clip: " + profile, default: 0] += 1 }
                }
            }
        }
        func wer(_ texts: [String]) -> Double { WordErrorRate.of(reference: reference, hypothesis: texts.joined(separator: " ")) * 100 }
        print(String(format: "WER with %@ at %.0f dB SNR, %d clips × %d noise offsets (%d words):", (noisePath as NSString).lastPathComponent, snr, clips.count, noiseOffsets, reference.split(separator: " ").count))
        print(String(format: "  streamed (profile = the session's pauses): noise reduction off %.1f %%, on %.1f %%", wer(streamed[false]!), wer(streamed[true]!)))
        print(String(format: "  whole clip (profile = the clip's pauses):  noise reduction off %.1f %%, on %.1f %%", wer(whole[false]!), wer(whole[true]!)))
        print("  noise profiles used: " + profiles.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", "))
    }
}
