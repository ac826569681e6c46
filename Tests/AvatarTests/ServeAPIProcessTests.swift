import AsyncHTTPClient
import AvatarCore
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

/// A spawned `avatar serve` with engines off, in its own home.
final class ServeAPIServer: @unchecked Sendable {
    let process = Process()
    let port = Int.random(in: 20000..<40000)
    let home: String

    init(home: String = temporaryDirectory("avatar-serve-api")) {
        self.home = home
    }

    var environment: [String: String] { ["AVATAR_HOME": home, "AVATAR_PORT": String(port), "AVATAR_ENGINES_ENABLED": "false", "AVATAR_REDIS": "off", "AVATAR_LOG_LEVEL": "warning"] }
    var base: String { "http://127.0.0.1:\(port)" }
    private var outputPath = ""

    func start() async throws {
        outputPath = home + "/stdout-\(UUID().uuidString.prefix(6)).txt"
        _ = FileManager.default.createFile(atPath: outputPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: AvatarProcess.binary)
        process.arguments = ["serve"]
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        process.standardOutput = FileHandle(forWritingAtPath: outputPath)
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if let (status, _) = try? await get("/healthz", token: nil), status == 200 { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw TestFailure("avatar serve did not answer on \(port)")
    }

    var output: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }

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
