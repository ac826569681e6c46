import AvatarAnimation
import AvatarCore
import AvatarMedia
@testable import AvatarServer
import AvatarStore
import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@Suite("HTTP API: tokens, avatars, uploads, problems (no engines)")
struct APITests {
    @Test("Every /api/v1 request needs a token: none, malformed, unknown and revoked are 401; the cookie works")
    func authorization() async throws {
        let harness = try await APIHarness.make()
        let app = try buildApplication(runtime: harness.runtime)
        try await app.test(.router) { client in
            #expect(try await client.call(.get, "/api/v1/avatars", token: nil).status == 401)
            #expect(try await client.call(.get, "/api/v1/avatars", token: "not-a-token").status == 401)
            let unknown = "avt_00000000_" + String(repeating: "0", count: 64)
            #expect(try await client.call(.get, "/api/v1/avatars", token: unknown).status == 401)
            let me = try await client.call(.get, "/api/v1/me", token: harness.owner)
            #expect(me.status == 200)
            #expect(me.json["role"] as? String == "owner")

            // The one-click link sets an HttpOnly cookie that signs in.
            let login = try await client.call(.get, "/login?token=\(harness.owner)", token: nil)
            #expect(login.status == 303)
            let cookie = login.headers[.setCookie] ?? ""
            #expect(cookie.contains("HttpOnly") && cookie.hasPrefix("avatar_token=\(harness.owner)"))
            let viaCookie = try await client.call(.get, "/api/v1/me", token: nil, headers: [.cookie: "theme=dark; avatar_token=\(harness.owner)"])
            #expect(viaCookie.status == 200)
            #expect(try await client.call(.get, "/login?token=\(unknown)", token: nil).status == 401)

            // Revoked: 401 at once.
            let issued = try harness.runtime.database.issueToken(accountId: harness.otherAccount.id, name: "to revoke")
            #expect(try await client.call(.get, "/api/v1/me", token: issued.secret).status == 200)
            #expect(try harness.runtime.database.revokeToken(id: issued.token.id))
            #expect(try await client.call(.get, "/api/v1/me", token: issued.secret).status == 401)
        }
        // Stored hashed: the database never holds the token itself.
        let stored = try harness.runtime.database.tokens().map(\.token.hash)
        #expect(!stored.contains(harness.owner))
        #expect(stored.contains(TokenFormat.hash(harness.owner)))
    }

    @Test("Avatars: create with persona and consent, list, get, update, delete with confirmation; another account gets 404")
    func avatarsCRUD() async throws {
        let harness = try await APIHarness.make()
        let app = try buildApplication(runtime: harness.runtime)
        try await app.test(.router) { client in
            let body: [String: Any] = ["name": "Mia", "age": 9, "interests": ["space", "drawing"], "manner": "cheerful", "languages": ["en", "ru"], "consent": testConsent]
            let created = try await client.call(.post, "/api/v1/avatars", token: harness.owner, json: body)
            #expect(created.status == 201)
            let id = try #require(created.json["id"] as? String)
            #expect(created.json["childSafe"] as? Bool == true, "a 9-year-old's avatar is child-safe by default")
            #expect((created.json["consent"] as? [String: Any])?["recordedAt"] != nil)
            #expect(created.headers[.location] == "/api/v1/avatars/\(id)")

            // The persona is the one `avatar chat` reads.
            let stored = try #require(try harness.runtime.database.avatars().first { $0.id == id })
            #expect(stored.persona.contains("\"style\":\"cheerful\""))

            let list = try await client.call(.get, "/api/v1/avatars", token: harness.owner)
            #expect((list.json["avatars"] as? [[String: Any]])?.map { $0["id"] as? String } == [id])
            #expect(try await client.call(.get, "/api/v1/avatars/\(id)", token: harness.owner).json["name"] as? String == "Mia")

            // Another account: 404 for everything, an empty list.
            #expect(try await client.call(.get, "/api/v1/avatars/\(id)", token: harness.other).status == 404)
            #expect(try await client.call(.patch, "/api/v1/avatars/\(id)", token: harness.other, json: ["name": "X"]).status == 404)
            #expect(try await client.call(.delete, "/api/v1/avatars/\(id)?confirm=\(id)", token: harness.other).status == 404)
            #expect(try await client.call(.post, "/api/v1/avatars/\(id)/chat", token: harness.other, json: ["message": "hi"]).status == 404)
            #expect(try await client.call(.put, "/api/v1/avatars/\(id)/photo", token: harness.other, body: ByteBuffer(string: "x")).status == 404)
            #expect((try await client.call(.get, "/api/v1/avatars", token: harness.other).json["avatars"] as? [Any])?.isEmpty == true)

            let updated = try await client.call(.patch, "/api/v1/avatars/\(id)", token: harness.owner, json: ["interests": ["dinosaurs"], "voice": "slt"])
            #expect(updated.status == 200)
            #expect(updated.json["interests"] as? [String] == ["dinosaurs"])
            #expect(updated.json["manner"] as? String == "cheerful", "fields not sent are kept")
            #expect(updated.json["voice"] as? String == "slt")
            // `"age": null` forgets the age (an unknown age keeps child-safe on); a body without "age" keeps it.
            #expect(updated.json["age"] as? Int == 9)
            let forgot = try await client.call(.patch, "/api/v1/avatars/\(id)", token: harness.owner, json: ["age": NSNull()])
            #expect(forgot.status == 200)
            #expect(forgot.json["age"] == nil || forgot.json["age"] is NSNull, "\(forgot.text)")
            #expect(forgot.json["childSafe"] as? Bool == true)
            let kept = try await client.call(.patch, "/api/v1/avatars/\(id)", token: harness.owner, json: ["age": 10])
            #expect(try await client.call(.patch, "/api/v1/avatars/\(id)", token: harness.owner, json: ["manner": "calm"]).json["age"] as? Int == 10, "\(kept.text)")

            let unconfirmed = try await client.call(.delete, "/api/v1/avatars/\(id)", token: harness.owner)
            #expect(unconfirmed.status == 400)
            #expect(unconfirmed.json["code"] as? String == "confirmation-required")
            #expect(try await client.call(.delete, "/api/v1/avatars/\(id)?confirm=\(id)", token: harness.owner).status == 204)
            #expect(try await client.call(.get, "/api/v1/avatars/\(id)", token: harness.owner).status == 404)
        }
    }

