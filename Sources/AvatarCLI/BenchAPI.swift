import ArgumentParser
import AsyncHTTPClient
import AvatarCore
import AvatarServer
import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1

/// `avatar bench api`: the HTTP API end to end over a socket, in a fresh data directory.
struct BenchAPI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "api",
        abstract: "Photo upload → avatar ready, chat (JSON, first SSE segment), video job throughput, memory under 20 concurrent multi-GB uploads."
    )

    @Option(help: "Timed requests per measurement.")
    var runs = 5

    @Option(help: "Video jobs for the throughput measurement.")
    var videos = 3

    @Option(help: "Concurrent uploads for the memory measurement.")
    var uploads = 20

    @Option(help: "Bytes each of those uploads would send if not cut off, in GB.")
    var uploadGB = 3.0

    func run() async throws {
        var settings = try await loadSettings()
        settings.logLevel = "warning"
        settings.dataDir = NSTemporaryDirectory() + "avatar-bench-api-\(UUID().uuidString.prefix(8))"
        settings.host = "127.0.0.1"
        let logger = bootstrapLogging(settings)
        let runtime = try makeRuntime(settings, logger)
        try await withServer(runtime) { port in try await measure(runtime: runtime, settings: settings, port: port) }
    }

    func measure(runtime: AvatarRuntime, settings: AvatarSettings, port: Int) async throws {
        let base = "http://127.0.0.1:\(port)"
        let token = try runtime.database.ensureOwner().issued?.secret ?? runtime.database.issueToken(accountId: runtime.database.ensureOwner().account.id, name: "bench").secret
        let client = BenchClient(base: base, token: token)
        while (try? await client.send(.GET, "/healthz").status) != 200 { try await Task.sleep(for: .milliseconds(100)) }
        print("avatar bench api: server on \(base), data in \(settings.dataDir)")

        if let supervisor = runtime.supervisor {
            print("Starting engines…")
            _ = try await waitUntilReady(supervisor, timeout: settings.engineStartTimeout, logs: settings.dataDir + "/logs/")
            try await measureFlow(client, settings: settings)
        } else {
            print("(engines disabled: photo, chat and video skipped)")
        }
        try await measureUploads(client)
    }

    func measureFlow(_ client: BenchClient, settings: AvatarSettings) async throws {
        guard let photoPath = BenchEngines.findInVenv(settings, "skimage/data/astronaut.png"), let photo = FileManager.default.contents(atPath: photoPath) else {
            throw CLIFailure("scikit-image's astronaut.png is not in the venv; run `avatar setup`")
        }
        let created = try await client.send(.POST, "/api/v1/avatars", json: #"{"name":"Bench","age":40,"languages":["en"],"consent":{"givenBy":"bench","basis":"self","grantedAt":"2026-01-01"}}"#)
        guard created.status == 201, let id = created.json["id"] as? String else { throw CLIFailure("cannot create an avatar: \(created.text)") }

        var times: [Double] = []
        for _ in 0...runs {
            let started = ContinuousClock.now
            let response = try await client.send(.PUT, "/api/v1/avatars/\(id)/photo", body: ByteBuffer(data: photo))
            guard response.status == 201 else { throw CLIFailure("photo upload failed: \(response.text)") }
            times.append((ContinuousClock.now - started).seconds * 1000)
        }
        print("\n" + "measurement".padding(toLength: 48, withPad: " ", startingAt: 0) + "  p50 ms   p95 ms   notes")
        report("photo upload → avatar ready (astronaut.png)", Stats(Array(times.dropFirst())), "\(photo.count / 1024) KiB PNG, \(runs) runs after 1 warm-up")

        var chat: [Double] = [], first: [Double] = [], model = "?"
        for index in 0...runs {
            let started = ContinuousClock.now
            let reply = try await client.send(.POST, "/api/v1/avatars/\(id)/chat", json: #"{"message":"Tell me one thing about the sea, number \#(index)."}"#)
            chat.append((ContinuousClock.now - started).seconds * 1000)
            model = reply.json["model"] as? String ?? reply.json["route"] as? String ?? "?"
            let streamStart = ContinuousClock.now
            first.append(try await client.firstEvent("/api/v1/avatars/\(id)/chat", json: #"{"message":"And one thing about the stars, number \#(index)?","stream":true}"#, since: streamStart))
        }
        report("chat (JSON, whole reply)", Stats(Array(chat.dropFirst())), "answered by \(model)")
        report("chat (SSE, first segment)", Stats(Array(first.dropFirst())), "")

        let started = ContinuousClock.now
        var jobs: [String] = []
        for index in 0..<videos {
            let response = try await client.send(.POST, "/api/v1/avatars/\(id)/videos", json: #"{"text":"Hello! This is test video number \#(index + 1), about the sea and the stars.","emotion":"happy"}"#)
            guard let job = response.json["id"] as? String else { throw CLIFailure("cannot start a video: \(response.text)") }
            jobs.append(job)
        }
        var seconds = 0.0
        for job in jobs {
            while true {
                let state = try await client.send(.GET, "/api/v1/jobs/\(job)")
                let value = state.json["state"] as? String ?? "?"
                if value == "succeeded" {
                    let video = try await client.send(.GET, "/api/v1/jobs/\(job)/video")
                    let path = NSTemporaryDirectory() + "avatar-bench-\(job).mp4"
                    try Data(buffer: video.body).write(to: URL(fileURLWithPath: path))
                    let probe = await ChildProcess.output(of: ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path])
                    seconds += Double(String(decoding: probe.output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
                    try? FileManager.default.removeItem(atPath: path)
                    break
                }
                if value == "failed" || value == "cancelled" { throw CLIFailure("video job \(job) \(value): \(state.json["error"] ?? "")") }
                try await Task.sleep(for: .milliseconds(200))
            }
        }
        let wall = (ContinuousClock.now - started).seconds
        print(String(format: "video jobs: %d videos (%.1f s of video) in %.1f s → %.1f videos/min, %.2f s of video per second of wall time",
                     videos, seconds, wall, Double(videos) / wall * 60, seconds / wall))
    }

    /// `uploads` concurrent uploads of `uploadGB` GB each (a valid PNG header, then filler): each must be cut off at
    /// the 20 MB limit; the process's peak memory is reported before and after.
    func measureUploads(_ client: BenchClient) async throws {
        let created = try await client.send(.POST, "/api/v1/avatars", json: #"{"name":"Uploads","consent":{"givenBy":"bench","basis":"self","grantedAt":"2026-01-01"}}"#)
        guard let id = created.json["id"] as? String else { throw CLIFailure("cannot create an avatar: \(created.text)") }
        let total = Int(uploadGB * 1_073_741_824)
        let before = Self.peakRSS()
        let started = ContinuousClock.now
        let statuses = try await withThrowingTaskGroup(of: UInt.self) { group in
            for _ in 0..<uploads {
                group.addTask { try await client.upload("/api/v1/avatars/\(id)/photo", total: total) }
            }
            var all: [UInt] = []
            for try await status in group { all.append(status) }
            return all
        }
        let after = Self.peakRSS()
        let counts = Dictionary(grouping: statuses, by: { $0 }).map { "\($0.key == 0 ? "closed" : String($0.key)) ×\($0.value.count)" }.sorted()
        print(String(format: "%d concurrent uploads of %.1f GB each: %@ in %.1f s; peak RSS of this process (server + client) %d → %d MiB",
                     uploads, uploadGB, counts.joined(separator: ", "), (ContinuousClock.now - started).seconds, before / 1_048_576, after / 1_048_576))
    }

    func report(_ name: String, _ stats: Stats, _ note: String) {
        print(name.padding(toLength: 48, withPad: " ", startingAt: 0) + String(format: "  %7.0f  %7.0f   ", stats.p50, stats.p95) + note)
    }

    static func peakRSS() -> Int {
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") } ?? ""
        return (Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0) * 1024
    }
}

/// A small HTTP client for the bench, with the token.
struct BenchClient: Sendable {
    let base: String
    let token: String

    struct Reply {
        var status: UInt
        var body: ByteBuffer
        var text: String { String(buffer: body) }
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any]) ?? [:] }
    }

    func send(_ method: HTTPMethod, _ path: String, json: String? = nil, body: ByteBuffer? = nil) async throws -> Reply {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        if let json {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: json))
        } else if let body {
            request.body = .bytes(body)
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(600))
        return Reply(status: response.status.code, body: try await response.body.collect(upTo: 512 * 1024 * 1024))
    }

    /// Milliseconds from `since` to the first SSE event of a streamed chat.
    func firstEvent(_ path: String, json: String, since: ContinuousClock.Instant) async throws -> Double {
        var request = HTTPClientRequest(url: base + path)
        request.method = .POST
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(string: json))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(600))
        var first: Double?
        for try await _ in response.body where first == nil {
            first = (ContinuousClock.now - since).seconds * 1000
        }
        return first ?? (ContinuousClock.now - since).seconds * 1000
    }

    /// Streams `total` bytes (PNG header + filler) without holding them; 0 when the server closed the connection.
    func upload(_ path: String, total: Int) async throws -> UInt {
        var request = HTTPClientRequest(url: base + path)
        request.method = .PUT
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        request.body = .stream(FillerBody(total: total), length: .known(Int64(total)))
        do {
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(600))
            _ = try await response.body.collect(upTo: 1 << 20)
            return response.status.code
        } catch {
            return 0
        }
    }
}

/// A PNG header (100×100) then filler, made 64 KB at a time as it is read.
struct FillerBody: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let total: Int

    struct AsyncIterator: AsyncIteratorProtocol {
        var sent = 0
        let total: Int
        mutating func next() async throws -> ByteBuffer? {
            guard sent < total else { return nil }
            var buffer = ByteBuffer()
            if sent == 0 {
                buffer.writeBytes([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13] + Array("IHDR".utf8) + [0, 0, 0, 100, 0, 0, 0, 100, 8, 2, 0, 0, 0, 0, 0, 0, 0])
            }
            buffer.writeRepeatingByte(0x5A, count: Swift.min(64 * 1024, total - sent) - buffer.readableBytes)
            sent += buffer.readableBytes
            return buffer
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(total: total) }
}
