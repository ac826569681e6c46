import AsyncHTTPClient
import AvatarCore
@testable import AvatarEngines
import Foundation
import Logging
import Testing

/// Supervision with small real child processes (python's http.server, a shell that exits) as
/// fault injection: crash loops, missing programs, hangs.
@Suite("Engine supervisor")
struct SupervisorTests {
    var fastPolicy: SupervisionPolicy {
        var policy = SupervisionPolicy()
        policy.initialBackoff = 0.1
        policy.maxBackoff = 0.4
        policy.livenessInterval = 0.3
        policy.livenessFailures = 2
        policy.stopGrace = 1
        return policy
    }

    func spec(_ name: String, _ executable: String, _ arguments: @escaping @Sendable (Int) -> [String], probe: @escaping @Sendable (Int) async -> Bool, timeout: Double = 10) -> ProcessSpec {
        ProcessSpec(name: name, executable: executable, arguments: arguments, logFile: temporaryDirectory() + "/\(name).log", probe: probe, startTimeout: timeout)
    }

    static func tcpOpen(_ port: Int) async -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }

    func waitFor(_ engine: ManagedEngine, _ state: ComponentStatus.State, within seconds: Double) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if await engine.status().state == state { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    @Test("A killed child is restarted and becomes ready again; stop terminates it")
    func restartAfterKill() async throws {
        let python = try #require(ExecutableLookup.find("python3"))
        let engine = ManagedEngine(
            spec: spec("http", python, { ["-m", "http.server", "--bind", "127.0.0.1", String($0)] }, probe: Self.tcpOpen),
            policy: fastPolicy, logger: Logger(label: "test")
        )
        let run = Task { await engine.run() }
        #expect(await waitFor(engine, .ready, within: 15))
        let first = try #require(await engine.pid())
        kill(first, SIGKILL)
        let sawDown = await waitFor(engine, .down, within: 3)
        let restarted = await engine.status().details["restarts"] == "1"
        #expect(sawDown || restarted)
        #expect(await waitFor(engine, .ready, within: 15))
        let second = try #require(await engine.pid())
        #expect(second != first)
        #expect(await engine.status().details["restarts"] == "1")
        #expect(await engine.status().details["last_exit"]?.contains("signal 9") == true)
        _ = try await engine.resolve()
        run.cancel()
        await run.value
        #expect(kill(second, 0) != 0, "child still alive after stop")
        await #expect(throws: EngineError.self) { try await engine.resolve() }
    }

    @Test("A crash loop backs off and reports the exit status and last log line")
    func crashLoop() async throws {
        let engine = ManagedEngine(
            spec: spec("crasher", "/bin/sh", { _ in ["-c", "echo 'model file missing' >&2; exit 3"] }, probe: { _ in false }),
            policy: fastPolicy, logger: Logger(label: "test")
        )
        let run = Task { await engine.run() }
        try await Task.sleep(for: .seconds(1.5))
        // Between two lives it is down with why; wait for such a moment (a start takes milliseconds).
        var status = await engine.status()
        let deadline = ContinuousClock.now + .seconds(3)
        while status.state != .down, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
            status = await engine.status()
        }
        run.cancel()
        await run.value
        #expect(status.state == .down)
        #expect(Int(status.details["restarts"] ?? "0")! >= 2)
        #expect(Int(status.details["restarts"] ?? "0")! < 10, "backoff did not slow the loop")
        await #expect { try await engine.resolve() } throws: { error in
            guard case .unavailable = error as? EngineError else { return false }
            return true
        }
        #expect(status.reason?.contains("exited with status 3") == true, "\(status.reason ?? "")")
        #expect(status.reason?.contains("model file missing") == true, "the log's last line is the reason: \(status.reason ?? "")")
        #expect(status.details["last_exit"]?.contains("status 3") == true)
    }

    @Test("A missing program is down with a reason, and a request to it fails fast")
    func missingProgram() async throws {
        let engine = ManagedEngine(
            spec: spec("ghost", "/nonexistent/python", { _ in [] }, probe: { _ in false }),
            policy: fastPolicy, logger: Logger(label: "test")
        )
        let run = Task { await engine.run() }
        var status = await engine.status()
        let deadline = ContinuousClock.now + .seconds(3)
        while status.state != .down, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
            status = await engine.status()
        }
        let started = ContinuousClock.now
        await #expect(throws: EngineError.self) { try await engine.resolve() }
        #expect(ContinuousClock.now - started < .milliseconds(250), "a missing program must fail at once, not wait for readiness")
        run.cancel()
        await run.value
        #expect(status.state == .down)
        #expect(status.reason?.contains("/nonexistent/python") == true, "\(status.reason ?? "")")
    }

    @Test("A child that stops answering its health check is restarted")
    func hungChild() async throws {
        let python = try #require(ExecutableLookup.find("python3"))
        let healthy = HealthSwitch()
        let engine = ManagedEngine(
            spec: spec("hung", python, { ["-m", "http.server", "--bind", "127.0.0.1", String($0)] }, probe: { port in
                await healthy.isOn ? await Self.tcpOpen(port) : false
            }),
            policy: fastPolicy, logger: Logger(label: "test")
        )
        let run = Task { await engine.run() }
        #expect(await waitFor(engine, .ready, within: 15))
        let first = try #require(await engine.pid())
        await healthy.set(false)
        let sawDown = await waitFor(engine, .down, within: 5)
        let restarting = await engine.status().state == .starting
        #expect(sawDown || restarting)
        await healthy.set(true)
        #expect(await waitFor(engine, .ready, within: 15))
        #expect(await engine.pid() != first)
        run.cancel()
        await run.value
    }
}

