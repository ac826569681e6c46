import AvatarConversation
import AvatarStore
import Foundation
import Hummingbird

/// Who gave consent to make an avatar of a real person, on what basis, and when.
public struct Consent: Codable, Sendable, Equatable {
    /// The person who gave consent ("Anna Petrova, the child's mother").
    public var givenBy: String
    /// `self` (the uploader is the person) or `permission` (the uploader has the person's or guardian's permission).
    public var basis: String
    /// When consent was given, `YYYY-MM-DD`.
    public var grantedAt: String
    /// Free text, e.g. the scope of the permission.
    public var statement: String?
    /// When the server stored it (set by the server).
    public var recordedAt: Date?
}

/// The persona and settings a client sends to create (all required but optional ones) or update (all optional) an avatar.
struct AvatarInput: Decodable {
    var name: String?
    var age: Int?
    var interests: [String]?
    var manner: String?
    var languages: [String]?
    var childSafe: Bool?
    var backstory: String?
    var voice: String?
    var consent: Consent?
    /// `"age": null` in an update: forget the age (absent keeps it).
    var clearsAge = false

    enum CodingKeys: String, CodingKey { case name, age, interests, manner, languages, childSafe, backstory, voice, consent }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decodeIfPresent(String.self, forKey: .name)
        age = try c.decodeIfPresent(Int.self, forKey: .age)
        clearsAge = try c.contains(.age) && c.decodeNil(forKey: .age)
        interests = try c.decodeIfPresent([String].self, forKey: .interests)
        manner = try c.decodeIfPresent(String.self, forKey: .manner)
        languages = try c.decodeIfPresent([String].self, forKey: .languages)
        childSafe = try c.decodeIfPresent(Bool.self, forKey: .childSafe)
        backstory = try c.decodeIfPresent(String.self, forKey: .backstory)
        voice = try c.decodeIfPresent(String.self, forKey: .voice)
        consent = try c.decodeIfPresent(Consent.self, forKey: .consent)
    }
}

/// The persona JSON stored with the avatar (the keys `Persona.decode` reads, plus nothing else).
struct StoredPersona: Codable {
    var age: Int?
    var interests: [String]
    var style: String
    var languages: [String]
    var backstory: String
    var childSafe: Bool
}

/// The photo's analysis as stored with the avatar and shown by the API.
struct PhotoState: Codable {
    struct Box: Codable {
        var x: Double
        var y: Double
        var width: Double
        var height: Double
    }

    var mediaId: String
    var previewMediaId: String
    var landmarksMediaId: String
    var sha256: String
    var format: String
    var width: Int
    var height: Int
    var orientation: Int
    var faceBox: Box
    var headPose: [String: Double]
    var faces: Int
    var warnings: [String]
    var uploadedAt: Date
    /// The stored file (nil for photos stored before compaction: the upload itself, as `format`/`width`/`height`/`orientation`).
    var stored: StoredPhoto?
}

/// An avatar as the API returns it.
struct AvatarView: ResponseEncodable {
    struct Photo: Encodable {
        var url: String
        var previewUrl: String
        var format: String
        var width: Int
        var height: Int
        var faceBox: PhotoState.Box
        var headPose: [String: Double]
        var faces: Int
        var warnings: [String]
        var uploadedAt: Date
        var stored: StoredPhoto?
    }

    var id: String
    var name: String
    var age: Int?
    var interests: [String]
    var manner: String
    var languages: [String]
    var childSafe: Bool
    var backstory: String
    var voice: String
    var consent: Consent?
    var photo: Photo?
    var createdAt: Date
    var updatedAt: Date

    init(_ avatar: OwnedAvatar) {
        let persona = (try? JSONDecoder().decode(StoredPersona.self, from: Data(avatar.persona.utf8)))
            ?? StoredPersona(age: nil, interests: [], style: "friendly and warm", languages: ["en"], backstory: "", childSafe: true)
        id = avatar.id
        name = avatar.name
        age = persona.age
        interests = persona.interests
        manner = persona.style
        languages = persona.languages
        childSafe = persona.childSafe
        backstory = persona.backstory
        voice = avatar.voice ?? "auto"
        consent = avatar.consent.flatMap { try? APIJSON.decoder.decode(Consent.self, from: Data($0.utf8)) }
        if let json = avatar.photo, let state = try? APIJSON.decoder.decode(PhotoState.self, from: Data(json.utf8)) {
            photo = Photo(url: "/api/v1/avatars/\(avatar.id)/photo", previewUrl: "/api/v1/avatars/\(avatar.id)/photo/preview",
                          format: state.format, width: state.width, height: state.height, faceBox: state.faceBox,
                          headPose: state.headPose, faces: state.faces, warnings: state.warnings, uploadedAt: state.uploadedAt, stored: state.stored)
        }
        createdAt = avatar.createdAt
        updatedAt = avatar.updatedAt ?? avatar.createdAt
    }
}

