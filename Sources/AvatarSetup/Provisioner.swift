import AvatarCore
import Foundation

/// A set-up step that failed, with what to do about it.
public struct SetupError: AvatarError {
    public var step: String
    public var reason: String
    public var fix: String

    public var userMessage: String { "setup failed at \(step): \(reason). Fix: \(fix)" }
    public var retryable: Bool { true }
}

/// `avatar setup`: installs and verifies everything the product needs, from Debian and PyPI only.
///
/// Every step checks before it acts, so a second run takes seconds: Debian packages by `dpkg-query`,
/// Python packages by a hash of the requirement files, models by size and a recorded sha256.
public struct Provisioner: Sendable {
    public let settings: AvatarSettings
    /// The repository's `engine/` folder (requirements and the engine host's code).
    public let engineSource: String
    /// Also install what only the tests need (Chromium).
    public let includeTestTools: Bool
    let print: @Sendable (String) -> Void

    public init(settings: AvatarSettings, engineSource: String, includeTestTools: Bool = false, print: @escaping @Sendable (String) -> Void = Provisioner.printFlushed) {
        self.settings = settings
        self.engineSource = engineSource
        self.includeTestTools = includeTestTools
        self.print = print
    }

    /// Runs every step in order; stops at the first failure.
    public func run() async throws {
        let started = Date()
        var timings: [(String, Double)] = []
        let steps: [(String, () async throws -> String)] = [
            ("Debian packages", installDebianPackages),
            ("Python environment", createVirtualEnvironment),
            ("Python packages", installPythonPackages),
            ("Engine code", linkEngineCode),
            ("Models", provisionModels),
            ("Embedded model check", checkEmbeddedModel),
        ]
        for (index, step) in steps.enumerated() {
            print("[\(index + 1)/\(steps.count)] \(step.0)…")
            let stepStart = Date()
            let summary: String
            do { summary = try await step.1() } catch {
                try Task.checkCancellation() // a step whose child was stopped by a signal failed because of it
                throw error
            }
            try Task.checkCancellation()
            let seconds = Date().timeIntervalSince(stepStart)
            timings.append((step.0, seconds))
            print("      \(summary) (\(String(format: "%.1f", seconds)) s)")
        }
        let total = Date().timeIntervalSince(started)
        print("Setup complete in \(String(format: "%.1f", total)) s. Models: \(settings.modelsDir)")
        recordTimings(timings, total: total)
    }

    // MARK: Steps

    func installDebianPackages() async throws -> String {
        let wanted = DebianRequirements.runtime + (includeTestTools ? DebianRequirements.testOnly : [])
        let missing = await DebianRequirements.missing(wanted.map(\.package))
        if missing.isEmpty { return "all \(wanted.count) present" }
        print("      installing \(missing.count): \(missing.joined(separator: " "))")
        let prefix: [String]
        if getuid() == 0 {
            prefix = []
        } else if ExecutableLookup.find("sudo") != nil {
            prefix = ["sudo", "-n"]
        } else {
            throw SetupError(step: "Debian packages", reason: "not root and no sudo", fix: "run as root: apt-get install -y \(missing.joined(separator: " "))")
        }
        let env = ["DEBIAN_FRONTEND": "noninteractive"]
        let options = ChildProcess.Options(environment: env)
        if await ChildProcess.lines(prefix + ["apt-get", "update", "-q"], options: options, line: indented) != 0 {
            throw SetupError(step: "Debian packages", reason: "apt-get update failed", fix: "check the Debian mirror is reachable, then run `avatar setup` again")
        }
        let status = await ChildProcess.lines(prefix + ["apt-get", "install", "-y", "-q", "--no-install-recommends"] + missing, options: options, line: indented)
        let stillMissing = await DebianRequirements.missing(missing)
        guard status == 0, stillMissing.isEmpty else {
            throw SetupError(step: "Debian packages", reason: "apt-get install failed for \(stillMissing.joined(separator: " "))", fix: "run `apt-get install -y \(stillMissing.joined(separator: " "))` and read its error")
        }
        return "installed \(missing.count)"
    }

    func createVirtualEnvironment() async throws -> String {
        let python = settings.pythonPath
        if FileManager.default.isExecutableFile(atPath: python), await ChildProcess.output(of: [python, "-c", "import sys"]).succeeded {
            return "present at \(settings.venvDir)"
        }
        guard let system = ExecutableLookup.find("python3") else {
            throw SetupError(step: "Python environment", reason: "python3 not found", fix: "apt-get install -y python3 python3-venv")
        }
        try? FileManager.default.removeItem(atPath: settings.venvDir)
        let result = await ChildProcess.capture([system, "-m", "venv", settings.venvDir])
        guard result.succeeded else {
            throw SetupError(step: "Python environment", reason: result.text.trimmingCharacters(in: .whitespacesAndNewlines), fix: "apt-get install -y python3-venv, then run `avatar setup` again")
        }
        await ChildProcess.lines([python, "-m", "pip", "install", "--progress-bar", "off", "--upgrade", "pip", "wheel"], line: progress)
        return "created at \(settings.venvDir)"
    }

