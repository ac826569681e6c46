import AvatarAnimation
import AvatarConversation
import AvatarCore
import AvatarSpeech
import AvatarStore
import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import Synchronization

/// Limits of the live sessions.
public struct SessionLimits: Sendable {
    /// Live sessions per server (each renders 25 fps and runs its own recognizer).
    public var maxSessions = 8
    /// Control and mic messages per second per session.
    public var messagesPerSecond = 100
    /// Mic audio may arrive at most this much faster than real time (after a 2 s allowance).
    public var audioRealtimeFactor = 2.0
    /// The largest binary frame: 1 s of mic audio.
    public var maxBinaryBytes = MediaHeader.size + 32000
    /// A dropped connection can resume its session (turn numbering) this long.
    public var resumeSeconds = 60
    /// The first message must be `hello` within this time.
    public var helloSeconds = 10.0

    public init() {}
}

/// The live sessions of one server: the limit, the sessions a reconnect may resume, the turn metrics.
final class SessionHub: Sendable {
    struct Resumable {
        var accountId: String
        var avatarId: String
        var turn: Int
        var expires: ContinuousClock.Instant
    }

    struct State {
        var active = 0
        var resumable: [String: Resumable] = [:]
        var recent: [TurnTimings] = []
    }

    let limits: SessionLimits
    private let state = Mutex(State())

    init(limits: SessionLimits) {
        self.limits = limits
    }

    /// Takes a place, or false when the server is full.
    func open() -> Bool {
        state.withLock {
            guard $0.active < limits.maxSessions else { return false }
            $0.active += 1
            return true
        }
    }

    func close(id: String, accountId: String, avatarId: String, turn: Int) {
        state.withLock {
            $0.active -= 1
            let now = ContinuousClock.now
            $0.resumable = $0.resumable.filter { $0.value.expires > now }
            $0.resumable[id] = Resumable(accountId: accountId, avatarId: avatarId, turn: turn, expires: now + .seconds(limits.resumeSeconds))
        }
    }

    /// The turn number to continue from, when `id` closed less than `resumeSeconds` ago for the same account and avatar.
    func resume(id: String, accountId: String, avatarId: String) -> Int? {
        state.withLock {
            guard let entry = $0.resumable[id], entry.expires > .now, entry.accountId == accountId, entry.avatarId == avatarId else { return nil }
            $0.resumable[id] = nil
            return entry.turn
        }
    }

    func record(_ timings: TurnTimings) {
        state.withLock {
            $0.recent.append(timings)
            if $0.recent.count > 200 { $0.recent.removeFirst($0.recent.count - 200) }
        }
    }

    var activeCount: Int { state.withLock { $0.active } }
    var recentTimings: [TurnTimings] { state.withLock { $0.recent } }
}

/// Close codes (4000–4999 are the application's).
enum SessionClose {
    static let badRequest = 4400
    static let unauthorized = 4401
    static let notFound = 4404
    static let noFace = 4409
    static let full = 4429
    static let unavailable = 4503
}

/// `GET /api/v1/session` (WebSocket): the live conversation (docs/protocol.md).
func buildSessionRouter(services: APIServices) -> Router<BasicWebSocketRequestContext> {
    let router = Router(context: BasicWebSocketRequestContext.self)
    router.ws("/api/v1/session") { inbound, outbound, context in
        let cookieToken = AuthMiddleware.cookie(tokenCookieName, in: context.request)
        await runSession(inbound: inbound, outbound: outbound, cookieToken: cookieToken, services: services, logger: context.logger)
    }
    return router
}

