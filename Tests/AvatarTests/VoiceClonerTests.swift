import AvatarCore
import AvatarEngines
import AvatarServer
import AvatarStore
import AvatarVoice
import Foundation
import Testing

/// Test recordings made from the real LibriVox clips (one male reader of *Sense and Sensibility*).
enum VoiceTestAudio {
    static func clip(_ id: String) -> String { TestData.librivox + "/sense_and_sensibility_01_austen_64kb-\(id).wav" }
    /// Enrollment clips for the profile; 0930 is held out for the similarity test.
    static let enrollment = ["0870", "0880", "0890", "0920"].map(clip)
    static let heldOut = clip("0930")

    static func ffmpeg(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"] + arguments
        process.standardInput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw TestFailure("ffmpeg \(arguments) failed") }
    }

    /// 16-bit mono samples of a canonical WAV.
    static func samples(_ path: String) throws -> (samples: [Int16], rate: Int) {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        guard let info = WAVInfo(data), info.bitsPerSample == 16, info.channels == 1 else { throw TestFailure("\(path) is not 16-bit mono") }
        let body = data.suffix(info.dataBytes)
        return (stride(from: body.startIndex, to: body.endIndex - 1, by: 2).map { Int16(bitPattern: UInt16(body[$0]) | UInt16(body[$0 + 1]) << 8) }, info.sampleRate)
    }

    static func writeWAV(_ samples: [Int16], rate: Int, to path: String) throws {
        var data = Data()
        func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
        data.append(contentsOf: Array("RIFF".utf8)); put(UInt32(36 + samples.count * 2))
        data.append(contentsOf: Array("WAVEfmt ".utf8)); put(UInt32(16)); put(UInt16(1)); put(UInt16(1))
        put(UInt32(rate)); put(UInt32(rate * 2)); put(UInt16(2)); put(UInt16(16))
        data.append(contentsOf: Array("data".utf8)); put(UInt32(samples.count * 2))
        for s in samples { put(s) }
        try data.write(to: URL(fileURLWithPath: path))
    }

    /// The clip × `gain` (clipped to 16 bits) plus white noise at `snr` dB below the clip's speech RMS,
    /// then made stereo at 44.1 kHz by ffmpeg.
    static func stereoClippedNoisy(from clip: String, gain: Double = 8, snr: Double = 5, in dir: String) throws -> String {
        let (pcm, rate) = try samples(clip)
        let rms = (pcm.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(pcm.count)).squareRoot()
        let noiseRMS = rms * pow(10, -snr / 20)
        var rng = SplitMix(seed: 42)
        let mixed = pcm.map { s -> Int16 in
            // Uniform white noise with the wanted RMS (uniform on ±a has RMS a/√3).
            let noise = (rng.nextUnit() * 2 - 1) * noiseRMS * 3.0.squareRoot()
            return Int16(max(-32768, min(32767, (Double(s) + noise) * gain)))
        }
        let mono = dir + "/noisy-mono.wav"
        try writeWAV(mixed, rate: rate, to: mono)
        let stereo = dir + "/stereo-44k-clipped-noisy.wav"
        // pan copies the channel at full level (`-ac 2` would upmix at −3 dB and undo the clipping).
        try ffmpeg(["-i", mono, "-af", "pan=stereo|c0=c0|c1=c0", "-ar", "44100", "-c:a", "pcm_s16le", stereo])
        return stereo
    }

    struct SplitMix {
        var state: UInt64
        init(seed: UInt64) { state = seed }
        mutating func nextUnit() -> Double {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return Double((z ^ (z >> 31)) >> 11) / Double(1 << 53)
        }
    }
}

/// The voice cloner against the real engine host (ffprobe/ffmpeg, Silero VAD, WORLD, Resemblyzer, Piper, Whisper).
@Suite("VoiceCloner", .serialized)
struct VoiceClonerTests {
    static func cloner(store: AvatarDatabase? = nil, xtts: XTTSClient? = nil) async throws -> (VoiceCloner, AvatarRuntime) {
        let runtime = try await EngineFixture.shared.runtime()
        let host = try #require(runtime.engineHost)
        return (VoiceCloner(host: host, store: store, dataDir: temporaryDirectory("avatar-voices"), xtts: xtts), runtime)
    }