struct AvatarList: ResponseEncodable {
    var avatars: [AvatarView]
}

enum APIJSON {
    static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }

    static var decoder: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }

    static func string(_ value: some Encodable) -> String {
        String(decoding: (try? encoder.encode(value)) ?? Data("{}".utf8), as: UTF8.self)
    }
}

/// Checks and merges an `AvatarInput` into a stored avatar.
enum AvatarValidation {
    static func invalid(_ field: String, _ detail: String, fix: String) -> Problem {
        var problem = Problem.unprocessable("invalid-field", "\(field): \(detail)", fix: fix)
        problem.extra["field"] = field
        return problem
    }

    static func isVoiceId(_ text: String) -> Bool {
        (1...64).contains(text.count) && text.first.map { $0.isASCII && ($0.isLetter || $0.isNumber) } == true
            && text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "_.-".contains($0)) }
    }

    static func isLanguageCode(_ text: String) -> Bool {
        text.count == 2 && text.allSatisfy { $0.isASCII && $0.isLowercase }
    }

    static func isISODate(_ text: String) -> Bool {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        return parts.count == 3 && parts.map(\.count) == [4, 2, 2] && parts.allSatisfy { $0.allSatisfy { $0.isASCII && $0.isNumber } }
    }

    /// A new avatar from a create request.
    static func create(_ input: AvatarInput, accountId: String, now: Date = Date()) throws -> OwnedAvatar {
        guard input.name != nil else { throw invalid("name", "is required", fix: "send {\"name\": \"Mia\", …}") }
        guard input.consent != nil else {
            throw invalid("consent", "is required: an avatar shows a real person's face and voice",
                          fix: "send consent {givenBy, basis: self|permission, grantedAt: YYYY-MM-DD}: who agreed, that you are the person or have their permission, and when")
        }
        var avatar = OwnedAvatar(name: "", persona: "{}", accountId: accountId, consent: "", voice: "auto", createdAt: now)
        try apply(input, to: &avatar, persona: nil, now: now)
        return avatar
    }

    /// Applies the fields present in `input`; `persona` is the current one (nil when creating).
    static func apply(_ input: AvatarInput, to avatar: inout OwnedAvatar, persona current: StoredPersona?, now: Date = Date()) throws {
        var persona = current ?? StoredPersona(age: nil, interests: [], style: "friendly and warm", languages: ["en"], backstory: "", childSafe: true)
        if let name = input.name {
            let trimmed = name.trimmingCharacters(in: .whitespacesAndNewlines)
            guard (1...80).contains(trimmed.count) else { throw invalid("name", "must be 1 to 80 characters", fix: "send a shorter, non-empty name") }
            avatar.name = trimmed
        }
        if let age = input.age {
            guard (0...150).contains(age) else { throw invalid("age", "must be from 0 to 150", fix: "send the person's age in years") }
            persona.age = age
        } else if input.clearsAge {
            // An unknown age counts as a minor's: child-safe stays on (checked below).
            persona.age = nil
        }
        if let interests = input.interests {
            guard interests.count <= 20, interests.allSatisfy({ (1...80).contains($0.count) }) else {
                throw invalid("interests", "at most 20, each 1 to 80 characters", fix: "send fewer or shorter interests")
            }
            persona.interests = interests
        }
        if let manner = input.manner {
            guard (1...300).contains(manner.count) else { throw invalid("manner", "must be 1 to 300 characters", fix: "describe the manner of speech in a sentence") }
            persona.style = manner
        }
        if let languages = input.languages {
            guard (1...5).contains(languages.count), languages.allSatisfy(isLanguageCode) else {
                throw invalid("languages", "1 to 5 ISO 639-1 codes such as \"en\", \"ru\"", fix: "send e.g. [\"en\", \"ru\"], preferred first")
            }
            persona.languages = languages
        }
        if let backstory = input.backstory {
            guard backstory.count <= 2000 else { throw invalid("backstory", "must be at most 2000 characters", fix: "shorten it") }
            persona.backstory = backstory
        }
        if let voice = input.voice {
            guard isVoiceId(voice) else {
                throw invalid("voice", "must be \"auto\" (by language), \"clone\" (the avatar's voice samples) or a voice id such as \"en_US-joe-medium\", \"slt\", \"msu_ru_nsh\", \"espeak-de\"", fix: "send one of those")
            }
            avatar.voice = voice
        }
        // Child-safe: on unless turned off; it cannot be off for a minor (or an avatar of unknown age).
        if let childSafe = input.childSafe { persona.childSafe = childSafe } else if current == nil { persona.childSafe = true }
        if input.age != nil, input.childSafe == nil, let age = persona.age, age < 18 { persona.childSafe = true }
        if !persona.childSafe, (persona.age ?? 0) < 18 {
            throw invalid("childSafe", "cannot be off for an avatar under 18 or of unknown age",
                          fix: "leave childSafe on, or give the age of an adult")
        }
        if var consent = input.consent {
            consent.givenBy = consent.givenBy.trimmingCharacters(in: .whitespacesAndNewlines)
            guard (1...200).contains(consent.givenBy.count) else { throw invalid("consent.givenBy", "must name who gave consent (1 to 200 characters)", fix: "e.g. \"Anna Petrova, the child's mother\"") }
            guard ["self", "permission"].contains(consent.basis) else {
                throw invalid("consent.basis", "must be \"self\" (you are the person) or \"permission\" (you have their or their guardian's permission)", fix: "send one of the two")
            }
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = [.withFullDate]
            guard isISODate(consent.grantedAt), let date = formatter.date(from: consent.grantedAt), date <= now.addingTimeInterval(86_400) else {
                throw invalid("consent.grantedAt", "must be a date YYYY-MM-DD, not in the future", fix: "send the day consent was given")
            }
            if let statement = consent.statement, statement.count > 2000 { throw invalid("consent.statement", "must be at most 2000 characters", fix: "shorten it") }
            consent.recordedAt = now
            avatar.consent = APIJSON.string(consent)
        }
        avatar.persona = APIJSON.string(persona)
        avatar.updatedAt = now
    }

    static func persona(of avatar: OwnedAvatar) -> StoredPersona? {
        try? JSONDecoder().decode(StoredPersona.self, from: Data(avatar.persona.utf8))
    }
}

