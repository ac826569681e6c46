import ArgumentParser
import AvatarAnimation
import AvatarCore
import AvatarEngines
import AvatarServer
import AvatarSetup
import Foundation

/// The renderer for `photo` (default: scikit-image's astronaut.png from the engine venv), with the engine host
/// started for its landmarks and stopped again; and how long the rig took to build.
/// With `landmarks` (the engine host's JSON answer for `photo`) no engine host is started.
private func benchRenderer(photo: String?, landmarks: String? = nil) async throws -> (renderer: FaceRenderer, rigSeconds: Double) {
    if let photo, let landmarks {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let face = try decoder.decode(FaceLandmarks.self, from: Data(contentsOf: URL(fileURLWithPath: landmarks)))
        let image = try await RGBImage.load(photo)
        let start = ContinuousClock.now
        let rig = try FaceRig(photo: image, landmarks: face.landmarks)
        return (FaceRenderer(rig: rig), (ContinuousClock.now - start).seconds)
    }
    return try await withEngineHost { engines, settings in
        guard let photoPath = photo ?? BenchEngines.findInVenv(settings, "skimage/data/astronaut.png") else {
            throw CLIFailure("no --photo and no scikit-image astronaut.png in the engine venv", code: 2)
        }
        let data = try Data(contentsOf: URL(fileURLWithPath: photoPath))
        let face = try await landmarksWhenReady(engines.host, image: data, timeout: settings.engineStartTimeout)
        let start = ContinuousClock.now
        let rig = try FaceRig(photo: try await RGBImage.load(photoPath), landmarks: face.landmarks)
        return (FaceRenderer(rig: rig), (ContinuousClock.now - start).seconds)
    }
}

/// `avatar bench render` and `avatar bench generate`: the face animation engine's speed.
struct BenchRender: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "render", abstract: "Frames per second of deform + render at 512² on one core, and of the whole MP4 export.")

    @Option(help: "Photo (default: scikit-image's astronaut.png from the engine venv).")
    var photo: String?

    @Option(help: "Speech for the export benchmark (default: the LibriVox clips of pocketsphinx-testdata, joined).")
    var audio: String?

    @Option(help: "The engine host's landmarks JSON for --photo (then no engine host is started).")
    var landmarks: String?

    @Option(help: "Frames to render for the per-frame figure.")
    var frames = 250

    @Flag(help: "Only the per-frame figures (no MP4 export).")
    var noExport = false

    func run() async throws {
        let (renderer, rigTime) = try await benchRenderer(photo: photo, landmarks: landmarks)
        let rig = renderer.rig
        let expression = ExpressionTrack(duration: Double(frames) / 25)
        var frame: [UInt8] = []
        renderer.render(FacePose(), into: &frame)
        let start = ContinuousClock.now
        for k in 0..<frames {
            let t = Double(k) / 25
            renderer.render(expression.pose(at: t, mouth: MouthShape(open: 0.5 + 0.5 * sin(t * 9), width: sin(t * 3), stress: 0, close: max(0, -sin(t * 9) - 0.7) / 0.3)), into: &frame)
        }
        let perFrame = (ContinuousClock.now - start).seconds / Double(frames)
        let encoder = try JPEGEncoder(quality: 80)
        var bytes = 0
        let jpegStart = ContinuousClock.now
        for k in 0..<frames {
            let t = Double(k) / 25
            renderer.render(expression.pose(at: t, mouth: MouthShape(open: 0.5 + 0.5 * sin(t * 9), width: sin(t * 3), stress: 0, close: max(0, -sin(t * 9) - 0.7) / 0.3)), into: &frame)
            bytes += try frame.withUnsafeBufferPointer { try encoder.encode($0.baseAddress!, width: FaceRig.size, height: FaceRig.size) }.count
        }
        let perJPEGFrame = (ContinuousClock.now - jpegStart).seconds / Double(frames)
        print(String(format: "rig (once per photo): %.0f ms, %d triangles", rigTime * 1000, rig.triangles.count))
        print(String(format: "deform + render 512², one core: %.2f ms/frame = %.0f frames/s", perFrame * 1000, 1 / perFrame))
        print(String(format: "deform + render + JPEG (q80), one core: %.2f ms/frame = %.0f frames/s, %d KiB/frame", perJPEGFrame * 1000, 1 / perJPEGFrame, bytes / frames / 1024))
        if noExport { return }

        let speech: String
        if let audio { speech = audio } else { speech = try await BenchGenerate.joinedLibriVox() }
        let sound = try await AudioSamples.load(speech)
        let output = NSTemporaryDirectory() + "avatar-bench.mp4"
        let exportStart = ContinuousClock.now
        try await VideoExporter(renderer: renderer).export(audioPath: speech, audio: sound, emotion: .neutral, intensity: 0, output: output)
        let exportTime = (ContinuousClock.now - exportStart).seconds
        print(String(format: "export %.1f s of speech to MP4: %.1f s, real-time factor %.2f (render + H.264 + AAC, 2 cores)", sound.duration, exportTime, exportTime / sound.duration))
    }
}