    func installPythonPackages() async throws -> String {
        let requirements = engineSource + "/requirements.txt"
        let noDeps = engineSource + "/requirements-nodeps.txt"
        guard let main = FileManager.default.contents(atPath: requirements) else {
            throw SetupError(step: "Python packages", reason: "\(requirements) not found", fix: "run from the repository root or pass --source")
        }
        let extra = FileManager.default.contents(atPath: noDeps) ?? Data()
        let stamp = settings.venvDir + "/.avatar-requirements"
        let digest = ContentHash.of(main + extra)
        if let recorded = FileManager.default.contents(atPath: stamp), String(decoding: recorded, as: UTF8.self) == digest {
            return "up to date"
        }
        print("      pip install -r \(requirements) (the first run builds llama-cpp-python from source: ~15 min on 2 cores; later runs reuse pip's wheel cache)")
        let pip = [settings.pythonPath, "-m", "pip", "install", "--progress-bar", "off", "--require-virtualenv"]
        let env = ["CMAKE_BUILD_PARALLEL_LEVEL": String(ProcessInfo.processInfo.activeProcessorCount), "PIP_DISABLE_PIP_VERSION_CHECK": "1",
                   "CMAKE_ARGS": Self.portableLlamaFlags]
        let options = ChildProcess.Options(environment: env)
        var status = await ChildProcess.lines(pip + ["-r", requirements], options: options, line: progress)
        if status == 0, !extra.isEmpty {
            status = await ChildProcess.lines(pip + ["--no-deps", "-r", noDeps], options: options, line: progress)
        }
        guard status == 0 else {
            throw SetupError(step: "Python packages", reason: "pip install failed (status \(status))", fix: "read pip's error above; PyPI must be reachable, and the CPU wheel torch==2.13.0+cpu in a folder pip searches (pip.conf find-links). Then run `avatar setup` again")
        }
        // The voice engine's torch must be the CPU build: a CUDA wheel means gigabytes of nvidia-* packages for nothing.
        let torch = await ChildProcess.capture([settings.pythonPath, "-c", "import torch; print(torch.__version__, torch.version.cuda)"])
        guard torch.succeeded, torch.text.contains("+cpu"), torch.text.contains("None") else {
            throw SetupError(step: "Python packages", reason: "torch is not the CPU build (\(torch.text.trimmingCharacters(in: .whitespacesAndNewlines)))", fix: "\(settings.pythonPath) -m pip install --force-reinstall --no-deps torch==2.13.0+cpu")
        }
        try Data(digest.utf8).write(to: URL(fileURLWithPath: stamp))
        return "installed"
    }

