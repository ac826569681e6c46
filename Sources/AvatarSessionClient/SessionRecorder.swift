import AvatarCore
import Foundation

/// A session client whose events are collected in the background with their arrival times, for polling with
/// deadlines (the tests, `avatar bench session`).
public final class SessionRecorder: Sendable {
    public let client: SessionClient
    private let log = Locked<[SessionClient.Event]>([])
    private let reader: Task<Void, Never>

    public init(_ client: SessionClient) {
        self.client = client
        let log = self.log
        reader = Task { for await event in client.events { log.withLock { $0.append(event) } } }
    }

    public static func open(host: String = "127.0.0.1", port: Int, token: String?, avatar: String, language: String = "en", resume: String? = nil) async throws -> SessionRecorder {
        let probe = SessionRecorder(try await SessionClient.connect(host: host, port: port))
        var hello: [String: Any] = ["type": "hello", "avatar": avatar, "language": language]
        if let token { hello["token"] = token }
        if let resume { hello["resume"] = resume }
        try await probe.client.send(hello)
        return probe
    }

    public var events: [SessionClient.Event] { log.withLock { $0 } }

    public var messages: [[String: Any]] {
        events.compactMap { if case .message(let text, _) = $0 { return SessionClient.object(text) } else { return nil } }
    }

    public func messages(_ type: String) -> [[String: Any]] { messages.filter { $0["type"] as? String == type } }

    public var frames: [(turn: Int, index: Int, speaking: Bool, jpeg: [UInt8])] {
        events.compactMap { if case .frame(let turn, let index, let speaking, let jpeg, _) = $0 { return (turn, index, speaking, jpeg) } else { return nil } }
    }

    public var audio: [(turn: Int, position: Int, samples: [Int16])] {
        events.compactMap { if case .audio(let turn, let position, let samples, _) = $0 { return (turn, position, samples) } else { return nil } }
    }

    public var closed: (code: Int?, reason: String)? {
        for event in events { if case .closed(let code, let reason) = event { return (code, reason) } }
        return nil
    }

    /// Waits until `condition` holds; fails with what arrived when it does not within `timeout`.
    @discardableResult
    public func wait(_ what: String, timeout: Double, _ condition: (SessionRecorder) -> Bool) async throws -> SessionRecorder {
        let deadline = ContinuousClock.now + .seconds(timeout)
        while ContinuousClock.now < deadline {
            if condition(self) { return self }
            try await Task.sleep(for: .milliseconds(20))
        }
        let types = messages.map { "\($0["type"] ?? "?")" + (($0["code"] as? String).map { ":\($0)" } ?? "") }
        throw SessionClientError(reason: "\(what): not within \(timeout) s (messages: \(types.suffix(30)); closed: \(String(describing: closed)))")
    }

    public func turnEnd(_ turn: Int) -> [String: Any]? { messages("turn_end").first { $0["turn"] as? Int == turn } }

    /// Streams 16 kHz samples at real-time pace in 100 ms frames.
    public func speak(_ samples: [Float], chunk: Int = 1600) async throws {
        let clock = ContinuousClock()
        var next = clock.now
        for start in stride(from: 0, to: samples.count, by: chunk) {
            try await client.sendMic(samples[start..<min(start + chunk, samples.count)])
            next += .milliseconds(Int64(chunk * 1000 / 16000))
            try await clock.sleep(until: next)
        }
    }

    public func close() async {
        await client.close()
        reader.cancel()
    }
}
