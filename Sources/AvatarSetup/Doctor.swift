import AvatarCore
import Foundation

/// One line of `avatar doctor`.
public struct DoctorCheck: Sendable, Codable {
    public enum Status: String, Sendable, Codable { case ok, warn, fail }

    public var name: String
    public var status: Status
    public var version: String?
    public var path: String?
    public var detail: String?
    /// What to do when the status is not ok.
    public var fix: String?

    public init(name: String, status: Status, version: String? = nil, path: String? = nil, detail: String? = nil, fix: String? = nil) {
        self.name = name
        self.status = status
        self.version = version
        self.path = path
        self.detail = detail
        self.fix = fix
    }
}

/// `avatar doctor`: every dependency with version, path and status, and the fix for each failure.
public struct Doctor {
    public let settings: AvatarSettings

    public init(settings: AvatarSettings) {
        self.settings = settings
    }

    /// Python distributions the engine host imports, by distribution name.
    static let pythonPackages = ["faster-whisper", "ctranslate2", "piper-tts", "mediapipe", "llama_cpp_python", "fastapi", "uvicorn", "numpy", "onnxruntime"]

    public func checks() async -> [DoctorCheck] {
        await debianChecks() + pythonChecks() + modelChecks()
    }

    func debianChecks() async -> [DoctorCheck] {
        var checks: [DoctorCheck] = []
        for requirement in DebianRequirements.runtime {
            checks.append(await check(requirement))
        }
        return checks
    }

    private func check(_ requirement: DebianRequirement) async -> DoctorCheck {
            guard let version = await DebianRequirements.version(of: requirement.package) else {
                return DoctorCheck(name: requirement.package, status: requirement.package == "redis-server" ? .warn : .fail,
                                   detail: requirement.purpose, fix: "run `avatar setup` (or: apt-get install -y \(requirement.package))")
            }
            var path: String?
            if let program = requirement.program {
                path = ExecutableLookup.find(program)
                if path == nil {
                    return DoctorCheck(name: requirement.package, status: .fail, version: version, detail: "\(program) not on PATH",
                                       fix: "apt-get install --reinstall -y \(requirement.package)")
                }
            }
            return DoctorCheck(name: requirement.package, status: .ok, version: version, path: path, detail: requirement.purpose)
    }

    func pythonChecks() async -> [DoctorCheck] {
        let python = settings.pythonPath
        let probe = await ChildProcess.output(of: [python, "-c", "import sys; print(sys.version.split()[0])"])
        guard probe.succeeded else {
            return [DoctorCheck(name: "engine venv", status: .fail, path: settings.venvDir, detail: "no working Python at \(python)", fix: "run `avatar setup`")]
        }
        var result = [DoctorCheck(name: "engine venv", status: .ok, version: probe.text.trimmingCharacters(in: .whitespacesAndNewlines), path: settings.venvDir)]
        let script = """
        import json, importlib.metadata as m
        out = {}
        for name in [\(Self.pythonPackages.map { "'\($0)'" }.joined(separator: ", "))]:
            try: out[name] = m.version(name)
            except m.PackageNotFoundError: out[name] = None
        print(json.dumps(out))
        """
        let versions = await ChildProcess.output(of: [python, "-c", script])
        let parsed = (try? JSONSerialization.jsonObject(with: versions.output) as? [String: Any]) ?? [:]
        for name in Self.pythonPackages {
            if let version = parsed[name] as? String {
                result.append(DoctorCheck(name: "pip:\(name)", status: .ok, version: version))
            } else {
                result.append(DoctorCheck(name: "pip:\(name)", status: .fail, detail: "not installed in the engine venv", fix: "run `avatar setup`"))
            }
        }
        let engine = await ChildProcess.output(of: [python, "-c", "import avatar_engine, os; print(os.path.dirname(avatar_engine.__file__))"])
        if engine.succeeded {
            result.append(DoctorCheck(name: "engine host code", status: .ok, path: engine.text.trimmingCharacters(in: .whitespacesAndNewlines)))
        } else {
            result.append(DoctorCheck(name: "engine host code", status: .fail, detail: "avatar_engine is not importable", fix: "run `avatar setup` from the repository root"))
        }
        return result
    }

    func modelChecks() async -> [DoctorCheck] {
        let found = Locked([DoctorCheck]())
        let status = await ChildProcess.lines([settings.pythonPath, "-m", "avatar_engine.provision", "--models-dir", settings.modelsDir, "--check-only", "--json"]) { line in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  object["event"] as? String == "file" else { return }
            let name = object["name"] as? String ?? "?"
            let ok = object["status"] as? String == "ok"
            found.withLock { $0.append(DoctorCheck(
                name: "model:\(name)", status: ok ? .ok : .fail,
                path: object["path"] as? String, detail: (object["bytes"] as? Int).map { "\($0) bytes" } ?? object["message"] as? String,
                fix: ok ? nil : "run `avatar setup`"
            )) }
        }
        var result = found.withLock { $0 }
        if result.isEmpty {
            result.append(DoctorCheck(name: "models", status: .fail, path: settings.modelsDir, detail: "cannot check (status \(status))", fix: "run `avatar setup`"))
        }
        return result
    }
}
