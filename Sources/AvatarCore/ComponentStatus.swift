/// The readiness of one dependency (an engine, the database, the cache) as `/readyz` reports it.
public struct ComponentStatus: Codable, Sendable, Equatable {
    /// The state a dependency can be in.
    public enum State: String, Codable, Sendable {
        /// Not started yet, or starting (loading models).
        case starting
        /// Serving requests.
        case ready
        /// Working with reduced function (for example the cache without Redis).
        case degraded
        /// Not serving; `reason` says why and what to do.
        case down
        /// Switched off by configuration.
        case disabled
    }

    public var name: String
    public var state: State
    /// Why the component is in this state, in words a person can act on.
    public var reason: String?
    /// Extra facts: endpoint, pid, model, restart count.
    public var details: [String: String]

    public init(name: String, state: State, reason: String? = nil, details: [String: String] = [:]) {
        self.name = name
        self.state = state
        self.reason = reason
        self.details = details
    }

    /// Whether the component lets the product work (ready, degraded or deliberately off).
    public var isUsable: Bool { state == .ready || state == .degraded || state == .disabled }
}
