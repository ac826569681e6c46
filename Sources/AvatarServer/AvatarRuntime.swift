import AsyncHTTPClient
import AvatarCache
import AvatarConversation
import AvatarCore
import AvatarEngines
import AvatarStore
import Foundation
import Logging

/// Everything a running Avatar holds, built once from the settings and injected into the routes.
public struct AvatarRuntime: Sendable {
    public let settings: AvatarSettings
    public let logger: Logger
    public let http: HTTPClient
    /// Supervises the engine host, the embedded LLM and the managed Redis (nil when engines are off).
    public let supervisor: EngineSupervisor?
    public let engineHost: EngineHostClient?
    /// The embedded SmolLM2 server's client alone (nil when it is off) — for benches and tests; a conversation
    /// goes through `chain`.
    public let embeddedLLM: OpenAIChatClient?
    public let database: AvatarDatabase
    public let cache: CacheManager
    /// The model chain (external model, embedded SmolLM2, canned reply) the API's chats use.
    public let chain: FallbackChain

    /// One HTTP client for model servers for the whole process, built to fail fast on a refused
    /// connection (`LLMChainFactory.failFastConfiguration`); never shut down, as it lives as long as the process.
    static let modelHTTP = HTTPClient(eventLoopGroupProvider: .singleton, configuration: LLMChainFactory.failFastConfiguration())

    /// Builds the runtime: opens the database and prepares (but does not start) the engines.
    public static func make(settings: AvatarSettings, logger: Logger, http: HTTPClient = .shared) throws -> AvatarRuntime {
        try settings.prepareDataDirectory()
        let database = try AvatarDatabase(path: settings.databasePath)

        var managed: [ManagedEngine] = []
        var engineHost: EngineHostClient?
        var llm: OpenAIChatClient?
        if settings.enginesEnabled {
            let host = ManagedEngine(spec: EngineCatalog.engineHost(settings, client: http), logger: logger)
            managed.append(host)
            engineHost = EngineHostClient(endpoint: host, client: http, timeout: settings.engineRequestTimeout)
            if settings.llmEmbedded {
                let model = ManagedEngine(spec: EngineCatalog.llm(settings, client: http), logger: logger)
                managed.append(model)
                llm = OpenAIChatClient(endpoint: model, client: http, model: EngineCatalog.embeddedLLMModel, timeout: settings.engineRequestTimeout, acceptsRepeatPenalty: true)
            }
        }

        let cache: CacheManager
        switch settings.redis {
        case .off:
            cache = CacheManager(logger: logger)
        case .external(let host, let port):
            let client = RedisClient(host: host, port: port)
            cache = CacheManager(redis: { client }, redisDescription: "redis://\(host):\(port)", logger: logger)
        case .managed:
            if let executable = ExecutableLookup.find("redis-server") {
                let redis = ManagedEngine(spec: EngineCatalog.redis(settings, executable: executable), logger: logger)
                managed.append(redis)
                cache = CacheManager(redis: {
                    guard let url = try? await redis.resolve(), let port = URL(string: url)?.port else { return nil }
                    return RedisClient(host: "127.0.0.1", port: port)
                }, redisDescription: "managed redis-server", logger: logger)
            } else {
                logger.warning("redis-server not found; using the in-memory cache only (run `avatar setup` to install it)")
                cache = CacheManager(logger: logger)
            }
        }

        return AvatarRuntime(
            settings: settings, logger: logger, http: http,
            supervisor: managed.isEmpty ? nil : EngineSupervisor(engines: managed),
            engineHost: engineHost, embeddedLLM: llm, database: database, cache: cache,
            chain: LLMChainFactory.make(settings: settings, embedded: llm, http: modelHTTP)
        )
    }

    /// The one way to build an avatar's conversation, for the API, the live session and `avatar chat`: the model
    /// chain (or `chain`, for a command with its own retry policy), the database, the response cache, the context
    /// size from the settings and child-safe checks with the engine host's classifier when the engines run (the
    /// lexicon alone catches far less: docs/conversation.md).
    public func conversation(avatarId: String, persona: Persona, chain: FallbackChain? = nil) -> Conversation {
        Conversation(avatarId: avatarId, persona: persona, chain: chain ?? self.chain, database: database, cache: ResponseCache(cache: cache),
                     options: ConversationOptions(contextTokens: settings.llmContextSize),
                     safety: ChildSafetyGuard(classifier: engineHost.map { EngineHostSafetyClassifier(client: $0, timeout: 3) }))
    }

    /// The engine host's capabilities (asr, tts, landmarks, voice) in the component's details; some failed
    /// to load → `degraded`, with which and why (the others still serve).
    static func addCapabilities(of host: EngineHostClient, to component: inout ComponentStatus) async {
        guard let health = try? await host.health() else { return }
        for (name, engine) in health.engines ?? [:] { component.details["capability." + name] = engine.status }
        let failed = health.failed
        if health.status == "degraded", !failed.isEmpty {
            component.state = .degraded
            component.reason = "not available: " + failed.map { "\($0.name) (\($0.error))" }.joined(separator: "; ")
        }
    }

    /// Every dependency's state, for `/readyz` and `avatar doctor`.
    public func readiness() async -> [ComponentStatus] {
        var components: [ComponentStatus] = [await database.status(), await cache.status()]
        if let supervisor {
            for var component in await supervisor.statuses() {
                if component.name == "engine-host", component.state == .ready, let engineHost {
                    await Self.addCapabilities(of: engineHost, to: &component)
                }
                components.append(component)
            }
        } else {
            components.append(ComponentStatus(name: "engines", state: .disabled, reason: "AVATAR_ENGINES_ENABLED=false"))
        }
        return components
    }
}
