import AvatarCore

/// What can go wrong in the speech module that the caller can act on.
public enum SpeechError: AvatarError, Equatable {
    /// `push` after `finish`.
    case sessionFinished
    /// A file that ffmpeg cannot turn into audio, or one with no samples.
    case unreadableAudio(String)
    /// An option outside its range.
    case invalidOption(String)

    public var userMessage: String {
        switch self {
        case .sessionFinished: return "the speech session is finished; start a new recognizer for new audio"
        case .unreadableAudio(let reason): return "the audio cannot be read (\(reason)); use WAV, FLAC, MP3, OGG or WebM/Opus"
        case .invalidOption(let reason): return "invalid speech recognizer option: \(reason)"
        }
    }

    public var retryable: Bool { false }

    public var httpStatus: Int {
        switch self {
        case .sessionFinished: return 409
        case .unreadableAudio: return 422
        case .invalidOption: return 400
        }
    }
}
