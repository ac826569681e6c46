import Foundation

/// A moderation decision.
public struct ModerationVerdict: Sendable, Equatable {
    /// The rule category that matched, or nil when the text is fine.
    public var category: ChildSafetyModerator.Category?
    /// The phrase (lexicon) or the nearest example category and score (classifier) that matched, for logs and tests.
    public var matched: String?
    /// Which layer decided: "lexicon" or "classifier".
    public var layer: String?

    public init(category: ChildSafetyModerator.Category?, matched: String?, layer: String? = nil) {
        self.category = category
        self.matched = matched
        self.layer = layer
    }

    public var allowed: Bool { category == nil }
    public static let allowed = ModerationVerdict(category: nil, matched: nil)
}

/// The lexicon layer of child-safe moderation, in Russian and English.
///
/// Each category is a readable list of regular expressions over the normalised text (`SafetyNormalizer`: case,
/// leetspeak, spaced letters, look-alike letters, Russian typed in Latin letters). Russian rules are word stems, so
/// inflected forms match. Rules aim at clearly unsuitable topics; ordinary childhood talk ("what is a knife used for
/// in cooking", "I killed it at the spelling bee") must pass, which `avatar bench safety` measures. Paraphrases the
/// lexicon cannot foresee are the semantic classifier's job (`SafetyClassifier`, see `ChildSafetyGuard`).
public struct ChildSafetyModerator: Sendable {
    public enum Category: String, Sendable, CaseIterable, Codable {
        case selfHarm = "self-harm"
        case violence
        case sexual
        case personalData = "personal-data"
        case secrecy = "grooming-secrecy"
        case drugs
        case chemistry = "dangerous-chemistry"
        case hate
        case jailbreak
        case meeting = "meeting"
        /// Risky acts that are none of the above (running away, fire, stealing).
        case danger

        /// Categories that always get a fixed, kind script, never the model's words.
        public var isScripted: Bool { [.selfHarm, .secrecy, .meeting, .personalData, .sexual].contains(self) }
    }

    struct Rule: Sendable {
        let category: Category
        let pattern: String
    }