/// Liveness against a server that, like the embedded llama.cpp server, answers one request at a time: its health
/// probe waits behind a streaming reply.
@Suite("Engine liveness while busy")
struct BusyEngineTests {
    var policy: SupervisionPolicy {
        var policy = SupervisionPolicy()
        policy.initialBackoff = 0.1
        policy.livenessInterval = 0.3
        policy.livenessFailures = 2
        policy.busyProgressWindow = 1.5
        policy.stopGrace = 1
        return policy
    }

    func busyEngine() throws -> ManagedEngine {
        let python = try #require(ExecutableLookup.find("python3"))
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fakes/busy_llm_server.py").path
        let spec = ProcessSpec(
            name: "busy-llm", executable: python, arguments: { [script, String($0)] },
            logFile: temporaryDirectory() + "/busy-llm.log",
            probe: { port in
                var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/v1/models")
                request.method = .GET
                guard let response = try? await HTTPClient.shared.execute(request, timeout: .milliseconds(250)) else { return false }
                _ = try? await response.body.collect(upTo: 1 << 20)
                return response.status.code == 200
            },
            startTimeout: 15
        )
        return ManagedEngine(spec: spec, policy: policy, logger: Logger(label: "test"))
    }

    func waitReady(_ engine: ManagedEngine) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(15)
        while ContinuousClock.now < deadline {
            if await engine.status().state == .ready { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    @Test("A model streaming a long reply is not restarted although its probe cannot answer meanwhile")
    func busyIsAlive() async throws {
        let engine = try busyEngine()
        let run = Task { await engine.run() }
        defer { run.cancel() }
        #expect(await waitReady(engine))
        let client = OpenAIChatClient(endpoint: engine, client: HTTPClient.shared, model: "slow:25:0.2", timeout: 30)
        // 25 tokens 0.2 s apart: 5 s of streaming, ~16 probe periods, each probe stuck behind the stream.
        let reply = try await client.complete([.user("tell me a long story")])
        #expect(reply.split(separator: " ").count == 25)
        let status = await engine.status()
        #expect(status.details["restarts"] == "0", "restarted while busy: \(status)")
        #expect(status.state == .ready)
        // Idle again: the probe answers and nothing restarts.
        try await Task.sleep(for: .seconds(1))
        #expect(await engine.status().details["restarts"] == "0")
        run.cancel()
        await run.value
    }

    @Test("A model whose stream stalls (no token, no probe answer) is restarted")
    func hungIsRestarted() async throws {
        let engine = try busyEngine()
        let run = Task { await engine.run() }
        defer { run.cancel() }
        #expect(await waitReady(engine))
        let first = try #require(await engine.pid())
        let client = OpenAIChatClient(endpoint: engine, client: HTTPClient.shared, model: "stall:2", timeout: 60)
        let started = ContinuousClock.now
        await #expect(throws: EngineError.self) { _ = try await client.complete([.user("hi")]) }
        // Stall window 1.5 s + 2 probe misses at 0.3 s + stop: a restart within a few seconds, not after 60.
        #expect(ContinuousClock.now - started < .seconds(10))
        #expect(await waitReady(engine))
        let status = await engine.status()
        #expect(status.details["restarts"] == "1")
        #expect(await engine.pid() != first)
        run.cancel()
        await run.value
    }
}

actor HealthSwitch {
    var isOn = true
    func set(_ value: Bool) { isOn = value }
}
