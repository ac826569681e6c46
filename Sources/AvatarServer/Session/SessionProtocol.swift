import Foundation

/// The live session's wire protocol (docs/protocol.md): JSON text frames for control, binary frames with a fixed
/// 16-byte header for media. The web client mirrors these types (web/src/protocol.ts); a test compares the two.
enum SessionProtocol {
    static let version = 1
    /// 16 kHz mono on both directions; frame `k` of the 25 fps video begins at sample `640 · k`.
    static let sampleRate = 16000
    static let samplesPerFrame = 640
}

/// What a binary frame carries.
enum MediaKind: UInt8, Sendable {
    /// Client → server: the microphone, 16 kHz mono PCM16 little-endian.
    case micAudio = 1
    /// Server → client: the avatar's voice, 16 kHz mono PCM16 little-endian.
    case avatarAudio = 2
    /// Server → client: one JPEG video frame.
    case videoFrame = 3
}

/// The fixed header in front of every binary frame, little-endian:
/// `kind u8 · version u8 · flags u8 · reserved u8 · turn u32 · sequence u32 · position u32`.
/// `position` is the first sample on the session's 16 kHz clock (audio) or the frame index on its 25 fps clock
/// (video, where flag bit 0 means "speaking").
struct MediaHeader: Equatable, Sendable {
    static let size = 16
    static let speakingFlag: UInt8 = 1

    var kind: MediaKind
    var flags: UInt8 = 0
    var turn: UInt32
    var sequence: UInt32
    var position: UInt32

    func encoded(payload: some Collection<UInt8>) -> [UInt8] {
        var bytes = [UInt8]()
        bytes.reserveCapacity(Self.size + payload.count)
        bytes += [kind.rawValue, UInt8(SessionProtocol.version), flags, 0]
        for value in [turn, sequence, position] {
            withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
        }
        bytes += payload
        return bytes
    }

    /// Parses a frame's header; the payload starts at `size`.
    static func parse(_ bytes: [UInt8]) throws(SessionInputError) -> MediaHeader {
        guard bytes.count >= size else { throw .badFrame("a binary frame needs the 16-byte header; got \(bytes.count) bytes") }
        guard let kind = MediaKind(rawValue: bytes[0]) else { throw .badFrame("unknown media kind \(bytes[0])") }
        guard Int(bytes[1]) == SessionProtocol.version else { throw .badFrame("media header version \(bytes[1]); this server speaks \(SessionProtocol.version)") }
        func u32(_ at: Int) -> UInt32 {
            UInt32(bytes[at]) | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at + 2]) << 16 | UInt32(bytes[at + 3]) << 24
        }
        return MediaHeader(kind: kind, flags: bytes[2], turn: u32(4), sequence: u32(8), position: u32(12))
    }
}

/// A client message that cannot be used; the session answers with an `error` and keeps the connection.
enum SessionInputError: Error, Equatable {
    case badJSON(String)
    case unknownType(String)
    case badFrame(String)
    case badField(String)

    var code: String {
        switch self {
        case .badJSON: return "bad-json"
        case .unknownType: return "unknown-type"
        case .badFrame: return "bad-frame"
        case .badField: return "bad-field"
        }
    }

    var message: String {
        switch self {
        case .badJSON(let why), .unknownType(let why), .badFrame(let why), .badField(let why): return why
        }
    }
}

/// Client → server control messages.
enum ClientMessage: Equatable, Sendable {
    struct Hello: Equatable, Sendable {
        /// An API token (`avatar token create`); the browser may instead rely on the login cookie.
        var token: String?
        var avatar: String
        /// "en", "ru" or nil (detected per utterance).
        var language: String?
        /// The `session` id of a `ready` from the last 60 s, to continue its turn numbering.
        var resume: String?
    }

    enum PlaybackEvent: String, Sendable { case started, progress, ended }

    case hello(Hello)
    /// A typed message: the same path as a spoken final.
    case text(String)
    /// The stop button: ends the current turn as a barge-in does.
    case interrupt(playedMs: Int?)
    /// What the person actually heard of `turn` (the client's audio clock).
    case playback(turn: Int, event: PlaybackEvent, playedMs: Int)
    /// Push-to-talk released: the utterance ends now, without waiting for the silence.
    case commit
    case ping(Double?)

    static func decode(_ text: String) throws(SessionInputError) -> ClientMessage {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] else {
            throw .badJSON("a text frame must be one JSON object")
        }
        guard let type = object["type"] as? String else { throw .badField("every message needs a \"type\"") }
        if let version = object["v"] as? Int, version != SessionProtocol.version {
            throw .badField("protocol version \(version); this server speaks \(SessionProtocol.version)")
        }
        func string(_ key: String) -> String? { (object[key] as? String).map { $0.trimmingCharacters(in: .whitespacesAndNewlines) } }
        func int(_ key: String) -> Int? { (object[key] as? NSNumber).map { $0.intValue } }
        switch type {
        case "hello":
            guard let avatar = string("avatar"), !avatar.isEmpty else { throw .badField("hello needs \"avatar\" (an avatar id)") }
            let language = string("language")
            if let language, !["en", "ru", "auto"].contains(language) { throw .badField("language must be \"en\", \"ru\" or \"auto\"") }
            return .hello(Hello(token: string("token"), avatar: avatar, language: language == "auto" ? nil : language, resume: string("resume")))
        case "text":
            guard let text = string("text"), !text.isEmpty else { throw .badField("text needs a non-empty \"text\"") }
            guard text.count <= 2000 else { throw .badField("text is limited to 2000 characters") }
            return .text(text)
        case "interrupt":
            return .interrupt(playedMs: int("played_ms"))
        case "playback":
            guard let event = string("event").flatMap(PlaybackEvent.init(rawValue:)) else {
                throw .badField("playback needs \"event\": started, progress or ended")
            }
            guard let turn = int("turn"), let played = int("played_ms"), played >= 0 else {
                throw .badField("playback needs \"turn\" and \"played_ms\" ≥ 0")
            }
            return .playback(turn: turn, event: event, playedMs: played)
        case "commit":
            return .commit
        case "ping":
            return .ping((object["t"] as? NSNumber)?.doubleValue)
        default:
            throw .unknownType("unknown message type \"\(type)\"")
        }
    }
}

