import ArgumentParser
import AvatarCore
import AvatarEngines
import AvatarSpeech
import Foundation

/// `avatar bench tts`: time to first audio and real-time factor per voice (sentence streaming, no cache),
/// what each emotion does to pitch/rate/level (measured on the audio), and the TTS → ASR round-trip WER.
struct BenchTTS: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tts", abstract: "TTS time to first audio, RTF, emotion prosody and round-trip WER per voice.")

    @Option(help: "Runs per voice.")
    var runs = 3

    @Option(help: "Voices to measure (comma-separated ids from /v1/voices).")
    var voices = "en_US-joe-medium,slt,msu_ru_nsh,espeak-de"

    @Option(help: "Takes per emotion for voices whose synthesis varies from take to take (Piper); their figures are means.")
    var takes = 5

    @Flag(help: "Skip the emotion and round-trip tables.")
    var latencyOnly = false

    static let texts = [
        "en": "Hello, it is nice to meet you. The weather is lovely today, so we could walk to the park after lunch. What would you like to do?",
        "ru": "Привет, рада тебя видеть. Сегодня хорошая погода, поэтому после обеда мы можем погулять в парке. Чем ты хочешь заняться?",
        "de": "Hallo, schön dich kennenzulernen. Das Wetter ist heute herrlich. Was möchtest du machen?",
    ]

    func run() async throws {
        print("Starting the engine host…")
        try await withEngineHost { engines, _ in try await measure(engines.host) }
    }

    func measure(_ host: EngineHostClient) async throws {
        let synthesizer = EngineSpeechSynthesizer(host: host, cache: nil)
        let known = try await synthesizer.voices()

        print("\nSentence streaming, cache off (\(runs) runs each; first audio = the first sentence ready to play):")
        print("voice               lang  first audio p50/p95 ms   RTF p50/p95    audio s")
        for id in voices.split(separator: ",").map(String.init) {
            guard let voice = known.first(where: { $0.id == id }) else { print("\(id): no such voice"); continue }
            let text = Self.texts[voice.language] ?? Self.texts["en"]!
            let options = SynthesisOptions(voice: id, language: voice.language, emotion: .neutral)
            var firsts: [Double] = [], rtfs: [Double] = []
            var audio = 0.0
            for _ in 0..<runs {
                let start = ContinuousClock.now
                var first: Double?
                audio = 0
                for try await segment in synthesizer.stream(text, options: options) {
                    first = first ?? (ContinuousClock.now - start).seconds
                    audio += segment.duration
                }
                firsts.append((first ?? 0) * 1000)
                rtfs.append((ContinuousClock.now - start).seconds / max(audio, 0.01))
            }
            let f = Stats(firsts), r = Stats(rtfs)
            print(String(format: "%@ %@ %8.0f / %-8.0f      %.3f / %.3f   %6.2f", id.padding(toLength: 19, withPad: " ", startingAt: 0), voice.language.padding(toLength: 5, withPad: " ", startingAt: 0), f.p50, f.p95, r.p50, r.p95, audio))
        }
        if latencyOnly { return }

        // Piper samples durations and pitch noise, so one take of it can mislead (calm/neutral pitch has come out
        // anywhere from −1.1 to −0.2 semitones): its rows are means over `takes`. Festival is deterministic.
        print("\nEmotions at intensity 1.0, measured on the output (F0: autocorrelation median; rate: phonemes per second of speech;")
        print("Piper rows: mean of \(takes) takes, duration range in brackets; WER of the first take):")
        print("voice               emotion   F0 Hz   ΔF0 st   duration s          phonemes/s  level dBFS   round-trip WER")
        for id in ["en_US-joe-medium", "slt", "msu_ru_nsh"] {
            guard let voice = known.first(where: { $0.id == id }) else { continue }
            let text = Self.texts[voice.language]!
            let count = voice.engine == "piper" ? max(1, takes) : 1
            var neutralF0: Double?
            for emotion in ProsodyStyle.allCases {
                var f0s: [Double] = [], durations: [Double] = [], rates: [Double] = [], levels: [Double] = []
                var wer = 0.0, misheard = ""
                for take in 0..<count {
                    let segment = try await synthesizer.synthesize(text, options: SynthesisOptions(voice: id, language: voice.language, emotion: emotion, intensity: 1))
                    f0s.append(ProsodyMeasure.medianF0(segment.samples16k) ?? 0)
                    durations.append(segment.duration)
                    rates.append(segment.timings.map(Self.phonemeRate) ?? 0)
                    levels.append(ProsodyMeasure.activeLevel(segment.samples16k))
                    guard take == 0 else { continue }
                    let heard = try await host.transcribe(audio: segment.wav, language: voice.language)
                    wer = WordErrorRate.of(reference: text, hypothesis: heard.text)
                    misheard = wer > 0 ? "  heard: \(heard.text)" : ""
                }
                func mean(_ values: [Double]) -> Double { values.reduce(0, +) / Double(values.count) }
                let f0 = mean(f0s)
                if emotion == .neutral { neutralF0 = f0 }
                let semitones = neutralF0.map { f0 > 0 && $0 > 0 ? 12 * log2(f0 / $0) : 0 } ?? 0
                let range = count > 1 ? String(format: "[%.2f–%.2f]", durations.min()!, durations.max()!) : ""
                print(String(format: "%@ %@ %6.1f   %+5.1f    %6.2f %@ %6.1f      %6.1f       %5.1f %%", id.padding(toLength: 19, withPad: " ", startingAt: 0), emotion.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0), f0, semitones, mean(durations), range.padding(toLength: 12, withPad: " ", startingAt: 0), mean(rates), mean(levels), wer * 100) + misheard)
            }
        }
    }

    /// Phonemes per second of speech (pauses excluded), from the engine's timings.
    static func phonemeRate(_ timings: SpeechTimings) -> Double {
        let spoken = timings.phonemes.filter { !$0.isPause }
        let time = spoken.reduce(0) { $0 + ($1.end - $1.start) }
        return time > 0 ? Double(spoken.count) / time : 0
    }
}
