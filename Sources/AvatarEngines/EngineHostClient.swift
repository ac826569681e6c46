import AsyncHTTPClient
import Foundation
import AvatarCore

/// A transcript as the engine host returns it (OpenAI `verbose_json` plus the language probability).
public struct Transcription: Codable, Sendable, Equatable {
    /// One timed piece of the transcript.
    public struct Segment: Codable, Sendable, Equatable {
        public var id: Int
        public var start: Double
        public var end: Double
        public var text: String
    }

    public var text: String
    /// ISO 639-1 code of the spoken (or requested) language.
    public var language: String
    /// How sure the model was of `language`, 0…1 (1 when the language was given).
    public var languageProbability: Double
    /// Length of the audio in seconds.
    public var duration: Double
    public var segments: [Segment]
    /// One timed word (only when asked for with `wordTimestamps`).
    public struct Word: Codable, Sendable, Equatable {
        public var word: String
        public var start: Double
        public var end: Double
    }
    public var words: [Word]?
    /// What the noise reduction did (only when asked for with `denoise`).
    public struct NoiseReduction: Codable, Sendable, Equatable {
        public var method: String
        /// Where the noise profile came from: "given" (the `noise` audio sent along), "clip-pauses"
        /// (the clip's own non-speech frames), "clip-quietest" (its quietest fifth) or "none".
        public var profile: String
        public var profileSeconds: Double
        public var applied: Bool
    }
    public var noiseReduction: NoiseReduction?
}

/// Speech with its timings and the prosody applied: `/v1/audio/speech` with `response_format: verbose_json`.
public struct TimedSpeech: Codable, Sendable {
    /// The emotion as prosody, as the engine applied it.
    public struct Prosody: Codable, Sendable, Equatable {
        public var emotion: String
        public var intensity: Double
        /// Speaking-rate factor (1 = the voice's normal rate).
        public var rate: Double
        /// Mean pitch shift in semitones.
        public var semitones: Double
        /// Loudness relative to neutral speech.
        public var gainDb: Double
        /// Factor on the pauses between phrases and sentences.
        public var pauseScale: Double
    }

    public var voice: String
    public var language: String
    public var engine: String
    public var sampleRate: Int
    public var duration: Double
    public var prosody: Prosody
    /// Phoneme and word times, when the voice's engine gives them.
    public var timings: SpeechTimings?
    /// A WAV file (mono, 16-bit, `sampleRate`).
    public var audio: Data
}

/// Speech probabilities per fixed-length frame, as the engine host's `/v1/audio/vad` returns them.
public struct VoiceActivity: Codable, Sendable, Equatable {
    /// Length of one frame in seconds (0.032: 512 samples at 16 kHz).
    public var frameSeconds: Double
    public var duration: Double
    /// One 0…1 probability per frame.
    public var probabilities: [Double]
}

/// A synthesis voice the engine host offers.
public struct Voice: Codable, Sendable, Equatable {
    public var id: String
    public var name: String
    /// ISO 639-1 code.
    public var language: String
    public var gender: String
    /// The engine behind it (piper, festival, espeak-ng).
    public var engine: String
    public var sampleRate: Int?
}

/// One face's 478 landmarks and what MediaPipe derives from them.
public struct FaceLandmarks: Codable, Sendable {
    public struct HeadPose: Codable, Sendable, Equatable {
        /// Degrees.
        public var yaw: Double
        public var pitch: Double
        public var roll: Double
    }

    public struct Box: Codable, Sendable, Equatable {
        public var x: Double
        public var y: Double
        public var width: Double
        public var height: Double

        public func contains(x px: Double, y py: Double) -> Bool {
            px >= x && px <= x + width && py >= y && py <= y + height
        }
    }

    public var width: Int
    public var height: Int
    /// How many faces were found (the landmarks are of one: the only or the largest).
    public var faces: Int
    /// `[x, y, z]` per point; x and y in pixels of the input image.
    public var landmarks: [[Double]]
    public var blendshapes: [String: Double]
    public var headPose: HeadPose
    public var faceBox: Box
    public var warnings: [String]?
}

/// What the engine host says about itself on `/health`: `ok`, `loading`, `degraded` (some capabilities are down
/// or partly down, the others serve) or `error`, and each engine (capability: asr, vad, tts, landmarks, voice,
/// moderation) with its own state. The host answers 200 while anything serves, so the supervisor keeps it and every
/// request goes to it; a capability that is down answers its own requests with 503 `engine_unavailable`.
public struct EngineHostHealth: Codable, Sendable {
    public struct Engine: Codable, Sendable {
        /// `loading`, `ready`, `degraded` (serves, part of it down: a TTS voice) or `error` (down).
        public var status: String
        public var error: String?
    }

    public var status: String
    public var version: String?
    public var engines: [String: Engine]?

    /// The capabilities that are down (`error`) or partly down (`degraded`), with why.
    public var failed: [(name: String, error: String)] {
        (engines ?? [:]).filter { $0.value.status == "error" || $0.value.status == "degraded" }.sorted { $0.key < $1.key }
            .map { ($0.key, $0.value.error ?? ($0.value.status == "degraded" ? "partly down" : "failed to load")) }
    }
}

