import AvatarCore
import Foundation
import Logging

/// How to start one engine as a child process.
public struct ProcessSpec: Sendable {
    /// Short name used in `/readyz`, logs and errors (`engine-host`, `llm`, `redis`).
    public var name: String
    public var executable: String
    /// The command-line arguments for a given loopback port.
    public var arguments: @Sendable (_ port: Int) -> [String]
    /// Added to the parent's environment.
    public var environment: [String: String]
    /// Where the child's stdout and stderr go (appended).
    public var logFile: String
    /// Answers whether the engine on `port` serves requests.
    public var probe: @Sendable (_ port: Int) async -> Bool
    /// How long the engine may take from spawn to a passing probe.
    public var startTimeout: Double
    /// URL scheme of the endpoint (`http`, or `redis` for the cache).
    public var scheme: String

    public init(
        name: String, executable: String, arguments: @escaping @Sendable (Int) -> [String],
        environment: [String: String] = [:], logFile: String,
        probe: @escaping @Sendable (Int) async -> Bool, startTimeout: Double, scheme: String = "http"
    ) {
        self.scheme = scheme
        self.name = name
        self.executable = executable
        self.arguments = arguments
        self.environment = environment
        self.logFile = logFile
        self.probe = probe
        self.startTimeout = startTimeout
    }
}

/// Timing knobs of supervision; tests shorten them.
public struct SupervisionPolicy: Sendable {
    /// First wait before a restart; doubles per consecutive failure up to `maxBackoff`.
    public var initialBackoff: Double = 0.5
    public var maxBackoff: Double = 30
    /// A run that stayed ready this long resets the backoff.
    public var stableAfter: Double = 30
    /// Liveness probe period while ready; this many misses in a row restart the engine.
    public var livenessInterval: Double = 5
    public var livenessFailures: Int = 3
    /// While a client request is in flight and made progress (a streamed token) within this many seconds, the engine
    /// is busy, not hung: failed probes are not counted. A stream silent for longer counts as a stall.
    public var busyProgressWindow: Double = 30
    /// Grace period between SIGTERM and SIGKILL on stop.
    public var stopGrace: Double = 5

    public init() {}
}

