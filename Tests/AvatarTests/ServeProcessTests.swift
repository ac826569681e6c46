import AsyncHTTPClient
import AvatarCore
import AvatarEngines
import Foundation
import Testing

/// The real `avatar` binary as a user runs it.
@Suite("avatar binary", .serialized)
struct ServeProcessTests {
    /// `AVATAR_BIN` (set by `make test`), else the debug build next to the tests.
    static var binary: String { AvatarProcess.binary }

    func runToExit(_ arguments: [String], environment: [String: String], timeout: Double = 30) async throws -> AvatarProcess.Outcome {
        try await AvatarProcess.run(arguments, environment: environment, timeout: timeout)
    }

    @Test("Port 'abc' → non-zero exit with a one-line reason")
    func badPort() async throws {
        let outcome = try await runToExit(["serve"], environment: ["AVATAR_HOME": temporaryDirectory(), "AVATAR_PORT": "abc"])
        #expect(outcome.status != 0)
        let lines = outcome.stderr.split(separator: "\n")
        #expect(lines.count == 1, "expected one line, got: \(outcome.stderr)")
        #expect(outcome.stderr.contains("AVATAR_PORT") && outcome.stderr.contains("abc"))
    }

    @Test("A port another program holds → exit 2 with what to do")
    func portInUse() async throws {
        // Hold a loopback port, as another server would.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        try #require(bound == 0 && listen(fd, 1) == 0)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        let port = Int(UInt16(bigEndian: address.sin_port))
        let outcome = try await runToExit(["serve"], environment: [
            "AVATAR_HOME": temporaryDirectory(), "AVATAR_PORT": String(port), "AVATAR_ENGINES_ENABLED": "false", "AVATAR_REDIS": "off",
        ])
        #expect(outcome.status == 2, "exit \(outcome.status): \(outcome.stderr.suffix(400))")
        #expect(outcome.stderr.contains("already in use") && outcome.stderr.contains("AVATAR_PORT"), "\(outcome.stderr.suffix(400))")
    }

    @Test("Unwritable data dir → non-zero exit with a one-line reason")
    func unwritableDataDir() async throws {
        let home = temporaryDirectory()
        let file = home + "/not-a-dir"
        #expect(FileManager.default.createFile(atPath: file, contents: Data("x".utf8)))
        let outcome = try await runToExit(["serve"], environment: ["AVATAR_HOME": home, "AVATAR_DATA_DIR": file + "/data"])
        #expect(outcome.status != 0)
        #expect(outcome.stderr.split(separator: "\n").count == 1, "expected one line, got: \(outcome.stderr)")
        #expect(outcome.stderr.contains("AVATAR_DATA_DIR"))
    }

    @Test("Kill the engine host under a running server: /readyz shows it down, then ready again by itself")
    func engineHostRestart() async throws {
        // The kernel's choice of a free port: a random one can collide with an engine another test left listening.
        let port = PortAllocator.freeLoopbackPort()
        let dataDir = temporaryDirectory("avatar-serve")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = ["serve"]
        process.environment = ProcessInfo.processInfo.environment.merging([
            "AVATAR_PORT": String(port), "AVATAR_DATA_DIR": dataDir, "AVATAR_LLM_EMBEDDED": "false",
            "AVATAR_LOG_FORMAT": "json",
        ]) { _, new in new }
        let log = dataDir + "/avatar.log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        process.standardError = FileHandle(forWritingAtPath: log)
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { process.terminate() } }

        let url = "http://127.0.0.1:\(port)/readyz"
        // First start loads every model: allow the configured start timeout.
        var engine = try await waitForEngine(url, timeout: 240, process: process, log: log) { $0["state"] as? String == "ready" }
        let pid = try #require((engine["details"] as? [String: String])?["pid"].flatMap { Int32($0) })
        #expect(kill(pid, SIGKILL) == 0)
        let killed = ContinuousClock.now
        engine = try await waitForEngine(url, timeout: 5, process: process, log: log) { $0["state"] as? String != "ready" }
        print("engine-host after kill: \(engine["state"] ?? "?") — \(engine["reason"] ?? "")")
        engine = try await waitForEngine(url, timeout: 90, process: process, log: log) { $0["state"] as? String == "ready" }
        let recovered = ContinuousClock.now - killed
        print("engine-host ready again after \(recovered)")
        // How fast is a figure for an idle machine (4–5 s here); a timed bound would fail on a loaded one (10.8 s seen
        // in CI with the machine's two cores shared): the test asks that it comes back by itself, once.
        #expect(recovered < .seconds(90))
        #expect((engine["details"] as? [String: String])?["restarts"] == "1")
        let newPID = try #require((engine["details"] as? [String: String])?["pid"].flatMap { Int32($0) })
        #expect(newPID != pid)
        #expect(process.isRunning, "avatar itself must not restart")

        // Graceful shutdown stops the children too.
        // (Under 4 s: the children honour SIGTERM; the 5 s SIGKILL fallback is not what stops them.)
        process.interrupt()
        let interrupted = ContinuousClock.now
        let deadline = interrupted + .seconds(20)
        while process.isRunning, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(!process.isRunning)
        #expect(ContinuousClock.now - interrupted < .seconds(4), "graceful shutdown took \(ContinuousClock.now - interrupted)")
        try await Task.sleep(for: .seconds(1))
        #expect(kill(newPID, 0) != 0, "engine host still alive after avatar stopped")
        let logText = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(logText.contains("\"hb.request.id\""), "request id missing from the JSON request logs")
    }

    /// Polls `/readyz` until the engine-host component satisfies `condition`; a server that exits ends the wait
    /// at once, with the end of its log.
    func waitForEngine(_ url: String, timeout: Double, process: Process, log: String, _ condition: ([String: Any]) -> Bool) async throws -> [String: Any] {
        let deadline = ContinuousClock.now + .seconds(timeout)
        var last = "no answer"
        while ContinuousClock.now < deadline {
            guard process.isRunning else {
                let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
                throw TestFailure("avatar serve exited (status \(process.terminationStatus)): \(text.suffix(1500))")
            }
            var request = HTTPClientRequest(url: url)
            request.method = .GET
            do {
                let response = try await HTTPClient.shared.execute(request, timeout: .seconds(2))
                let body = String(buffer: try await response.body.collect(upTo: 1 << 20))
                if let object = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any],
                   let components = object["components"] as? [[String: Any]],
                   let engine = components.first(where: { $0["name"] as? String == "engine-host" }) {
                    if condition(engine) { return engine }
                    last = "\(engine["state"] ?? "?"): \(engine["reason"] ?? "")"
                } else {
                    last = "HTTP \(response.status.code) without an engine-host component: \(body.prefix(300))"
                }
            } catch {
                last = "no answer (\(error))"
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        throw TestFailure("engine-host did not reach the expected state within \(timeout) s (last: \(last)); log: \(text.suffix(1500))")
    }
}
