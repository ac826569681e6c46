import AvatarCore
import Foundation

/// A fine-tuning run in the background: the configured command (e.g. Piper's `python -m piper.train fit …`
/// on a GPU box) over a prepared dataset, with progress parsed from its output and cancellation.
///
/// The command runs through `/bin/sh -c` under the project's reaper (`python -m avatar_engine.reaper --`),
/// which stops the command if Avatar dies. Output goes to `logPath`, read back for progress — no pipe to
/// drain. Cancelling the task that runs `run` stops the command's whole process group: SIGTERM, SIGKILL
/// after `grace` seconds.
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
        guard let reader = FileHandle(forReadingAtPath: logPath) else {
            throw VoiceError.training("cannot write the log \(logPath)")
        }
        defer { try? reader.close() }
        // Through the project's launcher: the command leads its own process group, so stopping it reaches a
        // pipeline or `cd … && …` the shell did not exec (SIGTERM to the group, SIGKILL after `grace`).
        let arguments = [python, "-m", "avatar_engine.reaper", "--", "/bin/sh", "-c", command]
        let options = ChildProcess.Options(grace: .milliseconds(Int(grace * 1000)))
        let finished = Locked<ChildProcess.Termination?>(nil)
        let logPath = self.logPath
        let runner = Task {
            let termination = try await ChildProcess.runLogged(arguments, logFile: logPath, options: options)
            finished.withLock { $0 = termination }
            return termination
        }
        var pending = ""
        var lastLine = ""
        func drain() {
            let chunk = String(decoding: (try? reader.readToEnd()) ?? Data(), as: UTF8.self)
            pending += chunk
            while let newline = pending.firstIndex(where: { $0 == "\n" || $0 == "\r" }) {
                let line = String(pending[..<newline]).trimmingCharacters(in: .whitespaces)
                pending = String(pending[pending.index(after: newline)...])
                guard !line.isEmpty else { continue }
                lastLine = line
                progress(Self.fraction(in: line), line)
            }
        }
        while finished.withLock({ $0 }) == nil {
            if Task.isCancelled {
                runner.cancel()
                _ = try? await runner.value
                drain()
                return .cancelled
            }
            drain()
            try? await Task.sleep(for: .milliseconds(100))
        }
        let termination: ChildProcess.Termination
        do { termination = try await runner.value } catch let error as ChildProcessError {
            throw VoiceError.training("\(error.message); run `avatar setup`")
        }
        drain()
        if !pending.isEmpty { lastLine = pending; progress(Self.fraction(in: pending), pending) }
        switch termination {
        case .exited(0): return .succeeded
        case .exited(let status): return .failed(status: status, lastLine: lastLine)
        case .signaled(let signal): return .failed(status: 128 + signal, lastLine: lastLine)
        }
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