/// One connection, from `hello` to close.
func runSession(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, cookieToken: String?, services: APIServices, logger: Logger) async {
    let outbox = Outbox(writer: outbound)
    let hub = services.sessions
    let limits = hub.limits
    var messages = inbound.messages(maxSize: limits.maxBinaryBytes).makeAsyncIterator()

    // 1. hello, within the limit (closing the socket ends the wait).
    let timer = Task {
        try await Task.sleep(for: .seconds(limits.helloSeconds))
        await outbox.close(code: SessionClose.badRequest, reason: "no hello within \(Int(limits.helloSeconds)) s")
    }
    let first = try? await messages.next()
    timer.cancel()
    guard case .text(let text) = first, case .hello(let hello)? = try? ClientMessage.decode(text) else {
        await outbox.close(code: SessionClose.badRequest, reason: "the first message must be hello (docs/protocol.md)")
        return
    }
    let database = services.runtime.database
    guard let token = hello.token ?? cookieToken, let (account, _) = try? database.authenticate(token: token) else {
        await outbox.close(code: SessionClose.unauthorized, reason: "unknown or revoked token; create one with `avatar token create`")
        return
    }
    guard let avatar = try? database.avatar(id: hello.avatar, accountId: account.id) else {
        await outbox.close(code: SessionClose.notFound, reason: "no avatar \(hello.avatar) for this token")
        return
    }
    guard services.runtime.engineHost != nil else {
        await outbox.close(code: SessionClose.unavailable, reason: "the engines are disabled (AVATAR_ENGINES_ENABLED=false)")
        return
    }
    let rig: FaceRig
    do {
        guard let found = try await AvatarFace.rig(of: avatar, accountId: account.id, services: services) else {
            await outbox.close(code: SessionClose.noFace, reason: "the avatar has no photo yet; upload one (PUT /api/v1/avatars/\(avatar.id)/photo)")
            return
        }
        rig = found
    } catch {
        await outbox.close(code: SessionClose.noFace, reason: "the avatar's photo cannot be used: \(error)")
        return
    }
    guard hub.open() else {
        await outbox.close(code: SessionClose.full, reason: "the server has \(limits.maxSessions) live sessions already; try again later")
        return
    }
    let resumedTurn = hello.resume.flatMap { hub.resume(id: $0, accountId: account.id, avatarId: avatar.id) }
    let sessionId = resumedTurn == nil ? "ses_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(16) : hello.resume ?? ""
    let sessionLogger = {
        var copy = logger
        copy[metadataKey: "session"] = .string(sessionId)
        return copy
    }()

    let persona: Persona
    let conversation: Conversation
    let head: TalkingHead
    do {
        persona = try Persona.decode(json: avatar.persona, name: avatar.name)
        conversation = try await services.conversations.conversation(for: avatar)
        head = try TalkingHead(renderer: FaceRenderer(rig: rig))
    } catch {
        hub.close(id: sessionId, accountId: account.id, avatarId: avatar.id, turn: resumedTurn ?? 0)
        await outbox.close(code: SessionClose.unavailable, reason: "the session could not start: \(error)")
        return
    }
    let session = LiveSession(id: sessionId, avatar: avatar, persona: persona, services: services, outbox: outbox, head: head,
                              conversation: conversation, language: hello.language, turn: resumedTurn ?? 0, limits: limits, logger: sessionLogger)
    let model = await services.runtime.chain.activeBackend()
    var notes: [String] = []
    if let model, model.name.hasPrefix("embedded") {
        notes.append("The built-in model (SmolLM2-135M) is tiny and English-only: expect short, simple answers. Connect Ollama or another server for better ones (AVATAR_LLM_URL, docs/conversation.md).")
    }
    if avatar.voice == "clone" {
        notes.append("Offline, the avatar's own voice is an approximate match (pitch and timbre), not a clone; an XTTS server gives a real one (AVATAR_XTTS_URL).")
    }
    await outbox.send(.ready(.init(
        session: sessionId, resumed: resumedTurn != nil, avatar: .init(id: avatar.id, name: avatar.name),
        video: .init(width: FaceRig.size, height: FaceRig.size),
        limits: .init(messagesPerSecond: limits.messagesPerSecond, audioRealtimeFactor: limits.audioRealtimeFactor,
                      maxBinaryBytes: limits.maxBinaryBytes, resumeSeconds: limits.resumeSeconds),
        capabilities: .init(model: model?.name ?? "canned replies only", languages: model?.capabilities.languages.map { $0.sorted() } ?? persona.languages,
                            voice: avatar.voice ?? "auto", notes: notes))))
    sessionLogger.info("session opened", metadata: ["avatar": .string(avatar.id), "resumed": .stringConvertible(resumedTurn != nil)])

    // 2. The loops: mic → recognizer, frames, video sender; the socket reader here.
    let (mic, micSink) = AsyncStream<[Float]>.makeStream()
    await withTaskGroup(of: Void.self) { group in
        group.addTask { await outbox.run() }
        group.addTask { await session.runFrames() }
        group.addTask { await recognize(mic, session: session, services: services, language: hello.language, logger: sessionLogger) }
        do {
            while let message = try await messages.next() {
                guard await session.admit() else {
                    await session.sendError("rate-limited", "more than \(limits.messagesPerSecond) messages a second; this one was dropped", fix: "send mic audio in 20–100 ms frames", retryable: true)
                    continue
                }
                switch message {
                case .text(let text):
                    do {
                        let decoded = try ClientMessage.decode(text)
                        if case .commit = decoded {
                            // Push-to-talk released: silence longer than the end-of-utterance pause ends it now.
                            micSink.yield([Float](repeating: 0, count: SessionProtocol.sampleRate))
                        }
                        await session.handle(decoded)
                    } catch let error as SessionInputError {
                        await session.sendError(error.code, error.message, fix: "see docs/protocol.md", retryable: false)
                    }
                case .binary(let buffer):
                    let bytes = Array(buffer.readableBytesView)
                    do {
                        let header = try MediaHeader.parse(bytes)
                        guard header.kind == .micAudio else { throw SessionInputError.badFrame("clients send only mic audio (kind 1)") }
                        let payload = bytes.count - MediaHeader.size
                        guard payload > 0, payload % 2 == 0 else { throw SessionInputError.badFrame("mic audio must be 16-bit PCM: an even, non-zero number of bytes after the header") }
                        guard await session.admitAudio(samples: payload / 2) else {
                            await session.sendError("audio-too-fast", "mic audio arrives faster than \(limits.audioRealtimeFactor)× real time; this frame was dropped", fix: "send audio as it is recorded", retryable: true)
                            continue
                        }
                        var samples = [Float](repeating: 0, count: payload / 2)
                        for index in 0..<samples.count {
                            let low = UInt16(bytes[MediaHeader.size + 2 * index]), high = UInt16(bytes[MediaHeader.size + 2 * index + 1])
                            samples[index] = Float(Int16(bitPattern: low | high << 8)) / 32768
                        }
                        await session.noteMic(samples)
                        micSink.yield(samples)
                    } catch let error as SessionInputError {
                        await session.sendError(error.code, error.message, fix: "see docs/protocol.md (binary frames)", retryable: false)
                    }
                }
            }
        } catch {
            // A frame over the size limit ends the message stream; say why before the socket goes.
            await session.sendError("frame-too-large", "a frame was larger than \(limits.maxBinaryBytes) bytes", fix: "send mic audio in 20–100 ms frames", retryable: false)
        }
        micSink.finish()
        await outbox.finish()
        group.cancelAll()
    }
    await session.bargeIn(playedMs: nil, reason: "disconnect")
    hub.close(id: sessionId, accountId: account.id, avatarId: avatar.id, turn: await session.turn)
    sessionLogger.info("session closed")
}