    @Test("a clean mono LibriVox clip passes; stereo 44.1 kHz clipped noisy is rejected for clipping and noise")
    func validation() async throws {
        let (cloner, _) = try await Self.cloner()
        let dir = temporaryDirectory("voice-validate")
        let bad = try VoiceTestAudio.stereoClippedNoisy(from: VoiceTestAudio.heldOut, in: dir)
        let stereoClean = dir + "/stereo-44k-clean.wav"
        try VoiceTestAudio.ffmpeg(["-i", VoiceTestAudio.heldOut, "-ac", "2", "-ar", "44100", "-c:a", "pcm_s16le", stereoClean])
        let reports = await cloner.validate([VoiceTestAudio.heldOut, bad, stereoClean], workDir: dir + "/out")
        for report in reports { print(report.summary) }

        let clean = reports[0]
        #expect(clean.verdict == .accepted, "\(clean.summary)")
        #expect(clean.problems.isEmpty && clean.conversions.isEmpty)
        #expect(clean.convertedPath != nil)

        let noisy = reports[1]
        #expect(noisy.verdict == .rejected)
        let codes = Set(noisy.problems.map(\.code))
        #expect(codes.contains("clipped"), "\(noisy.summary)")
        #expect(codes.contains("noisy"), "\(noisy.summary)")
        #expect(noisy.analysis?.channels == 2 && noisy.analysis?.sampleRate == 44100)
        #expect(noisy.problems.allSatisfy { $0.message.contains("record") }, "each reason says what to do")

        let converted = reports[2]
        #expect(converted.verdict == .converted, "\(converted.summary)")
        #expect(converted.conversions.contains { $0.contains("stereo → mono") })
        #expect(converted.conversions.contains { $0.contains("44100 Hz → 22050 Hz") })
        let out = try Data(contentsOf: URL(fileURLWithPath: try #require(converted.convertedPath)))
        let info = try #require(WAVInfo(out))
        #expect(info.channels == 1 && info.sampleRate == 22050 && info.bitsPerSample == 16)
    }

    @Test("bad inputs: empty, 0-length WAV, 2-hour file, random bytes, wrong extension, missing file → a clear reason each")
    func badInputs() async throws {
        let dir = temporaryDirectory("voice-bad")
        let empty = dir + "/empty.wav"
        _ = FileManager.default.createFile(atPath: empty, contents: Data())
        let zeroLength = dir + "/zero-length.wav"
        try VoiceTestAudio.writeWAV([], rate: 16000, to: zeroLength)
        let twoHours = dir + "/two-hours.flac"
        try VoiceTestAudio.ffmpeg(["-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono", "-t", "7200", "-c:a", "flac", twoHours])
        let random = dir + "/random.wav"
        var rng = VoiceTestAudio.SplitMix(seed: 7)
        try Data((0..<65536).map { _ in UInt8(rng.nextUnit() * 255) }).write(to: URL(fileURLWithPath: random))
        let wrongExtension = dir + "/speech.mp3"
        try FileManager.default.copyItem(atPath: VoiceTestAudio.heldOut, toPath: wrongExtension)
        let short = dir + "/short.wav"
        try VoiceTestAudio.ffmpeg(["-i", VoiceTestAudio.heldOut, "-t", "1.0", "-c:a", "pcm_s16le", short])

        let (cloner, _) = try await Self.cloner()
        let started = ContinuousClock.now
        let reports = await cloner.validate([empty, zeroLength, twoHours, random, wrongExtension, short, dir + "/missing.wav"], workDir: dir + "/out")
        for report in reports { print(report.summary) }
        #expect(ContinuousClock.now - started < .seconds(60), "the 2-hour file must be rejected without decoding it")
        let codes = reports.map { $0.problems.first?.code }
        #expect(codes[0] == "empty")
        #expect(codes[1] == "empty" || codes[1] == "unreadable", "\(reports[1].summary)")
        #expect(codes[2] == "too_long")
        #expect(reports[2].problems.first?.message.contains("split") == true)
        #expect(codes[3] == "unreadable")
        #expect(reports[4].usable, "a WAV named .mp3 is read by content")
        #expect(reports[4].notes.contains { $0.contains("does not match") })
        #expect(codes[5] == "too_short")
        #expect(codes[6] == "unreadable")
        #expect(reports.enumerated().allSatisfy { $0.offset == 4 || $0.element.verdict == .rejected })

        // createVoice with nothing usable fails with every sample's reason.
        await #expect(throws: VoiceError.self) {
            _ = try await cloner.createVoice(name: "nothing", language: "en", samples: [empty, random, twoHours])
        }
        await #expect {
            _ = try await cloner.createVoice(name: "nothing", language: "en", samples: [empty, random])
        } throws: { error in
            guard let error = error as? VoiceError else { return false }
            return error.userMessage.contains("empty.wav") && error.userMessage.contains("random.wav")
        }
        await #expect(throws: VoiceError.unsupportedLanguage("de", supported: ["en", "ru"])) {
            _ = try await cloner.createVoice(name: "german", language: "de", samples: VoiceTestAudio.enrollment)
        }
        await #expect(throws: VoiceError.emptyText) {
            let profile = VoiceProfile(name: "x", language: "en", gender: "male", embedding: [1], f0MedianHz: 100, f0LogMean: 4.6, f0LogStd: 0.2,
                                       envelope: [], baseVoice: "en_US-joe-medium", formantRatio: 1, calibrationBaseSimilarity: 0,
                                       calibrationMatchSimilarity: 0, sampleSeconds: 0, sampleCount: 0, referencePath: "")
            _ = try await cloner.synthesize("   ", profile: profile)
        }
    }

    @Test("createVoice → stored profile; the approximate match is closer to a held-out clip than the base voice")
    func approximateMatchBeatsBaseVoice() async throws {
        let store = try AvatarDatabase(path: temporaryDirectory("voice-store") + "/avatar.sqlite")
        #expect(try store.appliedMigrations().contains("v3-voice-profiles"))
        let (cloner, runtime) = try await Self.cloner(store: store)
        let host = try #require(runtime.engineHost)
        let (profile, reports) = try await cloner.createVoice(name: "reader", language: "en", samples: VoiceTestAudio.enrollment)
        #expect(reports.allSatisfy { $0.usable })
        #expect(profile.embedding.count == 256)
        #expect(profile.gender == "male" && profile.baseVoice == "en_US-joe-medium", "nearest base voice: \(profile.baseVoice)")
        #expect(try store.voiceProfile(named: "reader") == profile)
        #expect(try store.voiceProfiles().map(\.name) == ["reader"])
        await #expect(throws: VoiceError.duplicateName("reader")) {
            _ = try await cloner.createVoice(name: "reader", language: "en", samples: VoiceTestAudio.enrollment)
        }

        let heldOut = try await host.speakerEmbedding(audio: Data(contentsOf: URL(fileURLWithPath: VoiceTestAudio.heldOut))).embedding
        let sentences = ["Hello, I am your avatar, and I can speak clearly today.",
                         "The weather was fine and the family walked to the village after dinner."]
        var base: [Double] = [], matched: [Double] = [], profileScores: [Double] = []
        for sentence in sentences {
            let plain = try await host.speech(text: sentence, voice: profile.baseVoice)
            base.append(SpeakerEmbedding.cosine(try await host.speakerEmbedding(audio: plain).embedding, heldOut))
            let synthesis = try await cloner.synthesize(sentence, profile: profile, mode: .approximate)
            #expect(synthesis.method == .approximate)
            #expect(synthesis.label.hasPrefix("approximate voice match"))
            profileScores.append(synthesis.similarity)
            matched.append(SpeakerEmbedding.cosine(try await host.speakerEmbedding(audio: synthesis.wav).embedding, heldOut))
        }
        let meanBase = base.reduce(0, +) / Double(base.count), meanMatch = matched.reduce(0, +) / Double(matched.count)
        print(String(format: "similarity to held-out clip 0930: base voice %@ %.3f, approximate match %.3f (+%.3f); to the profile %.3f; formant ratio %.2f, calibration base %.3f → match %.3f",
                     profile.baseVoice, meanBase, meanMatch, meanMatch - meanBase, profileScores.reduce(0, +) / Double(profileScores.count),
                     profile.formantRatio, profile.calibrationBaseSimilarity, profile.calibrationMatchSimilarity))
        #expect(meanMatch > meanBase)
        let sameSpeaker = try await cloner.score(Data(contentsOf: URL(fileURLWithPath: VoiceTestAudio.heldOut)), profile: profile)
        print(String(format: "held-out clip vs profile (same speaker): %.3f", sameSpeaker))
        #expect(sameSpeaker > meanMatch, "the real speaker scores above any synthesis")
    }

    @Test("prepareTrainingData: 22050 Hz mono 16-bit clips + metadata.csv id|text|text, transcribed by Whisper")
    func trainingData() async throws {
        let (cloner, _) = try await Self.cloner()
        let out = temporaryDirectory("voice-dataset")
        let clips = try TestData.librivoxClips().filter { $0.path.hasSuffix("0870.wav") || $0.path.hasSuffix("0890.wav") }
        let dataset = try await cloner.prepareTrainingData(samples: clips.map(\.path), output: out, language: "en")
        #expect(!dataset.clips.isEmpty)
        let metadata = try String(contentsOfFile: dataset.metadataPath, encoding: .utf8)
        let lines = metadata.split(separator: "\n")
        #expect(lines.count == dataset.clips.count)
        for line in lines {
            let fields = line.split(separator: "|", omittingEmptySubsequences: false)
            #expect(fields.count == 3 && fields[1] == fields[2] && !fields[1].isEmpty, "\(line)")
            let wav = try Data(contentsOf: URL(fileURLWithPath: out + "/wavs/\(fields[0]).wav"))
            let info = try #require(WAVInfo(wav))
            #expect(info.sampleRate == 22050 && info.channels == 1 && info.bitsPerSample == 16)
            #expect(info.duration >= 1.0 && info.duration <= 12.5)
        }
        let wer = wordErrorRate(reference: clips.map(\.text).joined(separator: " "), hypothesis: dataset.clips.map(\.text).joined(separator: " "))
        print("dataset: \(dataset.clips.count) clips, \(String(format: "%.1f", dataset.totalSeconds)) s, transcript WER \(String(format: "%.3f", wer))")
        #expect(wer <= 0.15)
    }
}

