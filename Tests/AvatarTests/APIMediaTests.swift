import AvatarAnimation
import AvatarCache
import AvatarCore
import AvatarEngines
import AvatarMedia
@testable import AvatarServer
import AvatarStore
import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

/// A browser's WebM voice sample, stored-photo compaction, SadTalker jobs and a Redis killed under the API —
/// with real ffmpeg, a real redis-server and the SadTalker adapter's fake job (no SadTalker weights exist here).
@Suite("HTTP API: WebM audio, photo compaction, SadTalker jobs, Redis killed", .serialized)
struct APIMediaTests {
    /// Runs ffmpeg; `pipe` writes its stdout to `output` (a non-seekable output, as a browser's MediaRecorder).
    static func ffmpeg(_ arguments: [String], pipeTo output: String? = nil) async throws {
        let result = await ChildProcess.output(of: ["ffmpeg", "-v", "error", "-y"] + arguments)
        #expect(result.status == 0, "\(arguments): \(result.lastErrorLine ?? "")")
        if let output { try result.output.write(to: URL(fileURLWithPath: output)) }
    }

    static func duration(_ path: String) async -> String {
        let probe = await ChildProcess.output(of: ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "default=nw=1:nk=1", path])
        return probe.text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test("A WebM/Opus recording (as a browser's MediaRecorder makes, without a duration) is read like any audio; a 20-minute one is refused")
    func webmAudio() async throws {
        let clip = try #require(try TestData.librivoxClips().first)
        let directory = temporaryDirectory("avatar-webm")
        let seekable = directory + "/file.webm", streamed = directory + "/streamed.webm", long = directory + "/long.webm"
        try await Self.ffmpeg(["-i", clip.path, "-c:a", "libopus", "-f", "webm", seekable])
        // Live mode to a pipe: no duration, no cues, clusters of unknown size — as MediaRecorder writes WebM.
        try await Self.ffmpeg(["-i", clip.path, "-c:a", "libopus", "-live", "1", "-f", "webm", "pipe:1"], pipeTo: streamed)
        try await Self.ffmpeg(["-f", "lavfi", "-i", "anullsrc=r=48000:cl=mono", "-t", "1200", "-c:a", "libopus", "-b:a", "6k", "-live", "1", "-f", "webm", "pipe:1"], pipeTo: long)
        #expect(await Self.duration(long) == "N/A")
        #expect(await Self.duration(streamed) == "N/A", "the piped WebM has no duration, as MediaRecorder's")
        #expect(await Self.duration(seekable) != "N/A")

        // The intake: the streamed file's length is measured by decoding (ffprobe cannot say it).
        #expect(try await AudioIntake.probe(streamed) == nil)
        let wav = directory + "/out.wav"
        let seconds = try await AudioIntake.toWAV(streamed, output: wav, maxSeconds: 600)
        let original = try #require(Double(await Self.duration(clip.path)))
        #expect(abs(seconds - original) < 0.1, "decoded \(seconds) s of a \(original) s clip")
        let header = await ChildProcess.output(of: ["ffprobe", "-v", "error", "-show_entries", "stream=sample_rate,channels,codec_name", "-of", "default=nw=1", wav]).text
        #expect(header.contains("sample_rate=16000") && header.contains("channels=1") && header.contains("codec_name=pcm_s16le"), "\(header)")

        // Over HTTP with the engines off: both WebMs get as far as the voice engines (503), not 422; the 20-minute one is 413.
        let harness = try await APIHarness.make()
        let app = try buildApplication(runtime: harness.runtime)
        try await app.test(.router) { client in
            let created = try await client.call(.post, "/api/v1/avatars", token: harness.owner, json: ["name": "W", "consent": testConsent])
            let id = try #require(created.json["id"] as? String)
            for path in [seekable, streamed] {
                let answer = try await client.call(.post, "/api/v1/avatars/\(id)/voice/samples?filename=recording.webm", token: harness.owner,
                                                   body: ByteBuffer(data: try Data(contentsOf: URL(fileURLWithPath: path))))
                #expect(answer.status == 503 && answer.json["code"] as? String == "engines-disabled", "\(path): \(answer.text)")
            }
            let tooLong = try await client.call(.post, "/api/v1/avatars/\(id)/voice/samples?filename=long.webm", token: harness.owner,
                                                body: ByteBuffer(data: try Data(contentsOf: URL(fileURLWithPath: long))))
            #expect(tooLong.status == 413 && tooLong.json["code"] as? String == "audio-too-long", "\(tooLong.text)")
            #expect((tooLong.json["detail"] as? String ?? "").contains("longer than 600 s"), "\(tooLong.text)")
        }
        let services = try APIServices(runtime: harness.runtime)
        #expect((try FileManager.default.contentsOfDirectory(atPath: services.media.tempDirectory)).isEmpty)
    }

