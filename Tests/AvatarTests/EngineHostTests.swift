import AvatarCache
import AvatarCore
import AvatarEngines
import AvatarServer
import Foundation
import Logging
import Testing

/// The real engine host with the real offline models: ASR, TTS, landmarks, and the embedded LLM.
@Suite("Engines (real models)", .serialized)
struct EngineHostTests {
    /// Everyday sentences a child might say, spoken by Festival ru (no real Russian recording ships in any package).
    static let russianSentences = [
        "Привет, как у тебя дела сегодня?",
        "Я очень люблю читать книги и гулять в парке.",
        "Завтра мы поедем на море всей семьёй.",
        "Моя любимая еда это пицца и мороженое.",
        "Меня зовут Анна, мне двенадцать лет.",
        "Какая сегодня погода на улице?",
        "Расскажи мне, пожалуйста, интересную историю.",
        "Я хочу научиться играть на гитаре.",
        "У моей подруги есть маленькая белая собака.",
        "Летом мы всегда ездим к бабушке в деревню.",
        "Спасибо, мне очень понравился этот фильм.",
        "Давай поговорим о космосе и звёздах.",
    ]

    @Test("English LibriVox recordings: WER ≤ 10 %")
    func englishRecordings() async throws {
        let runtime = try await EngineFixture.shared.runtime()
        let host = try #require(runtime.engineHost)
        var errors = 0
        var words = 0
        for clip in try TestData.librivoxClips() {
            let audio = try #require(FileManager.default.contents(atPath: clip.path))
            let result = try await host.transcribe(audio: audio, filename: "clip.wav")
            let reference = normalize(clip.text)
            errors += editDistance(reference, normalize(result.text))
            words += reference.count
            #expect(result.language == "en")
            #expect(!result.segments.isEmpty)
            #expect(result.duration > 2)
        }
        #expect(words > 50)
        let wer = Double(errors) / Double(words)
        print("English LibriVox WER: \(String(format: "%.1f", wer * 100)) % over \(words) words")
        #expect(wer <= 0.10)
    }

    @Test("Russian speech, auto-detected: language ru, WER ≤ 15 %")
    func russianAutoDetect() async throws {
        let runtime = try await EngineFixture.shared.runtime()
        let host = try #require(runtime.engineHost)
        var errors = 0
        var words = 0
        for sentence in Self.russianSentences {
            let audio = try await host.speech(text: sentence, voice: "msu_ru_nsh")
            let result = try await host.transcribe(audio: audio)
            #expect(result.language == "ru", "detected \(result.language) for \(sentence)")
            #expect(result.languageProbability > 0.5)
            print("ru: \(sentence) → \(result.text) [\(result.language) \(String(format: "%.2f", result.languageProbability))]")
            errors += editDistance(normalize(sentence), normalize(result.text))
            words += normalize(sentence).count
        }
        let wer = Double(errors) / Double(words)
        print("Russian (Festival ru → auto-detect) WER: \(String(format: "%.1f", wer * 100)) %")
        #expect(wer <= 0.15)
    }

    @Test("TTS → ASR round trip for every voice: WER ≤ 15 %", arguments: [
        ("en_US-joe-medium", "en", "The weather is lovely today, so we are going for a walk in the park."),
        ("slt", "en", "My favorite books are about dragons, castles and brave knights."),
        ("msu_ru_nsh", "ru", "Сегодня хорошая погода, и мы пойдём гулять в парк."),
    ])
    func roundTrip(voice: String, language: String, text: String) async throws {
        let runtime = try await EngineFixture.shared.runtime()
        let host = try #require(runtime.engineHost)
        let audio = try await host.speech(text: text, voice: voice)
        let info = try #require(WAVInfo(audio), "not a WAV")
        #expect(info.duration > 1.5)
        let result = try await host.transcribe(audio: audio, language: language)
        let wer = wordErrorRate(reference: text, hypothesis: result.text)
        print("round trip \(voice): WER \(String(format: "%.1f", wer * 100)) % — \(result.text)")
        #expect(wer <= 0.15)
    }