    @Test("Avatar input is checked: consent required, child-safe stays on for minors, bad JSON and fields are problems")
    func avatarValidation() async throws {
        let harness = try await APIHarness.make()
        let app = try buildApplication(runtime: harness.runtime)
        try await app.test(.router) { client in
            let noConsent = try await client.call(.post, "/api/v1/avatars", token: harness.owner, json: ["name": "Mia"])
            #expect(noConsent.status == 422)
            #expect(noConsent.json["field"] as? String == "consent")
            let minorUnsafe = try await client.call(.post, "/api/v1/avatars", token: harness.owner, json: ["name": "Mia", "age": 9, "childSafe": false, "consent": testConsent])
            #expect(minorUnsafe.status == 422)
            #expect(minorUnsafe.json["field"] as? String == "childSafe")
            let adult = try await client.call(.post, "/api/v1/avatars", token: harness.owner, json: ["name": "Ann", "age": 40, "childSafe": false, "consent": testConsent])
            #expect(adult.status == 201)
            #expect(adult.json["childSafe"] as? Bool == false)
            var badBasis = testConsent
            badBasis["basis"] = "found it online"
            #expect(try await client.call(.post, "/api/v1/avatars", token: harness.owner, json: ["name": "Mia", "consent": badBasis]).json["field"] as? String == "consent.basis")
            var future = testConsent
            future["grantedAt"] = "2999-01-01"
            #expect(try await client.call(.post, "/api/v1/avatars", token: harness.owner, json: ["name": "Mia", "consent": future]).status == 422)
            #expect(try await client.call(.post, "/api/v1/avatars", token: harness.owner, json: ["name": "Mia", "languages": ["english"], "consent": testConsent]).json["field"] as? String == "languages")
            let broken = try await client.call(.post, "/api/v1/avatars", token: harness.owner, body: ByteBuffer(string: "{\"name\": "), headers: [.contentType: "application/json"])
            #expect(broken.status == 400)
            #expect(broken.json["code"] as? String == "invalid-json")
            let wrongType = try await client.call(.post, "/api/v1/avatars", token: harness.owner, json: ["name": 5, "consent": testConsent])
            #expect(wrongType.status == 400)
            #expect(try await client.call(.get, "/api/v1/nothing-here", token: harness.owner).status == 404)
        }
    }

    @Test("Bad photos are refused from their bytes, each with its problem: wrong type, truncated, bomb header, empty, over the limit, ../ name")
    func badPhotos() async throws {
        let harness = try await APIHarness.make()
        let app = try buildApplication(runtime: harness.runtime)
        // A real JPEG, made by the project's own encoder.
        var image = RGBImage(width: 64, height: 48, fill: (200, 120, 80))
        image.pixels[0] = 0
        let jpeg = try image.pixels.withUnsafeBufferPointer { try JPEGEncoder(quality: 90).encode($0.baseAddress!, width: 64, height: 48) }
        try await app.test(.router) { client in
            let created = try await client.call(.post, "/api/v1/avatars", token: harness.owner, json: ["name": "P", "consent": testConsent])
            let id = try #require(created.json["id"] as? String)
            func upload(_ bytes: [UInt8], name: String = "face.jpg") async throws -> Checked {
                try await client.call(.put, "/api/v1/avatars/\(id)/photo?filename=\(name)", token: harness.owner, body: ByteBuffer(bytes: bytes),
                                      headers: [.contentType: "image/jpeg"])
            }
            // GIF bytes named .jpg with an image/jpeg Content-Type.
            let gif = try await upload(Array("GIF89a".utf8) + [UInt8](repeating: 0, count: 100))
            #expect(gif.status == 415)
            #expect((gif.json["detail"] as? String ?? "").contains("GIF"))
            // A real JPEG cut in half.
            let truncated = try await upload(Array(jpeg.prefix(jpeg.count / 2)))
            #expect(truncated.status == 422)
            #expect(truncated.json["code"] as? String == "truncated-file")
            // A PNG whose header says 60000×60000: refused from the header, nothing decoded.
            let bomb = try await upload(pngHeader(width: 60000, height: 60000) + [UInt8](repeating: 0, count: 4096), name: "bomb.png")
            #expect(bomb.status == 413)
            #expect(bomb.json["code"] as? String == "too-many-pixels")
            #expect((bomb.json["detail"] as? String ?? "").contains("60000×60000"))
            let empty = try await upload([])
            #expect(empty.status == 400)
            #expect(empty.json["code"] as? String == "empty-upload")
            // 21 MB after a valid small-PNG header: over the 20 MB limit.
            let large = try await upload(pngHeader(width: 100, height: 100) + [UInt8](repeating: 7, count: 21 * 1024 * 1024), name: "large.png")
            #expect(large.status == 413)
            #expect(large.json["code"] as? String == "upload-too-large")
            let traversal = try await upload(jpeg, name: "..%2F..%2Fetc%2Fpasswd")
            #expect(traversal.status == 400)
            #expect(traversal.json["code"] as? String == "invalid-file-name")
            // A complete, valid JPEG passes every check and then needs the (disabled) landmark engine.
            let valid = try await upload(jpeg)
            #expect(valid.status == 503)
            #expect(valid.json["code"] as? String == "engines-disabled")
        }
        // Nothing was left behind: no temp files, no media rows.
        let services = try APIServices(runtime: harness.runtime)
        #expect((try FileManager.default.contentsOfDirectory(atPath: services.media.tempDirectory)).isEmpty)
        #expect(try harness.runtime.database.mediaBytes(accountId: try harness.runtime.database.ensureOwner().account.id) == 0)
    }

