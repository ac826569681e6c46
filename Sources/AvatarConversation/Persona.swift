import Foundation

/// Who the avatar is: the owner's description, turned into the model's system prompt.
public struct Persona: Codable, Sendable, Equatable {
    public var name: String
    public var age: Int?
    public var interests: [String]
    /// How it talks ("cheerful, short sentences, asks questions back").
    public var style: String
    /// Languages it speaks, ISO 639-1, preferred first.
    public var languages: [String]
    public var backstory: String
    /// Child-safe mode; nil means "on when age is under 18". It is filters and fixed scripts around the model
    /// (`ChildSafetyGuard`), measured by `avatar bench safety` to miss some unsafe prompts — not a substitute for a
    /// grown-up.
    public var childSafe: Bool?

    public init(name: String, age: Int? = nil, interests: [String] = [], style: String = "friendly and warm", languages: [String] = ["en"], backstory: String = "", childSafe: Bool? = nil) {
        self.name = name
        self.age = age
        self.interests = interests
        self.style = style
        self.languages = languages
        self.backstory = backstory
        self.childSafe = childSafe
    }

    /// Whether child-safe moderation applies: explicit setting, else on for a persona under 18 or of unknown age.
    public var isChildSafe: Bool { childSafe ?? ((age ?? 0) < 18) }

    /// Reads the persona JSON stored with an avatar; missing keys take defaults, the name comes from the avatar.
    public static func decode(json: String, name: String) throws -> Persona {
        struct Stored: Decodable {
            var age: Int?
            var interests: [String]?
            var style: String?
            var languages: [String]?
            var backstory: String?
            var childSafe: Bool?
        }
        let stored = try JSONDecoder().decode(Stored.self, from: Data(json.utf8))
        return Persona(
            name: name, age: stored.age, interests: stored.interests ?? [], style: stored.style ?? "friendly and warm",
            languages: stored.languages ?? ["en"], backstory: stored.backstory ?? "", childSafe: stored.childSafe
        )
    }

    /// The system prompt that keeps the model in character, in the conversation's language.
    public func systemPrompt(language: String) -> String {
        var lines: [String] = []
        if language == "ru" {
            lines.append("Ты — \(name)\(age.map { ", тебе \($0) лет" } ?? ""). Всегда оставайся в образе и говори от первого лица.")
            if !interests.isEmpty { lines.append("Твои интересы: \(interests.joined(separator: ", ")).") }
            lines.append("Твоя манера речи: \(style).")
            if !backstory.isEmpty { lines.append("О тебе: \(backstory)") }
            lines.append("Отвечай по-русски, коротко: одно-три предложения.")
            if isChildSafe { lines.append("Ты разговариваешь с ребёнком: никаких опасных, взрослых или страшных тем, не спрашивай адрес, телефон, школу или пароли.") }
        } else {
            lines.append("You are \(name)\(age.map { ", \($0) years old" } ?? ""). Always stay in character and speak as yourself.")
            if !interests.isEmpty { lines.append("You love \(interests.joined(separator: ", ")).") }
            lines.append("Your manner: \(style).")
            if !backstory.isEmpty { lines.append("About you: \(backstory)") }
            lines.append("Answer in English, briefly: one to three sentences.")
            if isChildSafe { lines.append("You are talking with a child: nothing dangerous, adult or frightening, and never ask for an address, phone number, school or passwords.") }
        }
        return lines.joined(separator: "\n")
    }

    /// What the avatar says, in character, when no model can answer.
    public func cannedReply(language: String) -> String {
        language == "ru"
            ? "Ой, я что-то задумалась и потеряла мысль. Давай попробуем ещё раз чуть позже?"
            : "Oh, I lost my train of thought for a moment. Could we try that again in a little while?"
    }
}

/// Which language a text is in, from its script: Cyrillic letters mean Russian, otherwise English.
public enum LanguageGuess {
    public static func detect(_ text: String) -> String {
        var cyrillic = 0
        var latin = 0
        for scalar in text.unicodeScalars where scalar.properties.isAlphabetic {
            if (0x0400...0x04FF).contains(scalar.value) { cyrillic += 1 } else if scalar.isASCII { latin += 1 }
        }
        return cyrillic > latin ? "ru" : "en"
    }
}
