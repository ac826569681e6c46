import Configuration
import Foundation
import SystemPackage

/// Everything Avatar reads from its configuration, resolved and validated once at start.
///
/// Sources, lowest priority first: built-in defaults < the JSON config file (`AVATAR_CONFIG`, default
/// `$AVATAR_HOME/config.json`, optional) < `AVATAR_*` environment variables. A key `a.b_c` in the file is
/// `AVATAR_A_B_C` in the environment.
public struct AvatarSettings: Sendable {
    /// How the cache reaches Redis.
    public enum RedisMode: Sendable, Equatable {
        /// Avatar starts and supervises its own `redis-server` on a loopback port (the default).
        case managed
        /// No Redis: the in-memory cache only.
        case off
        /// A Redis the operator runs.
        case external(host: String, port: Int)
    }

    /// Wire protocol of an external chat model.
    public enum LLMAPI: String, Sendable {
        case ollama, openai
    }

    /// Log line format.
    public enum LogFormat: String, Sendable {
        case auto, json, text
    }

    public var host: String
    public var port: Int
    /// Root for the venv, models and data when their own keys are not set (`AVATAR_HOME`, default `~/.avatar`).
    public var homeDir: String
    /// SQLite database, media and exports (`AVATAR_DATA_DIR`).
    public var dataDir: String
    /// Provisioned model files (`AVATAR_MODELS_DIR`).
    public var modelsDir: String
    /// The engine host's Python virtual environment (`AVATAR_VENV_DIR`).
    public var venvDir: String
    /// Static files of the web client (`AVATAR_WEB_ROOT`).
    public var webRoot: String
    /// Whether `serve` starts the engine host and the embedded LLM (`AVATAR_ENGINES_ENABLED`).
    public var enginesEnabled: Bool
    /// How long an engine may take to become ready after it is started, in seconds.
    public var engineStartTimeout: Double
    /// How long one engine request may take, in seconds.
    public var engineRequestTimeout: Double
    /// Whether `serve` starts the embedded llama-cpp-python server (`AVATAR_LLM_EMBEDDED`).
    public var llmEmbedded: Bool
    /// CPU threads for the embedded LLM (1 keeps ASR/TTS/rendering responsive on 2 cores).
    public var llmThreads: Int
    /// Context window of the embedded LLM, in tokens.
    public var llmContextSize: Int
    /// An external chat model to prefer over the embedded one (`AVATAR_LLM_URL`), e.g. Ollama at
    /// `http://127.0.0.1:11434`; nil to use the embedded model only.
    public var llmURL: String?
    /// The external model's name (`AVATAR_LLM_MODEL`), e.g. `qwen2.5:1.5b`.
    public var llmModel: String?
    /// The external server's protocol (`AVATAR_LLM_API`): `ollama` or `openai`.
    public var llmAPI: LLMAPI
    /// Languages the external model converses in (`AVATAR_LLM_LANGUAGES`, comma-separated); empty = any.
    public var llmLanguages: [String]
    public var redis: RedisMode
    public var logLevel: String
    public var logFormat: LogFormat
    /// A user-installed SadTalker checkout for `generate --engine sadtalker` (`AVATAR_SADTALKER_DIR`; GPU only).
    public var sadTalkerDir: String?
    /// Its checkpoints (default: `checkpoints/` in the checkout).
    public var sadTalkerCheckpoints: String?
    /// The Python of SadTalker's own environment (torch + CUDA).
    public var sadTalkerPython: String
    /// The config file that was read, if any.
    public var configFile: String?
    /// An XTTS streaming server (`/clone_speaker`, `/tts`) for real voice cloning (`AVATAR_XTTS_URL`; GPU).
    public var xttsURL: String? = nil
    /// The fine-tuning command `avatar voice train` runs (`AVATAR_VOICE_TRAIN_COMMAND`), with
    /// `{dataset}`, `{output}` and `{name}` replaced; run through `/bin/sh -c`.
    public var voiceTrainCommand: String? = nil
    /// Whisper's encoder window (`AVATAR_ASR_WINDOW`): `short` (the clip + 1 s, at least 8 s; loops
    /// are re-decoded with 30 s) or `full` (the model's 30 s window, about 3× slower per utterance).
    public var asrWindow = "short"
    /// Origins allowed to call the API from a browser (`AVATAR_CORS_ORIGINS`, comma-separated; empty: CORS off).
    public var corsOrigins: [String] = []
    /// Whether rendered videos carry a visible "AI-generated" label (`AVATAR_VIDEO_LABEL`); the MP4 tags are always written.
    public var videoLabel = true
    /// Video jobs rendered at once (`AVATAR_VIDEO_WORKERS`); the renderer uses every core, so 1 suits 2 cores.
    public var videoWorkers = 1