    /// Points the venv at this checkout's engine code with a `.pth` file, so code changes need no reinstall.
    func linkEngineCode() async throws -> String {
        let result = await ChildProcess.output(of: [settings.pythonPath, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
        let sitePackages = result.text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard result.succeeded, !sitePackages.isEmpty else {
            throw SetupError(step: "Engine code", reason: "cannot locate the venv's site-packages", fix: "delete \(settings.venvDir) and run `avatar setup` again")
        }
        let source = URL(fileURLWithPath: engineSource).standardizedFileURL.path
        let pth = sitePackages + "/avatar_engine.pth"
        let content = source + "\n"
        if let existing = FileManager.default.contents(atPath: pth), String(decoding: existing, as: UTF8.self) == content {
            return "linked to \(source)"
        }
        try Data(content.utf8).write(to: URL(fileURLWithPath: pth))
        return "linked to \(source)"
    }

    func provisionModels() async throws -> String {
        let tally = Locked((failures: [String](), summary: [String: Int]()))
        let print = self.print
        let status = await ChildProcess.lines([settings.pythonPath, "-m", "avatar_engine.provision", "--models-dir", settings.modelsDir, "--json"]) { line in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                if !line.isEmpty { print("      " + line) }
                return
            }
            if object["event"] as? String == "file" {
                let name = object["name"] as? String ?? "?"
                let state = object["status"] as? String ?? "?"
                let message = object["message"] as? String
                tally.withLock { $0.summary[state, default: 0] += 1 }
                if state != "ok" { print("      \(name): \(state)" + (message.map { " — \($0)" } ?? "")) }
                if state == "failed" { tally.withLock { $0.failures.append("\(name): \(message ?? "failed")") } }
            }
        }
        let (failures, summary) = tally.withLock { ($0.failures, $0.summary) }
        guard status == 0, failures.isEmpty else {
            throw SetupError(step: "Models", reason: failures.isEmpty ? "provisioning exited with status \(status)" : failures.joined(separator: "; "), fix: "reinstall the named model package (delete \(settings.venvDir)/.avatar-requirements and run `avatar setup`)")
        }
        return summary.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
    }

    /// llama.cpp's build flags for llama-cpp-python: portable x86-64 kernels (AVX2/FMA/F16C), not `-march=native`.
    /// A native build on a CPU with AMX/AVX-512 (this project's CI machines, 2026-12) crashed with SIGSEGV in
    /// `llama_decode` on every prompt longer than one token — the embedded model died on its first chat request.
    static let portableLlamaFlags = "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"

    /// The embedded model must decode a real prompt (a batch of tokens), in a process of its own: a llama-cpp-python
    /// built earlier with native kernels (pip's wheel cache, an older venv) can crash there. A crash rebuilds it with
    /// portable flags (~15 min on 2 cores) and checks again.
    func checkEmbeddedModel() async throws -> String {
        let model = settings.llmModelPath
        guard FileManager.default.fileExists(atPath: model) else { return "skipped: \(model) is missing" }
        let script = """
        import llama_cpp
        m = llama_cpp.Llama(model_path=\(Self.pythonString(model)), n_threads=1, n_ctx=512, verbose=False)
        out = m.create_chat_completion(messages=[{"role": "user", "content": "Hello! Tell me one short fact about the sea."}], max_tokens=8)
        print("decoded", out["usage"]["completion_tokens"])
        """
        var check = await ChildProcess.capture([settings.pythonPath, "-c", script])
        if check.succeeded, check.text.contains("decoded") { return "the embedded model answers" }
        print("      llama-cpp-python failed on a prompt (\(check.text.split(separator: "\n").last.map(String.init) ?? "no output")); rebuilding it with portable kernels (~15 min on 2 cores)…")
        let rebuild = [settings.pythonPath, "-m", "pip", "install", "--progress-bar", "off", "--require-virtualenv", "--force-reinstall", "--no-deps",
                       "--no-cache-dir", "--no-binary", "llama-cpp-python", "llama-cpp-python[server]==\(Self.llamaVersion(engineSource))"]
        let options = ChildProcess.Options(environment: ["CMAKE_ARGS": Self.portableLlamaFlags, "CMAKE_BUILD_PARALLEL_LEVEL": String(ProcessInfo.processInfo.activeProcessorCount)])
        let status = await ChildProcess.lines(rebuild, options: options, line: progress)
        check = await ChildProcess.capture([settings.pythonPath, "-c", script])
        guard status == 0, check.succeeded, check.text.contains("decoded") else {
            throw SetupError(step: "Embedded model check", reason: "llama-cpp-python cannot decode a prompt on this CPU (\(check.text.suffix(300)))",
                             fix: "set AVATAR_LLM_EMBEDDED=false and point AVATAR_LLM_URL at Ollama or another OpenAI-compatible server")
        }
        return "rebuilt with portable kernels; the embedded model answers"
    }

    /// The pinned llama-cpp-python version from engine/requirements.txt.
    static func llamaVersion(_ engineSource: String) -> String {
        let text = (try? String(contentsOfFile: engineSource + "/requirements.txt", encoding: .utf8)) ?? ""
        for line in text.split(separator: "\n") where line.hasPrefix("llama-cpp-python") {
            if let range = line.range(of: "==") { return String(line[range.upperBound...]).trimmingCharacters(in: .whitespaces) }
        }
        return "0.3.36"
    }

    static func pythonString(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'"
    }

    // MARK: Helpers

    /// Prints a progress line at once, also when stdout is a file or a pipe (CI logs), where it is block-buffered.
    public static let printFlushed: @Sendable (String) -> Void = { line in
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    /// A child's output line, indented under its step.
    private var indented: @Sendable (String) -> Void {
        let print = self.print
        return { line in print("      " + line) }
    }

    /// pip's lines worth showing (what it collects, builds and installs; errors).
    private var progress: @Sendable (String) -> Void {
        let print = self.print
        return { line in if Self.isProgressLine(line) { print("      " + line) } }
    }

    static func isProgressLine(_ line: String) -> Bool {
        line.hasPrefix("Collecting") || line.hasPrefix("Building") || line.contains("still running") || line.hasPrefix("Successfully")
            || line.hasPrefix("Installing") || line.contains("ERROR") || line.contains("error:")
    }

    private func recordTimings(_ timings: [(String, Double)], total: Double) {
        var object: [String: Any] = ["total_s": total, "at": ISO8601DateFormatter().string(from: Date())]
        object["steps"] = timings.map { ["step": $0.0, "seconds": $0.1] }
        if let data = try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys]) {
            try? FileManager.default.createDirectory(atPath: settings.homeDir, withIntermediateDirectories: true)
            try? data.write(to: URL(fileURLWithPath: settings.homeDir + "/setup-timings.json"))
        }
    }
}
