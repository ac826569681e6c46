import Foundation

/// What a supervised engine is doing for its clients: how many requests are in flight and when one last made
/// progress (a request sent, a streamed chunk received).
///
/// The supervisor reads it before it restarts an engine: a server that handles one request at a time (the embedded
/// llama.cpp server) cannot answer a health probe while it streams a reply, and that stream is proof of life.
/// Clients report through the engine's endpoint (`EngineEndpoint.activity`); the type is lock-based because it is
/// touched on every streamed chunk.
public final class EngineActivity: @unchecked Sendable {
    private let lock = NSLock()
    private var inFlight = 0
    private var lastProgress = ContinuousClock.now

    public init() {}

    /// A request was sent; pair with `end()`.
    public func begin() {
        lock.withLock {
            inFlight += 1
            lastProgress = .now
        }
    }

    /// A request made progress (a chunk of its response arrived).
    public func progress() {
        lock.withLock { lastProgress = .now }
    }

    /// A request finished, failed or was cancelled.
    public func end() {
        lock.withLock {
            inFlight = max(0, inFlight - 1)
            lastProgress = .now
        }
    }

    /// Requests in flight now.
    public var requestsInFlight: Int { lock.withLock { inFlight } }

    /// True while a request is in flight and one made progress within `window` seconds: the engine is busy, not hung.
    public func isBusyAndProgressing(within window: Double) -> Bool {
        lock.withLock { inFlight > 0 && ContinuousClock.now - lastProgress < .seconds(window) }
    }
}