    /// The Python interpreter of the engine venv.
    public var pythonPath: String { (venvDir as NSString).appendingPathComponent("bin/python") }
    /// The SQLite database file.
    public var databasePath: String { (dataDir as NSString).appendingPathComponent("avatar.sqlite") }
    /// The embedded LLM's GGUF file.
    public var llmModelPath: String { (modelsDir as NSString).appendingPathComponent("llm/SmolLM2-135M-Instruct.Q4_1.gguf") }

    /// Defaults for a home directory; used by `load` before the file and the environment are applied.
    public static func defaults(home: String) -> AvatarSettings {
        AvatarSettings(
            host: "127.0.0.1", port: 8080, homeDir: home,
            dataDir: home + "/data", modelsDir: home + "/models", venvDir: home + "/venv",
            webRoot: "Public", enginesEnabled: true, engineStartTimeout: 180, engineRequestTimeout: 120,
            llmEmbedded: true, llmThreads: 1, llmContextSize: 2048,
            llmURL: nil, llmModel: nil, llmAPI: .ollama, llmLanguages: [], redis: .managed,
            logLevel: "info", logFormat: .auto, sadTalkerDir: nil, sadTalkerCheckpoints: nil, sadTalkerPython: "python3",
            configFile: nil
        )
    }

    /// Reads and validates the configuration.
    ///
    /// - Parameter environment: the process environment (injected so tests can pass their own).
    /// - Throws: `SettingsError` with a one-line reason.
    public static func load(environment: [String: String] = ProcessInfo.processInfo.environment) async throws -> AvatarSettings {
        var avatarEnv: [String: String] = [:]
        for (key, value) in environment where key.hasPrefix("AVATAR_") {
            avatarEnv[String(key.dropFirst("AVATAR_".count))] = value
        }
        let userHome = environment["HOME"] ?? NSHomeDirectory()
        let home = expandTilde(avatarEnv["HOME"] ?? userHome + "/.avatar", userHome: userHome)
        let filePath = avatarEnv["CONFIG"].map { expandTilde($0, userHome: userHome) } ?? home + "/config.json"
        let explicitFile = avatarEnv["CONFIG"] != nil

        var providers: [any ConfigProvider] = [EnvironmentVariablesProvider(environmentVariables: avatarEnv)]
        do {
            providers.append(try await FileProvider<JSONSnapshot>(filePath: FilePath(filePath), allowMissing: !explicitFile))
        } catch {
            throw SettingsError(key: "config", env: "AVATAR_CONFIG", reason: "cannot read config file \(filePath): \(error)")
        }
        let reader = SettingsReader(config: ConfigReader(providers: providers))

        var settings = AvatarSettings.defaults(home: home)
        settings.configFile = FileManager.default.fileExists(atPath: filePath) ? filePath : nil
        settings.host = try reader.string("host") ?? settings.host
        settings.port = try reader.int("port", range: 1...65535) ?? settings.port
        settings.dataDir = try reader.path("data.dir", userHome: userHome) ?? settings.dataDir
        settings.modelsDir = try reader.path("models.dir", userHome: userHome) ?? settings.modelsDir
        settings.venvDir = try reader.path("venv.dir", userHome: userHome) ?? settings.venvDir
        settings.webRoot = try reader.path("web.root", userHome: userHome) ?? settings.webRoot
        settings.enginesEnabled = try reader.bool("engines.enabled") ?? settings.enginesEnabled
        settings.engineStartTimeout = try reader.double("engine.start_timeout", range: 1...3600) ?? settings.engineStartTimeout
        settings.engineRequestTimeout = try reader.double("engine.request_timeout", range: 1...3600) ?? settings.engineRequestTimeout
        settings.llmEmbedded = try reader.bool("llm.embedded") ?? settings.llmEmbedded
        settings.llmThreads = try reader.int("llm.threads", range: 1...256) ?? settings.llmThreads
        settings.llmContextSize = try reader.int("llm.context_size", range: 256...131072) ?? settings.llmContextSize
        if let url = try reader.string("llm.url"), !url.isEmpty {
            guard let parsed = URL(string: url), ["http", "https"].contains(parsed.scheme ?? ""), parsed.host?.isEmpty == false else {
                throw SettingsError(key: "llm.url", env: "AVATAR_LLM_URL", reason: "must be an http(s) URL such as http://127.0.0.1:11434, got '\(url)'")
            }
            settings.llmURL = url
        }
        settings.llmModel = try reader.string("llm.model").flatMap { $0.isEmpty ? nil : $0 }
        if let api = try reader.string("llm.api") {
            guard let parsed = LLMAPI(rawValue: api) else {
                throw SettingsError(key: "llm.api", env: "AVATAR_LLM_API", reason: "must be ollama or openai, got '\(api)'")
            }
            settings.llmAPI = parsed
        }
        if let languages = try reader.string("llm.languages") {
            let codes = languages.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }.filter { !$0.isEmpty }
            if let bad = codes.first(where: { $0.count != 2 || !$0.allSatisfy(\.isLetter) }) {
                throw SettingsError(key: "llm.languages", env: "AVATAR_LLM_LANGUAGES", reason: "must be comma-separated two-letter language codes such as en,ru, got '\(bad)'")
            }
            settings.llmLanguages = codes
        }
        if settings.llmURL != nil, settings.llmModel == nil {
            throw SettingsError(key: "llm.model", env: "AVATAR_LLM_MODEL", reason: "AVATAR_LLM_URL is set, so name the model to use there, e.g. AVATAR_LLM_MODEL=qwen2.5:1.5b")
        }
        if let redis = try reader.string("redis") {
            settings.redis = try parseRedis(redis)
        }
        if let level = try reader.string("log.level") {
            let levels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
            guard levels.contains(level) else {
                throw SettingsError(key: "log.level", env: "AVATAR_LOG_LEVEL", reason: "must be one of \(levels.joined(separator: ", ")), got '\(level)'")
            }
            settings.logLevel = level
        }
        if let format = try reader.string("log.format") {
            guard let parsed = LogFormat(rawValue: format) else {
                throw SettingsError(key: "log.format", env: "AVATAR_LOG_FORMAT", reason: "must be auto, json or text, got '\(format)'")
            }
            settings.logFormat = parsed
        }
        settings.sadTalkerDir = try reader.path("sadtalker.dir", userHome: userHome)
        settings.sadTalkerCheckpoints = try reader.path("sadtalker.checkpoints", userHome: userHome)
        settings.sadTalkerPython = try reader.path("sadtalker.python", userHome: userHome) ?? settings.sadTalkerPython
        if let url = try reader.string("xtts.url"), !url.isEmpty {
            guard let parsed = URL(string: url), ["http", "https"].contains(parsed.scheme ?? ""), parsed.host?.isEmpty == false else {
                throw SettingsError(key: "xtts.url", env: "AVATAR_XTTS_URL", reason: "must be an http(s) URL such as http://127.0.0.1:8000, got '\(url)'")
            }
            settings.xttsURL = url.hasSuffix("/") ? String(url.dropLast()) : url
        }
        if let window = try reader.string("asr.window") {
            guard ["short", "full"].contains(window) else {
                throw SettingsError(key: "asr.window", env: "AVATAR_ASR_WINDOW", reason: "must be short or full, got '\(window)'")
            }
            settings.asrWindow = window
        }
        if let origins = try reader.string("cors.origins") {
            let list = origins.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            if let bad = list.first(where: { $0 != "*" && !(($0.hasPrefix("http://") || $0.hasPrefix("https://")) && !$0.hasSuffix("/")) }) {
                throw SettingsError(key: "cors.origins", env: "AVATAR_CORS_ORIGINS", reason: "must be comma-separated origins such as http://localhost:3000 (scheme and host, no path), got '\(bad)'")
            }
            settings.corsOrigins = list
        }
        settings.videoLabel = try reader.bool("video.label") ?? settings.videoLabel
        settings.videoWorkers = try reader.int("video.workers", range: 1...8) ?? settings.videoWorkers
        settings.voiceTrainCommand = try reader.string("voice.train_command").flatMap { $0.trimmingCharacters(in: .whitespaces).isEmpty ? nil : $0 }
        guard !settings.host.isEmpty else {
            throw SettingsError(key: "host", env: "AVATAR_HOST", reason: "must not be empty")
        }
        return settings
    }

    /// Creates the data directory if needed and proves it is writable.
    ///
    /// Kept separate from `load` so commands that never write (`doctor`) can still read the configuration.
    public func prepareDataDirectory() throws {
        let fm = FileManager.default
        do {
            try fm.createDirectory(atPath: dataDir, withIntermediateDirectories: true)
            let probe = (dataDir as NSString).appendingPathComponent(".write-probe-\(getpid())")
            guard fm.createFile(atPath: probe, contents: Data("ok".utf8)) else {
                throw SettingsError(key: "data.dir", env: "AVATAR_DATA_DIR", reason: "data directory \(dataDir) is not writable; choose another with AVATAR_DATA_DIR or fix its permissions")
            }
            try? fm.removeItem(atPath: probe)
        } catch let error as SettingsError {
            throw error
        } catch {
            throw SettingsError(key: "data.dir", env: "AVATAR_DATA_DIR", reason: "cannot create data directory \(dataDir) (\(Self.shortReason(error))); choose another with AVATAR_DATA_DIR or fix its permissions")
        }
    }

    static func parseRedis(_ value: String) throws -> RedisMode {
        switch value {
        case "managed": return .managed
        case "off", "none", "": return .off
        default:
            let invalid = SettingsError(key: "redis", env: "AVATAR_REDIS", reason: "must be 'managed', 'off' or redis://HOST:PORT, got '\(value)'")
            guard let url = URL(string: value), url.scheme == "redis", let host = url.host, !host.isEmpty else { throw invalid }
            let port = url.port ?? 6379
            guard (1...65535).contains(port) else { throw invalid }
            return .external(host: host, port: port)
        }
    }

    static func expandTilde(_ path: String, userHome: String) -> String {
        if path == "~" { return userHome }
        if path.hasPrefix("~/") { return userHome + path.dropFirst(1) }
        return path
    }

    static func shortReason(_ error: any Error) -> String {
        let ns = error as NSError
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain,
           let code = POSIXErrorCode(rawValue: Int32(underlying.code)) {
            return String(cString: strerror(code.rawValue))
        }
        return ns.localizedDescription
    }
}