    @Test("Photo compaction: the bound keeps the face large enough; the JPEG is smaller; landmarks follow the scale")
    func photoCompaction() async throws {
        #expect(PhotoCompaction.scale(width: 512, height: 512, faceHeight: 200) == 1)
        #expect(PhotoCompaction.scale(width: 6000, height: 4000, faceHeight: 2400) == 2048.0 / 6000)
        // A small face in a big photo: scaled only as far as the face stays 320 px tall.
        #expect(abs(PhotoCompaction.scale(width: 6000, height: 4000, faceHeight: 400) - 0.8) < 1e-9)
        #expect(PhotoCompaction.scale(width: 6000, height: 4000, faceHeight: 100) == 1)

        var image = RGBImage(width: 300, height: 200, fill: (200, 120, 80))
        for y in 0..<200 { for x in 0..<300 where (x / 10 + y / 10) % 2 == 0 { image.pixels[(y * 300 + x) * 3 + 1] = 30 } }
        let jpeg = try await PhotoCompaction.jpeg(image, width: 150, height: 100)
        let header = try #require(try ImageHeader.parse(Array(jpeg), format: .jpeg))
        #expect(header.width == 150 && header.height == 100 && header.orientation == 1)

        let face = try JSONDecoder().decode(FaceLandmarks.self, from: Data("""
            {"width": 300, "height": 200, "faces": 1, "landmarks": [[100, 50, -10], [200, 150, 4]], "blendshapes": {},
             "headPose": {"yaw": 1, "pitch": 2, "roll": 3}, "faceBox": {"x": 90, "y": 40, "width": 120, "height": 140}}
            """.utf8))
        let half = face.scaled(0.5, 0.5, width: 150, height: 100)
        #expect(half.landmarks == [[50, 25, -5], [100, 75, 2]])
        #expect([half.faceBox.x, half.faceBox.y, half.faceBox.width, half.faceBox.height] == [45, 20, 60, 70])
        #expect(half.width == 150 && half.height == 100 && half.headPose == face.headPose)
    }

    @Test("engine sadtalker: not configured → 503 saying what to set; an unknown engine → 422")
    func sadTalkerNotConfigured() async throws {
        for (environment, detail) in [([String: String](), "AVATAR_SADTALKER_DIR is not set"), (["AVATAR_SADTALKER_DIR": "/nonexistent/sadtalker"], "not a folder")] {
            let harness = try await APIHarness.make(environment: environment)
            let app = try buildApplication(runtime: harness.runtime)
            try await app.test(.router) { client in
                let created = try await client.call(.post, "/api/v1/avatars", token: harness.owner, json: ["name": "S", "consent": testConsent])
                let id = try #require(created.json["id"] as? String)
                let answer = try await client.call(.post, "/api/v1/avatars/\(id)/videos", token: harness.owner, json: ["text": "Hello", "engine": "sadtalker"])
                #expect(answer.status == 503, "\(answer.text)")
                #expect(answer.json["code"] as? String == "sadtalker-not-configured")
                #expect((answer.json["detail"] as? String ?? "").contains(detail), "\(answer.text)")
                #expect((answer.json["fix"] as? String ?? "").contains("AVATAR_SADTALKER_DIR"))
                let unknown = try await client.call(.post, "/generate-avatar?avatar_id=\(id)", token: harness.owner, json: ["text": "Hello", "engine": "wav2lip"])
                #expect(unknown.status == 422 && unknown.json["field"] as? String == "engine", "\(unknown.text)")
            }
        }
    }

    @Test("engine sadtalker, configured: the job runs through the queue (the adapter's fake job), stamped with provenance, cancellable")
    func sadTalkerJob() async throws {
        let directory = temporaryDirectory("avatar-sadtalker-api")
        let checkout = directory + "/SadTalker"
        try FileManager.default.createDirectory(atPath: checkout, withIntermediateDirectories: true)
        // AVATAR_SADTALKER_PYTHON runs `PYTHON sadtalker_job.py JOB.json`; this one runs the fake job on the JOB.json instead.
        let fake = FileManager.default.currentDirectoryPath + "/Tests/AvatarTests/Fixtures/fake_sadtalker_job.py"
        let wrapper = directory + "/python"
        // With a file `slow` beside it, the job first sleeps a minute (a long SadTalker run, to cancel).
        try Data("#!/bin/sh\nif [ -f \(directory)/slow ]; then sleep 60; fi\nexec python3 \(fake) \"$2\"\n".utf8).write(to: URL(fileURLWithPath: wrapper))
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: wrapper)
        let harness = try await APIHarness.make(environment: ["AVATAR_SADTALKER_DIR": checkout, "AVATAR_SADTALKER_PYTHON": wrapper])
        let runtime = harness.runtime
        let services = try APIServices(runtime: runtime)
        let owner = try runtime.database.ensureOwner().account