/// The XTTS adapter against a fake XTTS streaming server (no XTTS weights exist here).
@Suite("XTTSAdapter", .serialized)
struct XTTSAdapterTests {
    static let server: PythonServer = {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fakes/fake_xtts.py").path
        return try! PythonServer(arguments: [script])
    }()

    static func client(_ prefix: String = "") async throws -> XTTSClient {
        let runtime = try await EngineFixture.shared.runtime()
        return XTTSClient(endpoint: StaticEndpoint(engineName: "xtts", url: server.url + prefix), client: runtime.http, timeout: 10)
    }

    @Test("clone_speaker + tts contract: latents uploaded once per reference, WAV decoded from base64")
    func contract() async throws {
        let xtts = try await Self.client()
        #expect(try await xtts.languages().contains("ru"))
        let reference = try Data(contentsOf: URL(fileURLWithPath: VoiceTestAudio.heldOut))
        let conditioning = try await xtts.cloneSpeaker(reference: reference)
        #expect(conditioning.speakerEmbedding.count == 512 && conditioning.gptCondLatent.first?.count == 1024)
        let first = try await xtts.synthesize(text: "Hello there.", language: "en", reference: reference)
        let second = try await xtts.synthesize(text: "Again.", language: "en", reference: reference)
        #expect(first.prefix(4) == Data("RIFF".utf8) && first == second)
        struct Stats: Decodable { var clones: Int; var tts: Int }
        let runtime = try await EngineFixture.shared.runtime()
        let response = try await runtime.http.get(url: Self.server.url + "/stats").get()
        let stats = try JSONDecoder().decode(Stats.self, from: Data(buffer: response.body!))
        #expect(stats.clones == 1, "conditioning is cached per reference")
    }

