import AvatarCore
import AvatarEngines
import Foundation
import Testing

/// The SadTalker adapter against a fake job that speaks the real job's protocol (no SadTalker weights exist
/// here), plus the real job script's "not installed" answer.
@Suite("SadTalker adapter (contract)")
struct SadTalkerAdapterTests {
    static let fake = FileManager.default.currentDirectoryPath + "/Tests/AvatarTests/Fixtures/fake_sadtalker_job.py"
    static let real = FileManager.default.currentDirectoryPath + "/engine/avatar_engine/sadtalker_job.py"

    func inputs() throws -> (photo: String, audio: String, output: String) {
        let directory = temporaryDirectory("avatar-sadtalker")
        let photo = directory + "/face.png", output = directory + "/out.mp4"
        let make = Process()
        make.executableURL = URL(fileURLWithPath: "/usr/bin/ffmpeg")
        make.arguments = ["-v", "error", "-f", "lavfi", "-i", "color=c=gray:s=256x256", "-frames:v", "1", "-y", photo]
        try make.run()
        make.waitUntilExit()
        return (photo, try TestData.librivoxClips()[1].path, output)
    }

    func adapter(mode: String, timeout: Double = 60) -> SadTalkerAdapter {
        SadTalkerAdapter(command: ["FAKE_MODE=\(mode)", "python3", Self.fake], checkout: "/unused", checkpoints: nil, timeout: timeout)
    }

    @Test("A job returns the video and its peak GPU memory")
    func success() async throws {
        let (photo, audio, output) = try inputs()
        let result = try await adapter(mode: "ok").generate(photo: photo, audio: audio, output: output)
        #expect(result.output == output)
        #expect(result.peakGPUMiB == 0)
        #expect((try? FileManager.default.attributesOfItem(atPath: output)[.size] as? Int) ?? 0 > 1000)
    }

    @Test("Errors, crashes and hangs become typed errors, not hangs", arguments: ["error", "crash", "notinstalled"])
    func faults(mode: String) async throws {
        let (photo, audio, output) = try inputs()
        await #expect { _ = try await adapter(mode: mode).generate(photo: photo, audio: audio, output: output) } throws: { error in
            switch (mode, error as? SadTalkerError) {
            case ("error", .failed?), ("crash", .workerCrashed?), ("notinstalled", .notInstalled?): return true
            default: return false
            }
        }
    }

    @Test("A hung job is stopped at the deadline")
    func hang() async throws {
        let (photo, audio, output) = try inputs()
        let started = ContinuousClock.now
        await #expect(throws: SadTalkerError.timeout(1)) {
            _ = try await SadTalkerAdapter(command: ["FAKE_MODE=hang", "python3", Self.fake], checkout: "/unused", checkpoints: nil, timeout: 1, grace: 0.5)
                .generate(photo: photo, audio: audio, output: output)
        }
        #expect(ContinuousClock.now - started < .seconds(5))
    }

    @Test("The real job script says clearly when SadTalker is not installed")
    func notInstalled() async throws {
        let (photo, audio, output) = try inputs()
        let real = SadTalkerAdapter(command: ["python3", Self.real], checkout: temporaryDirectory("no-sadtalker"), checkpoints: nil)
        await #expect { try await real.generate(photo: photo, audio: audio, output: output) } throws: { error in
            guard case .notInstalled(let reason) = error as? SadTalkerError else { return false }
            return reason.contains("inference.py")
        }
    }
}
