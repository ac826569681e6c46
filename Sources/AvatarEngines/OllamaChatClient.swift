import AsyncHTTPClient
import Foundation
import NIOCore

/// Client for Ollama's `/api/chat`, streaming newline-delimited JSON.
///
/// Each line is one object: `{"model","created_at","message":{"role","content"},"done":false}`; the last
/// has `"done":true` and the timings. An error is either a non-2xx status with `{"error":"…"}` or an
/// `{"error":"…"}` line in the middle of a 200 stream (Ollama's behaviour when generation fails late).
public struct OllamaChatClient: Sendable {
    let http: EngineHTTP
    public let model: String
    /// How long Ollama keeps the model loaded after the request (`keep_alive`, e.g. "5m").
    public let keepAlive: String?

    public init(endpoint: any EngineEndpoint, client: HTTPClient, model: String, keepAlive: String? = "5m", timeout: Double) {
        http = EngineHTTP(endpoint: endpoint, client: client, timeout: timeout)
        self.model = model
        self.keepAlive = keepAlive
    }

    public var engineName: String { http.engine }

    /// Streams the reply's text deltas as they are generated.
    /// Whether the server answers a cheap request (/api/tags) within 2 s; no generation.
    public func isAnswering() async -> Bool {
        (try? await http.send(.GET, "/api/tags", timeout: 2)) != nil
    }

    public func stream(_ messages: [ChatMessage], options: ChatOptions = ChatOptions()) -> AsyncThrowingStream<String, any Error> {
        AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    let response = try await http.stream(.POST, "/api/chat", body: try requestBody(messages, options), contentType: "application/json")
                    var lines = LineSplitter()
                    var finished = false
                    // Read to the end even after the final line, so the connection goes back to the pool clean.
                    for try await chunk in response.body where !finished {
                        for line in lines.feed(chunk) where !line.isEmpty && !finished {
                            let (delta, done) = try parseLine(line)
                            if let delta, !delta.isEmpty { continuation.yield(delta) }
                            if done { finished = true }
                        }
                    }
                    if !finished, let rest = lines.remainder, !rest.isEmpty {
                        let (delta, done) = try parseLine(rest)
                        if let delta, !delta.isEmpty { continuation.yield(delta) }
                        finished = done
                    }
                    guard finished else {
                        throw EngineError.unavailable(engine: http.engine, reason: "the stream ended before its final \"done\":true line; the server may have crashed")
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: http.mapTransport(error, seconds: http.timeout))
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    func requestBody(_ messages: [ChatMessage], _ options: ChatOptions) throws -> Data {
        var sampling: [String: Any] = ["temperature": options.temperature, "num_predict": options.maxTokens]
        if let penalty = options.repeatPenalty { sampling["repeat_penalty"] = penalty }
        if let penalty = options.frequencyPenalty { sampling["frequency_penalty"] = penalty }
        if let penalty = options.presencePenalty { sampling["presence_penalty"] = penalty }
        var object: [String: Any] = [
            "model": model,
            "messages": messages.map { ["role": $0.role, "content": $0.content] },
            "stream": true,
            "options": sampling,
        ]
        if let keepAlive { object["keep_alive"] = keepAlive }
        return try JSONSerialization.data(withJSONObject: object)
    }

    /// One NDJSON line: its content delta and whether it is the final line.
    func parseLine(_ line: String) throws -> (String?, Bool) {
        guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            throw EngineError.invalidResponse(engine: http.engine, reason: "stream line is not JSON: \(line.prefix(200))")
        }
        if let error = object["error"] {
            throw EngineError.rejected(engine: http.engine, status: 500, code: nil, message: "\(error)")
        }
        let message = object["message"] as? [String: Any]
        let done = object["done"] as? Bool ?? false
        guard message != nil || done else {
            throw EngineError.invalidResponse(engine: http.engine, reason: "stream line has neither message nor done: \(line.prefix(200))")
        }
        return (message?["content"] as? String, done)
    }
}

/// Splits text arriving in arbitrary chunks into `\n`-terminated lines.
public struct LineSplitter: Sendable {
    private var pending: [UInt8] = []

    public init() {}

    /// Adds received bytes; returns every line completed by them, without the terminator. Lines are split
    /// on bytes and decoded whole, so a multi-byte character (Cyrillic, emoji) split across two network
    /// reads is never turned into U+FFFD.
    public mutating func feed(_ buffer: ByteBuffer) -> [String] {
        feed(bytes: buffer.readableBytesView)
    }

    public mutating func feed(_ text: String) -> [String] {
        feed(bytes: text.utf8)
    }

    public mutating func feed(bytes: some Sequence<UInt8>) -> [String] {
        pending.append(contentsOf: bytes)
        var lines: [String] = []
        var start = pending.startIndex
        while let newline = pending[start...].firstIndex(of: 0x0A) {
            var end = newline
            if end > start, pending[end - 1] == 0x0D { end -= 1 }
            lines.append(String(decoding: pending[start..<end], as: UTF8.self))
            start = newline + 1
        }
        pending.removeFirst(start - pending.startIndex)
        return lines
    }

    /// Text after the last newline, if any.
    public var remainder: String? { pending.isEmpty ? nil : String(decoding: pending, as: UTF8.self) }
}
