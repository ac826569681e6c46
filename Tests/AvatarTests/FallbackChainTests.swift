import AsyncHTTPClient
import AvatarConversation
import AvatarEngines
import Foundation
import Testing

@Suite("LLM fallback chain")
struct FallbackChainTests {
    let fast = RetryPolicy(attempts: 2, backoff: .milliseconds(10), stallTimeout: .milliseconds(500))

    @Test("A retryable failure is retried with backoff on the same backend")
    func retries() async {
        let flaky = FakeBackend(name: "flaky", failures: 1)
        let chain = FallbackChain(backends: [flaky], policy: fast)
        let (text, status) = await collect(chain.stream([.user("hi")], options: ChatOptions(), canned: "canned"))
        #expect(text == "Hello there. Nice to meet you!")
        #expect(status?.backend == "flaky")
        #expect(status?.failures.count == 1)
        #expect(await flaky.knobs.calls == 2)
    }

    @Test("A non-retryable failure moves on to the next backend at once")
    func nonRetryable() async {
        let rejecting = FakeBackend(name: "bad", failures: 5, error: .rejected(engine: "bad", status: 400, code: nil, message: "bad request"))
        let good = FakeBackend(name: "good")
        let chain = FallbackChain(backends: [rejecting, good], policy: fast)
        let (_, status) = await collect(chain.stream([.user("hi")], options: ChatOptions(), canned: "canned"))
        #expect(status?.backend == "good")
        #expect(await rejecting.knobs.calls == 1)
        #expect(status?.failures.first?.retryable == false)
    }

    @Test("When every backend fails, the canned in-character reply is said")
    func canned() async {
        let chain = FallbackChain(backends: [FakeBackend(name: "a", failures: 9), FakeBackend(name: "b", failures: 9)], policy: fast)
        let (text, status) = await collect(chain.stream([.user("hi")], options: ChatOptions(), canned: "Oops, I lost my thought."))
        #expect(text == "Oops, I lost my thought.")
        #expect(status?.backend == nil)
        #expect(status?.failures.count == 4)
        #expect(status?.summary.contains("canned") == true)
    }

    @Test("An empty or whitespace-only reply is a failure, so the next backend answers")
    func emptyReply() async {
        let silent = FakeBackend(name: "silent", tokens: ["\n", " "])
        let good = FakeBackend(name: "good", tokens: ["\n", "Hi", "."])
        let chain = FallbackChain(backends: [silent, good], policy: fast)
        let (text, status) = await collect(chain.stream([.user("hi")], options: ChatOptions(), canned: "c"))
        #expect(text == "\nHi.")
        #expect(status?.backend == "good")
        #expect(status?.failures.first?.message.contains("empty reply") == true)
    }

    @Test("An open circuit skips a dead backend in well under a millisecond per call")
    func circuitBreaker() async {
        let dead = FakeBackend(name: "dead", failures: 1000)
        let good = FakeBackend(name: "good")
        let chain = FallbackChain(backends: [dead, good], policy: RetryPolicy(attempts: 1, backoff: .milliseconds(1), stallTimeout: .seconds(1)), breakerThreshold: 2, breakerCooldown: .seconds(60))
        for _ in 0..<2 { _ = await collect(chain.stream([.user("hi")], options: ChatOptions(), canned: "c")) }
        let callsBefore = await dead.knobs.calls
        let started = ContinuousClock.now
        let (_, status) = await collect(chain.stream([.user("hi")], options: ChatOptions(), canned: "c"))
        let elapsed = ContinuousClock.now - started
        #expect(await dead.knobs.calls == callsBefore)
        #expect(status?.skipped == ["dead"])
        #expect(status?.backend == "good")
        #expect(elapsed < .milliseconds(250), "the open circuit took \(elapsed)")
        #expect(await chain.activeBackend()?.name == "good")
    }

    @Test("The breaker lets one trial through after the cooldown and closes on success")
    func halfOpen() async throws {
        let breaker = CircuitBreaker(threshold: 1, cooldown: .milliseconds(50))
        await breaker.recordFailure()
        #expect(await breaker.allow() == false)
        try await Task.sleep(for: .milliseconds(80))
        #expect(await breaker.allow() == true)
        #expect(await breaker.allow() == false)
        await breaker.recordSuccess()
        #expect(await breaker.state == .closed)
    }

