import AvatarAnimation
import AvatarCore
import Foundation
import Testing

/// `avatar generate` with bad or unusual input, run as the real binary: each case ends with a clear outcome.
@Suite("avatar generate input", .serialized)
struct GenerateInputTests {
    func generate(_ arguments: [String], timeout: Double = 240) async throws -> AvatarProcess.Outcome {
        try await AvatarProcess.run(["generate", "--no-cache"] + arguments, environment: ["AVATAR_DATA_DIR": temporaryDirectory("avatar-generate-data")], timeout: timeout)
    }

    func ffmpeg(_ arguments: [String]) throws {
        _ = TestShell.run(["ffmpeg", "-v", "error", "-y"] + arguments)
        guard let output = arguments.last, FileManager.default.fileExists(atPath: output) else { throw TestFailure("ffmpeg \(arguments) made nothing") }
    }

    @Test("Two faces → the largest, said on stderr; 44.1 kHz stereo audio converted; no face, a tiny face, a corrupt photo → one clear line each; a small face (56–80 px) is animated with a note")
    func inputs() async throws {
        let runtime = try await EngineFixture.shared.runtime()
        let directory = temporaryDirectory("avatar-generate-input")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let astronaut = directory + "/astronaut.png"
        try TestData.skimage("astronaut.png", settings: runtime.settings).write(to: URL(fileURLWithPath: astronaut))
        let cat = directory + "/cat.png"
        try TestData.skimage("chelsea.png", settings: runtime.settings).write(to: URL(fileURLWithPath: cat))
        // Two people: the astronaut and a smaller copy beside her.
        let two = directory + "/two.png"
        try ffmpeg(["-i", astronaut, "-i", astronaut, "-filter_complex", "[0]pad=832:512[b];[1]scale=300:300[s];[b][s]overlay=522:100", two])
        // A small face: the astronaut at 150×150 in a 400×400 frame (MediaPipe finds it by scanning: 26 px cheek to cheek).
        let small = directory + "/small.png"
        try ffmpeg(["-i", astronaut, "-vf", "scale=150:150,pad=400:400:125:125:gray", small])
        let corrupt = directory + "/corrupt.jpg"
        try Data([0xFF, 0xD8, 0xFF, 0xE0] + Array("truncated".utf8)).write(to: URL(fileURLWithPath: corrupt))
        // Speech at 44.1 kHz stereo.
        let stereo = directory + "/stereo.wav"
        try ffmpeg(["-i", try TestData.librivoxClips()[0].path, "-t", "2", "-ar", "44100", "-ac", "2", stereo])

        let output = directory + "/out.mp4"
        let largest = try await generate(["--photo", two, "--audio", stereo, "-o", output])
        print("two faces + stereo: exit \(largest.status), stderr: \(largest.stderr.split(separator: "\n").filter { !$0.contains("[") }.joined(separator: " | "))")
        #expect(largest.status == 0)
        #expect(largest.stderr.contains("2 faces detected; using the largest"))
        let probe = TestShell.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", output])
        #expect(abs((Double(probe.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0) - 2) < 0.15, "duration \(probe)")

        let tiny = try await generate(["--photo", small, "--audio", stereo, "-o", output])
        print("small face: exit \(tiny.status), \(tiny.stderr)")
        #expect(tiny.status != 0)
        #expect(tiny.stderr.contains("px wide; need ≥ 56"))

        // A face between 56 and 80 px: animated, with a note that it will look soft (the astronaut at 390×390: ~68 px).
        let softPhoto = directory + "/soft.png"
        try ffmpeg(["-i", astronaut, "-vf", "scale=390:390,pad=512:512:61:61:gray", softPhoto])
        let soft = try await generate(["--photo", softPhoto, "--audio", stereo, "-o", output])
        print("soft face: exit \(soft.status), \(soft.stderr.split(separator: "\n").filter { $0.contains("note") })")
        #expect(soft.status == 0)
        #expect(soft.stderr.contains("will look soft"))

        let none = try await generate(["--photo", cat, "--audio", stereo, "-o", output])
        print("no face: exit \(none.status), \(none.stderr)")
        #expect(none.status != 0 && none.stderr.lowercased().contains("no face"))

        let broken = try await generate(["--photo", corrupt, "--audio", stereo, "-o", output])
        print("corrupt: exit \(broken.status), \(broken.stderr)")
        #expect(broken.status == 2 && broken.stderr.contains("the photo cannot be read"))

        let badTimings = directory + "/timings.json"
        try Data("{\"phonemes\": 3}".utf8).write(to: URL(fileURLWithPath: badTimings))
        let timings = try await generate(["--photo", astronaut, "--audio", stereo, "--timings", badTimings, "-o", output])
        #expect(timings.status == 2 && timings.stderr.contains("is not SpeechTimings JSON"))
    }
}
