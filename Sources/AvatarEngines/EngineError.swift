import AvatarCore

/// What can go wrong when Avatar talks to an out-of-process engine.
public enum EngineError: AvatarError, Equatable {
    /// The engine did not answer in time.
    case timeout(engine: String, seconds: Double)
    /// The engine is not running or not reachable (starting, restarting, crashed, not installed).
    case unavailable(engine: String, reason: String)
    /// The engine answered with an error: `status` is the HTTP status, `code` its machine-readable code.
    case rejected(engine: String, status: Int, code: String?, message: String)
    /// The engine answered something Avatar cannot read.
    case invalidResponse(engine: String, reason: String)

    public var userMessage: String {
        switch self {
        case .timeout(let engine, let seconds):
            return "\(engine) did not answer within \(Self.format(seconds)) s; it may be overloaded — try again, or raise AVATAR_ENGINE_REQUEST_TIMEOUT"
        case .unavailable(let engine, let reason):
            return "\(engine) is unavailable: \(reason)"
        case .rejected(let engine, let status, _, let message):
            return "\(engine) rejected the request (HTTP \(status)): \(message)"
        case .invalidResponse(let engine, let reason):
            return "\(engine) sent a response Avatar cannot read: \(reason)"
        }
    }

    public var retryable: Bool {
        switch self {
        case .timeout, .unavailable: return true
        case .rejected(_, let status, _, _): return status >= 500 || status == 429
        case .invalidResponse: return false
        }
    }

    /// The engine's machine-readable error code, when it gave one.
    public var code: String? {
        if case .rejected(_, _, let code, _) = self { return code }
        return nil
    }

    private static func format(_ seconds: Double) -> String {
        seconds == seconds.rounded() ? String(Int(seconds)) : String(format: "%.1f", seconds)
    }
}
