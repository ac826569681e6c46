import Foundation

// One protocol per kind of engine, so the speech, voice and session code depend on what an engine does,
// not on the engine host's HTTP client: a test composes them with fakes (failure knobs, no Python), and a
// deployment can put another server behind one kind. `EngineHostClient` serves all four. (The chat model
// has its own: `LLMBackend` in AvatarConversation.)

/// Speech to text (Whisper behind the OpenAI audio API).
public protocol Transcriber: Sendable {
    /// Transcribes audio in any container ffmpeg reads; `language` nil detects it (among `languageCandidates`
    /// when given). Throws `EngineError`.
    func transcribe(audio: Data, filename: String, language: String?, languageCandidates: [String],
                    denoise: Bool, noise: Data?, wordTimestamps: Bool) async throws -> Transcription
}

/// Speech probability per frame (Silero).
public protocol VoiceActivityDetector: Sendable {
    /// Throws `EngineError`.
    func voiceActivity(audio: Data, filename: String) async throws -> VoiceActivity
}

/// Text to speech with phoneme/word timings and emotional prosody.
public protocol SpeechSynthesisEngine: Sendable {
    func voices() async throws -> [Voice]
    /// The WAV for `text` with its timings. Throws `EngineError` (an unknown voice: `.rejected` 400/404).
    func timedSpeech(text: String, voice: String, speed: Double, emotion: String, intensity: Double) async throws -> TimedSpeech
}

/// The face in a photo: 478 landmarks, blendshapes, head pose.
public protocol FaceLandmarker: Sendable {
    /// Throws `EngineError` (`.rejected` 422 `no_face` when there is none).
    func landmarks(image: Data, filename: String, multiple: EngineHostClient.MultipleFaces) async throws -> FaceLandmarks
}

extension EngineHostClient: Transcriber, VoiceActivityDetector, SpeechSynthesisEngine, FaceLandmarker {}