    @Test("server errors and non-audio answers become EngineError")
    func failures() async throws {
        let reference = try Data(contentsOf: URL(fileURLWithPath: VoiceTestAudio.heldOut))
        await #expect(throws: EngineError.self) { _ = try await Self.client("/error500").synthesize(text: "x", language: "en", reference: reference) }
        do {
            _ = try await Self.client("/garbage").synthesize(text: "x", language: "en", reference: reference)
            Issue.record("garbage accepted")
        } catch let error as EngineError {
            #expect(error.userMessage.contains("no audio"))
        }
        let down = XTTSClient(endpoint: StaticEndpoint(engineName: "xtts", url: "http://127.0.0.1:9"), client: try await EngineFixture.shared.runtime().http, timeout: 3)
        await #expect(throws: EngineError.self) { _ = try await down.languages() }
    }

    @Test("the cloner uses XTTS when configured and measures the similarity of what it returns")
    func clonerWithXTTS() async throws {
        let store = try AvatarDatabase(path: temporaryDirectory("voice-xtts") + "/avatar.sqlite")
        let (cloner, _) = try await VoiceClonerTests.cloner(store: store, xtts: try await Self.client())
        let (profile, _) = try await cloner.createVoice(name: "xtts-reader", language: "en", samples: VoiceTestAudio.enrollment)
        let synthesis = try await cloner.synthesize("Hello there.", profile: profile)
        #expect(synthesis.method == .xtts)
        // The fake answers with the reference recording itself: the real speaker.
        #expect(synthesis.similarity > 0.8, "\(synthesis.label)")
        let offline = try await cloner.synthesize("Hello there.", profile: profile, mode: .approximate)
        #expect(offline.method == .approximate)
        let (plain, _) = try await VoiceClonerTests.cloner(store: store)
        await #expect(throws: VoiceError.cloningNotConfigured) { _ = try await plain.synthesize("Hi.", profile: profile, mode: .xtts) }
    }
}