    @Test("Jobs left running by a dead process are queued again at start-up, or failed with the reason")
    func jobRecovery() async throws {
        let harness = try await APIHarness.make()
        let database = harness.runtime.database
        let owner = try database.ensureOwner().account
        let avatar = OwnedAvatar(name: "J", persona: "{}", accountId: owner.id, consent: "{}", voice: "auto")
        try database.insert(avatar)
        // As a process killed mid-render leaves them: `running`, once started / three times started.
        var interrupted = JobRecord(accountId: owner.id, avatarId: avatar.id, kind: "video", input: #"{"text":"hi"}"#, cacheKey: nil)
        interrupted.state = .running
        interrupted.attempts = 1
        var crashing = JobRecord(accountId: owner.id, avatarId: avatar.id, kind: "video", input: #"{"text":"hi"}"#, cacheKey: nil)
        crashing.state = .running
        crashing.attempts = 3
        try database.insert(interrupted)
        try database.insert(crashing)
        let interruptedId = interrupted.id, crashingId = crashing.id
        let app = try buildApplication(runtime: harness.runtime)
        try await app.test(.router) { client in
            var job: [String: Any] = [:]
            let deadline = ContinuousClock.now + .seconds(20)
            repeat {
                try await Task.sleep(for: .milliseconds(100))
                job = try await client.call(.get, "/api/v1/jobs/\(interruptedId)", token: harness.owner).json
            } while ["queued", "running"].contains(job["state"] as? String ?? "") && ContinuousClock.now < deadline
            // Queued again and run by the worker: it fails with why (this avatar has no photo), not silently.
            #expect(job["state"] as? String == "failed")
            #expect(job["attempts"] as? Int == 2)
            #expect((job["error"] as? String ?? "").contains("photo"))
            let crashed = try await client.call(.get, "/api/v1/jobs/\(crashingId)", token: harness.owner).json
            #expect(crashed["state"] as? String == "failed")
            #expect((crashed["error"] as? String ?? "").contains("3 times"))
            let download = try await client.call(.get, "/api/v1/jobs/\(crashingId)/video", token: harness.owner)
            #expect(download.status == 409)
        }
    }

    @Test("Bad audio is refused before any engine: random bytes, a 2-hour recording, an empty body")
    func badAudio() async throws {
        let harness = try await APIHarness.make()
        let app = try buildApplication(runtime: harness.runtime)
        // A real 2-hour MP3 (silence at 8 kb/s, about 7 MB: under the byte limit, over the 10-minute one).
        let long = temporaryDirectory("avatar-audio") + "/two-hours.mp3"
        let made = await ChildProcess.output(of: ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono", "-t", "7200", "-b:a", "8k", long])
        #expect(made.status == 0, "\(made.lastErrorLine ?? "")")
        let twoHours = try Data(contentsOf: URL(fileURLWithPath: long))
        var generator = SystemRandomNumberGenerator()
        let noise = (0..<200_000).map { _ in UInt8.random(in: 0...255, using: &generator) }
        try await app.test(.router) { client in
            let created = try await client.call(.post, "/api/v1/avatars", token: harness.owner, json: ["name": "V", "consent": testConsent])
            let id = try #require(created.json["id"] as? String)
            let random = try await client.call(.post, "/api/v1/avatars/\(id)/voice/samples?filename=voice.wav", token: harness.owner, body: ByteBuffer(bytes: noise))
            #expect(random.status == 422)
            #expect(random.json["code"] as? String == "unreadable-file")
            let tooLong = try await client.call(.post, "/api/v1/avatars/\(id)/voice/samples?filename=long.mp3", token: harness.owner, body: ByteBuffer(data: twoHours))
            #expect(tooLong.status == 413)
            #expect(tooLong.json["code"] as? String == "audio-too-long")
            #expect((tooLong.json["detail"] as? String ?? "").contains("7200 s"))
            #expect(try await client.call(.post, "/upload-audio?avatar_id=\(id)", token: harness.owner, body: ByteBuffer()).json["code"] as? String == "empty-upload")
            let noAvatar = try await client.call(.post, "/upload-audio", token: harness.owner, body: ByteBuffer(bytes: noise))
            #expect(noAvatar.json["code"] as? String == "missing-avatar-id")
            #expect(try await client.call(.post, "/upload-audio?avatar_id=\(id)", token: harness.other, body: ByteBuffer(bytes: noise)).status == 404)
            #expect(try await client.call(.post, "/upload-audio?avatar_id=\(id)", token: nil, body: ByteBuffer(bytes: noise)).status == 401)
            let state = try await client.call(.get, "/api/v1/avatars/\(id)/voice", token: harness.owner)
            #expect((state.json["samples"] as? [Any])?.isEmpty == true)
            // No photo yet: a video cannot start.
            let video = try await client.call(.post, "/api/v1/avatars/\(id)/videos", token: harness.owner, json: ["text": "hi"])
            #expect(video.status == 409)
            #expect(video.json["code"] as? String == "no-photo")
        }
        let services = try APIServices(runtime: harness.runtime)
        #expect((try FileManager.default.contentsOfDirectory(atPath: services.media.tempDirectory)).isEmpty)
    }

    @Test("CORS is off by default; an allowed origin gets credentials and preflights, another none")
    func cors() async throws {
        let closed = try buildApplication(runtime: try await APIHarness.make().runtime)
        try await closed.test(.router) { client in
            let response = try await client.call(.get, "/healthz", token: nil, headers: [.origin: "http://localhost:3000"])
            #expect(response.headers[.accessControlAllowOrigin] == nil)
        }
        let harness = try await APIHarness.make(environment: ["AVATAR_CORS_ORIGINS": "http://localhost:3000"])
        let open = try buildApplication(runtime: harness.runtime)
        try await open.test(.router) { client in
            let allowed = try await client.call(.get, "/api/v1/me", token: harness.owner, headers: [.origin: "http://localhost:3000"])
            #expect(allowed.headers[.accessControlAllowOrigin] == "http://localhost:3000")
            #expect(allowed.headers[.accessControlAllowCredentials] == "true")
            let preflight = try await client.execute(uri: "/api/v1/avatars", method: .options,
                                                     headers: [.origin: "http://localhost:3000", .accessControlRequestMethod: "POST"])
            #expect(preflight.status == .noContent)
            #expect(preflight.headers[.accessControlAllowHeaders]?.contains("Authorization") == true)
            let other = try await client.call(.get, "/api/v1/me", token: harness.owner, headers: [.origin: "http://evil.example"])
            #expect(other.headers[.accessControlAllowOrigin] == nil)
        }
        await #expect(throws: SettingsError.self) { _ = try await AvatarSettings.load(environment: ["AVATAR_CORS_ORIGINS": "localhost:3000"]) }
    }

    @Test("Cache stats per kind of value; with Redis unreachable the API answers and the cache says degraded")
    func cacheStats() async throws {
        let harness = try await APIHarness.make()
        await harness.runtime.cache.set("reply", "a", Array("hello".utf8), ttl: 60)
        await harness.runtime.cache.set("reply", "b", Array("world!".utf8), ttl: 60)
        _ = await harness.runtime.cache.get("reply", "a")
        _ = await harness.runtime.cache.get("tts", "missing")
        let app = try buildApplication(runtime: harness.runtime)
        try await app.test(.router) { client in
            let stats = try await client.call(.get, "/api/v1/cache/stats", token: harness.owner)
            let types = try #require(stats.json["types"] as? [String: [String: Int]])
            #expect(types["reply"] == ["hits": 1, "misses": 0, "sets": 2, "bytesSet": 11, "memoryEntries": 2, "memoryBytes": 11])
            #expect(types["tts"]?["misses"] == 1)
            #expect(stats.json["state"] as? String == "ready")
            #expect(try await client.call(.get, "/api/v1/cache/stats", token: nil).status == 401)
        }
        // Nothing listens on port 1: Redis is "down".
        let degraded = try await APIHarness.make(environment: ["AVATAR_REDIS": "redis://127.0.0.1:1"])
        let degradedApp = try buildApplication(runtime: degraded.runtime)
        try await degradedApp.test(.router) { client in
            let stats = try await client.call(.get, "/api/v1/cache/stats", token: degraded.owner)
            #expect(stats.json["state"] as? String == "degraded")
            #expect(stats.json["backend"] as? String == "memory")
            #expect(try await client.call(.post, "/api/v1/avatars", token: degraded.owner, json: ["name": "R", "consent": testConsent]).status == 201)
        }
    }

    @Test("EXIF orientation is applied to the decoded photo (a real JPEG with orientation 6)")
    func exifOrientation() async throws {
        // 64×48, a red 8×8 block at the top left, the rest grey; then an APP1 segment with orientation 6 (90° clockwise).
        var image = RGBImage(width: 64, height: 48, fill: (128, 128, 128))
        for y in 0..<8 { for x in 0..<8 { image.pixels[(y * 64 + x) * 3] = 255; image.pixels[(y * 64 + x) * 3 + 1] = 0; image.pixels[(y * 64 + x) * 3 + 2] = 0 } }
        let plain = try image.pixels.withUnsafeBufferPointer { try JPEGEncoder(quality: 95).encode($0.baseAddress!, width: 64, height: 48) }
        let exif: [UInt8] = Array("Exif".utf8) + [0, 0] + [0x4D, 0x4D, 0x00, 0x2A, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0]
        let app1: [UInt8] = [0xFF, 0xE1, UInt8((exif.count + 2) >> 8), UInt8((exif.count + 2) & 0xFF)] + exif
        let jpeg = Array(plain.prefix(2)) + app1 + Array(plain.dropFirst(2))
        let path = temporaryDirectory("avatar-exif") + "/rotated.jpg"
        try Data(jpeg).write(to: URL(fileURLWithPath: path))
        let header = try #require(try ImageHeader.parse(jpeg, format: .jpeg))
        #expect(header.orientation == 6 && header.width == 64 && header.height == 48)
        let decoded = try await PhotoDecoder.decode(path: path, header: header)
        #expect(decoded.width == 48 && decoded.height == 64)
        // Rotated 90° clockwise, the top-left block is now at the top right.
        func red(_ x: Int, _ y: Int) -> Bool { let i = (y * decoded.width + x) * 3; return decoded.pixels[i] > 200 && decoded.pixels[i + 1] < 60 }
        #expect(red(decoded.width - 3, 3))
        #expect(!red(3, 3))
        #expect(!red(decoded.width - 3, decoded.height - 3))
    }

    @Test("Chat without any model: the persona's canned reply, said to be canned, as JSON and as Server-Sent Events")
    func chatWithoutModel() async throws {
        let harness = try await APIHarness.make()
        let app = try buildApplication(runtime: harness.runtime)
        try await app.test(.router) { client in
            let created = try await client.call(.post, "/api/v1/avatars", token: harness.owner, json: ["name": "C", "age": 30, "consent": testConsent])
            let id = try #require(created.json["id"] as? String)
            let reply = try await client.call(.post, "/api/v1/avatars/\(id)/chat", token: harness.owner, json: ["message": "Hello there!"])
            #expect(reply.status == 200)
            #expect(reply.json["model"] == nil, "no model is configured, so none answered")
            #expect((reply.json["route"] as? String ?? "").contains("canned"))
            #expect((reply.json["reply"] as? String ?? "").contains("train of thought"))
            let streamed = try await client.call(.post, "/api/v1/avatars/\(id)/chat", token: harness.owner, json: ["message": "Hello again!"],
                                                 headers: [.accept: "text/event-stream"])
            #expect(streamed.headers[.contentType] == "text/event-stream")
            #expect(streamed.text.hasPrefix("event: emotion\ndata: {"), "the reply's emotion comes first: \(streamed.text.prefix(80))")
            #expect(streamed.text.contains("event: segment\ndata: "))
            #expect(streamed.text.contains("event: done\ndata: "))
            let empty = try await client.call(.post, "/api/v1/avatars/\(id)/chat", token: harness.owner, json: ["message": "   "])
            #expect(empty.status == 422)
        }
    }

    @Test("Per-account quota: an account at its quota gets 507; the temp area is cleaned of old files")
    func quotaAndTempCleanup() async throws {
        let harness = try await APIHarness.make()
        var limits = APILimits()
        limits.accountBytes = 10_000
        let owner = try harness.runtime.database.ensureOwner().account
        let app = try buildApplication(runtime: harness.runtime, limits: limits)
        try await app.test(.router) { client in
            let created = try await client.call(.post, "/api/v1/avatars", token: harness.owner, json: ["name": "Q", "consent": testConsent])
            let id = try #require(created.json["id"] as? String)
            // 12 KB is more than the 10 000 bytes left: cut off as too large.
            let over = try await client.call(.put, "/api/v1/avatars/\(id)/photo", token: harness.owner, body: ByteBuffer(bytes: pngHeader(width: 10, height: 10) + [UInt8](repeating: 1, count: 12_000)))
            #expect(over.status == 413)
            try harness.runtime.database.insert(MediaRecord(accountId: owner.id, avatarId: id, kind: "photo", path: "x/y.png", sha256: "y", bytes: 10_000, contentType: "image/png"))
            let full = try await client.call(.put, "/api/v1/avatars/\(id)/photo", token: harness.owner, body: ByteBuffer(bytes: pngHeader(width: 10, height: 10)))
            #expect(full.status == 507)
            #expect(full.json["code"] as? String == "quota-exceeded")
            // Another account is not affected.
            let theirs = try await client.call(.post, "/api/v1/avatars", token: harness.other, json: ["name": "Q", "consent": testConsent])
            let theirId = try #require(theirs.json["id"] as? String)
            #expect(try await client.call(.put, "/api/v1/avatars/\(theirId)/photo", token: harness.other, body: ByteBuffer(bytes: [1, 2, 3])).status == 415)
        }
        let media = try MediaFiles(root: temporaryDirectory("avatar-media"))
        let old = media.tempDirectory + "/upload-old.part", fresh = media.tempDirectory + "/upload-new.part"
        _ = FileManager.default.createFile(atPath: old, contents: Data([1]))
        _ = FileManager.default.createFile(atPath: fresh, contents: Data([1]))
        try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(-7200)], ofItemAtPath: old)
        #expect(media.cleanTemp(olderThan: 3600) == 1)
        #expect(!FileManager.default.fileExists(atPath: old) && FileManager.default.fileExists(atPath: fresh))
    }

    @Test("/docs serves Swagger UI from the venv's swagger-ui-bundle, offline, with the spec as 3.0 for it")
    func docs() async throws {
        let home = ProcessInfo.processInfo.environment["AVATAR_HOME"] ?? NSHomeDirectory() + "/.avatar"
        let harness = try await APIHarness.make(environment: ["AVATAR_VENV_DIR": home + "/venv"])
        let app = try buildApplication(runtime: harness.runtime)
        try await app.test(.router) { client in
            let page = try await client.call(.get, "/docs", token: nil)
            #expect(page.status == 200, "swagger-ui-bundle missing from \(home)/venv: run `avatar setup` — \(page.text.prefix(200))")
            #expect(page.text.contains("SwaggerUIBundle") && !page.text.contains("https://"), "no CDN")
            let script = try await client.call(.get, "/docs/swagger-ui-bundle.js", token: nil)
            #expect(script.status == 200 && script.body.readableBytes > 100_000)
            #expect(try await client.call(.get, "/docs/swagger-ui.css", token: nil).status == 200)
            #expect(try await client.call(.get, "/docs/..%2F..%2Fetc%2Fpasswd", token: nil).status == 404)
        }
    }

    @Test("multipart/form-data uploads (the seed's form): the file part is streamed out, checked like a raw body")
    func multipartUploads() async throws {
        let harness = try await APIHarness.make()
        let app = try buildApplication(runtime: harness.runtime)
        let image = RGBImage(width: 32, height: 32, fill: (90, 160, 210))
        let jpeg = try image.pixels.withUnsafeBufferPointer { try JPEGEncoder(quality: 90).encode($0.baseAddress!, width: 32, height: 32) }
        @Sendable func form(_ file: [UInt8], name: String) -> ByteBuffer {
            var body = ByteBuffer()
            body.writeString("--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n")
            body.writeString("--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\(name)\"\r\nContent-Type: image/jpeg\r\n\r\n")
            body.writeBytes(file)
            body.writeString("\r\n--XyZ--\r\n")
            return body
        }
        let headers: HTTPFields = [.contentType: "multipart/form-data; boundary=XyZ"]
        try await app.test(.router) { client in
            let created = try await client.call(.post, "/api/v1/avatars", token: harness.owner, json: ["name": "F", "consent": testConsent])
            let id = try #require(created.json["id"] as? String)
            // A complete JPEG inside a form passes every check (then needs the disabled engine).
            let valid = try await client.call(.post, "/upload-photo?avatar_id=\(id)", token: harness.owner, body: form(jpeg, name: "face.jpg"), headers: headers)
            #expect(valid.json["code"] as? String == "engines-disabled", "\(valid.text)")
            let gif = try await client.call(.put, "/api/v1/avatars/\(id)/photo", token: harness.owner, body: form(Array("GIF89a".utf8) + [UInt8](repeating: 0, count: 64), name: "x.jpg"), headers: headers)
            #expect(gif.status == 415)
            let bomb = try await client.call(.put, "/api/v1/avatars/\(id)/photo", token: harness.owner, body: form(pngHeader(width: 60000, height: 60000), name: "b.png"), headers: headers)
            #expect(bomb.json["code"] as? String == "too-many-pixels")
            let cut = try await client.call(.put, "/api/v1/avatars/\(id)/photo", token: harness.owner, body: form(Array(jpeg.prefix(jpeg.count / 2)), name: "c.jpg"), headers: headers)
            #expect(cut.json["code"] as? String == "truncated-file")
            let traversal = try await client.call(.put, "/api/v1/avatars/\(id)/photo", token: harness.owner, body: form(jpeg, name: "../../x.jpg"), headers: headers)
            #expect(traversal.json["code"] as? String == "invalid-file-name")
            var noFile = ByteBuffer(string: "--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n--XyZ--\r\n")
            let missing = try await client.call(.put, "/api/v1/avatars/\(id)/photo", token: harness.owner, body: noFile, headers: headers)
            #expect(missing.status == 422)
            noFile.clear()
        }
        let services = try APIServices(runtime: harness.runtime)
        #expect((try FileManager.default.contentsOfDirectory(atPath: services.media.tempDirectory)).isEmpty)

        // The file part comes out byte-exact even when every chunk is one byte (the delimiter split across chunks).
        var whole = ByteBuffer()
        whole.writeString("--B\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.bin\"\r\n\r\n")
        let payload = (0..<5000).map { UInt8($0 % 251) } + Array("\r\n--".utf8) + [1, 2, 3]
        whole.writeBytes(payload)
        whole.writeString("\r\n--B--\r\n")
        let part = MultipartFilePart(base: OneByteChunks(bytes: Array(whole.readableBytesView)), boundary: "B")
        var out: [UInt8] = []
        for try await chunk in part { out += Array(chunk.readableBytesView) }
        #expect(out == payload)
        #expect(part.info.filename == "a.bin")
    }

    @Test("Byte ranges: one range, open-ended and suffix forms; others unsatisfiable")
    func byteRanges() {
        #expect(FileResponder.parse("bytes=0-99", size: 1000) == 0...99)
        #expect(FileResponder.parse("bytes=900-", size: 1000) == 900...999)
        #expect(FileResponder.parse("bytes=-100", size: 1000) == 900...999)
        #expect(FileResponder.parse("bytes=990-2000", size: 1000) == 990...999)
        #expect(FileResponder.parse("bytes=1000-", size: 1000) == nil)
        #expect(FileResponder.parse("bytes=0-1,5-6", size: 1000) == nil)
        #expect(FileResponder.parse("items=0-1", size: 1000) == nil)
    }

    @Test("Rate limits answer 429 with Retry-After")
    func rateLimit() async throws {
        let harness = try await APIHarness.make()
        var limits = APILimits()
        limits.writesPerMinute = 2
        let app = try buildApplication(runtime: harness.runtime, limits: limits)
        try await app.test(.router) { client in
            for _ in 0..<2 {
                #expect(try await client.call(.post, "/api/v1/avatars", token: harness.owner, json: ["name": "R", "consent": testConsent]).status == 201)
            }
            let limited = try await client.call(.post, "/api/v1/avatars", token: harness.owner, json: ["name": "R", "consent": testConsent])
            #expect(limited.status == 429)
            let retry = try #require(Int(limited.headers[.retryAfter] ?? ""))
            #expect((1...30).contains(retry))
            // Another account has its own budget.
            #expect(try await client.call(.post, "/api/v1/avatars", token: harness.other, json: ["name": "R", "consent": testConsent]).status == 201)
        }
    }

    @Test("OpenAPI conformance: every route is in openapi.yaml and every operation is a route, each with examples")
    func openAPIConformance() async throws {
        let harness = try await APIHarness.make()
        let spec = try OpenAPISpec.shared.get()
        let routes = Set(try routeList(runtime: harness.runtime).filter { !$0.hasPrefix("HEAD ") })
        let operations = Set(spec.operations)
        #expect(routes.subtracting(operations).sorted() == [], "routes missing from openapi.yaml")
        #expect(operations.subtracting(routes).sorted() == [], "operations in openapi.yaml the server does not have")
        for (path, item) in spec.paths {
            for (method, value) in item where ["get", "put", "post", "patch", "delete"].contains(method) {
                let operation = try #require(value as? [String: Any])
                if let body = operation["requestBody"] as? [String: Any] {
                    for (type, media) in body["content"] as? [String: Any] ?? [:] {
                        let media = media as? [String: Any] ?? [:]
                        #expect(media["example"] != nil || media["examples"] != nil, "\(method) \(path) request \(type) has no example")
                    }
                }
                for (status, response) in operation["responses"] as? [String: Any] ?? [:] {
                    let resolved = spec.resolve(response as? [String: Any] ?? [:])
                    for (type, media) in resolved["content"] as? [String: Any] ?? [:] {
                        let media = media as? [String: Any] ?? [:]
                        #expect(media["example"] != nil || media["examples"] != nil, "\(method) \(path) \(status) \(type) has no example")
                    }
                }
            }
        }
        // The spec the server serves is the file in the repo; /docs gets its 3.0 copy.
        let app = try buildApplication(runtime: harness.runtime)
        try await app.test(.router) { client in
            let served = try await client.call(.get, "/openapi.yaml", token: nil)
            #expect(served.text == (try String(contentsOfFile: OpenAPISpec.path, encoding: .utf8)))
            let copy = try await client.call(.get, "/docs/openapi.yaml", token: nil)
            #expect(copy.text.hasPrefix("openapi: 3.0.3"))
        }
    }

    @Test("Uploads stop being read at the limit: the body is not drained into memory or disk")
    func streamingLimit() async throws {
        let media = try MediaFiles(root: temporaryDirectory("avatar-media"))
        let counter = ChunkCounter()
        let body = CountingBody(chunks: 10_000, chunkBytes: 64 * 1024, counter: counter)  // 625 MB if read to the end
        await #expect(throws: MediaError.tooLarge(limit: 1024 * 1024)) {
            _ = try await media.receive(body, limit: 1024 * 1024)
        }
        #expect(counter.value <= 17, "read \(counter.value) chunks of 64 KB for a 1 MB limit")
        #expect((try FileManager.default.contentsOfDirectory(atPath: media.tempDirectory)).isEmpty)

        // A bomb header stops the upload after its first chunk.
        let bombCounter = ChunkCounter()
        let check = PhotoCheck(maxPixels: 50_000_000)
        let bomb = CountingBody(chunks: 1000, chunkBytes: 64 * 1024, counter: bombCounter, first: pngHeader(width: 60000, height: 60000))
        await #expect(throws: MediaError.tooManyPixels(width: 60000, height: 60000, limit: 50_000_000)) {
            _ = try await media.receive(bomb, limit: 20 * 1024 * 1024) { head, finished in try check.inspect(head, finished: finished) }
        }
        #expect(bombCounter.value == 1)
    }

    @Test("Stored files get content-hash names, written atomically; the same bytes twice are one file")
    func contentHashNames() async throws {
        let media = try MediaFiles(root: temporaryDirectory("avatar-media"))
        let bytes = [UInt8](repeating: 42, count: 200_000)
        var names: [String] = []
        for _ in 0..<2 {
            let file = try await media.receive(CountingBody(chunks: 1, chunkBytes: 0, counter: ChunkCounter(), first: bytes), limit: 1_000_000)
            names.append(try media.commit(file, account: "acct-1", fileExtension: "bin"))
        }
        #expect(names[0] == names[1])
        // sha256 of 200 000 bytes of 0x2a, from `python3 -c "import hashlib;print(hashlib.sha256(bytes([42])*200000).hexdigest())"`.
        let expected = await ChildProcess.output(of: ["python3", "-c", "import hashlib;print(hashlib.sha256(bytes([42])*200000).hexdigest())"])
        #expect(names[0] == "acct-1/\(String(decoding: expected.output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)).bin")
        #expect(FileManager.default.contents(atPath: media.absolute(names[0])) == Data(bytes))
        #expect(throws: MediaError.self) { try media.commit(account: "../a", sha256: "x", fileExtension: "b", from: "/nonexistent") }
    }

    @Test("Image headers: size, EXIF orientation and completeness from the bytes")
    func imageHeaders() throws {
        #expect(ImageFormat.sniff(pngHeader(width: 3, height: 2)) == .png)
        #expect(try ImageHeader.parse(pngHeader(width: 640, height: 480), format: .png) == ImageHeader(format: .png, width: 640, height: 480, orientation: 1))
        // A JPEG with an EXIF orientation 6 segment before the frame header.
        let exif: [UInt8] = Array("Exif".utf8) + [0, 0] + [0x4D, 0x4D, 0x00, 0x2A, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0]
        let app1: [UInt8] = [0xFF, 0xE1, UInt8((exif.count + 2) >> 8), UInt8((exif.count + 2) & 0xFF)] + exif
        let sof: [UInt8] = [0xFF, 0xC0, 0, 17, 8, 0x01, 0xE0, 0x02, 0x80, 3] + [UInt8](repeating: 0, count: 9)
        let jpeg: [UInt8] = [0xFF, 0xD8] + app1 + sof
        #expect(ImageFormat.sniff(jpeg) == .jpeg)
        #expect(try ImageHeader.parse(jpeg, format: .jpeg) == ImageHeader(format: .jpeg, width: 640, height: 480, orientation: 6))
        #expect(try ImageHeader.parse(Array(jpeg.prefix(20)), format: .jpeg) == nil, "needs more bytes")
        #expect(ImageHeader.isComplete(format: .jpeg, tail: [1, 2, 0xFF, 0xD9], fileSize: 4, riffSize: nil))
        #expect(!ImageHeader.isComplete(format: .jpeg, tail: [1, 2, 3, 4], fileSize: 4, riffSize: nil))
        #expect(throws: MediaError.invalidFileName("../a.jpg")) { try FileName.validate("../a.jpg") }
        #expect(try FileName.validate("my photo.jpg") == "my photo.jpg")
    }
}