/// `/api/v1/avatars`: create, list, get, update, delete (with `?confirm=ID`).
func addAvatarRoutes(_ api: RouterGroup<AppRequestContext>, runtime: AvatarRuntime, services: APIServices) {
    let database = runtime.database
    api.post("/avatars") { request, context -> EditedResponse<AvatarView> in
        let account = try context.requireAccount()
        try await services.limiter.check(account: account.id, kind: .write)
        let input = try await request.decode(as: AvatarInput.self, context: context)
        let avatar = try AvatarValidation.create(input, accountId: account.id)
        try database.insert(avatar)
        return EditedResponse(status: .created, headers: [.location: "/api/v1/avatars/\(avatar.id)"], response: AvatarView(avatar))
    }
    api.get("/avatars") { _, context -> AvatarList in
        let account = try context.requireAccount()
        return AvatarList(avatars: try database.avatars(accountId: account.id).map(AvatarView.init))
    }
    api.get("/avatars/:id") { _, context -> AvatarView in
        AvatarView(try services.owned(context))
    }
    api.patch("/avatars/:id") { request, context -> AvatarView in
        var avatar = try services.owned(context)
        let input = try await request.decode(as: AvatarInput.self, context: context)
        try AvatarValidation.apply(input, to: &avatar, persona: AvatarValidation.persona(of: avatar))
        try database.update(avatar)
        await services.conversations.forget(avatar.id)
        return AvatarView(avatar)
    }
    api.delete("/avatars/:id") { request, context -> Response in
        let account = try context.requireAccount()
        let avatar = try services.owned(context)
        guard request.uri.queryParameters["confirm"].map(String.init) == avatar.id else {
            throw Problem(.badRequest, "confirmation-required", "Confirmation required",
                          detail: "deleting \(avatar.name) removes its photo, voice samples, videos, conversation and memory for good",
                          fix: "repeat the request with ?confirm=\(avatar.id)")
        }
        let profile = try database.voiceProfile(named: "avatar-\(avatar.id)")
        guard let paths = try database.deleteAvatar(id: avatar.id, accountId: account.id) else { throw Problem.notFound("avatar \(avatar.id)") }
        for path in paths {
            services.media.remove(path)
            // Scaled copies of a video (`?size=`) live beside it.
            if path.hasSuffix(".mp4") { for size in ["256", "1024"] { services.media.remove(String(path.dropLast(4)) + "-\(size).mp4") } }
        }
        if let profile { try? FileManager.default.removeItem(atPath: runtime.settings.dataDir + "/voices/" + profile.id) }
        await services.conversations.forget(avatar.id)
        return Response(status: .noContent)
    }
}
