import ArgumentParser
import AvatarConversation
import AvatarCore
import AvatarEngines
import Foundation

/// `avatar bench llm`: time to first token, time to first speakable clause and tokens/s through the
/// configured model chain, the path `avatar chat` and the server take. Each run's message differs (a
/// run number), so only the system prompt can come from llama.cpp's prompt cache, as in a conversation.
struct BenchLLM: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "llm", abstract: "Time to first token, to first speakable clause, and tokens/s of the model chain.")

    @Option(help: "Timed replies per prompt (after one warm-up).")
    var runs = 5

    @Option(help: "Most tokens per reply.")
    var maxTokens = 64

    static let prompts = [
        "Tell me one short fact about the sea.",
        "Hello! How are you today?",
        "What is your favourite season, and why?",
    ]

    func run() async throws {
        var settings = try await loadSettings()
        settings.logLevel = "warning"
        let session = try await LLMSession.start(settings: settings, policy: RetryPolicy(attempts: 1, stallTimeout: .seconds(settings.engineRequestTimeout)))
        defer { session.stop() }
        print("chain: \(session.chain.backends.map(\.name).joined(separator: " → ")); \(runs) runs × \(Self.prompts.count) prompts, max \(maxTokens) tokens, temperature 0.7")
        var firstToken: [Double] = []
        var firstClause: [Double] = []
        var rates: [Double] = []
        var tokens = 0
        var answeredBy: [String: Int] = [:]
        for prompt in Self.prompts {
            for run in 0...runs {
                let started = ContinuousClock.now
                var tokenAt: Duration?
                var clauseAt: Duration?
                var count = 0
                var segmenter = SpeakableSegmenter()
                var status: ChainStatus?
                for await event in session.chain.stream([.system("You are a friendly assistant. Answer in two or three sentences."), .user("\(prompt) (\(run + 1))")], options: ChatOptions(maxTokens: maxTokens, temperature: 0.7), canned: "—") {
                    switch event {
                    case .token(let token):
                        count += 1
                        if tokenAt == nil { tokenAt = ContinuousClock.now - started }
                        if clauseAt == nil, !segmenter.feed(token).isEmpty { clauseAt = ContinuousClock.now - started }
                    case .finished(let finished):
                        status = finished
                    }
                }
                let total = ContinuousClock.now - started
                if clauseAt == nil, segmenter.flush() != nil { clauseAt = total }
                guard run > 0 else { continue }
                answeredBy[status?.backend ?? "canned", default: 0] += 1
                guard let tokenAt else { continue }
                firstToken.append(tokenAt.seconds * 1000)
                firstClause.append((clauseAt ?? total).seconds * 1000)
                if count > 1 { rates.append(Double(count - 1) / max((total - tokenAt).seconds, 0.001)) }
                tokens += count
            }
        }
        let ttft = Stats(firstToken), clause = Stats(firstClause), rate = Stats(rates)
        print("\nmetric                          p50       p95")
        print(String(format: "time to first token (ms)   %8.0f  %8.0f", ttft.p50, ttft.p95))
        print(String(format: "time to first clause (ms)  %8.0f  %8.0f", clause.p50, clause.p95))
        print(String(format: "tokens/s after first       %8.1f  %8.1f", rate.p50, rate.p95))
        print("replies: \(firstToken.count), stream deltas: \(tokens), answered by: \(answeredBy.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))")
    }
}