/// Mic audio → streaming recognizer → the session. An engine failure is reported and the recognizer is rebuilt,
/// so the next utterance works once the supervisor has restarted the engine host.
func recognize(_ mic: AsyncStream<[Float]>, session: LiveSession, services: APIServices, language: String?, logger: Logger) async {
    guard let host = services.runtime.engineHost else { return }
    var options = RecognizerOptions()
    options.language = language
    var iterator = mic.makeAsyncIterator()
    while !Task.isCancelled {
        let recognizer: StreamingSpeechRecognizer
        do {
            recognizer = try StreamingSpeechRecognizer(host: host, cache: services.runtime.cache, options: options)
        } catch {
            await session.sendError("asr-failed", "speech recognition could not start: \(error)", fix: "type instead, or try again in a moment", retryable: true)
            return
        }
        let failure = await withTaskGroup(of: String?.self) { group in
            group.addTask {
                do {
                    for try await event in recognizer.events { await session.recognized(event) }
                    return nil
                } catch {
                    return "\(error)"
                }
            }
            var failure: String?
            while let samples = await iterator.next() {
                do { try await recognizer.push(samples) } catch {
                    failure = "\(error)"
                    break
                }
            }
            if failure == nil { try? await recognizer.finish() }
            let eventsFailure = await group.next() ?? nil
            return failure ?? eventsFailure
        }
        guard let failure else { return }
        logger.warning("speech recognition failed; restarting the recognizer", metadata: ["error": .string(failure)])
        await session.sendError("asr-failed", "speech recognition failed (the engine may be restarting); say it again in a moment", fix: "GET /readyz shows the engines' state", retryable: true)
        try? await Task.sleep(for: .seconds(1))
    }
}
