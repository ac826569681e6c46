import AsyncHTTPClient
import AvatarCache
import AvatarCore
import AvatarEngines
import Foundation

/// The engines `avatar serve` supervises, built from the settings.
enum EngineCatalog {
    /// Environment for every engine: no hub downloads at run time, unbuffered logs.
    /// The engine code of the checkout `avatar serve` runs from comes first on the import path, so a venv shared
    /// by two checkouts (whose `.pth` names the one that ran `avatar setup` last) still runs this checkout's code.
    static let offlineEnvironment: [String: String] = {
        var environment = [
            "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1",
        ]
        let engineCode = FileManager.default.currentDirectoryPath + "/engine"
        if FileManager.default.fileExists(atPath: engineCode + "/avatar_engine/__init__.py") {
            environment["PYTHONPATH"] = engineCode
        }
        return environment
    }()

    static func engineHost(_ settings: AvatarSettings, client: HTTPClient) -> ProcessSpec {
        let python = settings.pythonPath
        return ProcessSpec(
            name: "engine-host", executable: python,
            arguments: { port in
                ["-m", "avatar_engine.reaper", "--", python, "-m", "avatar_engine",
                 "--host", "127.0.0.1", "--port", String(port), "--models-dir", settings.modelsDir,
                 "--asr-window", settings.asrWindow]
            },
            environment: offlineEnvironment,
            logFile: logPath(settings, "engine-host"),
            probe: { port in await httpOK(client, "http://127.0.0.1:\(port)/health") },
            startTimeout: settings.engineStartTimeout
        )
    }

    static func llm(_ settings: AvatarSettings, client: HTTPClient) -> ProcessSpec {
        let python = settings.pythonPath
        return ProcessSpec(
            name: "llm", executable: python,
            arguments: { port in
                ["-m", "avatar_engine.reaper", "--", python, "-m", "llama_cpp.server",
                 "--model", settings.llmModelPath, "--model_alias", embeddedLLMModel,
                 "--host", "127.0.0.1", "--port", String(port),
                 "--n_threads", String(settings.llmThreads), "--n_threads_batch", String(settings.llmThreads),
                 "--n_ctx", String(settings.llmContextSize), "--verbose", "False",
                 // By default any request that arrives during a stream — the supervisor's liveness probe
                 // of /v1/models every 5 s — makes the server end that stream early with [DONE].
                 "--interrupt_requests", "False"]
            },
            environment: offlineEnvironment,
            logFile: logPath(settings, "llm"),
            probe: { port in await httpOK(client, "http://127.0.0.1:\(port)/v1/models") },
            startTimeout: settings.engineStartTimeout
        )
    }

    static func redis(_ settings: AvatarSettings, executable: String) -> ProcessSpec {
        let python = settings.pythonPath
        return ProcessSpec(
            name: "redis", executable: python,
            arguments: { port in
                ["-m", "avatar_engine.reaper", "--", executable, "--port", String(port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--protected-mode", "yes", "--maxmemory", "256mb",
                 "--maxmemory-policy", "allkeys-lru"]
            },
            environment: offlineEnvironment,
            logFile: logPath(settings, "redis"),
            probe: { port in (try? await RedisClient(host: "127.0.0.1", port: port, timeout: .milliseconds(500)).ping()) ?? false },
            startTimeout: 30, scheme: "redis"
        )
    }

    /// The model name the embedded llama-cpp-python server answers to.
    static let embeddedLLMModel = "smollm2-135m-instruct"

    static func logPath(_ settings: AvatarSettings, _ name: String) -> String {
        (settings.dataDir as NSString).appendingPathComponent("logs/\(name).log")
    }

    static func httpOK(_ client: HTTPClient, _ url: String) async -> Bool {
        var request = HTTPClientRequest(url: url)
        request.method = .GET
        guard let response = try? await client.execute(request, timeout: .seconds(2)) else { return false }
        _ = try? await response.body.collect(upTo: 1024 * 1024)
        return response.status.code == 200
    }
}