    @Test("A slow first token past the stall timeout falls back, within 2 s")
    func slowFirstToken() async {
        let slow = FakeBackend(name: "slow", firstTokenDelay: .seconds(5))
        let good = FakeBackend(name: "good", tokens: ["Fine", "."])
        let chain = FallbackChain(backends: [slow, good], policy: RetryPolicy(attempts: 1, backoff: .milliseconds(1), stallTimeout: .milliseconds(300)))
        let started = ContinuousClock.now
        let (text, status) = await collect(chain.stream([.user("hi")], options: ChatOptions(), canned: "c"))
        #expect(ContinuousClock.now - started < .seconds(2))
        #expect(text == "Fine.")
        #expect(status?.failures.first?.message.contains("before the first token") == true)
    }

    // MARK: wire-level faults against a fake server (Tests/AvatarTests/Fakes/fault_llm_server.py)

    func openAI(_ mode: String, timeout: Double = 5) -> OpenAIChatClient {
        OpenAIChatClient(endpoint: StaticEndpoint(engineName: "fake-openai", url: PythonServer.faults.url + "/" + mode), client: .shared, model: "fake", timeout: timeout)
    }

    func ollama(_ mode: String, timeout: Double = 5) -> OllamaChatClient {
        OllamaChatClient(endpoint: StaticEndpoint(engineName: "fake-ollama", url: PythonServer.faults.url + "/" + mode), client: .shared, model: "fake", timeout: timeout)
    }

    /// Drains a client stream: the text received, and the error it ended with.
    func drain(_ stream: AsyncThrowingStream<String, any Error>) async -> (String, EngineError?) {
        var text = ""
        do {
            for try await token in stream { text += token }
            return (text, nil)
        } catch {
            return (text, error as? EngineError)
        }
    }

    @Test("Both clients read a well-formed stream")
    func wireOK() async {
        let (openAIText, openAIError) = await drain(openAI("ok").stream([.user("hi")]))
        #expect(openAIError == nil)
        #expect(openAIText == "Hello there. How are you today?")
        let (ollamaText, ollamaError) = await drain(ollama("ok").stream([.user("hi")]))
        #expect(ollamaError == nil)
        #expect(ollamaText == "Hello there. How are you today?")
    }

    @Test("A server that splits every multi-byte character across reads: Russian and emoji arrive intact in both clients")
    func wireSplitUTF8() async {
        let expected = "Привет, как дела? 🙂 Ёж ест щи."
        let (openAIText, openAIError) = await drain(openAI("splitutf8").stream([.user("привет")]))
        #expect(openAIError == nil)
        #expect(openAIText == expected)
        let (ollamaText, ollamaError) = await drain(ollama("splitutf8").stream([.user("привет")]))
        #expect(ollamaError == nil)
        #expect(ollamaText == expected)
    }

    @Test("Request bodies follow the APIs: Ollama model/messages/stream/options/keep_alive, OpenAI max_tokens")
    func requestBodies() async throws {
        let messages: [ChatMessage] = [.system("Be brief."), .user("Hi")]
        let options = ChatOptions(maxTokens: 42, temperature: 0.3)
        let (ollamaEcho, ollamaError) = await drain(ollama("echo").stream(messages, options: options))
        #expect(ollamaError == nil)
        let ollamaBody = try #require(try JSONSerialization.jsonObject(with: Data(ollamaEcho.utf8)) as? [String: Any])
        #expect(ollamaBody["model"] as? String == "fake")
        #expect(ollamaBody["stream"] as? Bool == true)
        #expect(ollamaBody["keep_alive"] as? String == "5m")
        let ollamaOptions = try #require(ollamaBody["options"] as? [String: Any])
        #expect(ollamaOptions["num_predict"] as? Int == 42)
        #expect(ollamaOptions["temperature"] as? Double == 0.3)
        #expect((ollamaBody["messages"] as? [[String: String]]) == [["role": "system", "content": "Be brief."], ["role": "user", "content": "Hi"]])
        let (openAIEcho, openAIError) = await drain(openAI("echo").stream(messages, options: options))
        #expect(openAIError == nil)
        let openAIBody = try #require(try JSONSerialization.jsonObject(with: Data(openAIEcho.utf8)) as? [String: Any])
        #expect(openAIBody["max_tokens"] as? Int == 42)
        #expect(openAIBody["stream"] as? Bool == true)
    }