/// A configuration value that is missing its mark, with the key, its variable and the reason on one line.
public struct SettingsError: AvatarError {
    public var key: String
    public var env: String
    public var reason: String

    public init(key: String, env: String, reason: String) {
        self.key = key
        self.env = env
        self.reason = reason
    }

    public var userMessage: String { "invalid configuration \(key) (\(env)): \(reason)" }
    public var retryable: Bool { false }
}

/// Typed reads with readable errors: the library's typed accessors return nil for a value of the wrong
/// type, so a value that is present but unparsable is read back as a string and reported.
struct SettingsReader {
    let config: ConfigReader

    static func envName(_ key: String) -> String {
        "AVATAR_" + key.uppercased().replacingOccurrences(of: ".", with: "_")
    }

    func string(_ key: String) throws -> String? {
        config.string(forKey: ConfigKey(key))
    }

    func path(_ key: String, userHome: String) throws -> String? {
        guard let value = config.string(forKey: ConfigKey(key)) else { return nil }
        guard !value.isEmpty else {
            throw SettingsError(key: key, env: Self.envName(key), reason: "must not be empty")
        }
        return AvatarSettings.expandTilde(value, userHome: userHome)
    }

    func int(_ key: String, range: ClosedRange<Int>) throws -> Int? {
        try number(key, range: range, typed: config.int(forKey: ConfigKey(key)), expected: "an integer from \(range.lowerBound) to \(range.upperBound)") { Int($0) }
    }

