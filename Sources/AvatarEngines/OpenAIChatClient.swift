import AsyncHTTPClient
import Foundation
import NIOCore

/// One chat message in OpenAI's shape.
public struct ChatMessage: Codable, Sendable, Equatable {
    public var role: String
    public var content: String

    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }

    public static func system(_ text: String) -> ChatMessage { ChatMessage(role: "system", content: text) }
    public static func user(_ text: String) -> ChatMessage { ChatMessage(role: "user", content: text) }
    public static func assistant(_ text: String) -> ChatMessage { ChatMessage(role: "assistant", content: text) }
}

/// Sampling options for a chat completion.
public struct ChatOptions: Sendable, Equatable {
    public var maxTokens: Int
    public var temperature: Double
    /// llama.cpp's multiplicative penalty on tokens seen in the last 64 (1 = off; the embedded server's default
    /// is 1.1). Sent only to servers that take it (the embedded llama-cpp-python server, Ollama); nil: the default.
    public var repeatPenalty: Double?
    /// OpenAI's additive penalties (−2…2) on tokens already seen: by how often, and at all; nil: the default (0).
    public var frequencyPenalty: Double?
    public var presencePenalty: Double?

    public init(maxTokens: Int = 256, temperature: Double = 0.7, repeatPenalty: Double? = nil, frequencyPenalty: Double? = nil, presencePenalty: Double? = nil) {
        self.maxTokens = maxTokens
        self.temperature = temperature
        self.repeatPenalty = repeatPenalty
        self.frequencyPenalty = frequencyPenalty
        self.presencePenalty = presencePenalty
    }
}

/// Client for any OpenAI-compatible `/v1/chat/completions` server (the embedded llama-cpp-python
/// server, vLLM, LM Studio, OpenAI itself), streaming with server-sent events.
public struct OpenAIChatClient: Sendable {
    let http: EngineHTTP
    let model: String
    let apiKey: String?
    /// Whether the server takes llama.cpp's `repeat_penalty` (llama-cpp-python's does; OpenAI's API rejects
    /// unknown fields, so it is not sent elsewhere).
    let acceptsRepeatPenalty: Bool

    public init(endpoint: any EngineEndpoint, client: HTTPClient, model: String, apiKey: String? = nil, timeout: Double, acceptsRepeatPenalty: Bool = false) {
        http = EngineHTTP(endpoint: endpoint, client: client, timeout: timeout)
        self.model = model
        self.apiKey = apiKey
        self.acceptsRepeatPenalty = acceptsRepeatPenalty
    }

    /// The engine's name, for errors and reply metadata.
    public var engineName: String { http.engine }

    /// Streams the reply's text deltas as they are generated.
    /// Whether the server answers a cheap request (/v1/models) within 2 s; no generation.
    public func isAnswering() async -> Bool {
        (try? await http.send(.GET, "/v1/models", timeout: 2)) != nil
    }

    public func stream(_ messages: [ChatMessage], options: ChatOptions = ChatOptions()) -> AsyncThrowingStream<String, any Error> {
        AsyncThrowingStream { continuation in
            let task = Task {
                // A supervised engine learns that it is busy streaming, so its liveness check does not restart it.
                let activity = http.endpoint.activity
                activity?.begin()
                defer { activity?.end() }
                do {
                    let response = try await http.stream(.POST, "/v1/chat/completions", body: try requestBody(messages, options, stream: true), contentType: "application/json")
                    var parser = ServerSentEventParser()
                    var done = false
                    // Read to the end even after [DONE], so the connection goes back to the pool clean.
                    for try await chunk in response.body where !done {
                        activity?.progress()
                        for event in parser.feed(chunk) where !done {
                            if event == "[DONE]" {
                                done = true
                            } else if let delta = try parseDelta(event) {
                                continuation.yield(delta)
                            }
                        }
                    }
                    guard done else {
                        throw EngineError.unavailable(engine: http.engine, reason: "the stream ended before its [DONE] event; the server may have crashed")
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: http.mapTransport(error, seconds: http.timeout))
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    /// The whole reply at once.
    public func complete(_ messages: [ChatMessage], options: ChatOptions = ChatOptions()) async throws -> String {
        var text = ""
        for try await delta in stream(messages, options: options) { text += delta }
        return text
    }

    func requestBody(_ messages: [ChatMessage], _ options: ChatOptions, stream: Bool) throws -> Data {
        var object: [String: Any] = [
            "model": model,
            "messages": messages.map { ["role": $0.role, "content": $0.content] },
            "stream": stream,
            "max_tokens": options.maxTokens,
            "temperature": options.temperature,
        ]
        if acceptsRepeatPenalty, let penalty = options.repeatPenalty { object["repeat_penalty"] = penalty }
        if let penalty = options.frequencyPenalty { object["frequency_penalty"] = penalty }
        if let penalty = options.presencePenalty { object["presence_penalty"] = penalty }
        return try JSONSerialization.data(withJSONObject: object)
    }

    func parseDelta(_ data: String) throws -> String? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(data.utf8)) as? [String: Any] else {
            throw EngineError.invalidResponse(engine: http.engine, reason: "stream event is not JSON: \(data.prefix(200))")
        }
        if let error = object["error"] {
            let message = (error as? [String: Any])?["message"] as? String ?? "\(error)"
            throw EngineError.rejected(engine: http.engine, status: 500, code: nil, message: message)
        }
        guard let choices = object["choices"] as? [[String: Any]], let first = choices.first else { return nil }
        let delta = first["delta"] as? [String: Any]
        return delta?["content"] as? String
    }
}

/// Splits a `text/event-stream` body into the `data:` payloads of its events, across chunk boundaries.
public struct ServerSentEventParser: Sendable {
    private var lines = LineSplitter()
    private var dataLines: [String] = []

    public init() {}

    /// Adds received bytes; returns the data of every event completed by them (split on bytes, decoded
    /// whole: a character split across reads stays intact).
    public mutating func feed(_ buffer: ByteBuffer) -> [String] {
        events(lines.feed(buffer))
    }

    public mutating func feed(_ text: String) -> [String] {
        events(lines.feed(text))
    }

    private mutating func events(_ completed: [String]) -> [String] {
        var events: [String] = []
        for line in completed {
            if line.isEmpty {
                if !dataLines.isEmpty {
                    events.append(dataLines.joined(separator: "\n"))
                    dataLines.removeAll()
                }
            } else if line.hasPrefix("data:") {
                var value = line.dropFirst(5)
                if value.first == " " { value = value.dropFirst() }
                dataLines.append(String(value))
            }
        }
        return events
    }
}
