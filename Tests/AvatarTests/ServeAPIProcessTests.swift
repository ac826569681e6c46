import AsyncHTTPClient
import AvatarCore
import AvatarEngines
import Foundation
import NIOCore
import Testing

/// The API of a real `avatar serve` process (engines off): first-start token, `avatar token`, memory under big uploads.
@Suite("avatar serve: tokens and uploads over a real socket", .serialized)
struct ServeAPIProcessTests {
    static func token(in output: String) -> String? {
        output.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "=" }).first { $0.hasPrefix("avt_") && $0.count == 77 }.map(String.init)
    }

    @Test("First start prints a sign-in link and token; `avatar token create|list|revoke` work against the same database")
    func firstStartAndTokens() async throws {
        let server = ServeAPIServer()
        try await server.start()
        defer { if server.process.isRunning { server.process.terminate() } }
        let owner = try #require(Self.token(in: server.output), "no token in: \(server.output)")
        #expect(server.output.contains("/login?token=\(owner)"))
        #expect(try await server.get("/api/v1/me", token: owner).0 == 200)
        #expect(try await server.get("/login?token=\(owner)", token: nil).0 == 200, "the redirect leads to the web page")
        let (created, body) = try await server.post("/api/v1/avatars", token: owner, json: #"{"name":"Ann","age":30,"consent":{"givenBy":"Ann","basis":"self","grantedAt":"2026-11-30"}}"#)
        #expect(created == 201, "\(body)")
        let avatarId = try #require((try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])?["id"] as? String)

        // A token for another account: the owner's avatar is 404 to it.
        let bob = try await AvatarProcess.run(["token", "create", "--account", "bob", "--name", "bob's laptop"], environment: server.environment)
        #expect(bob.status == 0, "\(bob.stderr)")
        let bobToken = try #require(Self.token(in: bob.stdout), "\(bob.stdout)")
        #expect(try await server.get("/api/v1/avatars/\(avatarId)", token: bobToken).0 == 404)
        #expect(try await server.get("/api/v1/avatars/\(avatarId)", token: owner).0 == 200)

        let list = try await AvatarProcess.run(["token", "list"], environment: server.environment)
        #expect(list.stdout.contains("bob's laptop") && !list.stdout.contains(bobToken), "tokens are listed by id, never shown again")
        let bobId = String(bobToken.split(separator: "_")[1])
        let revoke = try await AvatarProcess.run(["token", "revoke", bobId], environment: server.environment)
        #expect(revoke.status == 0)
        #expect(try await server.get("/api/v1/me", token: bobToken).0 == 401)
        #expect(try await AvatarProcess.run(["token", "revoke", bobId], environment: server.environment).status != 0)

        // The token reached no log line (the sign-in link's query is never logged).
        #expect(server.log.contains("/login") && !server.log.contains(owner), "\(server.log.suffix(500))")

        // A restart keeps the owner (its token still works) and prints no new token.
        try await server.stop()
        let restarted = ServeAPIServer(home: server.home)
        try await restarted.start()
        defer { if restarted.process.isRunning { restarted.process.terminate() } }
        #expect(Self.token(in: restarted.output) == nil, "\(restarted.output)")
        #expect(restarted.output.contains("avatar token create"))
        #expect(try await restarted.get("/api/v1/avatars/\(avatarId)", token: owner).0 == 200)
        try await restarted.stop()
    }

    @Test("Listening on a non-loopback address prints a warning about TLS")
    func nonLoopbackWarning() async throws {
        let server = ServeAPIServer(overrides: ["AVATAR_HOST": "0.0.0.0"])
        try await server.start()
        defer { if server.process.isRunning { server.process.terminate() } }
        #expect(server.log.contains("reachable from the network") && server.log.contains("TLS"), "\(server.log.prefix(400))")
        try await server.stop()
        let local = ServeAPIServer()
        try await local.start()
        defer { if local.process.isRunning { local.process.terminate() } }
        #expect(!local.log.contains("reachable from the network"))
        try await local.stop()
    }

    @Test("A 600 MB upload is cut off at the limit; the server's memory stays flat")
    func bigUploadMemory() async throws {
        let server = ServeAPIServer()
        try await server.start()
        defer { if server.process.isRunning { server.process.terminate() } }
        let owner = try #require(Self.token(in: server.output))
        let (_, body) = try await server.post("/api/v1/avatars", token: owner, json: #"{"name":"M","consent":{"givenBy":"M","basis":"self","grantedAt":"2026-11-30"}}"#)
        let avatarId = try #require((try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])?["id"] as? String)
        let before = server.peakMemory
        let total = 600 * 1024 * 1024
        var results: [UInt] = []
        try await withThrowingTaskGroup(of: UInt.self) { group in
            for _ in 0..<4 {
                group.addTask {
                    var request = HTTPClientRequest(url: server.base + "/api/v1/avatars/\(avatarId)/photo")
                    request.method = .PUT
                    request.headers.add(name: "Authorization", value: "Bearer \(owner)")
                    let chunks = ChunkedUpload(total: total, first: pngHeader(width: 100, height: 100))
                    request.body = .stream(chunks, length: .known(Int64(total)))
                    do {
                        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(120))
                        _ = try await response.body.collect(upTo: 1 << 20)
                        return response.status.code
                    } catch {
                        // The server may close the connection once it has answered 413.
                        return 0
                    }
                }
            }
            for try await status in group { results.append(status) }
        }
        let after = server.peakMemory
        print("four 600 MB uploads: statuses \(results), server peak RSS \(before / 1_048_576) → \(after / 1_048_576) MiB")
        #expect(results.allSatisfy { $0 == 413 || $0 == 0 })
        #expect(results.contains(413))
        #expect(after - before < 64 * 1024 * 1024, "peak RSS grew by \((after - before) / 1_048_576) MiB")
        // Nothing of the cut-off uploads is left on disk.
        let temp = server.home + "/data/media/tmp"
        #expect((try FileManager.default.contentsOfDirectory(atPath: temp)).isEmpty)
    }
}

