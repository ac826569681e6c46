import AvatarCore
import AvatarEngines
import Foundation

/// How hard the chain tries one backend before moving to the next.
public struct RetryPolicy: Sendable {
    /// Attempts per backend for retryable errors (1 = no retry).
    public var attempts: Int
    /// Delay before the first retry; doubled for each further one.
    public var backoff: Duration
    /// Longest wait between two tokens (and for the first one, unless `firstTokenTimeout` is set).
    public var stallTimeout: Duration
    /// Longest wait for the first token: a small model on one CPU thread evaluates a long history for many seconds
    /// before it says anything, alive but silent.
    public var firstTokenTimeout: Duration

    public init(attempts: Int = 2, backoff: Duration = .milliseconds(200), stallTimeout: Duration = .seconds(20), firstTokenTimeout: Duration? = nil) {
        self.attempts = attempts
        self.backoff = backoff
        self.stallTimeout = stallTimeout
        self.firstTokenTimeout = firstTokenTimeout ?? stallTimeout
    }
}

/// One failed attempt, for the reply's status.
public struct AttemptFailure: Sendable, Equatable {
    public var backend: String
    public var message: String
    public var retryable: Bool
}

/// How a reply was produced.
public struct ChainStatus: Sendable, Equatable {
    /// The backend that answered, or nil when the canned reply was used.
    public var backend: String?
    /// What failed on the way, in order.
    public var failures: [AttemptFailure]
    /// Backends skipped because their circuit breaker was open.
    public var skipped: [String]
    /// The stream broke after text had been sent; the reply is cut short.
    public var interrupted: Bool

    public var usedFallback: Bool { !failures.isEmpty || !skipped.isEmpty }

    /// One line for the user: who answered and why not the first choice.
    public var summary: String {
        var parts: [String] = []
        if let backend { parts.append("answered by \(backend)") } else { parts.append("no model answered; canned reply") }
        if !skipped.isEmpty { parts.append("skipped (circuit open): \(skipped.joined(separator: ", "))") }
        if let last = failures.last { parts.append("last failure: \(last.backend): \(last.message)") }
        if interrupted { parts.append("the reply was cut short") }
        return parts.joined(separator: "; ")
    }
}

/// Events of a chained reply.
public enum ChainEvent: Sendable, Equatable {
    case token(String)
    case finished(ChainStatus)
}

/// Backends in order of preference, each behind a circuit breaker, ending in a canned reply.
///
/// A retryable failure before the first token is retried with backoff, then the next backend is
/// tried. A reply with no text (only whitespace, or an immediate end) is a failure too: the avatar
/// must never fall silent. Text already streamed is never repeated: a failure after the first token ends the reply
/// (marked `interrupted`) instead of starting over on another model.
public struct FallbackChain: Sendable {
    public let backends: [any LLMBackend]
    let breakers: [CircuitBreaker]
    public let policy: RetryPolicy
    /// Shortest time between two health probes of a backend whose circuit is open.
    let probeInterval: Duration

    public init(backends: [any LLMBackend], policy: RetryPolicy = RetryPolicy(), breakerThreshold: Int = 3, breakerCooldown: Duration = .seconds(30), probeInterval: Duration = .seconds(2)) {
        self.backends = backends
        self.policy = policy
        self.probeInterval = probeInterval
        breakers = backends.map { _ in CircuitBreaker(threshold: breakerThreshold, cooldown: breakerCooldown) }
    }

    /// The first backend whose breaker is not open: the one that will most likely answer.
    public func activeBackend() async -> (any LLMBackend)? {
        for (index, backend) in backends.enumerated() where await breakers[index].state != .open {
            return backend
        }
        return nil
    }

