import ArgumentParser
import AvatarAnimation
import AvatarCore
import AvatarEngines
import AvatarServer
import Foundation

/// `avatar generate`: one photo + speech audio → a lip-synced talking-head MP4.
struct Generate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Turn a photo and a speech recording into a lip-synced MP4 (512×512, 25 fps, H.264 + AAC).")

    @Option(help: "Photo of one face (JPEG, PNG…).")
    var photo: String

    @Option(help: "Speech audio (WAV, MP3, OGG, FLAC; any rate, mono or stereo).")
    var audio: String

    @Option(help: "Phoneme timings of the audio (SpeechTimings JSON from the synthesizer); the lips then follow the phonemes instead of guessing from the audio.")
    var timings: String?

    @Option(help: "The face's emotion: \(Emotion.Label.acceptedNames.joined(separator: ", ")).")
    var emotion: Emotion.Label = .neutral

    @Option(help: "Emotion intensity 0…1.")
    var intensity = 0.7

    @Option(name: .shortAndLong, help: "Output MP4.")
    var output = "out.mp4"

    @Flag(help: "Render again even when the same photo, audio and options were rendered before.")
    var noCache = false

    @Option(help: "builtin (default: real-time, CPU) or sadtalker (a SadTalker you installed; GPU, slow; AVATAR_SADTALKER_DIR).")
    var engine = "builtin"

    func validate() throws {
        guard (0...1).contains(intensity) else { throw ValidationError("--intensity must be from 0 to 1") }
        guard ["builtin", "sadtalker"].contains(engine) else { throw ValidationError("--engine must be builtin or sadtalker") }
        for path in [photo, audio] + (timings.map { [$0] } ?? []) where !FileManager.default.isReadableFile(atPath: path) {
            throw ValidationError("cannot read \(path)")
        }
    }

    func run() async throws {
        let started = ContinuousClock.now
        var settings = try await loadSettings()
        // Same photo, audio and options → the stored result, copied (results live in the data dir).
        let photoData = try Data(contentsOf: URL(fileURLWithPath: photo))
        let audioData = try Data(contentsOf: URL(fileURLWithPath: audio))
        let timingsData = try timings.map { try Data(contentsOf: URL(fileURLWithPath: $0)) }
        let key = [ContentHash.of(photoData), ContentHash.of(audioData),
                   ContentHash.of("\(engine)|\(emotion.rawValue)|\(intensity)|\(FaceRenderer.version)|\(timingsData.map(ContentHash.of) ?? "")")].joined(separator: "-")
        let cached = settings.dataDir + "/exports/\(key).mp4"
        if !noCache, FileManager.default.fileExists(atPath: cached) {
            try? FileManager.default.removeItem(atPath: output)
            try FileManager.default.copyItem(atPath: cached, toPath: output)
            // The notes of the render that made it (several faces, a small face) are said again.
            if let notes = FileManager.default.contents(atPath: cached + ".notes") { FileHandle.standardError.write(notes) }
            print("\(output): from the result cache (\(cached))")
            return
        }
        if engine == "sadtalker" {
            try await runSadTalker(settings, cached: cached)
            return
        }
        settings.llmEmbedded = false
        settings.redis = .off
        settings.logLevel = "warning"
        let logger = bootstrapLogging(settings)

        let image: RGBImage
        let sound: AudioSamples
        var speechTimings: SpeechTimings?
        do {
            image = try await RGBImage.load(photo)
            sound = try await AudioSamples.load(audio)
        } catch let error as any AvatarError {
            throw CLIFailure(error.userMessage, code: 2)
        }
        if let timingsData, let timings {
            do {
                speechTimings = try JSONDecoder().decode(SpeechTimings.self, from: timingsData)
            } catch {
                throw CLIFailure("\(timings) is not SpeechTimings JSON ({\"source\", \"phonemes\": [{\"ipa\", \"symbol\", \"start\", \"end\"}], \"words\"}): \(error)", code: 2)
            }
        }

        // The engine host runs only while the face is found; rendering needs no engine.
        let face: FaceLandmarks = try await withEngines(settings, logger) { engines in
            do {
                return try await landmarksWhenReady(engines.host, image: photoData, filename: (photo as NSString).lastPathComponent, timeout: settings.engineStartTimeout)
            } catch let error as any AvatarError {
                throw CLIFailure(error.userMessage)
            }
        }
        var notes = ""
        for warning in face.warnings ?? [] { notes += "avatar: note: \(warning)\n" }
        FileHandle.standardError.write(Data(notes.utf8))

        do {
            let rig = try FaceRig(photo: image, landmarks: face.landmarks)
            let rigNotes = rig.warnings.map { "avatar: note: \($0)\n" }.joined()
            FileHandle.standardError.write(Data(rigNotes.utf8))
            notes += rigNotes
            let exporter = VideoExporter(renderer: FaceRenderer(rig: rig))
            try await exporter.export(audioPath: audio, audio: sound, timings: speechTimings, emotion: emotion, intensity: intensity, output: output) { done, total in
                ProgressBar.show(done, total)
            }
        } catch let error as any AvatarError {
            throw CLIFailure(error.userMessage)
        }
        try? FileManager.default.createDirectory(atPath: settings.dataDir + "/exports", withIntermediateDirectories: true)
        try? FileManager.default.removeItem(atPath: cached)
        try? FileManager.default.copyItem(atPath: output, toPath: cached)
        try? FileManager.default.removeItem(atPath: cached + ".notes")
        if !notes.isEmpty { try? Data(notes.utf8).write(to: URL(fileURLWithPath: cached + ".notes")) }
        let elapsed = ContinuousClock.now - started
        print(String(format: "%@: %.1f s of video in %.1f s", output, sound.duration, elapsed.seconds))
    }

    /// `--engine sadtalker`: one job in SadTalker's own environment; the peak GPU memory is reported.
    func runSadTalker(_ settings: AvatarSettings, cached: String) async throws {
        guard let checkout = settings.sadTalkerDir else {
            throw CLIFailure(SadTalkerError.notInstalled("AVATAR_SADTALKER_DIR is not set").userMessage, code: 2)
        }
        let locate = await ChildProcess.output(of: [settings.pythonPath, "-c", "import avatar_engine, os; print(os.path.dirname(avatar_engine.__file__))"])
        if locate.status == 127 { throw CLIFailure("the engine venv is missing; run `avatar setup`") }
        let directory = locate.text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard locate.succeeded, !directory.isEmpty else { throw CLIFailure("the engine code is not linked; run `avatar setup`") }
        let adapter = SadTalkerAdapter(command: [settings.sadTalkerPython, directory + "/sadtalker_job.py"], checkout: checkout, checkpoints: settings.sadTalkerCheckpoints)
        do {
            let result = try await adapter.generate(photo: absolute(photo), audio: absolute(audio), output: absolute(output))
            try? FileManager.default.createDirectory(atPath: settings.dataDir + "/exports", withIntermediateDirectories: true)
            try? FileManager.default.copyItem(atPath: output, toPath: cached)
            print(String(format: "%@: SadTalker in %.1f s, peak GPU memory %d MiB (released: the job's process has exited)", output, result.seconds, result.peakGPUMiB))
        } catch let error as any AvatarError {
            throw CLIFailure(error.userMessage)
        }
    }

    func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    }
}

/// A one-line progress bar on stderr.
enum ProgressBar {
    static func show(_ done: Int, _ total: Int) {
        let width = 30
        let filled = total > 0 ? width * done / total : width
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        let percent = total > 0 ? 100 * done / total : 100
        FileHandle.standardError.write(Data("\r[\(bar)] \(percent)% frame \(done)/\(total)\(done == total ? "\n" : "")".utf8))
    }
}

extension Emotion.Label: ExpressibleByArgument {
    public init?(argument: String) { self.init(name: argument) }
    public static var allValueStrings: [String] { acceptedNames }
}
