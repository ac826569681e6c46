import AsyncHTTPClient
import AvatarCore
import AvatarEngines
import AvatarServer
import AvatarSpeech
import Foundation
import Logging

/// Word error rate between a reference and a hypothesis after `normalize`.
func wordErrorRate(reference: String, hypothesis: String) -> Double {
    WordErrorRate.of(reference: reference, hypothesis: hypothesis)
}

/// Word-level Levenshtein distance.
func editDistance(_ a: [String], _ b: [String]) -> Int { WordErrorRate.editDistance(a, b) }

/// Lower case, punctuation and hyphens to spaces, common abbreviations spelled out, ё as е.
func normalize(_ text: String) -> [String] { WordErrorRate.words(text) }

/// Where test data lives on this machine (Debian packages and the engine venv).
enum TestData {
    static let librivox = ProcessInfo.processInfo.environment["AVATAR_TEST_LIBRIVOX"] ?? "/usr/share/pocketsphinx/test/data/librivox"
    /// A real machine-noise recording (Debian colobot-common-sounds, 3.7 s, 22.05 kHz).
    static let machineNoise = "/usr/share/games/colobot/sounds/sound044.wav"

    /// `(wav path, transcript)` for each LibriVox clip of pocketsphinx-testdata.
    static func librivoxClips() throws -> [(path: String, text: String)] {
        let transcription = try String(contentsOfFile: librivox + "/transcription", encoding: .utf8)
        return transcription.split(separator: "\n").compactMap { line in
            guard let open = line.lastIndex(of: "("), let close = line.lastIndex(of: ")") else { return nil }
            let id = line[line.index(after: open)..<close]
            let text = line[..<open].replacingOccurrences(of: "<s>", with: "").replacingOccurrences(of: "</s>", with: "")
            return ("\(librivox)/\(id).wav", text.trimmingCharacters(in: .whitespaces))
        }
    }

    /// A file shipped inside scikit-image in the engine venv (`astronaut.png`, `chelsea.png`).
    static func skimage(_ name: String, settings: AvatarSettings) throws -> Data {
        let lib = settings.venvDir + "/lib"
        let relative = FileManager.default.enumerator(atPath: lib)?.first { ($0 as? String)?.hasSuffix("skimage/data/\(name)") == true } as? String
        guard let relative, let data = FileManager.default.contents(atPath: lib + "/" + relative) else {
            throw TestFailure("scikit-image's \(name) not found under \(lib): run `avatar setup`")
        }
        return data
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A fresh temporary directory.
func temporaryDirectory(_ prefix: String = "avatar-test") -> String {
    let path = NSTemporaryDirectory() + "\(prefix)-\(UUID().uuidString.prefix(8))"
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// The real engines (engine host, embedded LLM, managed Redis), started once per test run under the
/// real supervisor, from the venv and models `avatar setup` provisioned.
actor EngineFixture {
    static let shared = EngineFixture()

    private var starting: Task<AvatarRuntime, any Error>?

    func runtime() async throws -> AvatarRuntime {
        if let starting { return try await starting.value }
        let task = Task<AvatarRuntime, any Error> {
            var environment = ProcessInfo.processInfo.environment
            environment["AVATAR_DATA_DIR"] = temporaryDirectory("avatar-engines")
            let settings = try await AvatarSettings.load(environment: environment)
            var logger = Logger(label: "test-engines")
            logger.logLevel = .warning
            let runtime = try AvatarRuntime.make(settings: settings, logger: logger)
            guard let supervisor = runtime.supervisor else { throw TestFailure("engines are disabled") }
            // Runs for the rest of the test process; the reaper stops the children when it exits.
            Task { try await supervisor.run() }
            let deadline = ContinuousClock.now + .seconds(settings.engineStartTimeout + 30)
            while ContinuousClock.now < deadline {
                let statuses = await supervisor.statuses()
                if statuses.allSatisfy({ $0.state == .ready }) { return runtime }
                // A crash loop will not heal by waiting: report it now.
                if let looping = statuses.first(where: { Int($0.details["restarts"] ?? "0") ?? 0 >= 3 }) {
                    throw TestFailure("engine \(looping.name) keeps failing: \(looping.reason ?? "?") — run `avatar setup`; logs in \(settings.dataDir)/logs")
                }
                try await Task.sleep(for: .milliseconds(200))
            }
            let report = await supervisor.statuses().map { "\($0.name): \($0.state.rawValue) \($0.reason ?? "")" }
            throw TestFailure("engines not ready: \(report.joined(separator: "; ")) — logs in \(settings.dataDir)/logs")
        }
        starting = task
        return try await task.value
    }
}

/// The real `avatar` binary (`AVATAR_BIN`, else `.build/debug/avatar`) run to its exit.
enum AvatarProcess {
    struct Outcome {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    static var binary: String {
        if let path = ProcessInfo.processInfo.environment["AVATAR_BIN"] { return path }
        return FileManager.default.currentDirectoryPath + "/.build/debug/avatar"
    }

    /// Runs `avatar arguments…` with `environment` over this process's, through the project's launcher.
    static func run(_ arguments: [String], environment: [String: String] = [:], workingDirectory: String? = nil, timeout: Double = 240) async throws -> Outcome {
        let options = ChildProcess.Options(environment: environment, workingDirectory: workingDirectory, timeout: .seconds(timeout))
        let result = await ChildProcess.output(of: [binary] + arguments, options: options)
        if result.timedOut { throw TestFailure("avatar \(arguments) still running after \(timeout) s") }
        return Outcome(status: result.status, stdout: result.text, stderr: String(decoding: result.error, as: UTF8.self))
    }

    /// Processes whose program is `name` and whose arguments include `argument` (from /proc).
    static func pids(named name: String, withArgument argument: String) -> [pid_t] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { entry in
            guard let pid = pid_t(entry), let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline") else { return nil }
            let parts = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            guard let program = parts.first, (program as NSString).lastPathComponent == name, parts.contains(argument) else { return nil }
            return pid
        }
    }
}