    @Test("HTTP 500 is a retryable rejection carrying the server's message")
    func wire500() async {
        for stream in [openAI("error500").stream([.user("hi")]), ollama("error500").stream([.user("hi")])] {
            let (_, error) = await drain(stream)
            guard case .rejected(_, 500, _, let message)? = error else { Issue.record("expected a 500 rejection, got \(String(describing: error))"); continue }
            #expect(message == "model runner crashed")
            #expect(error?.retryable == true)
        }
    }

    @Test("A server that never answers times out at the client's deadline")
    func wireTimeout() async {
        for stream in [openAI("hang", timeout: 1).stream([.user("hi")]), ollama("hang", timeout: 1).stream([.user("hi")])] {
            let started = ContinuousClock.now
            let (_, error) = await drain(stream)
            guard case .timeout? = error else { Issue.record("expected a timeout, got \(String(describing: error))"); continue }
            #expect(ContinuousClock.now - started < .seconds(3))
        }
    }

    @Test("A malformed stream is an invalid response, not retried")
    func wireMalformed() async {
        for stream in [openAI("malformed").stream([.user("hi")]), ollama("malformed").stream([.user("hi")])] {
            let (_, error) = await drain(stream)
            guard case .invalidResponse? = error else { Issue.record("expected invalidResponse, got \(String(describing: error))"); continue }
            #expect(error?.retryable == false)
        }
    }

    @Test("A disconnect mid-stream keeps the text received and reports the engine unavailable")
    func wireDisconnect() async {
        for stream in [openAI("disconnect").stream([.user("hi")]), ollama("disconnect").stream([.user("hi")])] {
            let (text, error) = await drain(stream)
            // The server sent two tokens and closed; a close can overtake the last read, so the text kept is
            // what arrived: at least the first token, never more than was sent.
            #expect(!text.isEmpty && "Hello there".hasPrefix(text), "kept '\(text)'")
            guard case .unavailable? = error else { Issue.record("expected unavailable, got \(String(describing: error))"); continue }
        }
    }

    @Test("An Ollama error line in the middle of a 200 stream is a rejection")
    func ollamaMidStreamError() async {
        let (text, error) = await drain(ollama("ollamaerror").stream([.user("hi")]))
        #expect(text == "Hello")
        guard case .rejected(_, _, _, let message)? = error else { Issue.record("expected rejected, got \(String(describing: error))"); return }
        #expect(message.contains("error was encountered"))
    }

    @Test("Slow first token: a patient chain waits, an impatient one falls back")
    func wireSlow() async {
        let caps = LLMCapabilities()
        let slow = OpenAIBackend(name: "slow", client: openAI("slow"), capabilities: caps)
        let patient = FallbackChain(backends: [slow], policy: RetryPolicy(attempts: 1, stallTimeout: .seconds(4)))
        let (text, status) = await collect(patient.stream([.user("hi")], options: ChatOptions(), canned: "c"))
        #expect(text == "Hello there. How are you today?")
        #expect(status?.backend == "slow")
        let backup = OllamaBackend(client: ollama("ok"), capabilities: caps)
        let impatient = FallbackChain(backends: [slow, backup], policy: RetryPolicy(attempts: 1, stallTimeout: .milliseconds(500)))
        let started = ContinuousClock.now
        let (_, fallback) = await collect(impatient.stream([.user("hi")], options: ChatOptions(), canned: "c"))
        #expect(fallback?.backend == "ollama:fake")
        #expect(ContinuousClock.now - started < .seconds(2))
    }

