import ArgumentParser
import AvatarCore
import AvatarEngines
import AvatarServer
import Foundation
import Logging

/// `avatar bench …`: benchmarks as commands, not as timed tests.
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Measure latency and throughput.", subcommands: [BenchEngines.self, BenchLLM.self, BenchRender.self, BenchGenerate.self, BenchRealism.self, BenchASR.self, BenchTTS.self, BenchSafety.self, BenchAPI.self, BenchSession.self])
}

/// `avatar bench engines`: starts the engines like `serve` does, then times each endpoint.
struct BenchEngines: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "engines", abstract: "Start-up time and per-request latency of every engine endpoint.")

    @Option(help: "Timed requests per endpoint (after one warm-up).")
    var runs = 5

    @Option(help: "Photo for the landmarks benchmark (default: scikit-image's astronaut.png from the engine venv).")
    var photo: String?

    func run() async throws {
        var settings = try await loadSettings()
        settings.logLevel = "warning"
        let logger = bootstrapLogging(settings)
        try await withEngines(settings, logger) { engines in try await measureAll(engines, settings) }
    }

    func measureAll(_ engines: RunningEngines, _ settings: AvatarSettings) async throws {
        let (runtime, supervisor, host) = (engines.runtime, engines.supervisor, engines.host)

        print("Starting engines…")
        let readyAt = try await waitUntilReady(supervisor, timeout: settings.engineStartTimeout, logs: settings.dataDir + "/logs/")
        for (name, duration) in readyAt.sorted(by: { $0.key < $1.key }) {
            print("  " + name.padding(toLength: 12, withPad: " ", startingAt: 0) + String(format: " ready after %.2f s", duration.seconds))
        }

        print("\n" + "endpoint".padding(toLength: 46, withPad: " ", startingAt: 0) + "  p50 ms   p95 ms   notes")
        let voices = try await host.voices()
        var samples: [String: Data] = [:]
        for voice in voices {
            let text = voice.language == "ru" ? Self.russianText : Self.englishText
            var audio = Data()
            let stats = try await measure { audio = try await host.speech(text: text, voice: voice.id) }
            samples[voice.language] = samples[voice.language] ?? audio
            let seconds = WAVInfo.duration(audio)
            report("POST /v1/audio/speech (\(voice.id))", stats, note: String(format: "%.1f s audio, RTF %.2f", seconds, stats.p50 / 1000 / max(seconds, 0.001)))
        }
        for (language, audio) in samples.sorted(by: { $0.key < $1.key }) {
            let seconds = WAVInfo.duration(audio)
            let fixed = try await measure { _ = try await host.transcribe(audio: audio, language: language) }
            report("POST /v1/audio/transcriptions (\(language), given)", fixed, note: String(format: "%.1f s audio, RTF %.2f", seconds, fixed.p50 / 1000 / seconds))
            let auto = try await measure { _ = try await host.transcribe(audio: audio) }
            report("POST /v1/audio/transcriptions (\(language), auto)", auto, note: String(format: "%.1f s audio, RTF %.2f", seconds, auto.p50 / 1000 / seconds))
        }
        if let image = try loadPhoto(settings) {
            let stats = try await measure { _ = try await host.landmarks(image: image) }
            report("POST /v1/face/landmarks", stats, note: "\(image.count / 1024) KiB image")
        }
        let voicesStats = try await measure { _ = try await host.voices() }
        report("GET /v1/voices", voicesStats, note: "")
        if let llm = runtime.embeddedLLM {
            var firstToken: [Double] = []
            var rates: [Double] = []
            let total = try await measure {
                let start = ContinuousClock.now
                var first: Duration?
                var pieces = 0
                for try await _ in llm.stream([.user("Tell me one short fact about the sea.")], options: ChatOptions(maxTokens: 48, temperature: 0.2)) {
                    if first == nil { first = ContinuousClock.now - start }
                    pieces += 1
                }
                let elapsed = (ContinuousClock.now - start).seconds
                firstToken.append((first?.seconds ?? elapsed) * 1000)
                rates.append(Double(pieces) / max(elapsed - (first?.seconds ?? 0), 0.001))
            }
            let ttft = Stats(firstToken)
            report("POST /v1/chat/completions (stream)", total, note: String(format: "first token p50 %.0f ms, %.0f tokens/s", ttft.p50, Stats(rates).p50))
        }
    }

    static let englishText = "The quick brown fox jumps over the lazy dog, and then it runs back into the forest."
    static let russianText = "Сегодня хорошая погода, и мы пойдём гулять в парк после обеда."

    /// One warm-up, then `runs` timed calls.
    func measure(_ body: () async throws -> Void) async throws -> Stats {
        try await body()
        var times: [Double] = []
        for _ in 0..<runs {
            let start = ContinuousClock.now
            try await body()
            times.append((ContinuousClock.now - start).seconds * 1000)
        }
        return Stats(times)
    }

    func report(_ name: String, _ stats: Stats, note: String) {
        let padded = name.padding(toLength: max(name.count, 46), withPad: " ", startingAt: 0)
        print(padded + String(format: " %7.0f  %7.0f   ", stats.p50, stats.p95) + note)
    }

    func loadPhoto(_ settings: AvatarSettings) throws -> Data? {
        if let photo {
            guard let data = FileManager.default.contents(atPath: photo) else { throw CLIFailure("cannot read \(photo)", code: 2) }
            return data
        }
        guard let found = Self.findInVenv(settings, "skimage/data/astronaut.png") else {
            print("(no --photo and no scikit-image astronaut.png: landmarks skipped)")
            return nil
        }
        return FileManager.default.contents(atPath: found)
    }

    /// A file shipped inside a package of the engine venv, by the end of its path.
    static func findInVenv(_ settings: AvatarSettings, _ suffix: String) -> String? {
        let lib = (settings.venvDir as NSString).appendingPathComponent("lib")
        let found = FileManager.default.enumerator(atPath: lib)?.first { ($0 as? String)?.hasSuffix(suffix) == true } as? String
        return found.map { lib + "/" + $0 }
    }
}

/// Percentiles of a list of measurements.
struct Stats {
    var p50: Double
    var p95: Double

    init(_ values: [Double]) {
        let sorted = values.sorted()
        func percentile(_ p: Double) -> Double {
            guard !sorted.isEmpty else { return 0 }
            let index = min(sorted.count - 1, Int((p * Double(sorted.count - 1)).rounded()))
            return sorted[index]
        }
        p50 = percentile(0.5)
        p95 = percentile(0.95)
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
