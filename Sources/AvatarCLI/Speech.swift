import ArgumentParser
import AvatarAnimation
import AvatarCore
import AvatarSpeech
import Foundation

/// `avatar transcribe FILE`: the streaming recognizer on a recording, printing partials and finals.
struct Transcribe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Transcribe a recording (any format ffmpeg reads) through the streaming recognizer: VAD utterances, ru/en detection, optional noise reduction.")

    @Argument(help: "The recording.") var file: String
    @Option(help: "en, ru, … or auto (detect between ru and en; locks after a confident detection).") var language = "auto"
    @Flag(help: "Noise reduction: a spectral gate whose noise profile is the background heard between utterances.") var denoise = false
    @Option(help: "Silence that ends an utterance, seconds.") var silence = 0.5
    @Flag(help: "Also print the partial transcripts.") var partials = false

    func run() async throws {
        guard FileManager.default.isReadableFile(atPath: file) else { throw CLIFailure("\(file): no such readable file", code: 2) }
        var options = RecognizerOptions()
        options.language = language == "auto" ? nil : language
        options.denoise = denoise
        options.endOfUtteranceSilence = silence
        if !partials { options.partialInterval = 0 }
        let events = try await withEngineHost { engines, _ in
            try await StreamingSpeechRecognizer(host: engines.host, cache: nil, options: options).transcribeFile(file)
        }
        for event in events where event.kind == .final || (partials && event.kind == .partial) {
            var line = String(format: "[%6.2f–%6.2f] %@%@ %@", event.speechStart, event.speechEnd, event.kind == .partial ? "(partial) " : "", event.language, event.text)
            if let noise = event.noiseReduction { line += String(format: "   [noise profile: %@, %.1f s]", noise.profile, noise.profileSeconds) }
            print(line)
        }
        if !events.contains(where: { $0.kind == .final }) { print("no speech heard in \(file)") }
    }
}

/// `avatar speak TEXT -o out.wav`: the synthesizer, sentence by sentence, to a 16 kHz WAV and its timings.
struct Speak: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Speak text to a 16 kHz WAV with a voice and an emotion; --timings writes the phoneme timings `avatar generate --timings` uses.")

    @Argument(help: "Text to speak.") var text: String
    @Option(name: .shortAndLong, help: "Output WAV (16 kHz mono, 16-bit).") var output: String
    @Option(help: "Phoneme/word timings JSON (SpeechTimings) for the whole output.") var timings: String?
    @Option(help: "Language of the text (picks the default voice: en → en_US-joe-medium, ru → msu_ru_nsh, else espeak-ng).") var language = "en"
    @Option(help: "A voice from the engine host (en_US-joe-medium, slt, msu_ru_nsh, espeak-<lang>).") var voice: String?
    @Option(help: "An emotion (\(Emotion.Label.acceptedNames.joined(separator: ", "))) or a prosody style (\(ProsodyStyle.allCases.map(\.rawValue).joined(separator: ", "))).")
    var emotion = "neutral"
    @Option(help: "Emotion intensity 0…1.") var intensity = 0.7
    @Option(help: "Speaking rate factor 0.5…2.") var speed = 1.0

    func run() async throws {
        guard let mood = ProsodyStyle(rawValue: emotion.lowercased()) ?? Emotion.Label(name: emotion)?.prosody else {
            throw CLIFailure("--emotion must be an emotion (\(Emotion.Label.acceptedNames.joined(separator: ", "))) or a prosody style (\(ProsodyStyle.allCases.map(\.rawValue).joined(separator: ", ")))", code: 2)
        }
        guard (0...1).contains(intensity), (0.5...2).contains(speed) else { throw CLIFailure("--intensity must be 0…1 and --speed 0.5…2", code: 2) }
        let options = SynthesisOptions(voice: voice, language: language, emotion: mood, intensity: intensity, speed: speed)
        let segments = try await withEngineHost { engines, _ in
            var all: [SpeechSegment] = []
            for try await segment in EngineSpeechSynthesizer(host: engines.host, cache: nil).stream(text, options: options) {
                print(String(format: "%d. %@ — %@, %.2f s, ready after %.0f ms%@", segment.index + 1, segment.text, segment.voice, segment.duration,
                             segment.latency * 1000, segment.fellBack ? " (fell back to espeak-ng)" : ""))
                all.append(segment)
            }
            return all
        }
        guard !segments.isEmpty else { throw CLIFailure("nothing to say: the text has no words", code: 2) }
        var samples: [Float] = []
        var phonemes: [SpeechTimings.Phoneme] = [], words: [SpeechTimings.Word] = []
        for segment in segments {
            if let shifted = segment.timings?.shifted(by: Double(samples.count) / Double(PCM.sampleRate)) {
                phonemes += shifted.phonemes
                words += shifted.words
            }
            samples += segment.samples16k
        }
        do {
            try PCM.wav(samples[...]).write(to: URL(fileURLWithPath: output))
            if let timings {
                let merged = SpeechTimings(source: segments.compactMap(\.timings?.source).first ?? "none", phonemes: phonemes, words: words)
                try JSONEncoder().encode(merged).write(to: URL(fileURLWithPath: timings))
            }
        } catch {
            throw CLIFailure("cannot write the output: \(error.localizedDescription)")
        }
        print(String(format: "%@: %.2f s at 16 kHz%@", output, Double(samples.count) / Double(PCM.sampleRate), timings.map { "; timings (\(phonemes.count) phonemes, \(words.count) words) in \($0)" } ?? ""))
    }
}