    func double(_ key: String, range: ClosedRange<Double>) throws -> Double? {
        let typed = config.double(forKey: ConfigKey(key)) ?? config.int(forKey: ConfigKey(key)).map(Double.init)
        return try number(key, range: range, typed: typed, expected: "a number of seconds") { Double($0) }
    }

    /// A typed value, or else the string form parsed by `parse`; either way checked against `range`.
    private func number<N: Comparable>(_ key: String, range: ClosedRange<N>, typed: N?, expected: String, parse: (String) -> N?) throws -> N? {
        let value: N
        if let typed {
            value = typed
        } else if let raw = config.string(forKey: ConfigKey(key)) {
            guard let parsed = parse(raw.trimmingCharacters(in: .whitespaces)) else {
                throw SettingsError(key: key, env: Self.envName(key), reason: "must be \(expected), got '\(raw)'")
            }
            value = parsed
        } else {
            return nil
        }
        guard range.contains(value) else {
            throw SettingsError(key: key, env: Self.envName(key), reason: "must be from \(range.lowerBound) to \(range.upperBound), got \(value)")
        }
        return value
    }

    func bool(_ key: String) throws -> Bool? {
        if let typed = config.bool(forKey: ConfigKey(key)) { return typed }
        guard let raw = config.string(forKey: ConfigKey(key)) else { return nil }
        switch raw.lowercased() {
        case "1", "true", "yes", "on": return true
        case "0", "false", "no", "off": return false
        default:
            throw SettingsError(key: key, env: Self.envName(key), reason: "must be true or false, got '\(raw)'")
        }
    }
}