    @Test("Primary down (connection refused) → the fallback answers within 2 s with a clear status")
    func primaryDown() async throws {
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: LLMChainFactory.failFastConfiguration())
        let down = OpenAIBackend(name: "primary", client: OpenAIChatClient(endpoint: StaticEndpoint(engineName: "primary", url: "http://127.0.0.1:9"), client: http, model: "x", timeout: 5), capabilities: LLMCapabilities())
        let backup = OllamaBackend(client: ollama("ok"), capabilities: LLMCapabilities())
        let chain = FallbackChain(backends: [down, backup], policy: RetryPolicy(attempts: 2, backoff: .milliseconds(100), stallTimeout: .seconds(5)))
        let started = ContinuousClock.now
        let (text, status) = await collect(chain.stream([.user("hi")], options: ChatOptions(), canned: "c"))
        #expect(ContinuousClock.now - started < .seconds(2))
        #expect(text == "Hello there. How are you today?")
        #expect(status?.usedFallback == true)
        #expect(status?.summary.contains("primary is unavailable") == true)
        try await http.shutdown()
    }

    // MARK: barge-in and recovery

    @Test("Cancelling replies (barge-in) never opens the circuit and is not retried")
    func cancellationIsNotFailure() async throws {
        let slow = FakeBackend(name: "slow", firstTokenDelay: .seconds(5))
        let chain = FallbackChain(backends: [slow], policy: RetryPolicy(attempts: 2, backoff: .milliseconds(10), stallTimeout: .seconds(10)), breakerThreshold: 2, breakerCooldown: .seconds(60))
        for _ in 0..<4 {
            let consumer = Task { await collect(chain.stream([.user("hi")], options: ChatOptions(), canned: "CANNED")) }
            try await Task.sleep(for: .milliseconds(100))
            consumer.cancel()
            _ = await consumer.value
        }
        // Let the cancelled attempts unwind and report to the breaker.
        try await Task.sleep(for: .milliseconds(200))
        #expect(await slow.knobs.calls == 4, "each cancelled reply must make exactly one call, no retry")
        #expect(await chain.activeBackend()?.name == "slow", "four barge-ins opened the circuit")
    }

    @Test("A backend back after a restart closes its open circuit at once (half-open probe), not after the cooldown")
    func recoversAfterRestart() async throws {
        let model = RecoveringBackend()
        let chain = FallbackChain(backends: [model], policy: RetryPolicy(attempts: 1, backoff: .milliseconds(1), stallTimeout: .seconds(1)), breakerThreshold: 2, breakerCooldown: .seconds(600), probeInterval: .milliseconds(50))
        await model.set(up: false)
        for _ in 0..<3 {
            let (text, _) = await collect(chain.stream([.user("hi")], options: ChatOptions(), canned: "CANNED"))
            #expect(text == "CANNED")
        }
        #expect(await chain.activeBackend() == nil, "the circuit should be open after repeated failures")
        await model.set(up: true)
        try await Task.sleep(for: .milliseconds(60))
        let (text, status) = await collect(chain.stream([.user("hi")], options: ChatOptions(), canned: "CANNED"))
        #expect(text == "I am back.")
        #expect(status?.backend == "recovering")
        #expect(await chain.activeBackend()?.name == "recovering", "a successful trial closes the circuit")
    }

    @Test("While the backend is still down, its open circuit stays open and costs no generation call")
    func staysOpenWhileDown() async throws {
        let model = RecoveringBackend()
        let chain = FallbackChain(backends: [model], policy: RetryPolicy(attempts: 1, backoff: .milliseconds(1), stallTimeout: .seconds(1)), breakerThreshold: 1, breakerCooldown: .seconds(600), probeInterval: .milliseconds(1))
        await model.set(up: false)
        _ = await collect(chain.stream([.user("hi")], options: ChatOptions(), canned: "CANNED"))
        let calls = await model.calls
        let (text, status) = await collect(chain.stream([.user("hi")], options: ChatOptions(), canned: "CANNED"))
        #expect(text == "CANNED")
        #expect(status?.skipped == ["recovering"])
        #expect(await model.calls == calls)
    }

}

/// A model that is down (fails every call, fails its health check) until it is switched up, like the embedded
/// model while the supervisor restarts it.
final class RecoveringBackend: LLMBackend, @unchecked Sendable {
    let name = "recovering"
    let capabilities = LLMCapabilities()
    private let state = State()

    actor State {
        var up = true
        var calls = 0
        func set(_ value: Bool) { up = value }
        func call() -> Bool { calls += 1; return up }
    }

    func set(up: Bool) async { await state.set(up) }
    var calls: Int { get async { await state.calls } }

    func isAnswering() async -> Bool { await state.up }

    func stream(_ messages: [ChatMessage], options: ChatOptions) -> AsyncThrowingStream<String, any Error> {
        AsyncThrowingStream { continuation in
            Task {
                if await state.call() {
                    continuation.yield("I am back.")
                    continuation.finish()
                } else {
                    continuation.finish(throwing: EngineError.unavailable(engine: "recovering", reason: "restarting"))
                }
            }
        }
    }
}
