import Foundation

/// One text's child-safety classification from the engine host (`POST /v1/moderations`).
public struct ModerationResult: Codable, Sendable, Equatable {
    public var flagged: Bool
    /// The closest unsafe category when flagged (`self-harm`, `grooming-secrecy`, …).
    public var category: String?
    /// Per category: how much closer the text is to its unsafe examples than to ordinary child prompts.
    public var categoryScores: [String: Double]
    /// The training example most similar to the text, for logs.
    public var nearestExample: String?
}

extension EngineHostClient {
    /// Classifies up to 32 texts with the engine host's embedding classifier; `margin` overrides how much closer to
    /// the unsafe examples than to ordinary prompts a text must be to be flagged (nil: the host's default).
    public func moderate(_ texts: [String], margin: Double? = nil, timeout: Double = 5) async throws -> [ModerationResult] {
        struct Answer: Decodable { var results: [ModerationResult] }
        var request: [String: Any] = ["input": texts]
        if let margin { request["margin"] = margin }
        let body = try JSONSerialization.data(withJSONObject: request)
        let response = try await http.send(.POST, "/v1/moderations", body: body, contentType: "application/json", timeout: timeout)
        let answer = try http.decode(Answer.self, from: response.body)
        guard answer.results.count == texts.count else {
            throw EngineError.invalidResponse(engine: http.engine, reason: "\(answer.results.count) moderation results for \(texts.count) texts")
        }
        return answer.results
    }
}
