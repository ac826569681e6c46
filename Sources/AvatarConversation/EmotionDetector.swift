import AvatarCore
import Foundation

/// Detects the emotion of a text (Russian and English) from a cue lexicon, intensifiers and
/// punctuation. Cues are word stems, so inflected Russian forms match.
public struct EmotionDetector: Sendable {
    static let cues: [Emotion.Label: [String]] = [
        .joy: ["happy", "glad", "great", "awesome", "love", "yay", "fun", "excited", "wonderful", "cool", "hooray", "best day", "😀", "😊", "😄", "🥳", "❤",
               "рад ", "рада", "радост", "счастлив", "ура", "класс", "здорово", "отлично", "люблю", "весело", "обожаю", "супер", "круто"],
        .sadness: ["sad", "unhappy", "cry", "crying", "lonely", "miss ", "upset", "depressed", "bad day", "lost my", "died", "😢", "😭", "☹",
                   "грустн", "печаль", "плачу", "плакать", "одиноко", "скучаю", "расстро", "тоскл", "умер", "потерял"],
        .anger: ["angry", "mad at", "hate", "furious", "annoyed", "stupid", "unfair", "😠", "😡",
                 "злюсь", "злой", "зла ", "бесит", "ненавижу", "раздража", "нечестно", "достал"],
        .fear: ["scared", "afraid", "frightened", "nightmare", "worried", "terrified", "anxious", "😨", "😱",
                "боюсь", "страшно", "испуга", "кошмар", "волнуюсь", "тревож", "жутко"],
        .surprise: ["wow", "really?", "no way", "surprised", "unbelievable", "amazing", "😮", "😲",
                    "ого", "вау", "неужели", "правда?", "удивительно", "не может быть"],
    ]
    static let intensifiers = ["very", "so ", "really", "extremely", "super", "очень", "так ", "совсем", "ужасно", "сильно"]
    static let negations = ["not ", "n't ", "не "]

    public init() {}

    public func detect(_ text: String) -> Emotion {
        let lowered = " " + text.lowercased() + " "
        var scores: [Emotion.Label: Double] = [:]
        for (label, words) in Self.cues {
            for word in words where lowered.contains(word) {
                // "not happy" is not joy: a negated joy cue counts as sadness.
                if label == .joy, Self.negations.contains(where: { lowered.contains($0 + word) }) {
                    scores[.sadness, default: 0] += 1
                } else {
                    scores[label, default: 0] += 1
                }
            }
        }
        guard let (label, score) = scores.max(by: { $0.value < $1.value || ($0.value == $1.value && $0.key.rawValue > $1.key.rawValue) }) else {
            return .neutral
        }
        var intensity = 0.4 + 0.15 * (score - 1)
        if Self.intensifiers.contains(where: lowered.contains) { intensity += 0.2 }
        intensity += min(0.2, Double(text.filter { $0 == "!" }.count) * 0.1)
        let letters = text.filter(\.isLetter)
        if letters.count >= 4, letters == letters.uppercased() { intensity += 0.2 }
        return Emotion(label, intensity: min(1, (intensity * 100).rounded() / 100))
    }

    /// A line for the system prompt that adapts the reply's tone to the user's emotion.
    public static func toneHint(for emotion: Emotion, language: String) -> String? {
        let ru = language == "ru"
        switch emotion.label {
        case .neutral: return nil
        case .joy: return ru ? "Собеседник радуется: порадуйся вместе с ним." : "The user is happy: share their joy."
        case .sadness: return ru ? "Собеседнику грустно: будь мягкой и поддержи." : "The user is sad: be gentle and comforting."
        case .anger: return ru ? "Собеседник злится: говори спокойно, не спорь." : "The user is upset: stay calm and kind, do not argue."
        case .fear: return ru ? "Собеседнику страшно: успокой и подбодри." : "The user is scared: reassure them."
        case .surprise: return ru ? "Собеседник удивлён: поддержи его любопытство." : "The user is surprised: share their curiosity."
        case .calm: return nil
        }
    }

    /// The emotion the avatar shows in its reply: empathy for sadness and fear, calm for anger.
    public static func replyEmotion(for user: Emotion, replyText: String, detector: EmotionDetector) -> Emotion {
        switch user.label {
        case .sadness, .fear: return Emotion(.sadness, intensity: min(0.6, user.intensity))
        case .anger: return Emotion(.calm, intensity: 0.5)
        default:
            let own = detector.detect(replyText)
            return own.label == .neutral ? user : own
        }
    }
}
