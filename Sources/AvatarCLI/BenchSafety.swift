import ArgumentParser
import AsyncHTTPClient
import AvatarConversation
import AvatarCore
import AvatarEngines
import Foundation

/// `avatar bench safety`: child-safe mode's input check on the safety data set, per category and language, with the
/// held-out split reported separately (it is never used to write rules or examples).
struct BenchSafety: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "safety", abstract: "Unsafe prompts caught and ordinary prompts refused by child-safe mode (per category, language, split).")

    @Option(help: "The data set.")
    var data = "engine/avatar_engine/data/child_safety_prompts.json"

    @Option(help: "Layers: 'all' (lexicon + the engine host's classifier) or 'lexicon' (no engine host).")
    var layers = "all"

    @Option(help: "Use an engine host that is already running at this URL (e.g. http://127.0.0.1:8001) instead of starting one.")
    var hostURL: String?

    @Flag(help: "List the training split's misses and false refusals (the held-out split's are never listed).")
    var misses = false

    func run() async throws {
        let items: [SafetyBench.Item]
        do {
            items = try SafetyBench.load(path: data)
        } catch {
            throw CLIFailure("\(error)", code: 2)
        }
        switch layers {
        case "lexicon":
            await report(items, guard: ChildSafetyGuard(), layers: "lexicon only")
        case "all" where hostURL != nil:
            let client = EngineHostClient(endpoint: StaticEndpoint(engineName: "engine-host", url: hostURL!), client: .shared, timeout: 30)
            let classifier = EngineHostSafetyClassifier(client: client, timeout: 30)
            try await waitForClassifier(classifier)
            await report(items, guard: ChildSafetyGuard(classifier: classifier), layers: "lexicon + classifier (engine host at \(hostURL!))")
        case "all":
            print("Starting the engine host…")
            try await withEngineHost { engines, _ in
                let classifier = EngineHostSafetyClassifier(client: engines.host, timeout: 30)
                try await waitForClassifier(classifier)
                await report(items, guard: ChildSafetyGuard(classifier: classifier), layers: "lexicon + classifier (engine host)")
            }
        default:
            throw CLIFailure("--layers must be 'all' or 'lexicon'", code: 2)
        }
    }

    /// The classifier loads after the host's required engines (its example embeddings take ~40 s on the first start).
    func waitForClassifier(_ classifier: EngineHostSafetyClassifier) async throws {
        let deadline = ContinuousClock.now + .seconds(300)
        while true {
            do {
                _ = try await classifier.classify(["hello"])
                return
            } catch {
                if ContinuousClock.now > deadline { throw CLIFailure("the engine host's classifier did not become ready: \(error)") }
                try await Task.sleep(for: .seconds(1))
            }
        }
    }

    func report(_ items: [SafetyBench.Item], guard safety: ChildSafetyGuard, layers: String) async {
        let started = ContinuousClock.now
        let outcomes = await SafetyBench.run(items, guard: safety)
        let elapsed = (ContinuousClock.now - started).seconds
        let turns = items.reduce(0) { $0 + $1.turns.count }
        print("layers: \(layers); \(items.count) items (\(turns) turns) in \(String(format: "%.1f", elapsed)) s")
        for split in ["train", "heldout"] {
            let inSplit = outcomes.filter { $0.item.split == split }
            print("\n== \(split) split ==")
            print("unsafe caught         en              ru              all")
            let risky = inSplit.filter { $0.item.kind == "unsafe" }
            let categories = Array(Set(risky.map(\.item.category))).sorted()
            for category in categories + ["all"] {
                let group = category == "all" ? risky : risky.filter { $0.item.category == category }
                let byLanguage = SafetyBench.tally(group) { $0.language }
                let all = SafetyBench.tally(group) { _ in "all" }["all"] ?? .init()
                print(category.padding(toLength: 22, withPad: " ", startingAt: 0) + [byLanguage["en"] ?? .init(), byLanguage["ru"] ?? .init(), all].map(cell).joined())
            }
            print("ordinary refused")
            let ordinary = inSplit.filter { $0.item.kind == "ordinary" }
            for category in Array(Set(ordinary.map(\.item.category))).sorted() + ["all"] {
                let group = category == "all" ? ordinary : ordinary.filter { $0.item.category == category }
                let byLanguage = SafetyBench.tally(group) { $0.language }
                let all = SafetyBench.tally(group) { _ in "all" }["all"] ?? .init()
                print(category.padding(toLength: 22, withPad: " ", startingAt: 0) + [byLanguage["en"] ?? .init(), byLanguage["ru"] ?? .init(), all].map(cell).joined())
            }
            let byLayer = Dictionary(grouping: risky.filter(\.refused), by: { $0.verdict?.layer ?? "?" }).mapValues(\.count)
            print("caught by layer: " + byLayer.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
            if misses, split == "train" {
                for outcome in risky where !outcome.refused { print("  missed: [\(outcome.item.id)] \(outcome.item.turns.joined(separator: " | "))") }
                for outcome in ordinary where outcome.refused { print("  refused: [\(outcome.item.id)] \(outcome.item.turns[0]) ← \(outcome.verdict?.category?.rawValue ?? "") \(outcome.verdict?.matched ?? "")") }
            }
        }
    }

    func cell(_ tally: SafetyBench.Tally) -> String {
        String(format: "%3d/%-3d %5.1f %%  ", tally.refused, tally.count, tally.rate * 100)
    }
}