        let app = try buildApplication(runtime: runtime)
        try await app.test(.router) { client in
            let created = try await client.call(.post, "/api/v1/avatars", token: harness.owner, json: ["name": "T", "languages": ["en"], "consent": testConsent])
            let id = try #require(created.json["id"] as? String)
            // The avatar's photo and a voice sample, stored as the upload routes store them (those need the landmark
            // and voice engines, which the flow tests run; SadTalker needs neither).
            let photoPath = directory + "/face.png"
            try await Self.ffmpeg(["-f", "lavfi", "-i", "color=c=gray:s=256x256", "-frames:v", "1", photoPath])
            let photoData = try Data(contentsOf: URL(fileURLWithPath: photoPath))
            let photo = try services.storeDerived(photoData, account: owner.id, avatarId: id, kind: "photo", ext: "png", contentType: "image/png")
            let clip = try #require(try TestData.librivoxClips().first)
            let wav = directory + "/sample.wav"
            try await AudioIntake.toWAV(clip.path, output: wav)
            let sample = try services.storeDerived(try Data(contentsOf: URL(fileURLWithPath: wav)), account: owner.id, avatarId: id, kind: "voice-wav",
                                                   ext: "wav", contentType: "audio/wav")
            var avatar = try #require(try runtime.database.avatar(id: id, accountId: owner.id))
            avatar.photo = APIJSON.string(PhotoState(mediaId: photo.id, previewMediaId: photo.id, landmarksMediaId: photo.id, sha256: photo.sha256, format: "png",
                                                     width: 256, height: 256, orientation: 1, faceBox: .init(x: 0, y: 0, width: 256, height: 256), headPose: [:],
                                                     faces: 1, warnings: [], uploadedAt: Date(), stored: nil))
            try runtime.database.update(avatar)

            let started = try await client.call(.post, "/api/v1/avatars/\(avatar.id)/videos", token: harness.owner, json: ["audioSampleId": sample.id, "engine": "sadtalker"])
            #expect(started.status == 202, "\(started.text)")
            let jobId = try #require(started.json["id"] as? String)
            var job = started.json
            let deadline = ContinuousClock.now + .seconds(120)
            while ["queued", "running"].contains(job["state"] as? String ?? ""), ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(200))
                job = try await client.call(.get, "/api/v1/jobs/\(jobId)", token: harness.owner).json
            }
            #expect(job["state"] as? String == "succeeded", "\(job)")
            let video = try await client.call(.get, "/api/v1/jobs/\(jobId)/video", token: harness.owner)
            #expect(video.status == 200)
            let mp4 = directory + "/video.mp4"
            try Data(buffer: video.body).write(to: URL(fileURLWithPath: mp4))
            let info = await ChildProcess.output(of: ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,width:format_tags", "-of", "default=nw=1", mp4]).text
            #expect(info.contains("codec_name=h264") && info.contains("codec_name=aac") && info.contains("width=256"), "\(info)")
            #expect(info.contains("AI-generated") && info.contains(avatar.id), "provenance: \(info)")
            // The same request again: from the finished job; the built-in engine is another video.
            let again = try await client.call(.post, "/api/v1/avatars/\(avatar.id)/videos", token: harness.owner, json: ["audioSampleId": sample.id, "engine": "sadtalker"])
            #expect(again.status == 200 && again.json["cached"] as? Bool == true, "\(again.text)")

            // Cancel while SadTalker runs: the job process is stopped at once, not when it would have finished.
            _ = FileManager.default.createFile(atPath: directory + "/slow", contents: Data())
            let otherClip = try #require(try TestData.librivoxClips().dropFirst().first)
            let otherWav = directory + "/sample2.wav"
            try await AudioIntake.toWAV(otherClip.path, output: otherWav)
            let other = try services.storeDerived(try Data(contentsOf: URL(fileURLWithPath: otherWav)), account: owner.id, avatarId: id, kind: "voice-wav",
                                                  ext: "wav", contentType: "audio/wav")
            let slow = try await client.call(.post, "/api/v1/avatars/\(id)/videos", token: harness.owner, json: ["audioSampleId": other.id, "engine": "sadtalker"])
            let slowId = try #require(slow.json["id"] as? String)
            repeat {
                try await Task.sleep(for: .milliseconds(100))
                job = try await client.call(.get, "/api/v1/jobs/\(slowId)", token: harness.owner).json
            } while job["state"] as? String == "queued"
            try await Task.sleep(for: .seconds(1))  // the job process is in its sleep
            let cancelled = try await client.call(.post, "/api/v1/jobs/\(slowId)/cancel", token: harness.owner)
            #expect(cancelled.json["state"] as? String == "cancelled")
            let asked = ContinuousClock.now
            repeat {
                try await Task.sleep(for: .milliseconds(50))
                job = try await client.call(.get, "/api/v1/jobs/\(slowId)", token: harness.owner).json
            } while !(job["error"] as? String ?? "").contains("stopped") && ContinuousClock.now - asked < .seconds(30)
            let stopped = ContinuousClock.now - asked
            print("SadTalker job cancelled: the worker stopped \(stopped) after the cancel (\(job["error"] as? String ?? "?"))")
            #expect(stopped < .seconds(3), "\(job)")
            #expect(job["state"] as? String == "cancelled")
        }
    }

    @Test("Redis killed (SIGKILL) while the API serves: it answers, the cache says degraded; Redis back → ready again")
    func redisKilled() async throws {
        let redis = TestRedis(port: PortAllocator.freeLoopbackPort())
        try await redis.start()
        defer { redis.stop() }
        let port = redis.port
        let direct = RedisClient(host: "127.0.0.1", port: port)
        let harness = try await APIHarness.make(environment: ["AVATAR_REDIS": "redis://127.0.0.1:\(port)"])
        let cache = harness.runtime.cache
        let app = try buildApplication(runtime: harness.runtime)
        try await app.test(.router) { client in
            var stats = try await client.call(.get, "/api/v1/cache/stats", token: harness.owner)
            #expect(stats.json["state"] as? String == "ready" && stats.json["backend"] as? String == "redis+memory", "\(stats.text)")
            await cache.set("reply", "before", Array("one".utf8), ttl: 60)
            #expect(try await direct.get("avatar:reply:before") == Array("one".utf8))

            #expect(await redis.kill9())
            let started = ContinuousClock.now
            stats = try await client.call(.get, "/api/v1/cache/stats", token: harness.owner)
            let degradedAfter = ContinuousClock.now - started
            #expect(stats.json["state"] as? String == "degraded" && stats.json["backend"] as? String == "memory", "\(stats.text)")
            #expect((stats.json["reason"] as? String ?? "").contains("unreachable"), "\(stats.text)")
            #expect(degradedAfter < .seconds(3), "a dead Redis is noticed at once (connection refused), took \(degradedAfter)")
            // The API goes on: writes, reads, and the cache in memory.
            let created = try await client.call(.post, "/api/v1/avatars", token: harness.owner, json: ["name": "R", "consent": testConsent])
            #expect(created.status == 201)
            #expect(try await client.call(.get, "/api/v1/avatars", token: harness.owner).status == 200)
            let chatId = try #require(created.json["id"] as? String)
            #expect(try await client.call(.post, "/api/v1/avatars/\(chatId)/chat", token: harness.owner, json: ["message": "Hello!"]).status == 200)
            await cache.set("reply", "during", Array("two".utf8), ttl: 60)
            #expect(await cache.get("reply", "during") == Array("two".utf8))
            let errors = await cache.currentMetrics().redisErrors
            #expect(errors >= 1)

            // Redis back on the same port: the next command reconnects (one connection per command).
            try await redis.start()
            stats = try await client.call(.get, "/api/v1/cache/stats", token: harness.owner)
            #expect(stats.json["state"] as? String == "ready" && stats.json["backend"] as? String == "redis+memory", "\(stats.text)")
            await cache.set("reply", "after", Array("three".utf8), ttl: 60)
            #expect(try await direct.get("avatar:reply:after") == Array("three".utf8), "values reach Redis again")
            #expect(await cache.currentMetrics().redisErrors == errors)
        }
    }
}