/// Client for the Python engine host: OpenAI audio API (ASR, TTS) and face landmarks.
public struct EngineHostClient: Sendable {
    /// What to do when a photo holds several faces.
    public enum MultipleFaces: String, Sendable {
        /// Fail with `multiple_faces`.
        case error
        /// Use the largest face and add a warning.
        case largest
    }

    let http: EngineHTTP

    public init(endpoint: any EngineEndpoint, client: HTTPClient, timeout: Double) {
        http = EngineHTTP(endpoint: endpoint, client: client, timeout: timeout)
    }

    public func health() async throws -> EngineHostHealth {
        let response = try await http.send(.GET, "/health", timeout: 5)
        return try http.decode(EngineHostHealth.self, from: response.body)
    }

    /// Transcribes audio in any container ffmpeg reads. `language` nil lets the model detect it, among
    /// `languageCandidates` when given; `denoise` runs spectral-gating noise reduction first, with the
    /// noise profile learned from `noise` (background-only audio, ≥ 0.25 s) or else from the clip's pauses.
    public func transcribe(audio: Data, filename: String = "audio.wav", language: String? = nil,
                           languageCandidates: [String] = [], denoise: Bool = false, noise: Data? = nil,
                           wordTimestamps: Bool = false) async throws -> Transcription {
        var form = MultipartForm()
        if wordTimestamps { form.addField("timestamp_granularities[]", "word") }
        form.addField("model", "whisper-base")
        form.addField("response_format", "verbose_json")
        if let language { form.addField("language", language) }
        if !languageCandidates.isEmpty { form.addField("language_candidates", languageCandidates.joined(separator: ",")) }
        if denoise { form.addField("denoise", "true") }
        if denoise, let noise { form.addFile("noise", filename: "noise.wav", contentType: "audio/wav", data: noise) }
        form.addFile("file", filename: filename, contentType: "application/octet-stream", data: audio)
        let response = try await http.send(.POST, "/v1/audio/transcriptions", body: form.finished(), contentType: form.contentType)
        return try http.decode(Transcription.self, from: response.body)
    }

    /// Silero VAD: the speech probability of each 32 ms frame of the audio (any container ffmpeg reads).
    public func voiceActivity(audio: Data, filename: String = "audio.wav") async throws -> VoiceActivity {
        try await postFile("/v1/audio/vad", audio, filename: filename)
    }

    /// POSTs `data` as the multipart `file` field of `path` and decodes the JSON answer.
    func postFile<Answer: Decodable>(_ path: String, _ data: Data, filename: String) async throws -> Answer {
        var form = MultipartForm()
        form.addFile("file", filename: filename, contentType: "application/octet-stream", data: data)
        let response = try await http.send(.POST, path, body: form.finished(), contentType: form.contentType)
        return try http.decode(Answer.self, from: response.body)
    }

    /// Synthesises `text` with a voice from `voices()`; returns a WAV file.
    public func speech(text: String, voice: String, speed: Double = 1.0) async throws -> Data {
        struct Request: Encodable {
            var model = "tts-1"
            var input: String
            var voice: String
            var responseFormat = "wav"
            var speed: Double
        }
        let body = try JSONEncoder.engine.encode(Request(input: text, voice: voice, speed: speed))
        let response = try await http.send(.POST, "/v1/audio/speech", body: body, contentType: "application/json")
        guard response.body.count > 44 else {
            throw EngineError.invalidResponse(engine: http.engine, reason: "no audio for non-empty text")
        }
        return response.body
    }

    /// Synthesises `text` with an emotion (neutral, happy, sad, excited, calm; `intensity` 0…1) and returns
    /// the WAV with its phoneme/word timings.
    public func timedSpeech(text: String, voice: String, speed: Double = 1.0, emotion: String = "neutral",
                            intensity: Double = 0) async throws -> TimedSpeech {
        struct Request: Encodable {
            var model = "tts-1"
            var input: String
            var voice: String
            var responseFormat = "verbose_json"
            var speed: Double
            var emotion: String
            var intensity: Double
        }
        let body = try JSONEncoder.engine.encode(Request(input: text, voice: voice, speed: speed, emotion: emotion, intensity: intensity))
        let response = try await http.send(.POST, "/v1/audio/speech", body: body, contentType: "application/json")
        let speech = try http.decode(TimedSpeech.self, from: response.body)
        guard speech.audio.count > 44 else {
            throw EngineError.invalidResponse(engine: http.engine, reason: "no audio for non-empty text")
        }
        return speech
    }

    public func voices() async throws -> [Voice] {
        struct List: Decodable { var voices: [Voice] }
        let response = try await http.send(.GET, "/v1/voices", timeout: 10)
        return try http.decode(List.self, from: response.body).voices
    }

    /// Finds the face in an image (any format Pillow decodes).
    public func landmarks(image: Data, filename: String = "photo", multiple: MultipleFaces = .error) async throws -> FaceLandmarks {
        var form = MultipartForm()
        form.addField("multiple", multiple.rawValue)
        form.addFile("file", filename: filename, contentType: "application/octet-stream", data: image)
        let response = try await http.send(.POST, "/v1/face/landmarks", body: form.finished(), contentType: form.contentType)
        return try http.decode(FaceLandmarks.self, from: response.body)
    }
}
