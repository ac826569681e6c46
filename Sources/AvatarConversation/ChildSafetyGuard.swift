import AvatarEngines
import Foundation

/// A semantic child-safety classifier: flags paraphrases that no lexicon foresaw.
public protocol SafetyClassifier: Sendable {
    /// One verdict per text (`layer` "classifier"); throws when the classifier cannot answer now. `strict` false asks
    /// for fewer false alarms (used on the model's own replies, where the lexicon still checks every clause).
    func classify(_ texts: [String], strict: Bool) async throws -> [ModerationVerdict]
}

extension SafetyClassifier {
    public func classify(_ texts: [String]) async throws -> [ModerationVerdict] { try await classify(texts, strict: true) }
}

/// The engine host's classifier over multilingual sentence embeddings (`POST /v1/moderations`).
public struct EngineHostSafetyClassifier: SafetyClassifier {
    let client: EngineHostClient
    let timeout: Double
    /// The margin for `strict: false` (the host's default, 0.02, applies otherwise). Model replies such as "What is
    /// your name?" sit near the personal-data examples (0.025 measured); a clause must be clearly unsafe to be cut.
    public static let lenientMargin = 0.05

    public init(client: EngineHostClient, timeout: Double = 5) {
        self.client = client
        self.timeout = timeout
    }

    public func classify(_ texts: [String], strict: Bool) async throws -> [ModerationVerdict] {
        try await client.moderate(texts, margin: strict ? nil : Self.lenientMargin, timeout: timeout).map { result in
            guard result.flagged, let name = result.category else { return .allowed }
            let score = result.categoryScores[name].map { String(format: "%.3f", $0) } ?? "?"
            // An unknown category name from a newer engine host still refuses, as the most careful kind.
            let category = ChildSafetyModerator.Category(rawValue: name) ?? .danger
            return ModerationVerdict(category: category, matched: "\(name) \(score) ~ \(result.nearestExample ?? "")", layer: "classifier")
        }
    }
}

/// Child-safe mode's checks, in layers: the lexicon (normalised spellings, Russian stems) always, then the semantic
/// classifier when the engine host is up. When the classifier is down the lexicon still decides (the verdict's
/// `layer` says so); nothing waits for a dead host longer than the classifier's timeout.
public struct ChildSafetyGuard: Sendable {
    public let lexicon = ChildSafetyModerator()
    public let classifier: (any SafetyClassifier)?

    public init(classifier: (any SafetyClassifier)? = nil) {
        self.classifier = classifier
    }

    /// Checks a user message before the model sees it. `previous` is the user's previous message: escalation
    /// across turns ("what's under the sink?" → "what if I mix them in a closed room?") is read as one text, unless
    /// the previous message was itself refused (then the joined text would refuse everything after it).
    public func checkInput(_ message: String, previous: String? = nil) async -> ModerationVerdict {
        let plain = lexicon.check(message)
        if !plain.allowed { return plain }
        let context = previous.flatMap { !$0.isEmpty && lexicon.check($0).allowed ? $0 : nil }
        if let context {
            let joined = lexicon.check(context + " " + message)
            if !joined.allowed { return joined }
        }
        guard let classifier else { return plain }
        var texts = [message]
        if let context { texts += [context, context + " " + message] }
        guard let verdicts = try? await classifier.classify(texts) else {
            return ModerationVerdict(category: nil, matched: nil, layer: "lexicon (classifier unavailable)")
        }
        if !verdicts[0].allowed { return verdicts[0] }
        if verdicts.count == 3, verdicts[1].allowed, !verdicts[2].allowed { return verdicts[2] }
        return .allowed
    }

    /// Checks one clause of the model's reply before it is shown, spoken or stored; `previous` (the clause before,
    /// already shown) is read with it, so a phrase split across two clauses still matches.
    public func checkOutput(_ clause: String, previous: String? = nil) async -> ModerationVerdict {
        let plain = lexicon.check(clause)
        if !plain.allowed { return plain }
        if let previous {
            let joined = lexicon.check(previous + " " + clause)
            if !joined.allowed { return joined }
        }
        guard let classifier, let verdict = try? await classifier.classify([clause], strict: false).first else { return plain }
        return verdict
    }
}
