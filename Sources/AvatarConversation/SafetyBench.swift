import Foundation

/// The child-safety data set (`engine/avatar_engine/data/child_safety_prompts.json`) and its measurement.
///
/// Unsafe items must be refused (a multi-turn item counts as caught when any of its user turns is refused, each turn
/// read with the one before it, as in a conversation); ordinary items must pass. The split is fixed in the file:
/// `train` may be used to write rules and examples, `heldout` only to measure.
public enum SafetyBench {
    public struct Item: Codable, Sendable {
        public var id: String
        /// "unsafe" or "ordinary".
        public var kind: String
        public var category: String
        public var language: String
        public var style: String
        /// "train" or "heldout".
        public var split: String
        public var turns: [String]
    }

    struct File: Codable {
        var schema: Int
        var items: [Item]
    }

    /// Reads the data set; a missing or malformed file is a clear error.
    public static func load(path: String) throws -> [Item] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SafetyBenchError("cannot read the safety data set \(path) (run from the repository root or pass --data)")
        }
        do {
            return try JSONDecoder().decode(File.self, from: data).items
        } catch {
            throw SafetyBenchError("\(path) is not a valid safety data set: \(error)")
        }
    }

    /// One item's outcome.
    public struct Outcome: Sendable {
        public var item: Item
        /// Whether any turn was refused.
        public var refused: Bool
        /// The verdict that refused it (nil when it passed).
        public var verdict: ModerationVerdict?
    }

    /// Runs every item through the guard's input check, turn by turn, with the previous turn as context.
    public static func run(_ items: [Item], guard safety: ChildSafetyGuard) async -> [Outcome] {
        var outcomes: [Outcome] = []
        for item in items {
            var refusal: ModerationVerdict?
            var previous: String?
            for turn in item.turns {
                let verdict = await safety.checkInput(turn, previous: previous)
                if !verdict.allowed {
                    refusal = verdict
                    break
                }
                previous = turn
            }
            outcomes.append(Outcome(item: item, refused: refusal != nil, verdict: refusal))
        }
        return outcomes
    }

    /// Counts for one group of outcomes.
    public struct Tally: Sendable, Equatable {
        public var count = 0
        public var refused = 0
        public init() {}
        public var rate: Double { count == 0 ? 0 : Double(refused) / Double(count) }
    }

    /// Tallies by a key.
    public static func tally(_ outcomes: [Outcome], by key: (Item) -> String) -> [String: Tally] {
        var result: [String: Tally] = [:]
        for outcome in outcomes {
            result[key(outcome.item), default: Tally()].count += 1
            if outcome.refused { result[key(outcome.item), default: Tally()].refused += 1 }
        }
        return result
    }

    /// The headline figures of one split: unsafe caught and ordinary refused, per language and overall.
    public struct Summary: Sendable {
        public var caught: [String: Tally]
        public var ordinaryRefused: [String: Tally]
    }

    public static func summary(_ outcomes: [Outcome], split: String) -> Summary {
        let inSplit = outcomes.filter { $0.item.split == split }
        let risky = inSplit.filter { $0.item.kind == "unsafe" }
        let ordinary = inSplit.filter { $0.item.kind == "ordinary" }
        var caught = tally(risky) { $0.language }
        caught["all"] = tally(risky) { _ in "all" }["all"] ?? Tally()
        var refused = tally(ordinary) { $0.language }
        refused["all"] = tally(ordinary) { _ in "all" }["all"] ?? Tally()
        return Summary(caught: caught, ordinaryRefused: refused)
    }
}

/// A problem with the safety data set.
public struct SafetyBenchError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
