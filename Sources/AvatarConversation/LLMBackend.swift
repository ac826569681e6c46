import AsyncHTTPClient
import AvatarEngines
import Foundation

/// What a language model backend can do, declared up front so the conversation engine adapts
/// instead of branching on the backend's kind.
public struct LLMCapabilities: Sendable, Equatable {
    /// Whether replies arrive token by token (otherwise as one piece).
    public var streaming: Bool
    /// ISO 639-1 codes the model can converse in; nil when it is multilingual or unknown.
    public var languages: Set<String>?
    /// The model's context window, in tokens.
    public var contextTokens: Int

    public init(streaming: Bool = true, languages: Set<String>? = nil, contextTokens: Int = 4096) {
        self.streaming = streaming
        self.languages = languages
        self.contextTokens = contextTokens
    }

    /// Whether the model can hold a conversation in `language`.
    public func supports(language: String) -> Bool {
        languages?.contains(language) ?? true
    }
}

/// A chat model: one streaming call from messages to text deltas.
///
/// Errors thrown by the stream are `EngineError`s; their `retryable` flag decides whether the
/// fallback chain retries the same backend or moves on.
public protocol LLMBackend: Sendable {
    /// A short name for logs and reply metadata ("ollama:qwen2.5:1.5b", "embedded").
    var name: String { get }
    var capabilities: LLMCapabilities { get }
    func stream(_ messages: [ChatMessage], options: ChatOptions) -> AsyncThrowingStream<String, any Error>
    /// A cheap health check (no generation): true when the server answers now. The fallback chain uses it to
    /// close an open circuit as soon as a restarted backend is back.
    func isAnswering() async -> Bool
}

extension LLMBackend {
    /// Unknown health: an open circuit waits out its cooldown.
    public func isAnswering() async -> Bool { false }
}

/// An OpenAI-compatible server (the embedded llama-cpp-python server, vLLM, LM Studio).
public struct OpenAIBackend: LLMBackend {
    public let name: String
    public let capabilities: LLMCapabilities
    let client: OpenAIChatClient

    public init(name: String, client: OpenAIChatClient, capabilities: LLMCapabilities) {
        self.name = name
        self.client = client
        self.capabilities = capabilities
    }

    public func stream(_ messages: [ChatMessage], options: ChatOptions) -> AsyncThrowingStream<String, any Error> {
        client.stream(messages, options: options)
    }

    public func isAnswering() async -> Bool { await client.isAnswering() }
}

/// An Ollama server's `/api/chat`.
public struct OllamaBackend: LLMBackend {
    public let name: String
    public let capabilities: LLMCapabilities
    let client: OllamaChatClient

    public init(client: OllamaChatClient, capabilities: LLMCapabilities) {
        name = "ollama:\(client.model)"
        self.client = client
        self.capabilities = capabilities
    }

    public func stream(_ messages: [ChatMessage], options: ChatOptions) -> AsyncThrowingStream<String, any Error> {
        client.stream(messages, options: options)
    }

    public func isAnswering() async -> Bool { await client.isAnswering() }
}