/// One supervised child process: spawned on a free loopback port, probed until ready, restarted with
/// exponential backoff when it exits or stops answering, and stopped on shutdown.
public actor ManagedEngine: EngineEndpoint {
    public nonisolated let engineName: String
    /// In-flight requests and their progress, reported by the engine's clients.
    public nonisolated let activity: EngineActivity? = EngineActivity()
    let spec: ProcessSpec
    let policy: SupervisionPolicy
    let logger: Logger

    private var state: ComponentStatus.State = .starting
    private var reason: String? = "not started yet"
    private var port: Int?
    private var child: RunningChild?
    private var restarts = 0
    private var lastExit: String?

    public init(spec: ProcessSpec, policy: SupervisionPolicy = SupervisionPolicy(), logger: Logger) {
        self.engineName = spec.name
        self.spec = spec
        self.policy = policy
        var logger = logger
        logger[metadataKey: "engine"] = .string(spec.name)
        self.logger = logger
    }

    public func resolve() async throws -> String {
        guard state == .ready, let port else {
            throw EngineError.unavailable(engine: engineName, reason: reason ?? "\(state.rawValue)")
        }
        return "\(spec.scheme)://127.0.0.1:\(port)"
    }

    /// The current state for `/readyz`.
    public func status() -> ComponentStatus {
        var details: [String: String] = ["restarts": String(restarts)]
        if let port { details["url"] = "\(spec.scheme)://127.0.0.1:\(port)" }
        if let pid = child?.pid { details["pid"] = String(pid) }
        if let lastExit { details["last_exit"] = lastExit }
        return ComponentStatus(name: engineName, state: state, reason: state == .ready ? nil : reason, details: details)
    }

    /// The child's process id while it runs.
    public func pid() -> Int32? {
        child?.pid
    }

    /// Supervises until cancelled, then stops the child.
    func run() async {
        var backoff = policy.initialBackoff
        while !Task.isCancelled {
            let started = ContinuousClock.now
            let outcome = await runOnce()
            if Task.isCancelled { break }
            restarts += 1
            if ContinuousClock.now - started > .seconds(policy.stableAfter) { backoff = policy.initialBackoff }
            state = .down
            reason = "\(outcome); restarting in \(String(format: "%.1f", backoff)) s (restart \(restarts))"
            logger.warning("engine stopped, restarting", metadata: ["reason": .string(outcome), "backoff_s": .stringConvertible(backoff)])
            try? await Task.sleep(for: .seconds(backoff))
            backoff = min(backoff * 2, policy.maxBackoff)
        }
        await stopChild()
        state = .down
        reason = "stopped"
    }

    /// Runs one life of the child: spawn, wait for ready, watch. Returns why it ended.
    private func runOnce() async -> String {
        // A fresh port per life: a dying predecessor may still hold the old one.
        let port = PortAllocator.freeLoopbackPort()
        self.port = port
        state = .starting
        reason = "starting (loading models)"
        let exit = spawn(port: port)
        guard let pid = await exit.started() else {
            return describeExit(exit.status ?? (.exited(127), "cannot start \(spec.executable)"), duringStart: true)
        }
        logger.info("engine started", metadata: ["pid": .stringConvertible(pid), "port": .stringConvertible(port)])

        let deadline = ContinuousClock.now + .seconds(spec.startTimeout)
        var ready = false
        while !Task.isCancelled, ContinuousClock.now < deadline {
            if let status = exit.status { return describeExit(status, duringStart: true) }
            if await spec.probe(port) { ready = true; break }
            try? await Task.sleep(for: .milliseconds(200))
        }
        if Task.isCancelled { return "cancelled" }
        guard ready else {
            await stopChild()
            return "not ready within \(Int(spec.startTimeout)) s (see \(spec.logFile))"
        }
        state = .ready
        reason = nil
        logger.info("engine ready", metadata: ["url": .string("\(spec.scheme)://127.0.0.1:\(port)")])

        var misses = 0
        while !Task.isCancelled {
            if let status = exit.status { return describeExit(status, duringStart: false) }
            try? await Task.sleep(for: .milliseconds(250))
            if exit.status == nil, exit.shouldProbe(every: policy.livenessInterval) {
                switch await livenessCheck(port: port) {
                case .alive: misses = 0
                case .busy: continue
                case .missed:
                    misses += 1
                    if misses >= policy.livenessFailures {
                        let why = "stopped answering its health check" + (activity?.requestsInFlight ?? 0 > 0 ? " and its stream stalled" : "")
                        // Not ready from this moment: nothing is routed to it while it is being stopped.
                        state = .down
                        reason = why + "; stopping it"
                        await stopChild()
                        return why
                    }
                }
            }
        }
        return "cancelled"
    }

    private enum Liveness { case alive, busy, missed }

    /// One liveness decision. A request that is streaming (progress within `busyProgressWindow`) is proof of life,
    /// so the probe is skipped; a failed probe is also forgiven when progress arrived while it waited (a server that
    /// serves one request at a time answers the probe only after the stream). Only an engine that fails its probe
    /// with no progress on any request is a miss.
    private func livenessCheck(port: Int) async -> Liveness {
        if let activity, activity.isBusyAndProgressing(within: policy.busyProgressWindow) { return .busy }
        if await spec.probe(port) { return .alive }
        if let activity, activity.isBusyAndProgressing(within: policy.busyProgressWindow) { return .busy }
        return .missed
    }

    /// Starts the child through the project's launcher (empty signal mask, its own process group); its
    /// output is appended to the log file. The returned child reports its pid and, later, how it ended.
    private func spawn(port: Int) -> RunningChild {
        let child = RunningChild()
        let arguments = [spec.executable] + spec.arguments(port)
        let options = ChildProcess.Options(environment: spec.environment, grace: .seconds(policy.stopGrace))
        let logFile = spec.logFile
        child.task = Task {
            do {
                let termination = try await ChildProcess.runLogged(arguments, logFile: logFile, options: options) { pid in
                    child.setStarted(pid)
                }
                child.finish(termination, detail: nil)
            } catch {
                child.finish(.exited(127), detail: (error as? ChildProcessError)?.message ?? "\(error)")
            }
        }
        self.child = child
        return child
    }

    private func describeExit(_ status: (ChildProcess.Termination, String?), duringStart: Bool) -> String {
        let what = status.1 ?? status.0.description
        let last = status.1 == nil ? Self.lastLine(of: spec.logFile) : nil
        lastExit = what
        child = nil
        return (duringStart ? "\(what) while starting" : what) + (last.map { ": \($0)" } ?? "")
    }

    /// SIGTERM to the child's process group, then SIGKILL after the grace period (the launcher's teardown).
    private func stopChild() async {
        guard let child else { return }
        self.child = nil
        guard child.status == nil else { return }
        child.task?.cancel()
        await child.task?.value
        if case .signaled(SIGKILL)? = child.status?.0 {
            logger.warning("engine ignored SIGTERM; killed", metadata: ["pid": .stringConvertible(child.pid ?? 0)])
        }
    }

    static func lastLine(of path: String) -> String? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        let size = handle.seekToEndOfFile()
        handle.seek(toFileOffset: size > 2048 ? size - 2048 : 0)
        let text = String(decoding: (try? handle.read(upToCount: 2048)) ?? Data(), as: UTF8.self)
        return text.split(separator: "\n").last.map { String($0.prefix(300)) }
    }
}

