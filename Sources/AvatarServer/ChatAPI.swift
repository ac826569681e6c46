import AvatarConversation
import AvatarCore
import AvatarStore
import AvatarVoice
import Foundation
import Hummingbird
import NIOCore

struct ChatInput: Decodable {
    var message: String
    /// Stream the reply as Server-Sent Events (also chosen by `Accept: text/event-stream`).
    var stream: Bool?
    /// Include the reply spoken in the avatar's voice (a WAV, base64) in the JSON answer.
    var speak: Bool?
}

/// The reply spoken: a 16-bit WAV in the avatar's voice.
struct SpokenAudio: Encodable {
    var voice: String
    var method: String
    var seconds: Double
    var wavBase64: String
}

/// The finished reply: what was said, how, and who said it.
struct ChatReply: ResponseEncodable {
    struct EmotionView: Encodable {
        var label: String
        var intensity: Double
    }

    var reply: String
    var emotion: EmotionView
    var userEmotion: EmotionView
    var language: String
    /// The backend that answered (`embedded:smollm2-135m`, `openai:…`, `ollama:…`), or nil for a canned or moderated reply.
    var model: String?
    /// How the reply was made, in one line (fallbacks taken, failures).
    var route: String
    var cached: Bool
    var moderated: String?
    /// Set when the model that answered cannot serve this language well: what is wrong and how to fix it.
    var capabilityNotice: String?
    var interrupted: Bool
    var audio: SpokenAudio?

    init(_ metadata: ReplyMetadata) {
        reply = metadata.text
        emotion = EmotionView(label: metadata.emotion.label.rawValue, intensity: metadata.emotion.intensity)
        userEmotion = EmotionView(label: metadata.userEmotion.label.rawValue, intensity: metadata.userEmotion.intensity)
        language = metadata.language
        model = metadata.chain?.backend
        route = metadata.chain?.summary ?? (metadata.cached ? "from the response cache" : (metadata.moderated != nil ? "child-safe reply" : ""))
        cached = metadata.cached
        moderated = metadata.moderated?.rawValue
        capabilityNotice = metadata.capabilityNotice
        interrupted = metadata.chain?.interrupted ?? false
    }
}

/// `POST /api/v1/avatars/:id/chat`: one turn of the avatar's conversation (persona, memory, child-safe mode, fallbacks).
func addChatRoutes(_ api: RouterGroup<AppRequestContext>, alias: RouterGroup<AppRequestContext>, services: APIServices) {
    @Sendable func chat(_ request: Request, _ context: AppRequestContext) async throws -> Response {
        let account = try context.requireAccount()
        let avatar = try services.owned(context)
        let input = try await request.decode(as: ChatInput.self, context: context)
        let message = input.message.trimmingCharacters(in: .whitespacesAndNewlines)
        guard (1...2000).contains(message.count) else {
            throw Problem.unprocessable("invalid-field", "message: must be 1 to 2000 characters", fix: "send a non-empty, shorter message")
        }
        try await services.limiter.check(account: account.id, kind: .chat)
        let talk = try await services.conversations.conversation(for: avatar)
        let events = await talk.reply(to: message)
        let wantsStream = input.stream ?? (request.headers[.accept]?.contains("text/event-stream") ?? false)
        if wantsStream {
            let body = ResponseBody { writer in
                do {
                    for try await event in events {
                        switch event {
                        case .emotion(let emotion):
                            try await writer.write(sse("emotion", APIJSON.string(ChatReply.EmotionView(label: emotion.label.rawValue, intensity: emotion.intensity))))
                        case .segment(let segment):
                            try await writer.write(sse("segment", APIJSON.string(["text": segment.text])))
                        case .done(let metadata):
                            try await writer.write(sse("done", APIJSON.string(ChatReply(metadata))))
                        }
                    }
                } catch {
                    let problem = ProblemMiddleware<AppRequestContext>.problem(for: error, context: context)
                    try await writer.write(sse("error", APIJSON.string(["detail": problem.detail, "fix": problem.fix, "requestId": context.id])))
                }
                try await writer.finish(nil)
            }
            return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-store"], body: body)
        }
        var finished: ReplyMetadata?
        for try await event in events {
            if case .done(let metadata) = event { finished = metadata }
        }
        guard let finished else {
            throw Problem(.internalServerError, "no-reply", "No reply", detail: "the conversation ended without a reply", fix: "try again")
        }
        var reply = ChatReply(finished)
        if input.speak == true {
            reply.audio = try await speak(finished, avatar: avatar, services: services)
        }
        return try reply.response(from: request, context: context)
    }
    api.post("/avatars/:id/chat", use: chat)
    alias.post("/chat", use: chat)
}

/// The reply in the avatar's voice: its approximate voice match when it has one and chose "clone", else the chosen base voice,
/// with the reply's emotion as prosody.
func speak(_ metadata: ReplyMetadata, avatar: OwnedAvatar, services: APIServices) async throws -> SpokenAudio {
    guard let host = services.runtime.engineHost else {
        throw Problem(.serviceUnavailable, "engines-disabled", "Engines disabled", detail: "speech synthesis is off (AVATAR_ENGINES_ENABLED=false)", fix: "leave out \"speak\", or enable the engines")
    }
    let text = SpeakableSegmenter.speakable(metadata.text)
    if avatar.voice == "clone", let profile = try services.runtime.database.voiceProfile(named: "avatar-\(avatar.id)") {
        let cloner = VoiceCloner(host: host, store: services.runtime.database, dataDir: services.runtime.settings.dataDir)
        let synthesis = try await cloner.synthesize(text, profile: profile)
        return SpokenAudio(voice: profile.baseVoice, method: synthesis.label, seconds: WAVInfo.duration(synthesis.wav), wavBase64: synthesis.wav.base64EncodedString())
    }
    let voice = JobQueue.voice(avatar.voice, language: metadata.language)
    let speech = try await host.timedSpeech(text: text, voice: voice, emotion: metadata.emotion.label.prosody.rawValue, intensity: metadata.emotion.intensity)
    return SpokenAudio(voice: voice, method: "base voice", seconds: speech.duration, wavBase64: speech.audio.base64EncodedString())
}

func sse(_ event: String, _ json: String) -> ByteBuffer {
    ByteBuffer(string: "event: \(event)\ndata: \(json)\n\n")
}
