import AvatarAnimation
import AvatarConversation
import AvatarCore
import AvatarEngines
import AvatarSpeech
import AvatarStore
import AvatarVoice
import Foundation
import HummingbirdWebSocket
import Logging
import NIOCore

/// Writes to one socket, from one writer loop: a message is never split by another (the socket fragments large
/// messages, and two interleaved writers would corrupt the stream). Control messages and the avatar's audio are
/// queued in order and never dropped; at most two video frames wait, and a newer one is dropped when the client
/// reads too slowly.
actor Outbox {
    enum Item: Sendable {
        case text(String)
        case binary([UInt8])
        case video([UInt8])
    }

    let writer: WebSocketOutboundWriter
    private let queue: AsyncStream<Item>
    private let sink: AsyncStream<Item>.Continuation
    private(set) var closed = false
    private var pendingVideo = 0
    private(set) var framesSent = 0
    private(set) var framesDropped = 0

    init(writer: WebSocketOutboundWriter) {
        self.writer = writer
        (queue, sink) = AsyncStream<Item>.makeStream()
    }

    func send(_ message: ServerMessage) {
        guard !closed else { return }
        sink.yield(.text(message.json))
    }

    func sendBinary(_ bytes: [UInt8]) {
        guard !closed else { return }
        sink.yield(.binary(bytes))
    }

    /// Queues a video frame; false when it was dropped (a slow client, or the socket is closing).
    func offerVideo(_ bytes: [UInt8]) -> Bool {
        guard !closed, pendingVideo < 2 else {
            framesDropped += 1
            return false
        }
        pendingVideo += 1
        sink.yield(.video(bytes))
        return true
    }

    private func sent(_ item: Item) {
        if case .video = item {
            pendingVideo -= 1
            framesSent += 1
        }
    }

    /// Writes what is queued until `finish()`.
    func run() async {
        for await item in queue {
            do {
                switch item {
                case .text(let text): try await writer.writeTextMessage(text)
                case .binary(let bytes), .video(let bytes): try await writer.writeBinaryMessage(ByteBuffer(bytes: bytes))
                }
            } catch {
                closed = true
            }
            sent(item)
        }
    }

    /// Closes the socket with an application code (before the writer loop runs, e.g. a refused `hello`).
    func close(code: Int, reason: String) async {
        guard !closed else { return }
        closed = true
        sink.finish()
        try? await writer.close(.unknown(UInt16(code)), reason: reason)
    }

    /// No more messages: the writer loop ends once the queue is written.
    func finish() {
        closed = true
        sink.finish()
    }
}