/// One life of a supervised child: its pid once started, how it ended once it did, and the task that runs it
/// (cancelling that task stops the child).
final class RunningChild: @unchecked Sendable {
    private let state = Locked(State())
    /// Set once, right after creation, by the supervising actor.
    var task: Task<Void, Never>?

    private struct State: Sendable {
        var pid: Int32?
        var status: (ChildProcess.Termination, String?)?
        var lastProbe = ContinuousClock.now
        var waiters: [CheckedContinuation<Int32?, Never>] = []
    }

    /// The pid while the child runs.
    var pid: Int32? { state.withLock { $0.status == nil ? $0.pid : nil } }
    /// How it ended (with a reason when it never started).
    var status: (ChildProcess.Termination, String?)? { state.withLock { $0.status } }

    func setStarted(_ pid: Int32) {
        let waiters = state.withLock { value in
            value.pid = pid
            defer { value.waiters = [] }
            return value.waiters
        }
        for waiter in waiters { waiter.resume(returning: pid) }
    }

    func finish(_ termination: ChildProcess.Termination, detail: String?) {
        let waiters = state.withLock { value in
            value.status = (termination, detail)
            defer { value.waiters = [] }
            return value.waiters
        }
        for waiter in waiters { waiter.resume(returning: nil) }
    }

    /// Waits until the child runs (its pid) or failed to start (nil).
    func started() async -> Int32? {
        await withCheckedContinuation { continuation in
            let immediate: Int32?? = state.withLock { value in
                if let pid = value.pid { return .some(pid) }
                if value.status != nil { return .some(nil) }
                value.waiters.append(continuation)
                return .none
            }
            if let immediate { continuation.resume(returning: immediate) }
        }
    }

    /// True once per `interval` seconds.
    func shouldProbe(every interval: Double) -> Bool {
        state.withLock { value in
            guard ContinuousClock.now - value.lastProbe >= .seconds(interval) else { return false }
            value.lastProbe = ContinuousClock.now
            return true
        }
    }
}

/// Picks free TCP ports on the loopback interface.
public enum PortAllocator {
    /// A port that was free a moment ago (the kernel's choice for port 0).
    public static func freeLoopbackPort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return 18000 + Int.random(in: 0..<2000) }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0 else { return 18000 + Int.random(in: 0..<2000) }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