@Suite("avatar serve: kill -9 during a video job", .serialized)
struct ServeCrashTests {
    func json(_ text: String) -> [String: Any] { (try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]) ?? [:] }

    @Test("kill -9 while a video renders: after a restart the job finishes, the photo is intact, the database is consistent")
    func killDuringVideo() async throws {
        let dataDir = temporaryDirectory("avatar-crash")
        let realHome = ProcessInfo.processInfo.environment["AVATAR_HOME"] ?? NSHomeDirectory() + "/.avatar"
        let overrides = ["AVATAR_HOME": realHome, "AVATAR_DATA_DIR": dataDir, "AVATAR_ENGINES_ENABLED": "true", "AVATAR_LLM_EMBEDDED": "false"]
        let settings = try await AvatarSettings.load(environment: ProcessInfo.processInfo.environment.merging(overrides) { _, new in new })
        let astronaut = try TestData.skimage("astronaut.png", settings: settings)
        let first = ServeAPIServer(home: realHome, overrides: overrides)
        try await first.start()
        defer { if first.process.isRunning { first.process.terminate() } }
        let owner = try #require(ServeAPIProcessTests.token(in: first.output), "\(first.output)")
        let (_, created) = try await first.post("/api/v1/avatars", token: owner, json: #"{"name":"K","age":40,"languages":["en"],"consent":{"givenBy":"K","basis":"self","grantedAt":"2026-11-30"}}"#)
        let id = try #require(json(created)["id"] as? String)
        // The engine host loads its models after the server answers: retry the photo while it is starting.
        var photo: (UInt, String) = (0, "")
        let ready = ContinuousClock.now + .seconds(settings.engineStartTimeout + 30)
        repeat {
            photo = try await first.put("/api/v1/avatars/\(id)/photo", token: owner, body: astronaut)
            if photo.0 == 503 { try await Task.sleep(for: .seconds(1)) }
        } while photo.0 == 503 && ContinuousClock.now < ready
        #expect(photo.0 == 201, "\(photo.1)")
        // The stored photo (a compact JPEG of the astronaut) under its own hash.
        let storedPhoto = try #require(json(photo.1)["stored"] as? [String: Any])
        let photoSHA = try #require(storedPhoto["sha256"] as? String)
        let text = String(repeating: "The stars are bright tonight and the sea is calm. ", count: 8)
        let (status, started) = try await first.post("/api/v1/avatars/\(id)/videos", token: owner, json: #"{"text":"\#(text)"}"#)
        #expect(status == 202, "\(started)")
        let jobId = try #require(json(started)["id"] as? String)
        // Wait until the job renders (progress > 0), then kill the server outright.
        let deadline = ContinuousClock.now + .seconds(120)
        var job: [String: Any] = [:]
        repeat {
            try await Task.sleep(for: .milliseconds(100))
            job = json(try await first.get("/api/v1/jobs/\(jobId)", token: owner).1)
        } while !((job["state"] as? String == "running") && (job["progress"] as? Double ?? 0) > 0) && ContinuousClock.now < deadline
        #expect(job["state"] as? String == "running", "\(job)")
        #expect(kill(first.process.processIdentifier, SIGKILL) == 0)
        while first.process.isRunning { try await Task.sleep(for: .milliseconds(50)) }
        try await Task.sleep(for: .seconds(2))  // the reaper stops the orphaned engine host

        let second = ServeAPIServer(home: realHome, overrides: overrides)
        try await second.start()
        defer { if second.process.isRunning { second.process.terminate() } }
        let end = ContinuousClock.now + .seconds(settings.engineStartTimeout + 180)
        repeat {
            try await Task.sleep(for: .milliseconds(500))
            job = json(try await second.get("/api/v1/jobs/\(jobId)", token: owner).1)
        } while ["queued", "running"].contains(job["state"] as? String ?? "") && ContinuousClock.now < end
        #expect(job["state"] as? String == "succeeded", "\(job)")
        #expect(job["attempts"] as? Int == 2)
        let (photoStatus, _) = try await second.get("/api/v1/avatars/\(id)/photo", token: owner)
        #expect(photoStatus == 200)
        let shown = json(try await second.get("/api/v1/avatars/\(id)", token: owner).1)
        #expect((shown["photo"] as? [String: Any]) != nil)
        let stored = try Data(contentsOf: URL(fileURLWithPath: dataDir + "/media/" + (try #require(try? FileManager.default.contentsOfDirectory(atPath: dataDir + "/media").first { $0 != "tmp" })) + "/\(photoSHA).jpg"))
        #expect(SHA256Hex.of(stored) == photoSHA && stored.count == storedPhoto["bytes"] as? Int)
        try await second.stop()
        let check = await ChildProcess.output(of: ["python3", "-c", "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('PRAGMA integrity_check').fetchone()[0])", dataDir + "/avatar.sqlite"])
        #expect(String(decoding: check.output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) == "ok")
    }
}

/// A spawned `avatar serve` with engines off, in its own home.
final class ServeAPIServer: @unchecked Sendable {
    let process = Process()
    /// The kernel's choice of a free port (a random one can collide with an engine another test left listening).
    let port = PortAllocator.freeLoopbackPort()
    let home: String
    /// Settings over the default test ones (engines off, Redis off).
    let overrides: [String: String]

    init(home: String = temporaryDirectory("avatar-serve-api"), overrides: [String: String] = [:]) {
        self.home = home
        self.overrides = overrides
    }

    var environment: [String: String] {
        ["AVATAR_HOME": home, "AVATAR_PORT": String(port), "AVATAR_ENGINES_ENABLED": "false", "AVATAR_REDIS": "off", "AVATAR_LOG_LEVEL": "info",
         "AVATAR_WEB_ROOT": FileManager.default.currentDirectoryPath + "/Public"]
            .merging(overrides) { _, new in new }
    }
    var base: String { "http://127.0.0.1:\(port)" }
    private var outputPath = ""

    func start() async throws {
        outputPath = temporaryDirectory("avatar-serve-out") + "/stdout.txt"
        _ = FileManager.default.createFile(atPath: outputPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: AvatarProcess.binary)
        process.arguments = ["serve"]
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        process.standardOutput = FileHandle(forWritingAtPath: outputPath)
        _ = FileManager.default.createFile(atPath: outputPath + ".err", contents: nil)
        process.standardError = FileHandle(forWritingAtPath: outputPath + ".err")
        try process.run()
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if let (status, _) = try? await get("/healthz", token: nil), status == 200 { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw TestFailure("avatar serve did not answer on \(port)")
    }

    var output: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }
    /// What the server logged (stderr).
    var log: String { (try? String(contentsOfFile: outputPath + ".err", encoding: .utf8)) ?? "" }

    func stop() async throws {
        process.interrupt()
        let deadline = ContinuousClock.now + .seconds(10)
        while process.isRunning, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        if process.isRunning { process.terminate() }
    }

    func get(_ path: String, token: String?) async throws -> (UInt, String) {
        var request = HTTPClientRequest(url: base + path)
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        return (response.status.code, String(buffer: try await response.body.collect(upTo: 1 << 20)))
    }

    func put(_ path: String, token: String, body: Data) async throws -> (UInt, String) {
        var request = HTTPClientRequest(url: base + path)
        request.method = .PUT
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        request.body = .bytes(ByteBuffer(data: body))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(120))
        return (response.status.code, String(buffer: try await response.body.collect(upTo: 1 << 20)))
    }

    func post(_ path: String, token: String, json: String) async throws -> (UInt, String) {
        var request = HTTPClientRequest(url: base + path)
        request.method = .POST
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(string: json))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        return (response.status.code, String(buffer: try await response.body.collect(upTo: 1 << 20)))
    }

    /// Peak resident memory of the server (VmHWM), bytes.
    var peakMemory: Int {
        let status = (try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") } ?? ""
        return (Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0) * 1024
    }
}


/// `total` bytes in 64 KB chunks, made as they are asked for.
struct ChunkedUpload: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let total: Int
    let first: [UInt8]

    struct AsyncIterator: AsyncIteratorProtocol {
        var sent = 0
        let upload: ChunkedUpload
        mutating func next() async throws -> ByteBuffer? {
            guard sent < upload.total else { return nil }
            var buffer = ByteBuffer()
            if sent == 0 { buffer.writeBytes(upload.first) }
            buffer.writeRepeatingByte(0x5A, count: Swift.min(64 * 1024, upload.total - sent) - buffer.readableBytes)
            sent += buffer.readableBytes
            return buffer
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(upload: self) }
}