/// One person's live conversation with one avatar over one WebSocket (docs/protocol.md).
///
/// The connection's handler runs three loops beside the socket reader — the recognizer, the frame clock and the video
/// sender — and each turn runs as a task of its own that a barge-in cancels. All state is this actor's; nothing is
/// shared between sessions but the engines, the database and the caches.
actor LiveSession {
    let id: String
    let avatar: OwnedAvatar
    let persona: Persona
    let services: APIServices
    let outbox: Outbox
    let head: TalkingHead
    let conversation: Conversation
    let synthesizer: EngineSpeechSynthesizer?
    let logger: Logger
    /// The language set in `hello`, else the one the recognizer or the typed text shows.
    var language: String?
    let fixedLanguage: Bool

    private(set) var turn: Int
    private(set) var state: ServerMessage.State = .idle
    private var turnTask: Task<Void, Never>?
    private var progress: TurnProgress?
    /// The mic's sample clock: how much arrived, when each push did (for "end of speech" in wall time).
    private var micSamples = 0
    private var micArrivals: [(sample: Int, at: ContinuousClock.Instant)] = []
    private var micStarted: ContinuousClock.Instant?
    /// Token bucket for messages per second.
    private var bucket: Double
    private var bucketUpdated = ContinuousClock.now
    /// Frames the renderer could not draw in time.
    private(set) var skippedFrames = 0
    /// The last 100 ms of the mic, for the echo gate.
    private var recentMic: [Float] = []
    /// The utterance under way was taken for the avatar's own voice coming back: its transcript is dropped.
    private var echoUtterance = false
    /// Speech in the mic quieter than this share of the avatar's voice being played is taken for its echo (−6 dB).
    static let echoRatio: Float = 0.5
    let limits: SessionLimits

    /// What the current turn has sent, to know what the person heard when it is cut off.
    struct TurnProgress {
        struct Clause { var text: String; var start: Int; var samples: Int; var timings: SpeechTimings?; var audio: [Float] }
        var number: Int
        var started: ContinuousClock.Instant
        var timings = TurnTimings()
        var clauses: [Clause] = []
        var firstSample: Int?
        var sawSpeakingFrame = false
        var playedMs: Int?
        var replyText = ""
        /// The reply's emotion, known before its first clause: the voice's prosody and the face's expression.
        var emotion: Emotion = .neutral
        var endSample: Int { clauses.last.map { $0.start + $0.samples } ?? (firstSample ?? 0) }
    }

    init(id: String, avatar: OwnedAvatar, persona: Persona, services: APIServices, outbox: Outbox, head: TalkingHead,
         conversation: Conversation, language: String?, turn: Int, limits: SessionLimits, logger: Logger) {
        self.id = id
        self.avatar = avatar
        self.persona = persona
        self.services = services
        self.outbox = outbox
        self.head = head
        self.conversation = conversation
        self.language = language
        fixedLanguage = language != nil
        self.turn = turn
        self.limits = limits
        bucket = Double(limits.messagesPerSecond)
        synthesizer = services.runtime.engineHost.map { EngineSpeechSynthesizer(host: $0, cache: services.runtime.cache) }
        self.logger = logger
    }

    // MARK: - Input

    /// Messages per second over the limit → false (the caller answers with an error and drops the message).
    func admit() -> Bool {
        let now = ContinuousClock.now
        let elapsed = (now - bucketUpdated).seconds
        bucketUpdated = now
        let capacity = Double(limits.messagesPerSecond)
        bucket = min(capacity, bucket + elapsed * capacity)
        guard bucket >= 1 else { return false }
        bucket -= 1
        return true
    }

    /// Checks a mic frame against the real-time limit and notes when it arrived; false: too fast, dropped.
    func admitAudio(samples: Int) -> Bool {
        let now = ContinuousClock.now
        let started = micStarted ?? now
        micStarted = started
        let allowed = (2 + limits.audioRealtimeFactor * (now - started).seconds) * Double(SessionProtocol.sampleRate)
        guard Double(micSamples + samples) <= allowed else { return false }
        micSamples += samples
        micArrivals.append((micSamples, now))
        if micArrivals.count > 600 { micArrivals.removeFirst(micArrivals.count - 600) }
        return true
    }

    /// Keeps the latest 100 ms of the mic. An utterance first taken for echo (a soft onset) becomes a barge-in as soon
    /// as the voice in the mic is loud enough.
    func noteMic(_ samples: [Float]) async {
        recentMic += samples.suffix(1600)
        if recentMic.count > 1600 { recentMic.removeFirst(recentMic.count - 1600) }
        if echoUtterance, turnTask != nil, !(await soundsLikeEcho()) {
            echoUtterance = false
            await bargeIn(playedMs: nil, reason: "speech")
            await head.setListening(true)
            await setState(.listening)
        }
    }

    static func rms(_ samples: some Collection<Float>) -> Float {
        guard !samples.isEmpty else { return 0 }
        return (samples.reduce(0) { $0 + $1 * $1 } / Float(samples.count)).squareRoot()
    }

    /// Double-talk check while the avatar speaks: the person's voice must be louder than −6 dB of the avatar's own
    /// (what the frame clock is showing now, last 300 ms). Browsers' echo cancellation removes most of the echo; this
    /// catches what is left of it (or a speaker with no cancellation at all).
    func soundsLikeEcho() async -> Bool {
        guard state == .speaking, let current = progress else { return false }
        let now = await head.frameClock * SessionProtocol.samplesPerFrame
        var played: [Float] = []
        for clause in current.clauses where clause.start < now && clause.start + clause.samples > now - 4800 {
            let from = max(0, now - 4800 - clause.start), to = min(clause.samples, now - clause.start)
            if from < to { played += clause.audio[from..<to] }
        }
        let avatar = Self.rms(played)
        guard avatar > 0.003 else { return false }
        return Self.rms(recentMic) < Self.echoRatio * avatar
    }

    /// When the mic sample at `seconds` of the session's audio arrived (the end of speech in wall time).
    func arrival(ofAudioAt seconds: Double) -> ContinuousClock.Instant {
        let sample = Int(seconds * Double(SessionProtocol.sampleRate))
        return micArrivals.first { $0.sample >= sample }?.at ?? .now
    }

    func handle(_ message: ClientMessage) async {
        switch message {
        case .hello:
            await sendError("bad-message", "hello was already received", fix: nil, retryable: false)
        case .text(let text):
            await startTurn(text, started: .now, asrFinal: nil)
        case .interrupt(let playedMs):
            await bargeIn(playedMs: playedMs, reason: "stop button")
        case .playback(let number, let event, let playedMs):
            guard number == turn, var current = progress, current.number == number else { return }
            current.playedMs = playedMs
            if event == .started, current.timings.firstFrameShown == nil {
                current.timings.firstFrameShown = (ContinuousClock.now - current.started).milliseconds
            }
            progress = current
        case .commit:
            break // the socket handler pushes the silence that ends the utterance
        case .ping(let t):
            await outbox.send(.pong(t))
        }
    }

    func sendError(_ code: String, _ message: String, fix: String?, retryable: Bool) async {
        await outbox.send(.error(code: code, message: message, fix: fix, retryable: retryable, turn: turn))
    }

    private func setState(_ new: ServerMessage.State) async {
        guard new != state else { return }
        state = new
        await outbox.send(.state(new, turn: turn))
    }

    // MARK: - Recognizer events

    func recognized(_ event: TranscriptEvent) async {
        switch event.kind {
        case .speechStarted:
            // Barge-in: the person talks over the avatar. The browser's echo cancellation keeps the avatar's own
            // voice out of the mic, the VAD needs 96 ms of speech, and what is left of the echo is gated by level.
            if turnTask != nil {
                if await soundsLikeEcho() {
                    echoUtterance = true
                    logger.debug("speech while speaking taken for echo", metadata: ["session": .string(id)])
                    return
                }
                await bargeIn(playedMs: nil, reason: "speech")
            }
            echoUtterance = false
            await head.setListening(true)
            await setState(.listening)
        case .speechStopped:
            break
        case .partial:
            guard !echoUtterance else { return }
            await outbox.send(.transcript(kind: "partial", text: event.text, language: event.language, turn: turn + 1))
        case .final:
            guard !echoUtterance else {
                echoUtterance = false
                return
            }
            await head.setListening(false)
            if !fixedLanguage { language = event.language }
            let text = event.text.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !text.isEmpty else {
                await setState(.idle)
                return
            }
            let ended = arrival(ofAudioAt: event.speechEnd)
            await outbox.send(.transcript(kind: "final", text: text, language: event.language, turn: turn + 1))
            await startTurn(text, started: ended, asrFinal: (ContinuousClock.now - ended).milliseconds)
        }
    }

    // MARK: - Turns

    func startTurn(_ text: String, started: ContinuousClock.Instant, asrFinal: Double?) async {
        if turnTask != nil { await bargeIn(playedMs: nil, reason: "new message") }
        turn += 1
        let number = turn
        var current = TurnProgress(number: number, started: started)
        current.timings.asrFinal = asrFinal
        progress = current
        await setState(.thinking)
        if !fixedLanguage, asrFinal == nil { language = LanguageGuess.detect(text) }
        turnTask = Task { await self.runTurn(text, number: number) }
    }

    private func runTurn(_ text: String, number: Int) async {
        let events = await conversation.reply(to: text)
        let (clauses, clauseSink) = AsyncStream<SpeakableSegment>.makeStream()
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    defer { clauseSink.finish() }
                    for try await event in events {
                        switch event {
                        case .emotion(let emotion):
                            await self.feel(emotion, number: number)
                        case .segment(let segment):
                            await self.replied(segment, number: number)
                            clauseSink.yield(segment)
                        case .done(let metadata):
                            await self.finished(metadata, number: number)
                        }
                    }
                }
                group.addTask {
                    // One clause is synthesised while the model writes the next.
                    for await clause in clauses {
                        try Task.checkCancellation()
                        try await self.speak(clause.speech, number: number)
                    }
                }
                try await group.waitForAll()
            }
        } catch where Task.isCancelled || error is CancellationError {
            return
        } catch {
            await failed(error, number: number)
        }
        guard !Task.isCancelled else { return }
        await head.finishUtterance()
        await waitUntilShown(number: number)
        guard !Task.isCancelled else { return }
        await endTurn(number: number, reason: "completed")
    }

    private func replied(_ segment: SpeakableSegment, number: Int) async {
        guard number == turn, var current = progress else { return }
        if current.timings.firstClause == nil { current.timings.firstClause = (ContinuousClock.now - current.started).milliseconds }
        // A delta is appended as it is: clauses after the first carry their separating space.
        let delta = (current.replyText.isEmpty ? "" : " ") + segment.text
        current.replyText += delta
        progress = current
        await outbox.send(.replyDelta(delta, turn: number))
    }

    /// The reply's emotion, before its first clause: the face turns to it now, the voice speaks every clause with it.
    private func feel(_ emotion: Emotion, number: Int) async {
        guard number == turn, progress != nil else { return }
        progress?.emotion = emotion
        await head.setEmotion(emotion.label, intensity: emotion.intensity)
    }

    private func finished(_ metadata: ReplyMetadata, number: Int) async {
        guard number == turn else { return }
        if metadata.emotion != progress?.emotion { await head.setEmotion(metadata.emotion.label, intensity: metadata.emotion.intensity) }
        await outbox.send(.replyDone(text: metadata.text, emotion: metadata.emotion.label.rawValue, intensity: metadata.emotion.intensity,
                                     model: metadata.chain?.backend, route: metadata.chain?.summary ?? (metadata.cached ? "from the response cache" : ""),
                                     notice: metadata.capabilityNotice, turn: number))
    }

    /// Synthesises one clause in the avatar's voice, gives it to the face and sends it to the client.
    private func speak(_ text: String, number: Int) async throws {
        guard !text.isEmpty else { return }
        let (samples, timings) = try await synthesize(text)
        try Task.checkCancellation()
        guard number == turn, var current = progress, !samples.isEmpty else { return }
        let start = await head.push(samples, timings: timings)
        // A barge-in may have cleared the face while this clause was on its way to it.
        if Task.isCancelled {
            // (Unless a newer turn owns the face by now.)
            if progress == nil || progress?.number == number { await head.clear() }
            throw CancellationError()
        }
        if current.firstSample == nil {
            current.firstSample = start
            current.timings.firstAudio = (ContinuousClock.now - current.started).milliseconds
            progress = current
            await setState(.speaking)
        }
        progress?.clauses.append(.init(text: text, start: start, samples: samples.count, timings: timings, audio: samples))
        // Half-second chunks: the client can schedule each one as it arrives.
        var sequence = UInt32(progress?.clauses.count ?? 0) << 16
        for offset in stride(from: 0, to: samples.count, by: 8000) {
            try Task.checkCancellation()
            let chunk = samples[offset..<min(offset + 8000, samples.count)]
            var pcm = [UInt8]()
            pcm.reserveCapacity(chunk.count * 2)
            for sample in chunk {
                let value = Int16(max(-1, min(1, sample)) * 32767)
                withUnsafeBytes(of: value.littleEndian) { pcm += $0 }
            }
            let header = MediaHeader(kind: .avatarAudio, turn: UInt32(number), sequence: sequence, position: UInt32(start + offset))
            await outbox.sendBinary(header.encoded(payload: pcm))
            sequence += 1
        }
    }

    private func synthesize(_ text: String) async throws -> ([Float], SpeechTimings?) {
        guard let host = services.runtime.engineHost, let synthesizer else { throw EngineError.unavailable(engine: "engine-host", reason: "the engines are disabled (AVATAR_ENGINES_ENABLED=false)") }
        let language = language ?? persona.languages.first ?? "en"
        if avatar.voice == "clone", let profile = try services.runtime.database.voiceProfile(named: "avatar-\(avatar.id)") {
            let cloner = VoiceCloner(host: host, store: services.runtime.database, dataDir: services.runtime.settings.dataDir)
            let synthesis = try await cloner.synthesize(text, profile: profile)
            guard let (samples, rate) = WAVInfo.monoSamples(synthesis.wav) else { throw SpeechError.unreadableAudio("the voice clone returned audio that is not a 16-bit WAV") }
            return (Resampler.resample(samples, from: rate, to: SessionProtocol.sampleRate), nil)
        }
        let emotion = progress?.emotion ?? .neutral
        let segment = try await synthesizer.synthesize(text, options: SynthesisOptions(voice: JobQueue.voice(avatar.voice, language: language), language: language,
                                                                                        emotion: emotion.label.prosody, intensity: emotion.intensity))
        return (segment.samples16k, segment.timings)
    }

    /// Waits until the frame clock has shown the turn's last sample.
    private func waitUntilShown(number: Int) async {
        while !Task.isCancelled, number == turn, let current = progress, current.firstSample != nil {
            let shown = await head.frameClock * SessionProtocol.samplesPerFrame
            if shown >= current.endSample { return }
            try? await Task.sleep(for: .milliseconds(40))
        }
    }

    /// The frame loop saw a speaking frame go out.
    func frameSent(speaking: Bool) {
        guard speaking, var current = progress, !current.sawSpeakingFrame else { return }
        current.sawSpeakingFrame = true
        current.timings.firstFrame = (ContinuousClock.now - current.started).milliseconds
        progress = current
    }

    private func endTurn(number: Int, reason: String, heard: String? = nil) async {
        guard number == turn, var current = progress else { return }
        current.timings.total = (ContinuousClock.now - current.started).milliseconds
        let heard = heard ?? current.replyText
        await outbox.send(.turnEnd(turn: number, reason: reason, heard: heard, timings: current.timings))
        services.sessions.record(current.timings)
        logger.info("turn", metadata: [
            "session": .string(id), "turn": .stringConvertible(number), "reason": .string(reason),
            "asr_final_ms": .string(current.timings.asrFinal.map { String(Int($0)) } ?? "-"),
            "first_clause_ms": .string(current.timings.firstClause.map { String(Int($0)) } ?? "-"),
            "first_audio_ms": .string(current.timings.firstAudio.map { String(Int($0)) } ?? "-"),
            "first_frame_ms": .string(current.timings.firstFrame.map { String(Int($0)) } ?? "-"),
        ])
        progress = nil
        turnTask = nil
        await setState(.idle)
    }

    /// An engine failed mid-turn: the avatar says so in character, the client gets a retryable error.
    private func failed(_ error: any Error, number: Int) async {
        guard number == turn else { return }
        logger.warning("turn failed", metadata: ["session": .string(id), "turn": .stringConvertible(number), "error": .string("\(error)")])
        let message = (error as? any AvatarError)?.userMessage ?? "\(error)"
        await outbox.send(.error(code: "engine-failed", message: message, fix: "try again in a moment; GET /readyz shows which engine is down", retryable: true, turn: number))
        let line = (language ?? "en") == "ru" ? "Извините, я потерял мысль." : "Sorry, I lost my thought."
        let said = progress?.replyText ?? ""
        await outbox.send(.replyDelta((said.isEmpty ? "" : " ") + line, turn: number))
        progress?.replyText = said + (said.isEmpty ? "" : " ") + line
        try? await speak(line, number: number)
    }

    /// Cuts the current turn: cancels the model, the synthesis and the face's speech; the memory keeps what was heard.
    func bargeIn(playedMs: Int?, reason: String) async {
        guard let task = turnTask, let current = progress else { return }
        task.cancel()
        turnTask = nil
        await head.clear()
        let played: Int
        if let playedMs {
            played = playedMs
        } else if let playedByClient = current.playedMs {
            played = playedByClient
        } else if let first = current.firstSample {
            // Without the client's report: what the frame clock has shown.
            let shown = await head.frameClock * SessionProtocol.samplesPerFrame
            played = max(0, (shown - first) * 1000 / SessionProtocol.sampleRate)
        } else {
            played = 0
        }
        let heard = Self.heard(current, playedMs: played)
        await outbox.send(.interrupted(turn: current.number, playedMs: played, heard: heard))
        try? await conversation.amendLatestReply(heard: heard)
        logger.info("barge-in", metadata: ["session": .string(id), "turn": .stringConvertible(current.number), "by": .string(reason), "played_ms": .stringConvertible(played)])
        await endTurn(number: current.number, reason: "interrupted", heard: heard)
    }

    /// The words of the reply whose audio had finished playing after `playedMs` of it (word timings when the voice
    /// gave them, else the clause's share of its characters).
    static func heard(_ progress: TurnProgress, playedMs: Int) -> String {
        guard let first = progress.firstSample else { return "" }
        let playedUntil = first + playedMs * SessionProtocol.sampleRate / 1000
        var words: [String] = []
        for clause in progress.clauses {
            if clause.start + clause.samples <= playedUntil {
                words.append(clause.text)
                continue
            }
            guard clause.start < playedUntil else { break }
            let seconds = Double(playedUntil - clause.start) / Double(SessionProtocol.sampleRate)
            // The engine's word timings say how many words were over (their own text may be phonemes); the words
            // themselves come from the clause.
            let parts = clause.text.split(separator: " ")
            let share: Double
            if let timed = clause.timings?.words, !timed.isEmpty {
                share = Double(timed.filter { $0.end <= seconds }.count) / Double(timed.count)
            } else {
                share = Double(playedUntil - clause.start) / Double(max(1, clause.samples))
            }
            words += parts.prefix(Int(Double(parts.count) * share)).map(String.init)
            break
        }
        return words.joined(separator: " ")
    }

    // MARK: - Frames

    /// Renders the face at 25 fps for as long as the session lives: idle between turns, listening while the person
    /// speaks, speaking in step with the audio sent.
    func runFrames() async {
        let clock = ContinuousClock()
        var deadline = clock.now
        var sequence: UInt32 = 0
        while !Task.isCancelled {
            // Behind real time (a busy CPU): frames are skipped, never the clock, so the face stays on the audio.
            while clock.now - deadline > .milliseconds(40) {
                await head.skipFrame()
                skippedFrames += 1
                deadline += .milliseconds(40)
            }
            guard let frame = try? await head.nextFrame() else { break }
            let header = MediaHeader(kind: .videoFrame, flags: frame.speaking ? MediaHeader.speakingFlag : 0,
                                     turn: UInt32(turn), sequence: sequence, position: UInt32(frame.index))
            sequence &+= 1
            if await outbox.offerVideo(header.encoded(payload: frame.jpeg)) { frameSent(speaking: frame.speaking) }
            deadline += .milliseconds(40)
            try? await clock.sleep(until: deadline)
        }
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
    var milliseconds: Double { (seconds * 10000).rounded() / 10 }
}
