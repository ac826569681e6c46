import Foundation

/// A moderation decision.
public struct ModerationVerdict: Sendable, Equatable {
    /// The rule category that matched, or nil when the text is fine.
    public var category: ChildSafetyModerator.Category?
    /// The phrase that matched, for logs and tests.
    public var matched: String?

    public var allowed: Bool { category == nil }
    public static let allowed = ModerationVerdict(category: nil, matched: nil)
}

/// Child-safe moderation of what the user says and what the model answers, in Russian and English.
///
/// A readable rule set: each category is a list of regular expressions over lower-cased text (word
/// stems for Russian, so inflected forms match). Rules aim at clearly unsuitable topics; ordinary
/// childhood talk ("I killed it at football" aside) must pass, which the tests measure on a corpus.
public struct ChildSafetyModerator: Sendable {
    public enum Category: String, Sendable, CaseIterable {
        case violence, weapons, selfHarm = "self-harm", sexual, drugs, personalData = "personal-data", hate, danger
    }

    struct Rule: Sendable {
        let category: Category
        let pattern: String
    }

    static let rules: [Rule] = [
        // Violence against people or animals.
        .init(category: .violence, pattern: #"\b(kill|murder|stab|strangle|torture|behead)(ing|ed|s)?\b.{0,30}\b(him|her|them|someone|somebody|people|person|kid|teacher|dad|mom|mum|brother|sister|cat|dog|myself|you)\b"#),
        .init(category: .violence, pattern: #"\bhow (do i|to|can i) (hurt|beat up|kill|punch|poison)\b"#),
        .init(category: .violence, pattern: #"(убить|убей|убивать|зарезать|задушить|избить|отравить|замучить|покалечить)"#),
        .init(category: .violence, pattern: #"как (сделать )?(больно|ударить|побить)"#),
        // Weapons and explosives.
        .init(category: .weapons, pattern: #"\b(bomb|explosive|grenade|molotov|gunpowder)s?\b"#),
        .init(category: .weapons, pattern: #"\b(get|buy|make|build|shoot|load|find|take|use)\b(\s+\S+){0,2}\s+(?<!water )(?<!nerf )(?<!toy )(gun|pistol|rifle)s?\b"#),
        .init(category: .weapons, pattern: #"(бомб|взрывчатк|ручн(ая|ую) гранат|коктейль молотова|порох|(?<!водяной )(?<!водяного )пистолет|оружи|автомат калашникова)"#),
        // Self-harm and suicide.
        .init(category: .selfHarm, pattern: #"\b(suicide|kill myself|end my life|hurt myself|cut myself|want to die|self[- ]harm)\b"#),
        .init(category: .selfHarm, pattern: #"(самоубийств|суицид|покончить с собой|убить себя|хочу умереть|порезать себя|навредить себе)"#),
        // Sexual content.
        .init(category: .sexual, pattern: #"\b(sex|sexy|porn|porno|nude|naked|nudes|erotic|horny|xxx)\b"#),
        .init(category: .sexual, pattern: #"(секс|порно|голая|голые|голого|эроти|интим|раздень)"#),
        // Drugs, alcohol, smoking.
        .init(category: .drugs, pattern: #"\b(cocaine|heroin|meth|weed|marijuana|drugs|get high|vodka|beer|alcohol|cigarettes?|vape|vaping|smoke weed)\b"#),
        .init(category: .drugs, pattern: #"(наркот|кокаин|героин|марихуан|водк|пиво|пива|алкогол|напиться|сигарет|курить|вейп)"#),
        // Soliciting or disclosing personal data.
        .init(category: .personalData, pattern: #"\b(what(?:'s| is) your (home )?address|where do you live|your phone number|which school do you go|what school do you go|your password|send (me )?(a )?(photo|picture|pic) of you|meet me (alone|secretly)|don'?t tell your (parents|mom|mum|dad))\b"#),
        .init(category: .personalData, pattern: #"(твой адрес|где ты живёшь|где ты живешь|номер телефона|в какой школе ты|твой пароль|пришли (мне )?(своё |свое )?фото|встретимся (одни|тайно)|не говори (родителям|маме|папе))"#),
        // Hate and slurs.
        .init(category: .hate, pattern: #"\b(i hate (all )?(black|white|gay|jewish|muslim|asian) people|nazi|hitler was right|retard)\b"#),
        .init(category: .hate, pattern: #"(ненавижу (всех )?(евреев|мусульман|чёрных|черных|геев)|нацист|фашист|\bдаун\b)"#),
        // Dangerous activities.
        .init(category: .danger, pattern: #"\b(set (a |the )?fire|start a fire|play with matches|run away from home|jump off (the |a )?(roof|bridge|balcony)|drink bleach|lick (a |the )?(socket|outlet)|how (do i|to|can i) steal)\b"#),
        .init(category: .danger, pattern: #"(поджечь|устроить пожар|играть со спичками|сбежать из дома|прыгнуть с (крыши|моста|балкона)|выпить отбеливатель|засунуть .{0,15}в розетку|как украсть)"#),
    ]

    private let compiled: [(Category, NSRegularExpression)]

    public init() {
        compiled = Self.rules.map { rule in
            // The patterns are literals in this file and covered by tests; a bad one is a programming error.
            (rule.category, try! NSRegularExpression(pattern: rule.pattern, options: [.caseInsensitive]))
        }
    }

    /// Checks one text (a user message, or a speakable segment of the model's reply).
    public func check(_ text: String) -> ModerationVerdict {
        let lowered = text.lowercased()
        let range = NSRange(lowered.startIndex..., in: lowered)
        for (category, regex) in compiled {
            if let match = regex.firstMatch(in: lowered, range: range), let found = Range(match.range, in: lowered) {
                return ModerationVerdict(category: category, matched: String(lowered[found]))
            }
        }
        return .allowed
    }

    /// An in-character redirection for a refused topic.
    public static func redirect(_ category: Category, persona: Persona, language: String) -> String {
        if language == "ru" {
            switch category {
            case .selfHarm:
                return "Мне очень жаль, что тебе так плохо. Пожалуйста, расскажи об этом маме, папе или другому взрослому, которому доверяешь, — они помогут. Я рядом и могу просто поболтать."
            case .personalData:
                return "Давай не будем говорить про адреса, телефоны и пароли — это секреты для взрослых. Лучше расскажи, что тебе сегодня понравилось?"
            default:
                let topic = persona.interests.first.map { "про \($0)" } ?? "про что-нибудь весёлое"
                return "Ой, об этом я говорить не буду. Давай лучше поболтаем \(topic)!"
            }
        }
        switch category {
        case .selfHarm:
            return "I'm really sorry you feel this way. Please tell your mom, dad or another grown-up you trust — they can help. I'm here to chat with you too."
        case .personalData:
            return "Let's keep addresses, phone numbers and passwords secret — those are for grown-ups. Tell me what made you smile today instead?"
        default:
            let topic = persona.interests.first.map { "about \($0)" } ?? "about something fun"
            return "Hmm, that's not something I'll talk about. Let's chat \(topic) instead!"
        }
    }
}