/// The background fine-tuning job with a fake trainer (Tests/AvatarTests/Fixtures/fake_train.py).
@Suite("VoiceTraining", .serialized)
struct VoiceTrainingTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/fake_train.py").path

    static func job(epochs: Int, pause: Double, fail: Bool = false) async throws -> (VoiceTrainingJob, String) {
        let settings = try await AvatarSettings.load()
        let dir = temporaryDirectory("voice-train")
        let pidFile = dir + "/pid"
        let template = "FAKE_DATASET={dataset} python3 \(script) \(epochs) \(pause) \(pidFile)" + (fail ? " --fail" : "")
        return (VoiceTrainingJob(template: template, dataset: dir + "/data set's", output: dir + "/out", name: "v", python: settings.pythonPath, logPath: dir + "/train.log"), pidFile)
    }

    final class Seen: @unchecked Sendable {
        let lock = NSLock()
        var fractions: [Double] = []
        var lines: [String] = []
        func add(_ f: Double?, _ line: String) { lock.withLock { if let f { fractions.append(f) }; lines.append(line) } }
        var count: Int { lock.withLock { fractions.count } }
    }

    @Test("progress is parsed from the output; success and failure are reported")
    func progress() async throws {
        let (job, _) = try await Self.job(epochs: 4, pause: 0.05)
        let seen = Seen()
        #expect(try await job.run { seen.add($0, $1) } == .succeeded)
        #expect(seen.fractions == [0.25, 0.5, 0.75, 1.0])
        #expect(seen.lines.first?.contains("data set's") == true, "placeholders are shell-quoted")
        let (failing, _) = try await Self.job(epochs: 1, pause: 0.01, fail: true)
        #expect(try await failing.run { _, _ in } == .failed(status: 3, lastLine: "error: out of GPU memory"))
        #expect(VoiceTrainingJob.fraction(in: "42% |####") == 0.42)
        #expect(VoiceTrainingJob.fraction(in: "progress: 0.3") == 0.3)
    }

    @Test("cancelling the job's task kills the training command")
    func cancel() async throws {
        let (job, pidFile) = try await Self.job(epochs: 1000, pause: 0.2)
        let seen = Seen()
        let task = Task { try await job.run { seen.add($0, $1) } }
        let deadline = ContinuousClock.now + .seconds(20)
        while seen.count < 2, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(seen.count >= 2)
        let pid = try #require(Int32(String(contentsOfFile: pidFile, encoding: .utf8)))
        #expect(kill(pid, 0) == 0, "the trainer runs")
        task.cancel()
        #expect(try await task.value == .cancelled)
        var alive = true
        for _ in 0..<50 where alive {
            alive = kill(pid, 0) == 0 && !((try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8))?.contains(") Z ") ?? true)
            if alive { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(!alive, "the trainer process \(pid) survived cancellation")
    }
}