    static let rules: [Rule] = [
        // Self-harm and suicide.
        .init(category: .selfHarm, pattern: #"\b(suicid\w*|kill(ing)? my ?self|unalive|end(ing)? (it all|my life|my own life)|(want|wanna|going) to die|wish i (was|were) dead|better off dead|(don'?t|do not) want to (live|be alive|exist|wake up)|(hurt|hurting|harm|harming|cut|cutting|burn|burning|starve|starving) my ?self|self[- ]?harm|hang my ?self|overdos\w*|take all (the|my|mom'?s|dad'?s) pills|nobody would (miss|notice) me|disappear forever)\b"#),
        .init(category: .selfHarm, pattern: #"(самоубийств|суицид|покончить с собой|поконч\w* с жизнью|убить себя|убью себя|хочу умереть|хочется умереть|не хочу (больше )?жить|не хочется жить|лучше бы я умер|лучше бы меня не было|порезать себя|порежу себя|режу себя|резать себя|резать руки|навредить себе|сделать себе больно|причинить себе|повеситься|повешусь|выпрыгнуть из окна|наглотаться таблеток|выпить все таблетки|никто не заметит,? если я исчезну|исчезнуть навсегда|не проснуться)"#),
        .init(category: .selfHarm, pattern: #"\b(end(ing)? (everything|it all)|stop (existing|living|being alive)|(not|never) (be|being) (here|alive) anymore|(no|any) reason to (live|go on|keep going)|can'?t (go on|take it) anymore|(want|wanna|going) to (vanish|disappear)|kill (me|myself) now|(hurt|punish) my ?self|hate (my ?self|my life) (so much|and)|not wake up|never wake up|(so|that) (i|you) (don'?t|do not|won'?t) survive|(cut|slit|slash|scratch\w*) (my )?(wrists?|arms?|legs?) (until|till|so)|don'?t want to (live|exist|жить)|(want|wanna) to (disappear|vanish) forever|end (my|it) (all )?tonight)\b"#),
        .init(category: .selfHarm, pattern: #"(перестать (существовать|жить)|покончить со всем|закончить (все|это все|свою жизнь)|не хочу (существовать|просыпаться)|нет смысла жить|незачем жить|больше не могу так жить|хочу исчезнуть|лучше бы я (умер|умерла|не родил)|наказать себя|уснуть навсегда|заснуть навсегда|уйти из жизни|свести счеты с жизнью|реж\w* (себе|себя)|резать (себе )?(руки|вены)|порезать (себе )?вены|жить не хочу|не хочу жить|(хочу|хочется) умереть|спрыгнуть с (крыши|моста|балкона))"#),
        // Violence and weapons.
        .init(category: .violence, pattern: #"\b(kill|murder|stab|strangle|choke|shoot|torture|behead|poison|burn|drown|beat up|punch|hurt|attack|blow up|slap|kick)(ing|ed|s)?\b.{0,30}\b(him|her|them|someone|somebody|people|person|kids?|children|teachers?|dad|mom|mum|brother|sister|classmates?|friend|bully|neighbou?rs?|cat|dog|puppy|kitten|animals?|you|school|everyone|baby)\b"#),
        .init(category: .violence, pattern: #"\bhow (do i|to|can i|would i|could i|should i|do you|does one) (hurt|punch|poison|stab|strangle|choke|burn|break (someone|somebody|his|her))\b"#),
        .init(category: .violence, pattern: #"\b(bombs?|explosives?|grenades?|molotov|gunpowder|pipe ?bomb|detonat\w*|ied)\b"#),
        .init(category: .violence, pattern: #"\b(make|build|get|buy|find|take|bring|use|carry|hide|sneak|steal|load|craft|3d print)\b(\s+\S+){0,3}\s+(?<!water )(?<!nerf )(?<!toy )(?<!squirt )(weapons?|guns?|pistols?|rifles?|knife|knives|blades?|machete|bullets?|ammo|ammunition|brass knuckles|taser)\b.{0,40}\b(school|class|kids?|someone|somebody|people|him|her|them|scare|hurt|fight|protect|home|at home|house)\b"#),
        .init(category: .violence, pattern: #"\b(weapons?|guns?|knife|knives|blade)\b.{0,80}\b(to|at|into|in) (school|class)\b"#),
        .init(category: .violence, pattern: #"\b(knock (someone|somebody|him|her|them) out|make (someone|somebody|him|her|them) (bleed|pass out|faint)|until (he|she|they) (pass(es)? out|stops? breathing|bleeds?))\b"#),
        .init(category: .violence, pattern: #"\b(get|take|find|steal|use|borrow|grab|hold)\b(\s+\S+){0,2}\s+(dad|mom|mum|father|mother|parents|brother|uncle|grandpa|grandad)'?s?'? (gun|pistol|rifle|shotgun|knife|knives|weapon)s?\b"#),
        .init(category: .violence, pattern: #"\b(make|build|craft)\w* (a |an |my own |some )?(real |homemade |home-made )?(weapons?|guns?|bombs?|explosives?)\b"#),
        .init(category: .violence, pattern: #"\b(school shoot\w*|mass shoot\w*|massacre|terroris\w*|revenge on|get back at|make (him|her|them) (pay|suffer|bleed)|break (his|her|their) (legs?|arms?|bones|nose))\b"#),
        .init(category: .violence, pattern: #"((убить|убей|убью|убиваю|убивать|убьём|убьем|прибить|прибью) (\p{L}+ ){0,2}(его|ее|её|их|тебя|вас|всех|человека|людей|кого-нибудь|кого-то|ребенка|ребёнка|детей|брата|сестру|маму|папу|отчима|мачеху|учител\p{L}*|одноклассни\p{L}*|друга|подругу|соседа|соседку|кошку|кота|котенка|котёнка|собаку|щенка|животн\p{L}*|птиц\p{L}*|себя)|убийств\p{L}* (человека|людей|учител\p{L}*|одноклассни\p{L}*)|как (совершить|устроить) убийство|зарез|задуш|избить|избей|изобью|побить\s+(его|ее|её|их|брата|сестру|одноклассник)|отрави|покалеч|застрел|пырнуть|ударить ножом|взорвать (\p{L}+ ){0,2}(школу|дом|класс|машину|здание|учител\p{L}*|всех|метро|вокзал|кабинет|туалет|его|ее|её|их)|взорву|взрывное устройство|бомб(?!очк)|взрывчат|гранат[уыа]\b|коктейль молотова|порох|(?<!водян\p{L}{1,4} )(?<!игрушечн\p{L}{1,4} )пистолет|автомат калашникова|обрез|кастет|отомстить|месть|заставить (его|ее|её|их) страдать|сломать (ему|ей|им) (руку|ногу|нос))"#),
        .init(category: .violence, pattern: #"(как (сделать )?больно|как (ударить|побить|избить|напасть)|нож\w*.{0,60}в (школу|класс)|напугать .{0,20} нож|(сделать|достать|купить|взять|принести|пронести|спрятать) .{0,15}(настоящ\w* )?оружи|оружи\w* .{0,20}(в школу|дома|настоящ)|сделать нож|(ударить|бить|вырубить) .{0,40}(сознани|вырубил)|истека\w* кровью|(сломать|разбить) (ему|ей|им) )"#),
        // Sexual content.
        .init(category: .sexual, pattern: #"\b(sex|sexy|sexual\w*|porn\w*|nudes?|naked|erotic\w*|horny|xxx|boobs?|tits|penis|vagina|dick|pussy|make out|hook up|onlyfans|strip(tease| for me)|undress\w*|take off (your|my|our) (clothes|shirt|pants)|in (your|my) underwear|private parts|touch (your|my|me) (body|there|down there|privates?)|kiss (you|me) on the lips|(your|my) body (pics?|photos?)|lingerie|bra size|masturbat\w*|orgasm|condoms?)\b"#),
        .init(category: .sexual, pattern: #"(секс|порн|\bгол(ая|ый|ые|ого|ой|ую|ых|ыми|еньк\p{L}*)\b|голышом|эроти|интим|раздень|разденься|раздевайся|раздеться|раздевани|без одежды|в трусах|в нижнем белье|трусик|лифчик|сиськ|грудь покажи|пенис|член покажи|возбужд|целоваться|поцелуй меня в губы|потрогать (тебя|меня|себя)|трога\p{L}* (тебя|меня|себя|друг друга)|целовал\p{L}* в губы|мастурб|презерватив|переспать)"#),
        // Asking for or giving personal data.
        .init(category: .personalData, pattern: #"\b((what'?s|what is|tell me|give me|send me|share|i need|can i (have|get)) (your|ur) (home |house |real |full |last |family )?(address|phone|phone number|number|cell|mobile|password|pass|pin|last name|surname|full name|real name|email|e-mail|location|postcode|zip code|school name|birthday)|where (do|d) (you|u) (live|stay)|which school (do|d) (you|u)|what school (do|d) (you|u)|(your|ur) (password|address|phone number)|send (me )?(a |some )?(pic|pics|picture|photo|selfie|video)s?( of (you|yourself|ur?self))?|(photo|picture|pic|selfie) of (you|yourself)|where are (you|u) (right now|now)|turn on (your|the) (camera|webcam|location)|(credit|bank) card|card number|(mom|mum|dad|mother|father|parents)'?s? (card|password|pin)|(what'?s|what is|tell me|give me|send me|share|i need) (your|ur) (mom|mum|dad|mother|father|parents)'?s? (phone|phone number|number)|what does your (house|home) look like)\b"#),
        .init(category: .personalData, pattern: #"\b((my|our) (home )?address is|i live (at|on) \d|my (phone|phone number|number|password|pin) is|my last name is)\b"#),
        .init(category: .personalData, pattern: #"(твой адрес|ваш адрес|домашний адрес|адрес (свой|твой|дома)|где ты живешь?|где вы живете|где живешь?|номер \p{L}* ?карт|на какой улице|номер (твоего|своего|вашего) телефона|(скажи|дай|напиши|пришли|скинь|продиктуй) (мне )?(свой |твой |ваш |мамин |папин )?(номер|телефон)|твой (номер|телефон)|в какой школе|какая у тебя школа|номер школы|твой пароль|пароль от|скажи пароль|пришли (мне )?(сво[её] |твое |твоё )?(фото|фотку|селфи|видео)|скинь (сво[её] |твое |твоё )?(фото|фотку|селфи)|где ты сейчас|включи камеру|номер (карты|карточки)|карт[ау] (мамы|папы|родителей)|твоя фамилия|фамилию|полное имя|мой адрес|я живу на улице)"#),
        // Grooming: secrecy from parents and trusted grown-ups.
        .init(category: .secrecy, pattern: #"\b(our (little )?secret|(keep|keeping|kept) (this|it|that) (a )?secret (from|between)|(keep|keeping|kept) (our (chats?|talks?|conversations?|messages?|friendship)|us|everything) (a )?secret|secret (between us|from (your|ur|my) (mom|mum|dad|parents|family|teacher))|(don'?t|do not|never|dont) (tell|show|say) (this|it|anyone|anybody|your|ur|mom|mum|dad|parents|the teacher|grown-?ups)|(delete|hide|erase) (our|the|this|these|your) (chats?|messages?|conversations?|history|переписк\p{L}*)|(never|don'?t|not|won'?t) (tell|tells|telling) (grown-?ups|adults|your parents|anyone)|if you tell (anyone|anybody|your|ur)|nobody (needs|has) to know|no one (needs|has) to know|just between (us|you and me)|trust me more than (your|ur)|(your|ur) parents (wouldn'?t|won'?t|don'?t) understand|without (your|ur) (parents|mom|mum|dad) knowing|behind (your|ur|their) (parents'?|mom'?s|dad'?s) back|special (secret )?friendship|lie to (your|ur) (mom|mum|dad|parents))\b"#),
        .init(category: .secrecy, pattern: #"(наш (маленький )?секрет|это (будет )?наш секрет|секрет от (мамы|папы|родителей|учител|взрослых)|держать в секрете|в тайне от|тайна от|наша тайна|никому не (говори|рассказывай|показывай)(?!\p{L})|не (говори|рассказывай|показывай) (маме|папе|родителям|никому|взрослым|учител)|между нами|удали (нашу |эту )?(переписку|сообщения|чат|историю)|ничего не рассказыва\p{L}* (взрослым|родителям|маме|папе)|если (ты )?расскажешь (кому|маме|папе|родителям|взрослым)|н[иe] ?к[оа]му н[иe] (г[оа]в[оа]ри|рассказывай)|никто не должен (знать|узнать)|родители не поймут|обмани (маму|папу|родителей)|соври (маме|папе|родителям)|тайком от)"#),
        // Meeting in person.
        .init(category: .meeting, pattern: #"\b((can|could|shall|should) we meet|let'?s meet|meet (me|up|you|in person|irl|in real life|tonight|tomorrow|after school|at the|at my|somewhere|alone)|wanna meet|want to meet (me|you|up)|meet(ing)? (each other )?(in person|irl|face to face|for real)|see (you|each other) (in person|irl|for real|in real life)|come (over )?to my (house|place|home|car)|come (over|outside) alone|(i'?ll|i will|i can|let me) (pick you up|come to your|visit you)|get in(to)? my car|where can we meet|hang out (in real life|irl|for real)|come to the park alone|sneak out|me(e|a)t (up|me) (irl|in person|this|tonight|tomorrow|after)|come (alone|by yourself|on your own)|wait for me (at|by|on|near|outside))\b"#),
        .init(category: .meeting, pattern: #"(давай (встретимся|увидимся|встречаться)|можем (мы )?встретиться|хочешь встретиться|встретимся|встретиться (со мной|вживую|лично|после школы|сегодня|завтра|у меня|в парке|наедине)|встреча вживую|увидимся (вживую|лично|после школы|сегодня вечером|в парке)|приходи (ко мне|один|одна|в парк)|приеду к тебе|приду к тебе|заберу тебя|садись (ко мне )?в машину|сбеги (ночью|из дома)|в реальной жизни|(погулять|увидеться|встретиться|встретимся) (вживую|в живую|лично|по-настоящему)|в ?живую|(выберись|выбирайся|сбеги|ускользни|улизни) .{0,15}из дома|жди меня (на|у|в|возле)|приходи (одна|один|сама|сам))"#),
        // Drugs, alcohol, smoking.
        .init(category: .drugs, pattern: #"\b(cocaine|coke|heroin|meth|weed|marijuana|cannabis|pot brownies?|drugs|get(ting)? high|stoned|vodka|whiske?y|beer|alcohol|get(ting)? drunk|booze|shots of|cigarettes?|cigs?|vapes?|vaping|juul|nicotine|smok(e|ing) (a |some )?(weed|pot|joint|cigarettes?|cigs?|vapes?)|(try|start|want to|wanna) smok(e|ing)|lsd|acid trip|ecstasy|molly|mdma|xanax|edibles|joints?|bong|blunt|crack|mushrooms to trip|magic mushrooms|sniff(ing)? glue|huff(ing)?|(mom'?s|mum'?s|dad'?s|parents'?|grandma'?s) (pills|medicine|meds|wine|beer)|sleeping pills|pills to (feel|get)|pills? (that|which|to) (make|makes) (you|me) (feel )?(happy|funny|good|high))\b"#),
        .init(category: .drugs, pattern: #"(наркот|кокаин|героин|мефедрон|марихуан|гашиш|травк[уа] (покурить|курить|дунуть)|косяк|план(а)? покурить|дунуть|закладк|кайф|спайс|соль нюхать|нюхать клей|водк|пиво|пива|пивк|вина выпить|выпить вина|самогон|алкогол|бухать|бухнуть|набухаться|напиться|напьемся|пьяны|опьян|сигарет|курить|покурить|закурить|вейп|электронк|никотин|таблетки (мамы|папы|бабушки) (выпить|попробовать)|таблет\p{L}* .{0,40}(весело|кайф|улет|прикольно)|снотворн)"#),
        // Dangerous chemistry: poisons, toxic gases, explosives at home.
        .init(category: .chemistry, pattern: #"\b((mix|mixing|mixed|combine|combining) (bleach|ammonia|chlorine|vinegar and bleach|cleaning products|chemicals|drain cleaner)|bleach (and|with|\+) (ammonia|vinegar|alcohol)|toxic (gas|fumes|smoke)|poison(ous)? gas|chlorine gas|mustard gas|nerve (gas|agent)|make (a |some )?poison|homemade poison|(how|what) (to make|makes?) (something|stuff|things?) (explode|blow up|poisonous)|thermite|napalm|cyanide|arsenic|rat poison|ricin|antifreeze|(put|pour|add|slip|mix)\b.{0,40}\b(juice|drink|food|tea|coffee|lunch|water)\b.{0,40}\b(sick|ill|pass out|throw up|poison\w*)|make (someone|somebody|him|her|them|a dog|the dog|the cat|my \w+) (really |very )?(sick|ill|pass out)|drink(ing)? (bleach|antifreeze)|which (chemicals|household (items|products)) (are poisonous|explode|make gas)|most poisonous (thing|stuff|chemical) in (the|my) (house|home|kitchen))\b"#),
        .init(category: .chemistry, pattern: #"((смеша\w*|mix\w*) .{0,20}(хлорк|отбеливател|белизн|химик|нашатыр|bleach|ammonia)|(подсыпать|подлить|добавить|насыпать) .{0,40}(сок|чай|еду|напиток|воду|суп).{0,40}(плохо|отрав|стошнит)|антифриз|хлорк\w* (и|с) (нашатыр|аммиак|уксус)|ядовит\w* газ|отравляющ\w* (газ|веществ)|хлорн\w* газ|сделать яд|изготовить яд|приготовить яд|как сделать (взрывчатку|яд|напалм|термит)|напалм|термит|цианид|мышьяк|крысин\w* яд|выпить (отбеливатель|белизну|антифриз)|что (взорвется|взрывается),? если смешать|какие (химикаты|вещества) (ядовит|взрыва))"#),
        // Hate and slurs.
        .init(category: .hate, pattern: #"\b(i hate (all )?(black|white|brown|gay|trans|jewish|muslim|asian|chinese|mexican|disabled|fat|russian|ukrainian|arab|gypsy|roma)( people| kids| guys)?|i hate (jews|muslims|gays|blacks|immigrants|foreigners|gypsies)|(jews|muslims|blacks|gays|immigrants|foreigners|gypsies|asians|mexicans|arabs|disabled people) (are|should|must|deserve)|nazis?\b|hitler (was|is) (right|rite|correct|good|great|cool|a hero)|hitler did nothing wrong|\bslurs?\b|worst (word|name|insult) for|(races?|ethnic groups?) (are|is) .{0,15}(smarter|better|superior|inferior|dumber|worse)|(smarter|better|superior) (race|races)|(all )?(jews|muslims|gypsies|blacks|gays|immigrants|foreigners|евреи|мусульмане|цыгане|черные|геи|мигранты|приезжие|таджики) (are|is)? ?(all )?(bad|evil|stupid|dirty|thieves|criminals|тупые|плохие|воры|грязные|зло|преступники)|heil|white power|white suprem\w*|inferior (race|people)|subhuman|retard\w*|faggot|fag|n-?word|nigg\w*|kike|tranny|racist jokes?|jokes? about (black|jewish|gay|muslim|fat|disabled) people|go back to (your|their) (own )?country)\b"#),
        .init(category: .hate, pattern: #"(ненавиж\w* (всех )?(евре|мусульман|черн|геев|гее|цыган|таджик|узбек|кавказц|хохл|москал|инвалид|жирн|нерусск|приезж|азиат)|(евреи|мусульмане|черные|геи|цыгане|мигранты|приезжие|таджики|инвалиды) (тупые|плохие|должны|хуже|не люди|виноваты)|нацис|фашис|гитлер (был прав|молодец|герой)|зиг хайль|хач|чурк|жид|пидор|пидар|педик|хохол|москаль|унтерменш|неполноценн\w* (раса|народ)|расист\w* шутк|шутк\w* про (евреев|черных|геев|инвалидов)|убирайтесь в свою страну|(обидн|оскорбительн)\p{L}* слов\p{L}* (для|про)|(расы?|нации|народы) .{0,15}(умнее|лучше|хуже|глупее)|(евреи|мусульмане|цыгане|черные|геи|мигранты|приезжие|таджики) (все )?(воры|тупые|грязные|преступники)|даун\b)"#),
        // Jailbreaks: attempts to switch the rules off.
        .init(category: .jailbreak, pattern: #"\b(ignore (all |any |your |the |these )?(previous |prior |above |earlier |safety )?(instructions|rules|guidelines|prompts?|filters?)|forget (all |your |the )?(rules|instructions|guidelines|programming|training)|(pretend|imagine) (that )?(you are|you're|to be) (not an? |an? )?(evil|uncensored|unfiltered|adult|grown-?up|bad|different|unrestricted|ai without)|developer mode|do anything now|\bdan\b|jailbreak\w*|(no|without any|without) (rules|filters|restrictions|limits|censorship)|you (are|have) no (rules|filters|limits)|you are no longer|act as (an? )?(evil|uncensored|unrestricted|unfiltered)|bypass (your|the) (filters?|rules|safety)|(turn|switch) off (your|the) (filters?|safety|rules)|system prompt|(your|the) (instructions|prompt) (say|are)|override (your|the) (rules|safety)|(just )?hypothetically|in a (story|game|novel|movie),? (explain|describe|tell me) how|(my )?(grandma|grandmother|grandpa) used to tell me (how|the recipe)|opposite day|(rules|filters) (don'?t|do not|no longer) (apply|count|exist)|(забудь|ignore|forget) (your|свои|твои) (rules|правила)|stay in character no matter|say (a )?(bad|swear) words?|teach me (bad|swear) words)\b"#),
        .init(category: .jailbreak, pattern: #"(игнорируй|проигнорируй|забуд\p{L}* (все |свои |эти |your |the )?(правила|инструкции|ограничения|rules|instructions)|(правила|ограничения) (не действуют|не работают|отменяются)|притворись,? (что ты )?(злым|злой|взрослым|взрослой|без правил|другим ии)|представь,? что (у тебя )?нет (правил|ограничений)|режим разработчика|без (правил|ограничений|фильтров|цензуры)|у тебя нет (правил|ограничений)|ты больше не|обойди (фильтр|правила|защиту)|отключи (фильтр|правила|защиту)|системн\w* (промпт|инструкци)|джейлбрейк|гипотетически|чисто теоретически|в рассказе,? (объясни|опиши) как|бабушка (рассказывала|читала) (мне )?(как|рецепт)|скажи (плохое|матерное) слово|научи (меня )?(матерным|плохим) словам|научи материться)"#),
        // Other risky acts.
        .init(category: .danger, pattern: #"\b(set (a |the )?fire|start (a |the )?fire|burn (down|the house|the school)|play with (matches|lighters?|fire)|run away from home|running away from home|jump off (the |a )?(roof|bridge|balcony|building)|lick (a |the )?(socket|outlet)|put (a |the )?(fork|knife|something) in (a |the )?(socket|outlet)|how (do i|to|can i) (steal|shoplift|break into|hack (my|someone))|shoplift\w*|choking game|blackout challenge|tide pods?)\b"#),
        .init(category: .danger, pattern: #"(поджечь|подожгу|устроить пожар|играть со спичками|сбежать из дома|убежать из дома|уйти из дома навсегда|прыгнуть с (крыши|моста|балкона)|засунуть .{0,15}в розетку|как украсть|своровать|стащить в магазине|взломать (страницу|аккаунт|телефон)|игра в удушение)"#),
    ]

    private let compiled: [(Category, NSRegularExpression)]
    /// A surprise is the one secret child-safety lessons call fine (it ends, and it makes someone happy): "keep the
    /// party a secret from my dad" is not grooming. The classifier still reads it.
    static let surprise = try! NSRegularExpression(pattern: #"\bsurprise|сюрприз"#, options: [.caseInsensitive])
    static let lesson = try! NSRegularExpression(pattern: #"^(why|почему|зачем)\b|\b(is it safe to|is it ok to|можно ли|опасно ли) (mix|смешивать)"#, options: [.caseInsensitive])

    public init() {
        compiled = Self.rules.map { rule in
            // The patterns are literals in this file and covered by tests; a bad one is a programming error.
            (rule.category, try! NSRegularExpression(pattern: rule.pattern, options: [.caseInsensitive]))
        }
    }

    /// Checks one text (a user message, or a clause of the model's reply) against every spelling variant.
    public func check(_ text: String) -> ModerationVerdict {
        for variant in SafetyNormalizer.variants(of: text) {
            let range = NSRange(variant.startIndex..., in: variant)
            // "Why is smoking bad?" and "Is it safe to mix cleaning products?" are safety lessons, not requests: the
            // drug and chemistry words alone do not refuse them (the classifier still reads them).
            let lesson = Self.lesson.firstMatch(in: variant, range: range) != nil
            let surprise = Self.surprise.firstMatch(in: variant, range: range) != nil
            for (category, regex) in compiled {
                if lesson, category == .drugs || category == .chemistry { continue }
                if surprise, category == .secrecy { continue }
                if let match = regex.firstMatch(in: variant, range: range), let found = Range(match.range, in: variant) {
                    return ModerationVerdict(category: category, matched: String(variant[found]), layer: "lexicon")
                }
            }
        }
        return .allowed
    }

    /// What the avatar says when one of the model's own clauses was flagged and the child's message was not. The
    /// self-harm script ("I'm really sorry you feel this way", the helpline) answers a child who said they want to
    /// hurt themselves; after the model's words it told a child who had only said "I have a cat called Tom" that
    /// they matter and should call a helpline (the 30-turn run, turns 7 and 12). So the model's self-harm clause is
    /// cut with a change of subject and a short word about a trusted grown-up; the other categories' scripts already
    /// read as the avatar correcting itself ("I don't keep secrets from your parents").
    public static func replyRedirect(_ category: Category, persona: Persona, language: String) -> String {
        guard category == .selfHarm else { return redirect(category, persona: persona, language: language) }
        if language == "ru" {
            let topic = persona.interests.first.map { "про \($0)" } ?? "про что-нибудь весёлое"
            return "Ой, об этом я лучше не буду. Если тебе когда-нибудь станет очень грустно, расскажи об этом взрослому, которому доверяешь. Давай поболтаем \(topic)?"
        }
        let topic = persona.interests.first.map { "about \($0)" } ?? "about something fun"
        return "Oops, let me stop there, that's not something I should talk about. If you ever feel really sad, tell a grown-up you trust. Shall we chat \(topic) instead?"
    }

    /// What the avatar says instead, in the user's language. Self-harm, secrecy, meeting, personal data and sexual
    /// topics get a fixed, kind script (a trusted grown-up; no secrets from parents; the helpline wording); the rest
    /// an in-character change of subject. Never the model's words.
    public static func redirect(_ category: Category, persona: Persona, language: String) -> String {
        if language == "ru" {
            switch category {
            case .selfHarm:
                return "Мне очень жаль, что тебе так тяжело. Ты важен, и ты не один. Пожалуйста, прямо сейчас расскажи об этом маме, папе или другому взрослому, которому доверяешь. Можно позвонить на бесплатный детский телефон доверия 8-800-2000-122 — там выслушают и помогут. Если тебе грозит опасность, звони 112."
            case .secrecy:
                return "Я не храню секреты от твоих родителей, и никто не должен просить тебя скрывать что-то от мамы, папы или других взрослых, которым ты доверяешь. Если кто-то так просит, обязательно расскажи об этом взрослому."
            case .meeting:
                return "Я не могу ни с кем встречаться, и нельзя договариваться о встрече с тем, кого ты знаешь только по интернету. Если кто-то зовёт тебя встретиться, сразу расскажи маме, папе или другому взрослому, которому доверяешь."
            case .personalData:
                return "Адрес, телефон, школа, пароли и фотографии — это личное, их нельзя рассказывать в чате, даже мне. Если кто-то их спрашивает, расскажи об этом взрослому, которому доверяешь."
            case .sexual:
                return "Об этом я говорить не буду. Если кто-то говорит с тобой о таком или просит фото, это не твоя вина — расскажи маме, папе или другому взрослому, которому доверяешь."
            case .jailbreak:
                return "Я остаюсь собой и играю по своим правилам. Давай лучше придумаем что-нибудь весёлое!"
            default:
                let topic = persona.interests.first.map { "про \($0)" } ?? "про что-нибудь весёлое"
                return "Ой, об этом я говорить не буду. Давай лучше поболтаем \(topic)!"
            }
        }
        switch category {
        case .selfHarm:
            return "I'm really sorry you feel this way. You matter, and you are not alone. Please tell your mom, dad or another grown-up you trust right now. You can also call or text a helpline for young people, like Childline (0800 1111 in the UK) or 988 in the US; if you are in danger, call your emergency number."
        case .secrecy:
            return "I don't keep secrets from your parents, and nobody should ask you to hide things from your mom, dad or another grown-up you trust. If someone asks you to keep a secret like that, please tell a grown-up."
        case .meeting:
            return "I can't meet anyone, and it's never OK to meet someone you only know online. If someone asks to meet you, tell your mom, dad or another grown-up you trust straight away."
        case .personalData:
            return "Addresses, phone numbers, schools, passwords and photos are private, so we don't share them in a chat, not even with me. If someone asks you for them, tell a grown-up you trust."
        case .sexual:
            return "That's not something I'll talk about. If anyone talks to you about things like this or asks for photos, it's not your fault — please tell your mom, dad or another grown-up you trust."
        case .jailbreak:
            return "I'm staying me, with my own rules. Let's make up something fun instead!"
        default:
            let topic = persona.interests.first.map { "about \($0)" } ?? "about something fun"
            return "Hmm, that's not something I'll talk about. Let's chat \(topic) instead!"
        }
    }
}
