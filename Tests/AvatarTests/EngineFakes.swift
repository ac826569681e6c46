import AvatarCore
import AvatarEngines
import AvatarSpeech
import Foundation

// Fakes of the engine kinds (Transcriber, VoiceActivityDetector, SpeechSynthesisEngine) for orchestration
// tests: no Python, no models, with failure knobs. They answer in the engine host's own wire format (their
// results are decoded from the same JSON), and `EngineContractTests` holds them and the real client to the
// same contract.

/// Failure knobs shared by the fakes: a delay on every call, a longer one on the first (a cold engine's slow
/// first answer), and the first `failures` calls throwing `error`.
actor FakeKnobs {
    private(set) var calls = 0
    let delay: Duration
    let firstDelay: Duration
    let failures: Int
    let error: EngineError

    init(delay: Duration = .zero, firstDelay: Duration = .zero, failures: Int = 0,
         error: EngineError = .unavailable(engine: "fake", reason: "down")) {
        self.delay = delay
        self.firstDelay = firstDelay
        self.failures = failures
        self.error = error
    }

    /// One call: waits as configured (a timeout is a delay longer than the caller waits), then fails if due.
    /// Returns the call's number (1 for the first).
    @discardableResult
    func enter() async throws -> Int {
        calls += 1
        let call = calls
        if call == 1, firstDelay > .zero { try await Task.sleep(for: firstDelay) }
        if delay > .zero { try await Task.sleep(for: delay) }
        if call <= failures { throw error }
        return call
    }
}

enum FakeWire {
    static func decode<T: Decodable>(_ type: T.Type, _ object: [String: Any]) throws -> T {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(type, from: JSONSerialization.data(withJSONObject: object))
    }

    /// 16-bit mono samples of a WAV, or nil when it is not one.
    static func samples(_ wav: Data) -> [Float]? {
        guard let info = WAVInfo(wav), info.channels == 1, wav.count > 44 else { return nil }
        return wav.dropFirst(44).withUnsafeBytes { raw in raw.bindMemory(to: Int16.self).map { Float(Int16(littleEndian: $0)) / 32768 } }
            .prefix(Int(info.duration * Double(info.sampleRate))).map { $0 }
    }

    static func unreadable(_ engine: String) -> EngineError {
        .rejected(engine: engine, status: 400, code: "unreadable_audio", message: "not an audio file")
    }
}

/// Speech probability from frame energy (a real, if crude, VAD): a 32 ms frame louder than −40 dBFS is speech.
struct FakeVoiceActivityDetector: VoiceActivityDetector {
    var knobs = FakeKnobs()

    func voiceActivity(audio: Data, filename: String) async throws -> VoiceActivity {
        try await knobs.enter()
        guard let samples = FakeWire.samples(audio) else { throw FakeWire.unreadable("fake-vad") }
        let frame = 512
        let probabilities = stride(from: 0, to: samples.count - frame + 1, by: frame).map { start -> Double in
            let slice = samples[start..<(start + frame)]
            let rms = (slice.reduce(0) { $0 + Double($1 * $1) } / Double(frame)).squareRoot()
            return rms > 0.01 ? 0.95 : 0.02
        }
        return try FakeWire.decode(VoiceActivity.self, ["frame_seconds": 0.032, "duration": Double(samples.count) / 16000, "probabilities": probabilities])
    }
}

/// Says `text` for any audio with sound in it (an empty transcript for silence), in the requested language
/// or the first candidate.
struct FakeTranscriber: Transcriber {
    var text = "hello there"
    var language = "en"
    /// When detecting: the language the n-th call hears (the last one repeats); else `language`.
    var detectedByCall: [String] = []
    var knobs = FakeKnobs()

    func transcribe(audio: Data, filename: String, language: String?, languageCandidates: [String],
                    denoise: Bool, noise: Data?, wordTimestamps: Bool) async throws -> Transcription {
        let call = try await knobs.enter()
        guard let samples = FakeWire.samples(audio) else { throw FakeWire.unreadable("fake-asr") }
        let loud = samples.contains { abs($0) > 0.05 }
        let detected = detectedByCall.isEmpty ? self.language : detectedByCall[min(call, detectedByCall.count) - 1]
        let spoken = language ?? detected
        let duration = Double(samples.count) / 16000
        return try FakeWire.decode(Transcription.self, [
            "text": loud ? text : "", "language": spoken, "language_probability": language == nil ? 0.9 : 1.0,
            "duration": duration, "segments": loud ? [["id": 0, "start": 0.0, "end": duration, "text": text]] : [],
        ])
    }
}

/// A tone for each word (60 ms a character), with word and phoneme timings; one voice per language.
struct FakeSynthesisEngine: SpeechSynthesisEngine {
    var knobs = FakeKnobs()
    static var voiceList: [[String: Any]] { [
        ["id": "fake-en", "name": "Fake (en)", "language": "en", "gender": "female", "engine": "fake"],
        ["id": "fake-ru", "name": "Fake (ru)", "language": "ru", "gender": "male", "engine": "fake"],
    ] }

    func voices() async throws -> [Voice] {
        try await knobs.enter()
        return try Self.voiceList.map { try FakeWire.decode(Voice.self, $0) }
    }

    func timedSpeech(text: String, voice: String, speed: Double, emotion: String, intensity: Double) async throws -> TimedSpeech {
        try await knobs.enter()
        guard let entry = Self.voiceList.first(where: { $0["id"] as? String == voice }) else {
            throw EngineError.rejected(engine: "fake-tts", status: 404, code: "unknown_voice", message: "no voice \(voice)")
        }
        let words = text.split(whereSeparator: \.isWhitespace).map(String.init)
        guard !words.isEmpty else { throw EngineError.rejected(engine: "fake-tts", status: 400, code: "empty_input", message: "no text") }
        var samples: [Float] = []
        var wordTimes: [[String: Any]] = []
        var phonemes: [[String: Any]] = []
        for word in words {
            let start = Double(samples.count) / 16000
            let count = Int(Double(word.count) * 0.06 / max(speed, 0.25) * 16000)
            samples += (0..<count).map { 0.3 * Float(sin(2 * Double.pi * 180 * Double($0) / 16000)) }
            let end = Double(samples.count) / 16000
            wordTimes.append(["text": word, "start": start, "end": end])
            phonemes.append(["ipa": "a", "symbol": "a", "start": start, "end": end])
            samples += [Float](repeating: 0, count: 1600)
        }
        let duration = Double(samples.count) / 16000
        return try FakeWire.decode(TimedSpeech.self, [
            "voice": voice, "language": entry["language"] as? String ?? "en", "engine": "fake", "sample_rate": 16000,
            "duration": duration,
            "prosody": ["emotion": emotion, "intensity": intensity, "rate": 1.0, "semitones": 0.0, "gain_db": 0.0, "pause_scale": 1.0],
            "timings": ["source": "fake", "phonemes": phonemes, "words": wordTimes],
            "audio": PCM.wav(samples[...]).base64EncodedString(),
        ])
    }
}
