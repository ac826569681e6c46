import AvatarEngines
import Foundation

/// One transcript the recognizer emits.
public struct TranscriptEvent: Sendable, Equatable {
    public enum Kind: String, Sendable {
        /// Voice activity: the VAD heard enough speech to open an utterance (the earliest barge-in signal;
        /// no text). Sent from the VAD hop that decided it, never behind a Whisper pass.
        case speechStarted
        /// Voice activity: the configured silence followed the utterance; its final follows (no text).
        case speechStopped
        /// The utterance so far, while the person is still speaking; later events replace it.
        case partial
        /// The whole utterance, after the VAD heard the configured silence (or the stream finished).
        case final
    }

    public var kind: Kind
    public var text: String
    /// ISO 639-1 code of the language the transcript is in.
    public var language: String
    /// Whether the session's language is now fixed (set by the caller or locked after a confident detection).
    public var languageLocked: Bool
    /// Where the utterance starts and its last speech frame ends, in seconds of the session's audio.
    public var speechStart: Double
    public var speechEnd: Double
    /// The final came from the result cache (same audio, same language and options).
    public var cached: Bool
    /// With `RecognizerOptions.denoise`: the noise profile used ("given" = the session's own pauses).
    public var noiseReduction: Transcription.NoiseReduction? = nil
    /// How much of the session's audio (seconds) had been pushed when the event was sent: for
    /// `speechStarted`, `heardUntil - speechStart` is how long after the onset the VAD said so.
    public var heardUntil: Double = 0

    /// A transcript (partial or final), as opposed to a voice-activity event.
    public var isTranscript: Bool { kind == .partial || kind == .final }
}

/// Streaming speech recognition: push 16 kHz mono PCM, read partial and final transcripts.
///
/// `push` runs voice activity detection and returns; transcription runs in a stage of its own, so a
/// Whisper pass never holds up audio intake or the speech-started event. `finish` flushes an utterance
/// that is still open, waits for its transcript and ends `events`. An engine failure ends `events` with
/// the error and is thrown from the next `push`/`finish`.
public protocol SpeechRecognizer: Sendable {
    /// Partial and final transcripts, in order.
    var events: AsyncThrowingStream<TranscriptEvent, any Error> { get }
    /// Appends samples (16 kHz, mono, -1…1) of any length.
    func push(_ samples: [Float]) async throws
    /// Ends the session: an utterance in progress becomes a final transcript.
    func finish() async throws
    /// Fixes the session's language (`nil` returns to auto-detection among the candidates).
    func setLanguage(_ language: String?) async
}
