/// An emotion with its strength: the one vocabulary the conversation detects, the voice speaks (prosody) and the
/// face shows (expression). Each layer maps `Label` exhaustively — adding a case fails to compile until every layer
/// says what it does with it.
public struct Emotion: Sendable, Equatable, Hashable, Codable {
    public enum Label: String, Sendable, Codable, CaseIterable {
        case neutral, joy, sadness, anger, fear, surprise, calm

        /// Reads a label or one of its everyday names ("happy", "sad", "angry", "scared", "surprised", "excited",
        /// "thinking"), as the CLI, the API and older clients write them. Nil for anything else.
        public init?(name: String) {
            switch name.lowercased().trimmingCharacters(in: .whitespaces) {
            case "neutral": self = .neutral
            case "joy", "happy", "joyful", "excited", "excitement": self = .joy
            case "sadness", "sad": self = .sadness
            case "anger", "angry", "mad": self = .anger
            case "fear", "scared", "afraid", "fearful": self = .fear
            case "surprise", "surprised": self = .surprise
            case "calm", "thinking", "tender": self = .calm
            default: return nil
            }
        }

        /// Every name `init(name:)` accepts, labels first (for help texts and error messages).
        public static let acceptedNames: [String] = allCases.map(\.rawValue)
            + ["happy", "excited", "sad", "angry", "scared", "surprised", "thinking"]

        /// The engine host's prosody style for this label (`engine/avatar_engine/prosody.py` `EMOTIONS`).
        public var prosody: ProsodyStyle {
            switch self {
            case .neutral: return .neutral
            case .joy: return .happy
            case .sadness: return .sad
            case .anger: return .angry
            case .fear: return .fearful
            case .surprise: return .excited
            case .calm: return .calm
            }
        }
    }

    public var label: Label
    /// 0 (barely) … 1 (very).
    public var intensity: Double

    public init(_ label: Label, intensity: Double) {
        self.label = label
        self.intensity = min(1, max(0, intensity))
    }

    public static let neutral = Emotion(.neutral, intensity: 0)
}

/// How a voice expresses an emotion: rate, pitch, loudness and pauses, by name on the engine host's speech API
/// (`emotion` of `/v1/audio/speech`). The names are the engine host's; `Emotion.Label.prosody` maps to them.
public enum ProsodyStyle: String, CaseIterable, Sendable, Codable {
    case neutral, happy, sad, excited, calm, angry, fearful
}
