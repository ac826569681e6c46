import AvatarCore
import Foundation

/// What can go wrong driving SadTalker.
public enum SadTalkerError: AvatarError, Equatable {
    /// No checkout or no checkpoints where the configuration points.
    case notInstalled(String)
    case failed(String)
    case timeout(Double)
    /// The job process died without an answer.
    case workerCrashed(String)

    public var userMessage: String {
        switch self {
        case .notInstalled(let reason):
            return "SadTalker is not installed: \(reason). It is optional (GPU only); the built-in engine needs nothing — drop --engine sadtalker"
        case .failed(let reason): return "SadTalker failed: \(reason)"
        case .timeout(let seconds): return "SadTalker did not finish within \(Int(seconds)) s"
        case .workerCrashed(let reason): return "the SadTalker job process died: \(reason)"
        }
    }

    public var retryable: Bool {
        switch self {
        case .timeout, .workerCrashed: return true
        case .notInstalled, .failed: return false
        }
    }
}

/// A finished SadTalker job.
public struct SadTalkerResult: Sendable, Equatable {
    public var output: String
    public var seconds: Double
    /// Peak GPU memory of the job (0 without an NVIDIA GPU).
    public var peakGPUMiB: Int
}

/// Drives a user-installed SadTalker (a GPU user's optional look; not real-time): each job runs in its own
/// process (`engine/avatar_engine/sadtalker_job.py`), so GPU memory is released when it ends, and the job
/// reports its peak GPU memory. The built-in renderer stays the default.
public struct SadTalkerAdapter: Sendable {
    /// The job command without its JOB.json argument, e.g. `[python, ".../sadtalker_job.py"]`.
    public let command: [String]
    public let checkout: String
    public let checkpoints: String?
    public let timeout: Double
    /// Extra seconds past `timeout` before a job process that does not answer is killed.
    public let grace: Double

    public init(command: [String], checkout: String, checkpoints: String?, timeout: Double = 1800, grace: Double = 30) {
        self.command = command
        self.checkout = checkout
        self.checkpoints = checkpoints
        self.timeout = timeout
        self.grace = grace
    }

    public func generate(photo: String, audio: String, output: String, size: Int = 256) async throws -> SadTalkerResult {
        var job: [String: Any] = ["checkout": checkout, "photo": photo, "audio": audio, "output": output, "size": size, "timeout": timeout]
        if let checkpoints { job["checkpoints"] = checkpoints }
        let jobPath = NSTemporaryDirectory() + "avatar-sadtalker-\(UUID().uuidString).json"
        try JSONSerialization.data(withJSONObject: job).write(to: URL(fileURLWithPath: jobPath))
        defer { try? FileManager.default.removeItem(atPath: jobPath) }

        // The job enforces `timeout` on SadTalker itself; the launcher's deadline is the backstop for a hung job
        // process (SIGTERM to its process group, SIGKILL after 5 s). Cancelling the calling task stops it too.
        let result = await ChildProcess.output(of: command + [jobPath], options: ChildProcess.Options(timeout: .seconds(timeout + grace)))
        if result.cancelled { throw CancellationError() }
        if result.timedOut { throw SadTalkerError.timeout(timeout) }
        if result.status == 127 {
            throw SadTalkerError.notInstalled("cannot run \(command.first ?? "?"): \(String(decoding: result.error, as: UTF8.self))")
        }
        let text = result.text
        guard let line = text.split(separator: "\n").last,
              let reply = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            throw SadTalkerError.workerCrashed("exit status \(result.status), no reply")
        }
        guard reply["ok"] as? Bool == true else {
            let message = reply["message"] as? String ?? "no details"
            switch reply["code"] as? String {
            case "not_installed": throw SadTalkerError.notInstalled(message)
            case "timeout": throw SadTalkerError.timeout(timeout)
            default: throw SadTalkerError.failed(message)
            }
        }
        return SadTalkerResult(
            output: reply["output"] as? String ?? output,
            seconds: reply["seconds"] as? Double ?? 0,
            peakGPUMiB: reply["peak_gpu_mib"] as? Int ?? 0
        )
    }
}
