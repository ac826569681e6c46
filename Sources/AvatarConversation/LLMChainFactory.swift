import AsyncHTTPClient
import AvatarCore
import AvatarEngines
import Foundation

/// Builds the configured model chain: the external model (`AVATAR_LLM_URL`) first when set, then the
/// embedded SmolLM2, then — inside `FallbackChain` — the persona's canned reply.
public enum LLMChainFactory {
    /// Languages the embedded SmolLM2-135M-Instruct can hold a conversation in.
    public static let embeddedLanguages: Set<String> = ["en"]

    /// An HTTP client configuration for model servers: a refused connection fails at once instead of
    /// being retried until the request deadline, so a dead backend costs milliseconds and the chain
    /// moves on. Pass a client built with it to `make` (and shut it down when done).
    public static func failFastConfiguration(connectTimeout: Duration = .seconds(2)) -> HTTPClient.Configuration {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.timeout.connect = .milliseconds(Int64(connectTimeout.components.seconds * 1000 + connectTimeout.components.attoseconds / 1_000_000_000_000_000))
        return configuration
    }

    /// The chain for these settings; `http` should be a client made with `failFastConfiguration()`.
    public static func make(settings: AvatarSettings, embedded: OpenAIChatClient?, http: HTTPClient, policy: RetryPolicy = RetryPolicy()) -> FallbackChain {
        var backends: [any LLMBackend] = []
        if let url = settings.llmURL, let model = settings.llmModel {
            let endpoint = StaticEndpoint(engineName: "llm-external", url: url)
            let languages: Set<String>? = settings.llmLanguages.isEmpty ? nil : Set(settings.llmLanguages)
            let capabilities = LLMCapabilities(streaming: true, languages: languages, contextTokens: settings.llmContextSize)
            switch settings.llmAPI {
            case .ollama:
                backends.append(OllamaBackend(client: OllamaChatClient(endpoint: endpoint, client: http, model: model, timeout: settings.engineRequestTimeout), capabilities: capabilities))
            case .openai:
                let client = OpenAIChatClient(endpoint: endpoint, client: http, model: model, timeout: settings.engineRequestTimeout)
                backends.append(OpenAIBackend(name: "openai:\(model)", client: client, capabilities: capabilities))
            }
        }
        if let embedded {
            backends.append(OpenAIBackend(name: "embedded:smollm2-135m", client: embedded, capabilities: LLMCapabilities(streaming: true, languages: embeddedLanguages, contextTokens: settings.llmContextSize)))
        }
        return FallbackChain(backends: backends, policy: policy)
    }
}
