import Foundation

/// Stops calling a backend that keeps failing, so a dead backend costs microseconds, not a timeout.
///
/// Closed: calls pass. After `threshold` consecutive failures it opens for `cooldown`; then one trial
/// call is let through (half-open): success closes it, failure opens it again.
public actor CircuitBreaker {
    public enum State: String, Sendable { case closed, open, halfOpen = "half-open" }

    public let threshold: Int
    public let cooldown: Duration
    private var failures = 0
    private var openedAt: ContinuousClock.Instant?
    private var trialInFlight = false

    public init(threshold: Int = 3, cooldown: Duration = .seconds(30)) {
        self.threshold = threshold
        self.cooldown = cooldown
    }

    public var state: State {
        guard let openedAt else { return .closed }
        return ContinuousClock.now - openedAt >= cooldown ? .halfOpen : .open
    }

    /// Whether a call may go to the backend now; in half-open state only one trial call is allowed.
    public func allow() -> Bool {
        switch state {
        case .closed: return true
        case .open: return false
        case .halfOpen:
            if trialInFlight { return false }
            trialInFlight = true
            return true
        }
    }

    public func recordSuccess() {
        failures = 0
        openedAt = nil
        trialInFlight = false
    }

    /// A trial call ended without a verdict (cancelled by the user): the next call may try again.
    public func releaseTrial() {
        trialInFlight = false
    }

    private var lastProbe: ContinuousClock.Instant?

    /// While open, whether the caller may probe the backend's health now (at most once per `interval`).
    public func claimProbe(every interval: Duration) -> Bool {
        guard state == .open else { return false }
        if let lastProbe, ContinuousClock.now - lastProbe < interval { return false }
        lastProbe = .now
        return true
    }

    /// The backend answered a health probe: skip the rest of the cooldown and let one trial call through
    /// (half-open). The trial's outcome closes or reopens the circuit.
    public func probeSucceeded() {
        guard let openedAt, ContinuousClock.now - openedAt < cooldown else { return }
        self.openedAt = ContinuousClock.now - cooldown
    }

    public func recordFailure() {
        trialInFlight = false
        failures += 1
        if failures >= threshold || openedAt != nil {
            openedAt = .now
        }
    }
}