/// A body delivered one byte at a time.
struct OneByteChunks: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let bytes: [UInt8]
    struct AsyncIterator: AsyncIteratorProtocol {
        var index = 0
        let bytes: [UInt8]
        mutating func next() async throws -> ByteBuffer? {
            guard index < bytes.count else { return nil }
            defer { index += 1 }
            return ByteBuffer(bytes: [bytes[index]])
        }
    }
    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(bytes: bytes) }
}

/// PNG signature + IHDR chunk of the given size (CRC not checked by the header parser).
func pngHeader(width: Int, height: Int) -> [UInt8] {
    func be32(_ v: Int) -> [UInt8] { [UInt8((v >> 24) & 0xFF), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }
    return [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + be32(13) + Array("IHDR".utf8) + be32(width) + be32(height) + [8, 2, 0, 0, 0] + [0, 0, 0, 0]
}

final class ChunkCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    var value: Int { lock.withLock { count } }
    func increment() { lock.withLock { count += 1 } }
}

/// A request body that makes its chunks on demand and counts how many were pulled.
struct CountingBody: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let chunks: Int
    let chunkBytes: Int
    let counter: ChunkCounter
    var first: [UInt8] = []

    struct AsyncIterator: AsyncIteratorProtocol {
        var index = 0
        let body: CountingBody
        mutating func next() async throws -> ByteBuffer? {
            guard index < body.chunks else { return nil }
            defer { index += 1 }
            body.counter.increment()
            var buffer = ByteBuffer(bytes: index == 0 ? body.first : [])
            buffer.writeRepeatingByte(0x55, count: index == 0 && !body.first.isEmpty ? Swift.max(0, body.chunkBytes - body.first.count) : body.chunkBytes)
            return buffer
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(body: self) }
}