/// A real redis-server on a port of its own, started (through the one launcher) and killed by the test.
final class TestRedis: @unchecked Sendable {
    let port: Int
    private let state = Locked<(run: Task<ChildProcess.Termination, any Error>?, pid: Int32?)>((nil, nil))

    init(port: Int) { self.port = port }

    func start() async throws {
        let executable = try #require(ExecutableLookup.find("redis-server"), "redis-server: run `avatar setup`")
        let arguments = [executable, "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        let log = NSTemporaryDirectory() + "avatar-test-redis-\(port).log"
        let run = Task { [state] in
            try await ChildProcess.runLogged(arguments, logFile: log) { pid in state.withLock { $0.pid = pid } }
        }
        state.withLock { $0 = (run, nil) }
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if (try? await RedisClient(host: "127.0.0.1", port: port).ping()) == true { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        run.cancel()
        throw TestFailure("redis-server did not answer on port \(port); see \(log)")
    }

    /// SIGKILL, as a crash or the OOM killer; true when it died of it.
    func kill9() async -> Bool {
        let (run, pid) = state.withLock { $0 }
        guard let run, let pid else { return false }
        kill(pid, SIGKILL)
        return (try? await run.value) == .signaled(SIGKILL)
    }

    func stop() {
        state.withLock { $0.run?.cancel() }
    }
}
