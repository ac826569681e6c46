import AvatarCore
import Foundation
import Testing

@Suite("Settings")
struct SettingsTests {
    let home = temporaryDirectory("avatar-home")

    @Test("Defaults live under AVATAR_HOME")
    func defaults() async throws {
        let settings = try await AvatarSettings.load(environment: ["HOME": "/nonexistent", "AVATAR_HOME": home])
        #expect(settings.port == 8080)
        #expect(settings.host == "127.0.0.1")
        #expect(settings.dataDir == home + "/data")
        #expect(settings.redis == .managed)
        #expect(settings.llmThreads == 1)
        #expect(settings.asrWindow == "short")
        let full = try await AvatarSettings.load(environment: ["HOME": "/nonexistent", "AVATAR_HOME": home, "AVATAR_ASR_WINDOW": "full"])
        #expect(full.asrWindow == "full")
    }

    @Test("Environment beats the config file, which beats the defaults")
    func precedence() async throws {
        let file = home + "/config.json"
        try Data(#"{"port": 9000, "llm": {"threads": 2}, "redis": "off", "log": {"level": "debug"}}"#.utf8).write(to: URL(fileURLWithPath: file))
        let fromFile = try await AvatarSettings.load(environment: ["AVATAR_HOME": home])
        #expect(fromFile.port == 9000)
        #expect(fromFile.llmThreads == 2)
        #expect(fromFile.redis == .off)
        #expect(fromFile.logLevel == "debug")
        #expect(fromFile.configFile == file)
        let fromEnv = try await AvatarSettings.load(environment: ["AVATAR_HOME": home, "AVATAR_PORT": "9100", "AVATAR_REDIS": "redis://127.0.0.1:6390"])
        #expect(fromEnv.port == 9100)
        #expect(fromEnv.llmThreads == 2)
        #expect(fromEnv.redis == .external(host: "127.0.0.1", port: 6390))
    }

    @Test("Bad values give a one-line reason naming the variable", arguments: [
        ("AVATAR_PORT", "abc", "AVATAR_PORT"),
        ("AVATAR_PORT", "70000", "AVATAR_PORT"),
        ("AVATAR_LLM_THREADS", "many", "AVATAR_LLM_THREADS"),
        ("AVATAR_ENGINES_ENABLED", "maybe", "AVATAR_ENGINES_ENABLED"),
        ("AVATAR_REDIS", "http://x", "AVATAR_REDIS"),
        ("AVATAR_LOG_LEVEL", "loud", "AVATAR_LOG_LEVEL"),
        ("AVATAR_LLM_URL", "ollama.local", "AVATAR_LLM_URL"),
        ("AVATAR_LLM_API", "grpc", "AVATAR_LLM_API"),
        ("AVATAR_LLM_LANGUAGES", "english", "AVATAR_LLM_LANGUAGES"),
        ("AVATAR_ASR_WINDOW", "tiny", "AVATAR_ASR_WINDOW"),
    ])
    func badValues(variable: String, value: String, named: String) async throws {
        do {
            _ = try await AvatarSettings.load(environment: ["AVATAR_HOME": home, variable: value])
            Issue.record("\(variable)=\(value) was accepted")
        } catch let error as SettingsError {
            #expect(error.userMessage.contains(named))
            #expect(error.userMessage.contains(value))
            #expect(!error.userMessage.contains("\n"))
        }
    }

    @Test("An external model: URL, model, protocol and languages; a URL without a model is an error")
    func externalModel() async throws {
        let settings = try await AvatarSettings.load(environment: [
            "AVATAR_HOME": home, "AVATAR_LLM_URL": "http://127.0.0.1:11434", "AVATAR_LLM_MODEL": "qwen2.5:1.5b", "AVATAR_LLM_LANGUAGES": "en, RU",
        ])
        #expect(settings.llmURL == "http://127.0.0.1:11434")
        #expect(settings.llmModel == "qwen2.5:1.5b")
        #expect(settings.llmAPI == .ollama)
        #expect(settings.llmLanguages == ["en", "ru"])
        let defaults = try await AvatarSettings.load(environment: ["AVATAR_HOME": home])
        #expect(defaults.llmURL == nil)
        do {
            _ = try await AvatarSettings.load(environment: ["AVATAR_HOME": home, "AVATAR_LLM_URL": "http://127.0.0.1:11434"])
            Issue.record("AVATAR_LLM_URL without AVATAR_LLM_MODEL was accepted")
        } catch let error as SettingsError {
            #expect(error.userMessage.contains("AVATAR_LLM_MODEL"))
        }
    }

    @Test("A missing explicit config file is an error; a malformed one too")
    func configFileErrors() async throws {
        await #expect(throws: SettingsError.self) {
            _ = try await AvatarSettings.load(environment: ["AVATAR_HOME": home, "AVATAR_CONFIG": home + "/nope.json"])
        }
        let bad = home + "/bad.json"
        try Data("{ not json".utf8).write(to: URL(fileURLWithPath: bad))
        await #expect(throws: SettingsError.self) {
            _ = try await AvatarSettings.load(environment: ["AVATAR_HOME": home, "AVATAR_CONFIG": bad])
        }
    }

    @Test("An unwritable data directory is reported with what to do")
    func unwritableDataDir() async throws {
        let file = home + "/a-file"
        #expect(FileManager.default.createFile(atPath: file, contents: Data()))
        let settings = try await AvatarSettings.load(environment: ["AVATAR_HOME": home, "AVATAR_DATA_DIR": file + "/data"])
        #expect {
            try settings.prepareDataDirectory()
        } throws: { error in
            let message = (error as? SettingsError)?.userMessage ?? ""
            return message.contains("AVATAR_DATA_DIR") && !message.contains("\n")
        }
    }
}
