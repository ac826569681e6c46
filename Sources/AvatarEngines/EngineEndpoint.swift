/// Where an engine can be reached right now.
///
/// A supervised engine resolves to its current loopback URL only while it is ready, so a request to a
/// dead engine fails in microseconds with `EngineError.unavailable` instead of waiting for a timeout.
public protocol EngineEndpoint: Sendable {
    /// The engine's name, used in errors and logs.
    var engineName: String { get }
    /// The base URL (no trailing slash), or `EngineError.unavailable` when the engine cannot serve now.
    func resolve() async throws -> String
    /// Where clients report in-flight requests and streamed progress, for a supervised engine's liveness;
    /// nil for an engine Avatar does not supervise.
    var activity: EngineActivity? { get }
}

extension EngineEndpoint {
    public var activity: EngineActivity? { nil }
}

/// A fixed URL: an engine Avatar does not supervise (a user's Ollama, a GPU server), or a test server.
public struct StaticEndpoint: EngineEndpoint {
    public let engineName: String
    public let url: String

    public init(engineName: String, url: String) {
        self.engineName = engineName
        self.url = url.hasSuffix("/") ? String(url.dropLast()) : url
    }

    public func resolve() async throws -> String { url }
}