/// Per-stage times of one turn in milliseconds from its start (end of speech, or the typed message's arrival).
struct TurnTimings: Encodable, Sendable {
    var asrFinal: Double?
    var firstClause: Double?
    var firstAudio: Double?
    var firstFrame: Double?
    /// Reported by the client (`playback` started), when it did.
    var firstFrameShown: Double?
    var total: Double?

    enum CodingKeys: String, CodingKey {
        case asrFinal = "asr_final", firstClause = "first_clause", firstAudio = "first_audio", firstFrame = "first_frame"
        case firstFrameShown = "first_frame_shown", total
    }
}

/// Server → client control messages; each is sent as `{"v":1,"type":…,"turn":N,…}`.
enum ServerMessage: Sendable {
    struct Ready: Encodable, Sendable {
        struct AvatarInfo: Encodable, Sendable { var id: String; var name: String }
        struct AudioFormat: Encodable, Sendable { var rate = 16000; var channels = 1; var format = "pcm16le" }
        struct VideoFormat: Encodable, Sendable { var fps = 25; var format = "jpeg"; var width: Int; var height: Int; var samplesPerFrame = 640 }
        struct Limits: Encodable, Sendable {
            var messagesPerSecond: Int
            var audioRealtimeFactor: Double
            var maxBinaryBytes: Int
            var resumeSeconds: Int
            enum CodingKeys: String, CodingKey {
                case messagesPerSecond = "messages_per_second", audioRealtimeFactor = "audio_realtime_factor"
                case maxBinaryBytes = "max_binary_bytes", resumeSeconds = "resume_seconds"
            }
        }
        struct Capabilities: Encodable, Sendable {
            /// The model that answers now (`embedded:smollm2-135m-instruct`, `ollama:…`).
            var model: String
            var languages: [String]
            var voice: String
            /// Honest notes for the person ("the built-in model is English-only and tiny", "approximate voice match").
            var notes: [String]
        }
        var session: String
        var resumed: Bool
        var avatar: AvatarInfo
        var audio = AudioFormat()
        var video: VideoFormat
        var limits: Limits
        var capabilities: Capabilities
    }

    enum State: String, Sendable { case idle, listening, thinking, speaking }

    case ready(Ready)
    case state(State, turn: Int)
    case transcript(kind: String, text: String, language: String, turn: Int)
    case replyDelta(String, turn: Int)
    case replyDone(text: String, emotion: String, intensity: Double, model: String?, route: String, notice: String?, turn: Int)
    case interrupted(turn: Int, playedMs: Int, heard: String)
    case turnEnd(turn: Int, reason: String, heard: String, timings: TurnTimings)
    case error(code: String, message: String, fix: String?, retryable: Bool, turn: Int)
    case pong(Double?)

    var json: String {
        var object: [String: Any] = ["v": SessionProtocol.version]
        switch self {
        case .ready(let ready):
            object["type"] = "ready"
            object["turn"] = 0
            if let data = try? JSONEncoder().encode(ready), let fields = try? JSONSerialization.jsonObject(with: data) as? [String: Any] {
                object.merge(fields) { _, new in new }
            }
        case .state(let state, let turn):
            object["type"] = "state"; object["turn"] = turn; object["state"] = state.rawValue
        case .transcript(let kind, let text, let language, let turn):
            object["type"] = "transcript"; object["turn"] = turn; object["kind"] = kind; object["text"] = text; object["language"] = language
        case .replyDelta(let text, let turn):
            object["type"] = "reply"; object["turn"] = turn; object["delta"] = text; object["done"] = false
        case .replyDone(let text, let emotion, let intensity, let model, let route, let notice, let turn):
            object["type"] = "reply"; object["turn"] = turn; object["done"] = true; object["text"] = text
            object["emotion"] = ["label": emotion, "intensity": intensity]
            object["model"] = model ?? NSNull(); object["route"] = route
            if let notice { object["notice"] = notice }
        case .interrupted(let turn, let playedMs, let heard):
            object["type"] = "interrupted"; object["turn"] = turn; object["played_ms"] = playedMs; object["heard"] = heard
        case .turnEnd(let turn, let reason, let heard, let timings):
            object["type"] = "turn_end"; object["turn"] = turn; object["reason"] = reason; object["heard"] = heard
            if let data = try? JSONEncoder().encode(timings), let fields = try? JSONSerialization.jsonObject(with: data) {
                object["timings"] = fields
            }
        case .error(let code, let message, let fix, let retryable, let turn):
            object["type"] = "error"; object["turn"] = turn; object["code"] = code; object["message"] = message
            object["retryable"] = retryable
            if let fix { object["fix"] = fix }
        case .pong(let t):
            object["type"] = "pong"; object["turn"] = 0
            if let t { object["t"] = t }
        }
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }
}