    @Test("Voices list names language and gender")
    func voices() async throws {
        let host = try #require(try await EngineFixture.shared.runtime().engineHost)
        let voices = try await host.voices()
        let byID = Dictionary(uniqueKeysWithValues: voices.map { ($0.id, $0) })
        #expect(byID["en_US-joe-medium"]?.language == "en")
        #expect(byID["en_US-joe-medium"]?.gender == "male")
        #expect(byID["slt"]?.gender == "female")
        #expect(byID["msu_ru_nsh"]?.language == "ru")
    }

    @Test("Bad TTS and ASR input gets a clear error")
    func badAudioInput() async throws {
        let host = try #require(try await EngineFixture.shared.runtime().engineHost)
        await #expect { try await host.speech(text: "hello", voice: "nobody") } throws: { error in
            (error as? EngineError)?.code == "unknown_voice"
        }
        await #expect { try await host.speech(text: "   ", voice: "slt") } throws: { error in
            guard case .rejected(_, let status, _, _) = error as? EngineError else { return false }
            return status == 400
        }
        var noise = Data(count: 4096)
        for index in noise.indices { noise[index] = UInt8.random(in: 0...255) }
        await #expect { try await host.transcribe(audio: noise, filename: "noise.wav") } throws: { error in
            (error as? EngineError)?.code == "unsupported_media"
        }
        await #expect { try await host.transcribe(audio: Data(), filename: "empty.wav") } throws: { error in
            guard case .rejected(_, let status, _, _) = error as? EngineError else { return false }
            return status == 400
        }
    }

    @Test("Landmarks on astronaut.png: 478 points inside the image, mouth inside the face box")
    func landmarks() async throws {
        let runtime = try await EngineFixture.shared.runtime()
        let host = try #require(runtime.engineHost)
        let photo = try TestData.skimage("astronaut.png", settings: runtime.settings)
        let face = try await host.landmarks(image: photo)
        #expect(face.landmarks.count == 478)
        #expect(face.width == 512 && face.height == 512)
        #expect(face.faces == 1)
        for point in face.landmarks {
            #expect(point[0] >= 0 && point[0] < Double(face.width) && point[1] >= 0 && point[1] < Double(face.height))
        }
        // MediaPipe's lip contour: outer upper lip 61…291 through 0, lower through 17.
        for index in [0, 13, 14, 17, 61, 78, 291, 308] {
            let point = face.landmarks[index]
            #expect(face.faceBox.contains(x: point[0], y: point[1]), "mouth point \(index) outside the face box")
        }
        #expect(face.faceBox.width > 80 && face.faceBox.height > 80)
        #expect(face.blendshapes["jawOpen"] != nil)
        #expect(abs(face.headPose.yaw) < 45)
    }

    @Test("No face (a cat, a blank image) and corrupt images give clear errors")
    func noFace() async throws {
        let runtime = try await EngineFixture.shared.runtime()
        let host = try #require(runtime.engineHost)
        let cat = try TestData.skimage("chelsea.png", settings: runtime.settings)
        await #expect { try await host.landmarks(image: cat) } throws: { error in
            (error as? EngineError)?.code == "no_face" && (error as? EngineError)?.userMessage.lowercased().contains("face") == true
        }
        let blank = try blankPNG()
        await #expect { try await host.landmarks(image: blank) } throws: { error in
            (error as? EngineError)?.code == "no_face"
        }
        await #expect { try await host.landmarks(image: Data("definitely not an image".utf8)) } throws: { error in
            (error as? EngineError)?.code == "unsupported_media"
        }
    }

    @Test("One streamed chat completion from the embedded LLM")
    func streamedChat() async throws {
        let runtime = try await EngineFixture.shared.runtime()
        let llm = try #require(runtime.embeddedLLM)
        var deltas: [String] = []
        for try await delta in llm.stream([.system("You are a friendly assistant."), .user("Say hello in one short sentence.")], options: ChatOptions(maxTokens: 32, temperature: 0)) {
            deltas.append(delta)
        }
        let text = deltas.joined()
        print("LLM: \(text)")
        #expect(deltas.count > 1, "expected a stream of several deltas")
        #expect(text.trimmingCharacters(in: .whitespacesAndNewlines).count > 2)
    }

    @Test("One engine that cannot load makes the host degraded, not down: ASR serves, TTS says why, /readyz names it")
    func degradedHost() async throws {
        let shared = try await EngineFixture.shared.runtime()
        // A models folder with every model but Piper's voice: the TTS engine fails to load.
        let models = temporaryDirectory("avatar-models-partial")
        defer { try? FileManager.default.removeItem(atPath: models) }
        for entry in try FileManager.default.contentsOfDirectory(atPath: shared.settings.modelsDir) where entry != "piper" {
            try FileManager.default.createSymbolicLink(atPath: models + "/" + entry, withDestinationPath: shared.settings.modelsDir + "/" + entry)
        }
        var environment = ProcessInfo.processInfo.environment
        environment["AVATAR_DATA_DIR"] = temporaryDirectory("avatar-degraded")
        environment["AVATAR_MODELS_DIR"] = models
        environment["AVATAR_LLM_EMBEDDED"] = "false"
        environment["AVATAR_REDIS"] = "off"
        let settings = try await AvatarSettings.load(environment: environment)
        let runtime = try AvatarRuntime.make(settings: settings, logger: Logger(label: "test-degraded"))
        let supervisor = try #require(runtime.supervisor)
        let host = try #require(runtime.engineHost)
        let supervision = Task { try await supervisor.run() }
        defer { supervision.cancel() }
        let deadline = ContinuousClock.now + .seconds(settings.engineStartTimeout)
        var health: EngineHostHealth?
        while ContinuousClock.now < deadline {
            health = try? await host.health()
            if let status = health?.status, status != "loading" { break }
            try await Task.sleep(for: .milliseconds(300))
        }
        #expect(health?.status == "degraded", "\(String(describing: health?.status))")
        #expect(health?.failed.map(\.name) == ["tts"])
        // The supervisor keeps it (200), so the working engines serve.
        let clip = try #require(try TestData.librivoxClips().first)
        let text = try await host.transcribe(audio: try #require(FileManager.default.contents(atPath: clip.path))).text
        #expect(wordErrorRate(reference: clip.text, hypothesis: text) < 0.2)
        await #expect { _ = try await host.speech(text: "Hello.", voice: "en_US-joe-medium") } throws: { error in
            guard case .rejected(_, let status, let code, _)? = error as? EngineError else { return false }
            return status == 503 && code == "engine_unavailable"
        }
        let component = try #require(await runtime.readiness().first { $0.name == "engine-host" })
        #expect(component.state == .degraded)
        #expect(component.reason?.contains("tts") == true)
        #expect(component.details["capability.asr"] == "ready")
        #expect(await supervisor.statuses().first { $0.name == "engine-host" }?.details["restarts"] == "0")
    }

    @Test("Managed Redis serves the cache")
    func managedRedis() async throws {
        let runtime = try await EngineFixture.shared.runtime()
        let status = await runtime.cache.status()
        #expect(status.state == .ready)
        #expect(status.details["backend"] == "redis+memory")
        let key = UUID().uuidString
        await runtime.cache.set("test", key, Array("value".utf8), ttl: 60)
        let value = await runtime.cache.get("test", key)
        #expect(value == Array("value".utf8))
        // The value reached the real redis-server, not only the memory level.
        let redis = try #require(runtime.supervisor?.engine(named: "redis"))
        let port = try #require(URL(string: try await redis.resolve())?.port)
        let stored = try await RedisClient(host: "127.0.0.1", port: port).get("avatar:test:\(key)")
        #expect(stored == Array("value".utf8))
    }

    /// A 256×256 white PNG made with ffmpeg.
    func blankPNG() throws -> Data {
        let path = temporaryDirectory() + "/blank.png"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/ffmpeg")
        process.arguments = ["-v", "error", "-f", "lavfi", "-i", "color=c=white:s=256x256", "-frames:v", "1", "-y", path]
        try process.run()
        process.waitUntilExit()
        return try #require(FileManager.default.contents(atPath: path))
    }
}
