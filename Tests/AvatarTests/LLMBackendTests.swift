import AsyncHTTPClient
import AvatarConversation
import AvatarEngines
import Foundation
import Testing

/// The LLM clients against the real embedded model (SmolLM2-135M in llama-cpp-python): the OpenAI
/// client directly, the Ollama client through `engine/avatar_engine/ollama_shim.py`, a server speaking
/// Ollama's wire protocol in front of the same model (no Ollama binary can be installed here).
@Suite("LLM backends (real model)", .serialized)
struct LLMBackendTests {
    static let shimModel = "smollm2:135m"

    func embeddedURL() async throws -> String {
        let runtime = try await EngineFixture.shared.runtime()
        let engine = try #require(runtime.supervisor?.engine(named: "llm"))
        return try await engine.resolve()
    }

    func startShim() async throws -> PythonServer {
        let runtime = try await EngineFixture.shared.runtime()
        let engineDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("engine").path
        return try PythonServer(python: runtime.settings.pythonPath, arguments: ["-m", "avatar_engine.ollama_shim", "--upstream", try await embeddedURL(), "--model", Self.shimModel], workingDirectory: engineDir)
    }

    @Test("The embedded model holds a short English conversation through the chain")
    func embeddedConversation() async throws {
        let runtime = try await EngineFixture.shared.runtime()
        let chain = LLMChainFactory.make(settings: runtime.settings, embedded: runtime.embeddedLLM, http: .shared, policy: RetryPolicy(attempts: 1, stallTimeout: .seconds(60)))
        let persona = Persona(name: "Sam", age: 30, interests: ["sailing"], style: "warm, brief")
        let talk = Conversation(avatarId: "sam", persona: persona, chain: chain, database: try temporaryDatabase(), options: ConversationOptions(contextTokens: 2048, replyTokens: 48, temperature: 0))
        let (segments, first) = try await collect(talk.reply(to: "Hello! My name is Alice. What do you like to do?"))
        print("embedded turn 1: \(first.text)")
        #expect(first.chain?.backend == "embedded:smollm2-135m")
        #expect(first.chain?.usedFallback == false)
        #expect(!segments.isEmpty)
        #expect(first.text.split(separator: " ").count >= 3)
        #expect(first.capabilityNotice == nil)
        let (_, second) = try await collect(talk.reply(to: "Nice. What is the sea like today?"))
        print("embedded turn 2: \(second.text)")
        #expect(second.chain?.backend == "embedded:smollm2-135m")
        #expect(await talk.lastPrompt.count == 4, "system, turn 1 (user, assistant), turn 2")
        #expect(await talk.lastPrompt[0].content.contains("The user's name is Alice."))
    }

    @Test("The shim's NDJSON has the fields of Ollama's published /api/chat examples")
    func shimWireFormat() async throws {
        let shim = try await startShim()
        var request = HTTPClientRequest(url: shim.url + "/api/chat")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(.init(string: #"{"model":"\#(Self.shimModel)","messages":[{"role":"user","content":"Say hi."}],"options":{"temperature":0,"num_predict":16},"keep_alive":"5m"}"#))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(120))
        #expect(response.status.code == 200)
        #expect(response.headers.first(name: "Content-Type") == "application/x-ndjson")
        let body = String(buffer: try await response.body.collect(upTo: 1 << 20))
        let lines = body.split(separator: "\n").map { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(lines.count >= 2)
        #expect(!lines.contains { $0 == nil }, "every line is a JSON object")
        let objects = lines.compactMap { $0 }
        // From https://github.com/ollama/ollama/blob/main/docs/api.md, "Chat request (streaming)".
        for object in objects.dropLast() {
            #expect(Set(object.keys) == ["model", "created_at", "message", "done"])
            #expect(object["done"] as? Bool == false)
            #expect(Set((object["message"] as? [String: Any])?.keys ?? [:].keys) == ["role", "content"])
            #expect(object["model"] as? String == Self.shimModel)
        }
        let final = try #require(objects.last)
        #expect(Set(final.keys) == ["model", "created_at", "message", "done", "done_reason", "total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration", "eval_count", "eval_duration"])
        #expect(final["done"] as? Bool == true)
        #expect((final["eval_count"] as? Int ?? 0) == objects.count - 1)
        #expect(ISO8601DateFormatter().date(from: String((final["created_at"] as? String ?? "").prefix(19)) + "Z") != nil)

        var missing = HTTPClientRequest(url: shim.url + "/api/chat")
        missing.method = .POST
        missing.body = .bytes(.init(string: #"{"model":"llama9","messages":[]}"#))
        let notFound = try await HTTPClient.shared.execute(missing, timeout: .seconds(10))
        #expect(notFound.status.code == 404)
        let error = String(buffer: try await notFound.body.collect(upTo: 4096))
        #expect(error == #"{"error": "model \"llama9\" not found, try pulling it first"}"#)
    }

    @Test("The Ollama client streams the real model through the shim, and reports a missing model")
    func ollamaClient() async throws {
        let shim = try await startShim()
        let client = OllamaChatClient(endpoint: StaticEndpoint(engineName: "ollama", url: shim.url), client: .shared, model: Self.shimModel, timeout: 120)
        var deltas: [String] = []
        for try await delta in client.stream([.system("You are a friendly assistant."), .user("Say hello in one short sentence.")], options: ChatOptions(maxTokens: 32, temperature: 0)) {
            deltas.append(delta)
        }
        print("Ollama shim: \(deltas.joined())")
        #expect(deltas.count > 1)
        #expect(deltas.joined().trimmingCharacters(in: .whitespacesAndNewlines).count > 2)

        let wrong = OllamaChatClient(endpoint: StaticEndpoint(engineName: "ollama", url: shim.url), client: .shared, model: "qwen2.5:1.5b", timeout: 10)
        await #expect { try await wrong.stream([.user("hi")]).reduce("", +) } throws: { error in
            guard case .rejected(_, 404, _, let message) = error as? EngineError else { return false }
            return message.contains("not found") && !(error as! EngineError).retryable
        }
    }

    @Test("Chain Ollama → embedded: a dead Ollama costs milliseconds, the embedded model answers")
    func ollamaThenEmbedded() async throws {
        let runtime = try await EngineFixture.shared.runtime()
        var settings = runtime.settings
        settings.llmURL = "http://127.0.0.1:9"
        settings.llmModel = "qwen2.5:1.5b"
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: LLMChainFactory.failFastConfiguration())
        let chain = LLMChainFactory.make(settings: settings, embedded: runtime.embeddedLLM, http: http, policy: RetryPolicy(attempts: 2, backoff: .milliseconds(100), stallTimeout: .seconds(60)))
        #expect(chain.backends.map(\.name) == ["ollama:qwen2.5:1.5b", "embedded:smollm2-135m"])
        let started = ContinuousClock.now
        var firstToken: Duration?
        var status: ChainStatus?
        for await event in chain.stream([.user("Say hi.")], options: ChatOptions(maxTokens: 16, temperature: 0), canned: "c") {
            switch event {
            case .token: if firstToken == nil { firstToken = ContinuousClock.now - started }
            case .finished(let finished): status = finished
            }
        }
        print("dead Ollama → embedded first token after \(String(describing: firstToken))")
        #expect(status?.backend == "embedded:smollm2-135m")
        #expect(status?.failures.first?.backend == "ollama:qwen2.5:1.5b")
        #expect(try #require(firstToken) < .seconds(2))
        try await http.shutdown()
    }
}
