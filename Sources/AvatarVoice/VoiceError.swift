import AvatarCore

/// What can go wrong while validating samples, creating a voice or speaking in it.
public enum VoiceError: AvatarError, Equatable {
    /// No sample passed validation; `reasons` has one line per sample.
    case noUsableSamples(reasons: [String])
    /// Accepted samples hold less speech than a profile needs.
    case notEnoughSpeech(seconds: Double, minimum: Double)
    /// The engine host offers no base voice for this language.
    case unsupportedLanguage(String, supported: [String])
    case unknownVoice(String)
    case duplicateName(String)
    case invalidName(String)
    /// Text to speak is empty.
    case emptyText
    /// Real cloning was asked for but no XTTS server is configured.
    case cloningNotConfigured
    /// A file could not be read or converted (`reason` says why and what to do).
    case badInput(path: String, reason: String)
    /// The training command is not configured, failed or was cancelled.
    case training(String)

    public var userMessage: String {
        switch self {
        case .noUsableSamples(let reasons):
            return "no usable voice sample:\n" + reasons.map { "  " + $0 }.joined(separator: "\n")
        case .notEnoughSpeech(let seconds, let minimum):
            return String(format: "the accepted samples hold %.1f s of audio; a voice needs at least %.0f s — add more recordings", seconds, minimum)
        case .unsupportedLanguage(let language, let supported):
            return "no base voice speaks '\(language)'; supported languages: \(supported.joined(separator: ", "))"
        case .unknownVoice(let name):
            return "no voice named '\(name)' (see `avatar voice list`)"
        case .duplicateName(let name):
            return "a voice named '\(name)' already exists; choose another name or delete it first"
        case .invalidName(let name):
            return "invalid voice name '\(name)': use 1–64 letters, digits, '-', '_' or '.'"
        case .emptyText:
            return "nothing to say: the text is empty"
        case .cloningNotConfigured:
            return "real voice cloning needs an XTTS server: set AVATAR_XTTS_URL (see docs/voice.md)"
        case .badInput(let path, let reason):
            return "\(path): \(reason)"
        case .training(let reason):
            return "training: \(reason)"
        }
    }

    public var retryable: Bool { false }

    public var httpStatus: Int {
        switch self {
        case .noUsableSamples, .notEnoughSpeech, .badInput: return 422
        case .unsupportedLanguage, .unknownVoice, .invalidName, .emptyText: return 400
        case .duplicateName: return 409
        case .cloningNotConfigured: return 501
        case .training: return 500
        }
    }
}