    /// Streams a reply; `canned` is said when every backend fails.
    public func stream(_ messages: [ChatMessage], options: ChatOptions, canned: String) -> AsyncStream<ChainEvent> {
        AsyncStream { continuation in
            let task = Task {
                let status = await run(messages, options: options, canned: canned) { continuation.yield(.token($0)) }
                continuation.yield(.finished(status))
                continuation.finish()
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    private func run(_ messages: [ChatMessage], options: ChatOptions, canned: String, emit: @Sendable (String) -> Void) async -> ChainStatus {
        var status = ChainStatus(backend: nil, failures: [], skipped: [], interrupted: false)
        for (index, backend) in backends.enumerated() {
            let breaker = breakers[index]
            var attempt = 0
            while attempt < policy.attempts {
                attempt += 1
                // A cancelled reply (barge-in) is nobody's failure: no breaker counts it, nothing canned is said.
                if Task.isCancelled { return status }
                guard await allow(breaker, backend) else {
                    status.skipped.append(backend.name)
                    break
                }
                let outcome = await Self.attempt(backend, messages, options, stallTimeout: policy.stallTimeout, firstTokenTimeout: policy.firstTokenTimeout, emit: emit)
                switch outcome {
                case .success:
                    await breaker.recordSuccess()
                    status.backend = backend.name
                    return status
                case .cancelled:
                    await breaker.releaseTrial()
                    return status
                case .failed(let error, let sentText):
                    if Task.isCancelled || error is CancellationError {
                        await breaker.releaseTrial()
                        return status
                    }
                    await breaker.recordFailure()
                    let engineError = error as? EngineError
                    let message = (error as? any AvatarError)?.userMessage ?? "\(error)"
                    let retryable = engineError?.retryable ?? false
                    status.failures.append(AttemptFailure(backend: backend.name, message: message, retryable: retryable))
                    if sentText {
                        status.backend = backend.name
                        status.interrupted = true
                        return status
                    }
                    guard retryable, attempt < policy.attempts else { attempt = policy.attempts; continue }
                    do {
                        try await Task.sleep(for: policy.backoff * (1 << (attempt - 1)))
                    } catch {
                        return status
                    }
                }
            }
        }
        if Task.isCancelled { return status }
        emit(canned)
        return status
    }

    /// Whether the breaker lets a call through; while it is open, a cheap health probe of the backend (at most one
    /// per `probeInterval`) moves it to half-open as soon as the backend answers again, e.g. right after the
    /// supervisor restarted the embedded model, instead of waiting out the whole cooldown.
    private func allow(_ breaker: CircuitBreaker, _ backend: any LLMBackend) async -> Bool {
        if await breaker.allow() { return true }
        guard await breaker.claimProbe(every: probeInterval) else { return false }
        guard await backend.isAnswering() else { return false }
        await breaker.probeSucceeded()
        return await breaker.allow()
    }

    private enum Outcome {
        case success
        case cancelled
        case failed(any Error, sentText: Bool)
    }

    private enum Signal: Sendable {
        case token(String)
        case end
        case failed(any Error)
        case stalled(Int)
    }

    /// One call to one backend, with a watchdog that fails it when no token arrives for `stallTimeout`.
    private static func attempt(_ backend: any LLMBackend, _ messages: [ChatMessage], _ options: ChatOptions, stallTimeout: Duration, firstTokenTimeout: Duration, emit: @Sendable (String) -> Void) async -> Outcome {
        let (signals, continuation) = AsyncStream<Signal>.makeStream()
        let reader = Task {
            do {
                for try await token in backend.stream(messages, options: options) { continuation.yield(.token(token)) }
                continuation.yield(.end)
            } catch {
                continuation.yield(.failed(error))
            }
        }
        func arm(_ generation: Int) -> Task<Void, Never> {
            Task {
                try? await Task.sleep(for: generation == 0 ? firstTokenTimeout : stallTimeout)
                if !Task.isCancelled { continuation.yield(.stalled(generation)) }
            }
        }
        var generation = 0
        var watchdog = arm(generation)
        var sent = false
        // Leading whitespace is held back: a reply that is only whitespace is an empty reply.
        var heldWhitespace = ""
        defer {
            watchdog.cancel()
            reader.cancel()
            continuation.finish()
        }
        for await signal in signals {
            switch signal {
            case .token(let text):
                if !sent, text.allSatisfy(\.isWhitespace) {
                    heldWhitespace += text
                } else if !text.isEmpty {
                    sent = true
                    emit(heldWhitespace + text)
                    heldWhitespace = ""
                }
                watchdog.cancel()
                generation += 1
                watchdog = arm(generation)
            case .end:
                guard sent else {
                    return .failed(EngineError.invalidResponse(engine: backend.name, reason: "the model returned an empty reply"), sentText: false)
                }
                return .success
            case .failed(let error):
                return .failed(error, sentText: sent)
            case .stalled(let at) where at == generation:
                let limit = generation == 0 ? firstTokenTimeout : stallTimeout
                let seconds = Double(limit.components.seconds) + Double(limit.components.attoseconds) / 1e18
                let phase = sent ? "between two tokens" : "before the first token"
                return .failed(EngineError.timeout(engine: backend.name + " (\(phase))", seconds: seconds), sentText: sent)
            case .stalled:
                continue
            }
        }
        return .cancelled
    }
}
