import ArgumentParser
import AvatarCore
import AvatarEngines
import AvatarServer
import AvatarStore
import AvatarVoice
import Foundation

/// `avatar voice …`: validate samples, create and list voice profiles, speak and score in them, prepare
/// fine-tuning data and run the configured training command.
struct VoiceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "voice",
        abstract: "Voice profiles from recordings: offline an approximate voice match (base voice + pitch/formant shift), real cloning with an XTTS server.",
        subcommands: [Validate.self, Create.self, List.self, Say.self, Score.self, Prepare.self, Train.self]
    )

    /// The engines, the store and a cloner.
    struct Session {
        let engines: RunningEngines
        let cloner: VoiceCloner
        let settings: AvatarSettings
    }

    static func run<T>(_ body: (Session) async throws -> T) async throws -> T {
        try await withEngineHost { engines, settings in
            let xtts = settings.xttsURL.map { XTTSClient(endpoint: StaticEndpoint(engineName: "xtts", url: $0), client: engines.runtime.http, timeout: settings.engineRequestTimeout) }
            let cloner = VoiceCloner(host: engines.host, store: engines.runtime.database, dataDir: settings.dataDir, xtts: xtts)
            return try await body(Session(engines: engines, cloner: cloner, settings: settings))
        }
    }

    struct Validate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Check voice samples: rate, channels, duration, clipping, SNR, speech ratio.")
        @Argument(help: "Recordings (any format ffmpeg reads).") var files: [String]
        func run() async throws {
            let reports = try await VoiceCommand.run { await $0.cloner.validate(files) }
            for report in reports { print(report.summary) }
            if reports.contains(where: { !$0.usable }) { throw ExitCode(1) }
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a voice profile from recordings of one speaker.")
        @Option(help: "Name of the voice.") var name: String
        @Option(help: "Language of the recordings (decides the base voices: en, ru).") var language = "en"
        @Argument(help: "Recordings of the speaker (10 s or more in all is better).") var files: [String]
        func run() async throws {
            let (profile, reports) = try await VoiceCommand.run { try await $0.cloner.createVoice(name: name, language: language, samples: files) }
            for report in reports { print(report.summary) }
            print(String(format: "created voice '%@': %@, median F0 %.0f Hz, %d samples (%.1f s); base voice %@, formant ratio %.2f", profile.name, profile.gender,
                         profile.f0MedianHz, profile.sampleCount, profile.sampleSeconds, profile.baseVoice, profile.formantRatio))
            print(String(format: "approximate voice match: speaker similarity %.2f to the samples (unmodified base voice %.2f) — not a clone; set AVATAR_XTTS_URL for real cloning",
                         profile.calibrationMatchSimilarity, profile.calibrationBaseSimilarity))
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the stored voice profiles.")
        func run() async throws {
            let settings = try await loadSettings()
            let database: AvatarDatabase
            do { database = try AvatarDatabase(path: settings.databasePath) } catch let error as any AvatarError { throw CLIFailure(error.userMessage) }
            let profiles = try database.voiceProfiles()
            if profiles.isEmpty { print("no voices yet: avatar voice create --name NAME --language en FILES…") }
            for p in profiles {
                print(String(format: "%@\t%@\t%@\tbase %@\tapproximate voice match similarity %.2f (base %.2f)\t%.1f s of samples", p.name, p.language, p.gender,
                             p.baseVoice, p.calibrationMatchSimilarity, p.calibrationBaseSimilarity, p.sampleSeconds))
            }
        }
    }

    struct Say: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Speak text in a voice profile to a WAV file; prints the method and its measured similarity.")
        @Option(help: "Voice profile name.") var voice: String
        @Option(name: .shortAndLong, help: "Output WAV file.") var output: String
        @Option(help: "automatic (XTTS when AVATAR_XTTS_URL is set), approximate or xtts.") var mode: String = "automatic"
        @Argument(help: "Text to speak.") var text: String
        func run() async throws {
            guard let mode = VoiceCloner.Mode(rawValue: mode) else { throw CLIFailure("--mode must be automatic, approximate or xtts", code: 2) }
            let synthesis = try await VoiceCommand.run { session in
                try await session.cloner.synthesize(text, profile: try session.cloner.profile(named: voice), mode: mode)
            }
            try synthesis.wav.write(to: URL(fileURLWithPath: output))
            print("\(output): \(synthesis.label)" + (synthesis.baseVoice.map { "; base voice \($0)" } ?? ""))
        }
    }

    struct Score: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Speaker similarity (Resemblyzer cosine) of a recording to a voice profile.")
        @Option(help: "Voice profile name.") var voice: String
        @Option(help: "A recording (any format ffmpeg reads).") var reference: String
        func run() async throws {
            guard let data = FileManager.default.contents(atPath: reference), !data.isEmpty else { throw CLIFailure("\(reference): missing or empty") }
            let similarity = try await VoiceCommand.run { session in try await session.cloner.score(data, profile: try session.cloner.profile(named: voice)) }
            print(String(format: "speaker similarity %.3f (same speaker typically 0.85–0.96, different speakers 0.4–0.7)", similarity))
        }
    }

    struct Prepare: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make an LJSpeech-style fine-tuning dataset (wavs/ + metadata.csv, 22050 Hz mono 16-bit).")
        @Option(name: .shortAndLong, help: "Output folder.") var output: String
        @Option(help: "Language of the recordings.") var language = "en"
        @Argument(help: "Recordings of one speaker.") var files: [String]
        func run() async throws {
            let dataset = try await VoiceCommand.run { try await $0.cloner.prepareTrainingData(samples: files, output: output, language: language) }
            for report in dataset.reports where !report.usable { print(report.summary) }
            print(String(format: "%@: %d clips, %.1f s; %@", dataset.directory, dataset.clips.count, dataset.totalSeconds, dataset.metadataPath))
        }
    }

    struct Train: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Prepare a dataset and run the configured fine-tuning command (AVATAR_VOICE_TRAIN_COMMAND; a GPU box). Ctrl-C cancels.")
        @Option(help: "Name of the voice being trained.") var name: String
        @Option(name: .shortAndLong, help: "Work folder: dataset/ and output/ go here.") var output: String
        @Option(help: "Language of the recordings.") var language = "en"
        @Argument(help: "Recordings of one speaker.") var files: [String]
        func run() async throws {
            let settings = try await loadSettings()
            guard let template = settings.voiceTrainCommand else {
                throw CLIFailure("no training command: set AVATAR_VOICE_TRAIN_COMMAND (see docs/voice.md for Piper's)", code: 2)
            }
            let dataset = try await VoiceCommand.run { try await $0.cloner.prepareTrainingData(samples: files, output: output + "/dataset", language: language) }
            print(String(format: "dataset: %d clips, %.1f s in %@", dataset.clips.count, dataset.totalSeconds, dataset.directory))
            let job = VoiceTrainingJob(template: template, dataset: dataset.directory, output: output + "/output", name: name, python: settings.pythonPath, logPath: output + "/train.log")
            print("running: \(job.command)  (log: \(job.logPath))")
            let task = Task { try await job.run { fraction, line in print(fraction.map { String(format: "[%3.0f%%] ", $0 * 100) } ?? "       ", line) } }
            let interrupt = DispatchSource.makeSignalSource(signal: SIGINT)
            signal(SIGINT, SIG_IGN)
            interrupt.setEventHandler { task.cancel() }
            interrupt.resume()
            switch try await task.value {
            case .succeeded: print("training finished: \(output)/output")
            case .cancelled: throw CLIFailure("training cancelled", code: 130)
            case .failed(let status, let line): throw CLIFailure("the training command failed (status \(status)): \(line)")
            }
        }
    }
}
