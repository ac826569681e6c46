import AvatarCore
import AvatarEngines
import Crypto
import AvatarMedia
@testable import AvatarServer
import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@Suite("HTTP API flow with the real engines", .serialized)
struct APIFlowTests {
    @Test("Create → astronaut photo → chat (JSON and SSE) → delete removes media and memory")
    func flow() async throws {
        let runtime = try await EngineFixture.shared.runtime()
        let harness = try await APIHarness.make(runtime: runtime)
        let app = try buildApplication(runtime: runtime, superviseEngines: false)
        let astronaut = try TestData.skimage("astronaut.png", settings: runtime.settings)
        try await app.test(.router) { client in
            let created = try await client.call(.post, "/api/v1/avatars", token: harness.owner, json: [
                "name": "Eileen", "age": 40, "interests": ["space", "flight"], "manner": "calm and precise", "languages": ["en"], "consent": testConsent,
            ])
            let id = try #require(created.json["id"] as? String)

            // The photo: sent as bytes named .bin with no image Content-Type — the type comes from the bytes.
            let photo = try await client.call(.put, "/api/v1/avatars/\(id)/photo?filename=astronaut.bin", token: harness.owner, body: ByteBuffer(data: astronaut))
            #expect(photo.status == 201, "\(photo.text)")
            #expect(photo.json["format"] as? String == "png")
            #expect(photo.json["width"] as? Int == 512)
            let box = try #require(photo.json["faceBox"] as? [String: Double])
            // The astronaut's face is in the upper middle of the 512² picture.
            #expect((100...400).contains(box["x"]! + box["width"]! / 2), "face centre x \(box)")
            #expect((50...300).contains(box["y"]! + box["height"]! / 2), "face centre y \(box)")
            #expect((80...300).contains(box["width"]!))
            #expect(photo.json["warnings"] is [String])

            let preview = try await client.call(.get, "/api/v1/avatars/\(id)/photo/preview", token: harness.owner)
            #expect(preview.status == 200)
            let header = try #require(try ImageHeader.parse(Array(Data(buffer: preview.body)), format: .jpeg))
            #expect(header.width == 512 && header.height == 512)
            // Stored compactly: the 512² PNG becomes a smaller JPEG at full size (no rotation, no scaling needed).
            let stored = try #require(photo.json["stored"] as? [String: Any])
            let storedBytes = try #require(stored["bytes"] as? Int)
            print("astronaut.png stored: \(astronaut.count) bytes uploaded → \(storedBytes) bytes \(stored["format"] ?? "?") \(stored["width"] ?? "?")×\(stored["height"] ?? "?")")
            #expect(stored["format"] as? String == "jpeg" && stored["reencoded"] as? Bool == true && stored["width"] as? Int == 512 && stored["scale"] as? Double == 1)
            #expect(storedBytes < astronaut.count / 3, "\(storedBytes) of \(astronaut.count)")
            let original = try await client.call(.get, "/api/v1/avatars/\(id)/photo", token: harness.owner, headers: [.range: "bytes=0-2"])
            #expect(original.status == 206)
            #expect(Array(Data(buffer: original.body)) == [0xFF, 0xD8, 0xFF])
            #expect(original.headers[.contentRange] == "bytes 0-2/\(storedBytes)")
            #expect(try await client.call(.get, "/api/v1/avatars/\(id)/photo/preview", token: harness.other).status == 404)
            let shown = try await client.call(.get, "/api/v1/avatars/\(id)", token: harness.owner)
            #expect((shown.json["photo"] as? [String: Any])?["previewUrl"] as? String == "/api/v1/avatars/\(id)/photo/preview")

            // Chat: the embedded model answers, and says so.
            let reply = try await client.call(.post, "/api/v1/avatars/\(id)/chat", token: harness.owner, json: ["message": "Hello! What do you love about space?"])
            #expect(reply.status == 200, "\(reply.text)")
            #expect((reply.json["reply"] as? String ?? "").count > 3)
            #expect(reply.json["model"] as? String == "embedded:smollm2-135m", "\(reply.text)")
            #expect(reply.json["language"] as? String == "en")
            // With the spoken audio: a WAV of the reply in the avatar's voice.
            let spoken = try await client.call(.post, "/api/v1/avatars/\(id)/chat", token: harness.owner, json: ["message": "Say hello to me.", "speak": true])
            let audio = try #require(spoken.json["audio"] as? [String: Any], "\(spoken.text)")
            let wav = try #require(Data(base64Encoded: audio["wavBase64"] as? String ?? ""))
            #expect(String(decoding: wav.prefix(4), as: UTF8.self) == "RIFF")
            #expect((audio["seconds"] as? Double ?? 0) > 0.3)

            let streamed = try await client.call(.post, "/api/v1/avatars/\(id)/chat", token: harness.owner,
                                                 json: ["message": "Tell me about your favourite planet.", "stream": true])
            #expect(streamed.headers[.contentType] == "text/event-stream")
            let events = streamed.text.components(separatedBy: "\n\n").filter { !$0.isEmpty }
            #expect(events.first?.hasPrefix("event: emotion") == true, "\(streamed.text.prefix(300))")
            #expect(events.dropFirst().first?.hasPrefix("event: segment") == true, "\(streamed.text.prefix(300))")
            let done = try #require(events.last)
            #expect(done.hasPrefix("event: done\ndata: "))
            let doneJSON = try JSONSerialization.jsonObject(with: Data(done.dropFirst("event: done\ndata: ".count).utf8)) as? [String: Any]
            let segments = events.dropLast().compactMap { event -> String? in
                guard let data = event.components(separatedBy: "\ndata: ").last?.data(using: .utf8) else { return nil }
                return (try? JSONSerialization.jsonObject(with: data) as? [String: String])?["text"]
            }
            // The done event's reply is the segments together.
            #expect(segments.joined(separator: " ").filter(\.isLetter) == (doneJSON?["reply"] as? String ?? "").filter(\.isLetter))

            // Voice samples: two LibriVox clips (one converted to MP3 first); the profile is an approximate match, and says so.
            let mp3 = temporaryDirectory("avatar-voice") + "/0890.mp3"
            #expect(await ChildProcess.output(of: ["ffmpeg", "-v", "error", "-i", TestData.librivox + "/sense_and_sensibility_01_austen_64kb-0890.wav", "-b:a", "64k", mp3]).status == 0)
            var voice: Checked?
            for path in [TestData.librivox + "/sense_and_sensibility_01_austen_64kb-0870.wav", mp3] {
                let sample = try await client.call(.post, "/api/v1/avatars/\(id)/voice/samples?filename=\((path as NSString).lastPathComponent)", token: harness.owner,
                                                   body: ByteBuffer(data: try Data(contentsOf: URL(fileURLWithPath: path))))
                #expect(sample.status == 201, "\(sample.text)")
                #expect(["accepted", "converted"].contains((sample.json["sample"] as? [String: Any])?["verdict"] as? String ?? ""), "\(sample.text)")
                voice = sample
            }
            // A browser's recording: WebM/Opus as MediaRecorder writes it (streamed: no duration in the header).
            let webm = temporaryDirectory("avatar-voice") + "/recording.webm"
            let encoded = await ChildProcess.output(of: ["ffmpeg", "-v", "error", "-i", TestData.librivox + "/sense_and_sensibility_01_austen_64kb-0880.wav",
                                                         "-c:a", "libopus", "-live", "1", "-f", "webm", "pipe:1"])
            #expect(encoded.status == 0)
            try encoded.output.write(to: URL(fileURLWithPath: webm))
            let recorded = try await client.call(.post, "/api/v1/avatars/\(id)/voice/samples?filename=recording.webm", token: harness.owner,
                                                 body: ByteBuffer(data: encoded.output))
            #expect(recorded.status == 201, "\(recorded.text)")
            let recordedSample = try #require(recorded.json["sample"] as? [String: Any])
            #expect(["accepted", "converted"].contains(recordedSample["verdict"] as? String ?? ""), "\(recorded.text)")
            #expect(recordedSample["sampleRate"] as? Int == 16000)
            let wavSeconds = Double(String(decoding: await ChildProcess.output(of: ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
                                                                                    TestData.librivox + "/sense_and_sensibility_01_austen_64kb-0880.wav"]).output, as: UTF8.self)
                .trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
            #expect(abs((recordedSample["seconds"] as? Double ?? 0) - wavSeconds) < 0.1, "\(recordedSample) vs \(wavSeconds) s")
            voice = recorded
            let profile = try #require(voice?.json["profile"] as? [String: Any], "\(voice?.text ?? "")")
            #expect((profile["label"] as? String ?? "").contains("approximate voice match"))
            #expect(profile["sampleCount"] as? Int == 3)
            #expect((0...1).contains(profile["matchSimilarity"] as? Double ?? -1))
            let voiceState = try await client.call(.get, "/api/v1/avatars/\(id)/voice", token: harness.owner)
            #expect((voiceState.json["samples"] as? [Any])?.count == 3)

            // A video job: queued, rendered by the worker, downloadable with Range, tagged as AI-generated.
            let started = try await client.call(.post, "/api/v1/avatars/\(id)/videos", token: harness.owner, json: ["text": "Hello! I like the stars.", "emotion": "happy"])
            #expect(started.status == 202, "\(started.text)")
            let jobId = try #require(started.json["id"] as? String)
            #expect(try await client.call(.get, "/api/v1/jobs/\(jobId)", token: harness.other).status == 404)
            var job = started.json
            let deadline = ContinuousClock.now + .seconds(240)
            while ["queued", "running"].contains(job["state"] as? String ?? ""), ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(250))
                job = try await client.call(.get, "/api/v1/jobs/\(jobId)", token: harness.owner).json
            }
            #expect(job["state"] as? String == "succeeded", "\(job)")
            let partial = try await client.call(.get, "/api/v1/jobs/\(jobId)/video", token: harness.owner, headers: [.range: "bytes=4-11"])
            #expect(partial.status == 206)
            #expect(String(decoding: Data(buffer: partial.body).prefix(4), as: UTF8.self) == "ftyp")
            let video = try await client.call(.get, "/api/v1/jobs/\(jobId)/video", token: harness.owner)
            #expect(video.status == 200)
            let mp4 = temporaryDirectory("avatar-video") + "/video.mp4"
            try Data(buffer: video.body).write(to: URL(fileURLWithPath: mp4))
            let probe = await ChildProcess.output(of: ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name:format_tags", "-of", "default=nw=1", mp4])
            let info = String(decoding: probe.output, as: UTF8.self)
            #expect(info.contains("codec_name=h264") && info.contains("codec_name=aac"), "\(info)")
            #expect(info.contains("AI-generated") && info.contains(id), "provenance tags: \(info)")
            let small = try await client.call(.get, "/api/v1/jobs/\(jobId)/video?size=256", token: harness.owner)
            let smallPath = temporaryDirectory("avatar-video") + "/small.mp4"
            try Data(buffer: small.body).write(to: URL(fileURLWithPath: smallPath))
            let smallInfo = String(decoding: await ChildProcess.output(of: ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height", "-of", "csv=p=0", smallPath]).output, as: UTF8.self)
            #expect(smallInfo.trimmingCharacters(in: .whitespacesAndNewlines) == "256,256")
            // The same request again: answered from the finished job at once.
            let again = try await client.call(.post, "/api/v1/avatars/\(id)/videos", token: harness.owner, json: ["text": "Hello! I like the stars.", "emotion": "happy"])
            #expect(again.status == 200)
            #expect(again.json["cached"] as? Bool == true && again.json["state"] as? String == "succeeded")
            // Cancel: a long job, cancelled while it renders, stops within a fraction of a second (the worker says
            // when on the job), stays cancelled and has no video.
            let long = String(repeating: "We sail across the quiet sea under a sky full of stars. ", count: 12)
            let doomed = try await client.call(.post, "/api/v1/avatars/\(id)/videos", token: harness.owner, json: ["text": long])
            let doomedId = try #require(doomed.json["id"] as? String)
            var doomedJob = doomed.json
            let rendering = ContinuousClock.now + .seconds(120)
            repeat {
                try await Task.sleep(for: .milliseconds(100))
                doomedJob = try await client.call(.get, "/api/v1/jobs/\(doomedId)", token: harness.owner).json
            } while !(doomedJob["state"] as? String == "running" && (doomedJob["progress"] as? Double ?? 0) > 0) && ContinuousClock.now < rendering
            let cancelled = try await client.call(.post, "/api/v1/jobs/\(doomedId)/cancel", token: harness.owner)
            let asked = ContinuousClock.now
            #expect(cancelled.json["state"] as? String == "cancelled", "\(cancelled.text)")
            repeat {
                try await Task.sleep(for: .milliseconds(50))
                doomedJob = try await client.call(.get, "/api/v1/jobs/\(doomedId)", token: harness.owner).json
            } while !(doomedJob["error"] as? String ?? "").contains("stopped") && ContinuousClock.now - asked < .seconds(60)
            print("video job cancelled at \(cancelled.json["progress"] ?? "?"): \(doomedJob["error"] ?? "?"), seen by the client \(ContinuousClock.now - asked) after")
            #expect(ContinuousClock.now - asked < .seconds(2), "\(doomedJob)")
            try await Task.sleep(for: .seconds(1))
            #expect(try await client.call(.get, "/api/v1/jobs/\(doomedId)", token: harness.owner).json["state"] as? String == "cancelled")
            #expect(try await client.call(.get, "/api/v1/jobs/\(doomedId)/video", token: harness.owner).status == 409)
            // The seed's alias path reaches the same avatar.
            let aliasChat = try await client.call(.post, "/chat?avatar_id=\(id)", token: harness.owner, json: ["message": "Thank you!"])
            #expect(aliasChat.status == 200)
            #expect(try await client.call(.post, "/chat?avatar_id=\(id)", token: harness.other, json: ["message": "hi"]).status == 404)

            // Delete: its files and its conversation go.
            let services = try APIServices(runtime: runtime)
            let paths = try ["photo", "preview", "landmarks", "video"].flatMap { try runtime.database.media(avatarId: id, kind: $0) }.map { services.media.absolute($0.path) }
            #expect(paths.count == 4 && paths.allSatisfy { FileManager.default.fileExists(atPath: $0) })
            #expect(try runtime.database.turnCount(avatarId: id) >= 4)
            #expect(try await client.call(.delete, "/api/v1/avatars/\(id)?confirm=\(id)", token: harness.owner).status == 204)
            #expect(paths.allSatisfy { !FileManager.default.fileExists(atPath: $0) })
            #expect(try runtime.database.turnCount(avatarId: id) == 0)
            #expect(try runtime.database.voiceProfile(named: "avatar-\(id)") == nil)
        }
    }

    @Test("A photo of a cat is 422 with what to do")
    func catPhoto() async throws {
        let runtime = try await EngineFixture.shared.runtime()
        let harness = try await APIHarness.make(runtime: runtime)
        let app = try buildApplication(runtime: runtime, superviseEngines: false)
        let cat = try TestData.skimage("chelsea.png", settings: runtime.settings)
        try await app.test(.router) { client in
            let created = try await client.call(.post, "/api/v1/avatars", token: harness.owner, json: ["name": "Cat", "consent": testConsent])
            let id = try #require(created.json["id"] as? String)
            let photo = try await client.call(.put, "/api/v1/avatars/\(id)/photo?filename=chelsea.png", token: harness.owner, body: ByteBuffer(data: cat))
            #expect(photo.status == 422, "\(photo.text)")
            #expect(photo.json["code"] as? String == "no-face")
            #expect((photo.json["fix"] as? String ?? "").lowercased().contains("photo"))
            #expect(try await client.call(.get, "/api/v1/avatars/\(id)/photo", token: harness.owner).status == 404)

            // The seed's form upload: the astronaut as multipart/form-data through /upload-photo.
            let astronaut = try TestData.skimage("astronaut.png", settings: runtime.settings)
            var form = ByteBuffer(string: "--b0undary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"astronaut.png\"\r\nContent-Type: image/png\r\n\r\n")
            form.writeBytes(astronaut)
            form.writeString("\r\n--b0undary--\r\n")
            let seed = try await client.call(.post, "/upload-photo?avatar_id=\(id)", token: harness.owner, body: form,
                                             headers: [.contentType: "multipart/form-data; boundary=b0undary"])
            #expect(seed.status == 201, "\(seed.text)")
            #expect(seed.json["sha256"] as? String == SHA256Hex.of(astronaut))
        }
    }

    @Test("A big photo (a 3072² PNG, 15.7 MB) is stored as a smaller JPEG, scaled to 2048 px, with the landmarks scaled; the rig is rebuilt from it")
    func bigPhotoCompaction() async throws {
        let runtime = try await EngineFixture.shared.runtime()
        let harness = try await APIHarness.make(runtime: runtime)
        let app = try buildApplication(runtime: runtime, superviseEngines: false)
        // The astronaut at 3072×3072 as PNG (what a screenshot weighs; a 4096² PNG of it is 24 MB, over the 20 MB limit).
        let side = 3072
        let scale = 2048.0 / Double(side)
        let directory = temporaryDirectory("avatar-big-photo")
        try TestData.skimage("astronaut.png", settings: runtime.settings).write(to: URL(fileURLWithPath: directory + "/a.png"))
        #expect(await ChildProcess.output(of: ["ffmpeg", "-v", "error", "-i", directory + "/a.png", "-vf", "scale=\(side):\(side):flags=lanczos", directory + "/big.png"]).status == 0)
        let big = try Data(contentsOf: URL(fileURLWithPath: directory + "/big.png"))
        try await app.test(.router) { client in
            let created = try await client.call(.post, "/api/v1/avatars", token: harness.owner, json: ["name": "Big", "age": 40, "consent": testConsent])
            let id = try #require(created.json["id"] as? String)
            let photo = try await client.call(.put, "/api/v1/avatars/\(id)/photo", token: harness.owner, body: ByteBuffer(data: big))
            #expect(photo.status == 201, "\(photo.text)")
            let stored = try #require(photo.json["stored"] as? [String: Any])
            let storedBytes = try #require(stored["bytes"] as? Int)
            print("\(side)² PNG stored: \(big.count) bytes uploaded → \(storedBytes) bytes \(stored["format"] ?? "?") \(stored["width"] ?? "?")×\(stored["height"] ?? "?")")
            #expect(photo.json["width"] as? Int == side)
            #expect(stored["width"] as? Int == 2048 && stored["height"] as? Int == 2048 && abs((stored["scale"] as? Double ?? 0) - scale) < 0.001)
            #expect(storedBytes * 10 < big.count)
            let served = try await client.call(.get, "/api/v1/avatars/\(id)/photo", token: harness.owner)
            let header = try #require(try ImageHeader.parse(Array(Data(buffer: served.body)), format: .jpeg))
            #expect(header.width == 2048 && header.height == 2048 && served.body.readableBytes == storedBytes)
            // The stored landmarks are in the stored photo's pixels: the rig built from them has the face where the upload had it.
            let services = try APIServices(runtime: runtime)
            let avatar = try #require(try runtime.database.avatar(id: id, accountId: try runtime.database.ensureOwner().account.id))
            let rig = try #require(try await AvatarFace.rig(of: avatar, accountId: avatar.accountId ?? "", services: services))
            #expect(rig.image.width == 512)
            let landmarks = try #require(try runtime.database.media(avatarId: id, kind: "landmarks").first)
            let face = try JSONDecoder().decode(FaceLandmarks.self, from: try Data(contentsOf: URL(fileURLWithPath: services.media.absolute(landmarks.path))))
            let box = try #require(photo.json["faceBox"] as? [String: Double])
            #expect(face.width == 2048 && abs(face.faceBox.x - box["x"]! * scale) < 1 && abs(face.faceBox.width - box["width"]! * scale) < 1, "\(face.faceBox) vs \(box)")
        }
    }
}

enum SHA256Hex {
    static func of(_ data: Data) -> String { SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined() }
}