/// `avatar bench generate`: the whole export (lip sync, render on every core, H.264 + AAC through ffmpeg) as a
/// real-time factor, repeated, with the machine's load beside it.
struct BenchGenerate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "generate", abstract: "Real-time factor of the whole MP4 export (goal ≤ 0.1 on 2 cores).")

    @Option(help: "Photo (default: scikit-image's astronaut.png from the engine venv).")
    var photo: String?

    @Option(help: "Speech (default: the LibriVox clips of pocketsphinx-testdata, joined: 24.7 s).")
    var audio: String?

    @Option(help: "Phoneme timings of the speech (SpeechTimings JSON), to time the timings path.")
    var timings: String?

    @Option(help: "How many exports to time.")
    var runs = 3

    func run() async throws {
        let renderer = try await benchRenderer(photo: photo).renderer
        let speech: String
        if let audio { speech = audio } else { speech = try await Self.joinedLibriVox() }
        let speechTimings = try timings.map { try JSONDecoder().decode(SpeechTimings.self, from: Data(contentsOf: URL(fileURLWithPath: $0))) }
        let output = NSTemporaryDirectory() + "avatar-bench-generate.mp4"
        print("export = decode audio + lip sync + render (\(ProcessInfo.processInfo.activeProcessorCount) cores, pipelined) + libx264 ultrafast CRF 18 + AAC 96 kb/s")
        let sample = try await AudioSamples.load(speech)
        let lipStart = ContinuousClock.now
        _ = MouthTrack(timings: speechTimings, audio: sample)
        print(String(format: "lip sync alone (%@): %.0f ms for %.1f s of speech", speechTimings == nil ? "audio: MFCC + loudness" : "timings + loudness", (ContinuousClock.now - lipStart).seconds * 1000, sample.duration))
        var factors: [Double] = []
        for run in 1...max(runs, 1) {
            let load = Self.loadAverage()
            let start = ContinuousClock.now
            let sound = try await AudioSamples.load(speech)
            try await VideoExporter(renderer: renderer).export(audioPath: speech, audio: sound, timings: speechTimings, emotion: .neutral, intensity: 0, output: output)
            let seconds = (ContinuousClock.now - start).seconds
            factors.append(seconds / sound.duration)
            print(String(format: "run %d: %.1f s of speech in %.2f s: real-time factor %.3f (load average before: %@)", run, sound.duration, seconds, seconds / sound.duration, load))
        }
        let sorted = factors.sorted()
        print(String(format: "real-time factor: best %.3f, median %.3f (goal ≤ 0.1); load average now: %@", sorted[0], sorted[sorted.count / 2], Self.loadAverage()))
    }

    /// The 1-, 5- and 15-minute load averages as `uptime` shows them.
    static func loadAverage() -> String {
        guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return "unknown" }
        return text.split(separator: " ").prefix(3).joined(separator: " ")
    }

    /// The LibriVox clips of pocketsphinx-testdata joined into one WAV (24.7 s of speech).
    static func joinedLibriVox() async throws -> String {
        let speech = NSTemporaryDirectory() + "avatar-bench-speech.wav"
        let directory = "/usr/share/pocketsphinx/test/data/librivox"
        let clips = (try? FileManager.default.contentsOfDirectory(atPath: directory))?.filter { $0.hasSuffix(".wav") }.sorted() ?? []
        guard !clips.isEmpty else { throw CLIFailure("no --audio and no pocketsphinx-testdata clips", code: 2) }
        let inputs = clips.flatMap { ["-i", directory + "/" + $0] }
        let joined = await ChildProcess.capture(["ffmpeg", "-v", "error", "-y"] + inputs + ["-filter_complex", "concat=n=\(clips.count):v=0:a=1", speech])
        guard joined.succeeded else { throw CLIFailure("cannot join the test clips: \(joined.text)") }
        return speech
    }
}
