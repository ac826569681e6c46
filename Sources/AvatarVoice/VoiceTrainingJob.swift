import AvatarCore
import Foundation

/// A fine-tuning run in the background: the configured command (e.g. Piper's `python -m piper.train fit …`
/// on a GPU box) over a prepared dataset, with progress parsed from its output and cancellation.
///
/// The command runs through `/bin/sh -c` under the project's reaper (`python -m avatar_engine.reaper --`),
/// which resets the signal mask Swift children inherit (SIGTERM blocked) and stops the command if Avatar
/// dies. Output goes to `logPath`, read back for progress — no pipe to drain. Cancelling the task that
/// runs `run` stops the command: SIGTERM to the reaper (forwarded), SIGKILL after `grace` seconds.
public struct VoiceTrainingJob: Sendable {
    public enum Outcome: Equatable, Sendable {
        case succeeded
        case failed(status: Int32, lastLine: String)
        case cancelled
    }

    /// The command with `{dataset}`, `{output}`, `{name}` replaced.
    public let command: String
    public let python: String
    public let logPath: String
    public var grace = 2.0

    /// - Parameter template: the configured command; placeholders are replaced with shell-quoted values.
    public init(template: String, dataset: String, output: String, name: String, python: String, logPath: String) {
        func quoted(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }
        command = template.replacingOccurrences(of: "{dataset}", with: quoted(dataset))
            .replacingOccurrences(of: "{output}", with: quoted(output))
            .replacingOccurrences(of: "{name}", with: quoted(name))
        self.python = python
        self.logPath = logPath
    }

    /// Runs the command to the end; `progress` gets each output line and the fraction done parsed from
    /// it when there is one (`42%`, `epoch 3/10`, `progress: 0.42`). Cancel the calling task to stop it.
    public func run(progress: @Sendable (Double?, String) -> Void) async throws -> Outcome {
        FileManager.default.createFile(atPath: logPath, contents: nil)
        guard let log = FileHandle(forWritingAtPath: logPath), let reader = FileHandle(forReadingAtPath: logPath) else {
            throw VoiceError.training("cannot write the log \(logPath)")
        }
        defer { try? log.close(); try? reader.close() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = ["-m", "avatar_engine.reaper", "--", "/bin/sh", "-c", command]
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch {
            throw VoiceError.training("cannot start \(python): \(error.localizedDescription); run `avatar setup`")
        }
        var pending = ""
        var lastLine = ""
        func drain() {
            let chunk = String(decoding: reader.readDataToEndOfFile(), as: UTF8.self)
            pending += chunk
            while let newline = pending.firstIndex(where: { $0 == "\n" || $0 == "\r" }) {
                let line = String(pending[..<newline]).trimmingCharacters(in: .whitespaces)
                pending = String(pending[pending.index(after: newline)...])
                guard !line.isEmpty else { continue }
                lastLine = line
                progress(Self.fraction(in: line), line)
            }
        }
        while process.isRunning {
            if Task.isCancelled {
                // The reaper forwards SIGTERM to the shell only; a command the shell did not exec (a pipeline,
                // `cd … && …`) would be orphaned, so the whole tree is signalled, then killed after `grace`.
                let tree = [process.processIdentifier] + Self.descendants(of: process.processIdentifier)
                for pid in tree { kill(pid, SIGTERM) }
                let deadline = Date().addingTimeInterval(grace)
                while tree.contains(where: Self.isAlive), Date() < deadline { usleep(20_000) }
                for pid in tree where Self.isAlive(pid) { kill(pid, SIGKILL) }
                process.waitUntilExit()
                drain()
                return .cancelled
            }
            drain()
            try? await Task.sleep(for: .milliseconds(100))
        }
        drain()
        if !pending.isEmpty { lastLine = pending; progress(Self.fraction(in: pending), pending) }
        let status = process.terminationStatus
        return status == 0 ? .succeeded : .failed(status: status, lastLine: lastLine)
    }

    /// Every process below `root` (from `/proc/*/stat` parent ids), children before grandchildren.
    static func descendants(of root: pid_t) -> [pid_t] {
        var parents: [pid_t: [pid_t]] = [:]
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = pid_t(entry), let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 1, let ppid = pid_t(fields[1]) { parents[ppid, default: []].append(pid) }
        }
        var result: [pid_t] = []
        var queue = parents[root] ?? []
        while !queue.isEmpty {
            let pid = queue.removeFirst()
            result.append(pid)
            queue += parents[pid] ?? []
        }
        return result
    }

    /// Running (not gone, not a zombie waiting to be reaped).
    static func isAlive(_ pid: pid_t) -> Bool {
        guard kill(pid, 0) == 0, let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        return !stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z")
    }

    /// The fraction done a progress line states, or nil.
    public static func fraction(in line: String) -> Double? {
        let lower = line.lowercased()
        if let match = lower.firstMatch(of: /epoch\s*(\d+)\s*\/\s*(\d+)/), let n = Double(match.1), let d = Double(match.2), d > 0 {
            return min(1, n / d)
        }
        if let match = lower.firstMatch(of: /progress\s*[:=]\s*([0-9]*\.?[0-9]+)/), let v = Double(match.1) {
            return v > 1 ? min(1, v / 100) : v
        }
        if let match = lower.firstMatch(of: /([0-9]+(?:\.[0-9]+)?)\s*%/), let v = Double(match.1) {
            return min(1, v / 100)
        }
        return nil
    }
}
