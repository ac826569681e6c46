import AvatarAnimation
import AvatarCache
import AvatarCore
import AvatarEngines
import Foundation

/// How the streaming recognizer segments and transcribes.
public struct RecognizerOptions: Sendable, Equatable {
    /// Silence after speech that ends an utterance, seconds.
    public var endOfUtteranceSilence: Double = 0.5
    /// Start the final transcription after `speculativeFinalAfter` of silence, while the VAD waits out
    /// `endOfUtteranceSilence`; discarded if speech resumes. Cuts the end-of-speech latency by the
    /// overlap, at the cost of an occasional wasted Whisper pass.
    public var speculativeFinal = true
    /// Silence (seconds) after which the speculative final starts. The audio it sends is always the speech
    /// plus 0.2 s; when less than 0.2 s of silence has arrived, the rest is padded with zeros.
    public var speculativeFinalAfter: Double = 0.15
    /// Audio (seconds) between partial transcripts while the person speaks; 0 turns partials off.
    public var partialInterval: Double = 1.0
    /// New audio (seconds) between two VAD checks (two Silero frames: `speechStarted` ≤ 0.13 s after the onset).
    public var vadHop: Double = 0.064
    /// Silero probability at or above which a frame counts as speech.
    public var speechThreshold: Double = 0.5
    /// Speech needed (seconds, within one VAD window) before an utterance opens.
    public var minimumSpeech: Double = 0.096
    /// Audio kept before the first speech frame, seconds.
    public var preRoll: Double = 0.3
    /// A fixed language (ISO 639-1), or nil to detect it among `languageCandidates`.
    public var language: String?
    public var languageCandidates: [String] = ["ru", "en"]
    /// Detection probability (renormalised over the candidates) that locks the session's language.
    public var languageLockProbability: Double = 0.8
    /// Longest utterance, seconds: speech that goes on longer is cut into finals of this length
    /// (Whisper reads 30 s windows; this also bounds the memory a session holds).
    public var maxUtterance: Double = 25
    /// Noise reduction in the engine host before recognition: stationary spectral gating whose noise
    /// profile is the background the VAD heard between utterances (the last `noiseProfileSeconds` of it).
    public var denoise = false
    public var noiseProfileSeconds: Double = 2.0

    public init() {}

    func validated() throws -> RecognizerOptions {
        guard endOfUtteranceSilence >= 0.1, endOfUtteranceSilence <= 5 else { throw SpeechError.invalidOption("endOfUtteranceSilence must be 0.1…5 s") }
        guard partialInterval == 0 || partialInterval >= 0.25 else { throw SpeechError.invalidOption("partialInterval must be 0 (off) or ≥ 0.25 s") }
        guard (0.05...0.2).contains(speculativeFinalAfter) else { throw SpeechError.invalidOption("speculativeFinalAfter must be 0.05…0.2 s") }
        guard vadHop >= 0.032, vadHop <= 1 else { throw SpeechError.invalidOption("vadHop must be 0.032…1 s") }
        guard (0.05...0.95).contains(speechThreshold) else { throw SpeechError.invalidOption("speechThreshold must be 0.05…0.95") }
        guard maxUtterance >= 1, maxUtterance <= 30 else { throw SpeechError.invalidOption("maxUtterance must be 1…30 s") }
        guard (0...1).contains(languageLockProbability) else { throw SpeechError.invalidOption("languageLockProbability must be 0…1") }
        guard (0.25...3).contains(noiseProfileSeconds) else { throw SpeechError.invalidOption("noiseProfileSeconds must be 0.25…3 s") }
        return self
    }
}

/// `SpeechRecognizer` on the engine host: Silero VAD (`/v1/audio/vad`) segments the stream on every hop
/// and says when speech starts and stops; Whisper (`/v1/audio/transcriptions`) transcribes partials and
/// finals in a stage of its own (one request after another, so transcripts stay in order), and finals
/// are cached by audio hash.
public actor StreamingSpeechRecognizer: SpeechRecognizer {
    public nonisolated let events: AsyncThrowingStream<TranscriptEvent, any Error>
    private let continuation: AsyncThrowingStream<TranscriptEvent, any Error>.Continuation
    private let transcriber: any Transcriber
    private let detector: any VoiceActivityDetector
    private let cache: CacheManager?
    private let options: RecognizerOptions
    private static let rate = Double(PCM.sampleRate)

    /// Audio of the open (or not yet started) utterance.
    private var pending: [Float] = []
    /// Session time (samples) of `pending[0]`.
    private var pendingStart = 0
    private var speechStarted = false
    /// Index in `pending` just after the last speech frame.
    private var lastSpeechEnd = 0
    private var firstSpeech = 0
    private var nextVAD = 0
    private var nextPartial = 0
    private var language: String?
    private var locked: Bool
    private var finished = false
    /// A final started early, after a short silence: (session sample of its utterance start, of the
    /// speech end it covers, of its audio end, the transcription). Used if the silence lasts; dropped
    /// if the person speaks again.
    private var speculation: (start: Int, speechEnd: Int, end: Int, task: Task<(transcription: Transcription, fromCache: Bool), any Error>)?
    /// The most recent background-only audio (VAD frames well below the speech threshold): the noise
    /// profile sent with each transcription when `denoise` is on.
    private var background: [Float] = []
    /// Silero probability under which a frame is background (stricter than `speechThreshold`).
    private static let backgroundThreshold = 0.3
    /// Silero frames of already-judged audio sent before each hop's new audio.
    static let vadContextFrames = 32
    /// The transcription stage: the last queued Whisper job; each job waits for the one before it.
    private var jobs: Task<Void, Never>?
    /// A partial is being transcribed (another one is not queued behind it: it would be stale).
    private var partialInFlight = false
    /// Why the session ended, if an engine failed.
    private var failure: (any Error)?

    /// The engine host as both the voice-activity detector and the transcriber.
    public init(host: EngineHostClient, cache: CacheManager?, options: RecognizerOptions = RecognizerOptions()) throws {
        try self.init(transcriber: host, detector: host, cache: cache, options: options)
    }

    public init(transcriber: any Transcriber, detector: any VoiceActivityDetector, cache: CacheManager?,
                options: RecognizerOptions = RecognizerOptions()) throws {
        self.options = try options.validated()
        self.transcriber = transcriber
        self.detector = detector
        self.cache = cache
        language = options.language
        locked = options.language != nil
        (events, continuation) = AsyncThrowingStream.makeStream()
    }

    /// Whether the VAD has heard speech that no final transcript has covered yet.
    public var utteranceOpen: Bool { speechStarted }

    public func setLanguage(_ language: String?) {
        self.language = language
        locked = language != nil
    }

    public func push(_ samples: [Float]) async throws {
        if let failure { throw failure }
        guard !finished else { throw SpeechError.sessionFinished }
        pending.append(contentsOf: samples)
        do {
            // One VAD check per push at most: when the engine fell behind the feed, the check covers
            // all the new audio at once instead of replaying every missed hop.
            let hop = Int(options.vadHop * Self.rate)
            if pending.count >= nextVAD + hop {
                let from = nextVAD
                nextVAD = pending.count - (pending.count - nextVAD) % hop
                try await step(from: from, upTo: nextVAD)
            }
        } catch {
            fail(error)
            throw error
        }
    }

    public func finish() async throws {
        if let failure { throw failure }
        guard !finished else { return }
        if speechStarted { queueFinal(endingAt: pending.count) }
        finished = true
        await jobs?.value
        if let failure { throw failure }
        continuation.finish()
    }

    private func fail(_ error: any Error) {
        guard failure == nil else { return }
        failure = error
        finished = true
        speculation?.task.cancel()
        continuation.finish(throwing: error)
    }

    /// Queues `work` in the transcription stage, after every job queued before it.
    private func enqueue(_ work: @escaping @Sendable () async throws -> Void) {
        let previous = jobs
        jobs = Task {
            await previous?.value
            do { try await work() } catch { self.fail(error) }
        }
    }

    /// One VAD check of the audio up to `end` (an index in `pending`), then partial/final as due.
    private func step(from previous: Int, upTo end: Int) async throws {
        let window = Int((1.0 + options.endOfUtteranceSilence) * Self.rate)
        // The new audio with 32 Silero frames (1.024 s) before it as context; earlier frames were judged already
        // (`lastSpeechEnd` keeps the latest speech frame), so a hop costs the same however long the utterance.
        // Whole frames keep Silero's frame grid on the hop grid: speech is seen at most one hop after it.
        // Silero's state starts afresh every call: with 16 frames of context its judgement in noise was worse
        // (5 dB SNR, streamed: WER 18.3 % off / 20.8 % with noise reduction; 32 frames: 16.1 % / 15.8 %).
        let start = max(0, previous - Self.vadContextFrames * 512)
        let activity = try await detector.voiceActivity(audio: PCM.wav(pending[start..<end]), filename: "audio.wav")
        let frame = Int((activity.frameSeconds * Self.rate).rounded())
        let speech = activity.probabilities.indices.filter { activity.probabilities[$0] >= options.speechThreshold }
        if options.denoise { collectBackground(activity.probabilities, frame: frame, windowStart: start, newFrom: previous) }
        if let last = speech.last {
            if !speechStarted, Double(speech.count) * activity.frameSeconds >= options.minimumSpeech {
                speechStarted = true
                firstSpeech = start + speech[0] * frame
                nextPartial = firstSpeech + Int(options.partialInterval * Self.rate)
                emitActivity(.speechStarted, end: start + (last + 1) * frame, heard: end)
            }
            lastSpeechEnd = max(lastSpeechEnd, start + (last + 1) * frame)
        }
        if !speechStarted {
            // Nothing said yet: keep only what the next window and the pre-roll need.
            let keep = window + Int(options.preRoll * Self.rate)
            if pending.count > keep { drop(pending.count - keep) }
            return
        }
        let tail = Int(0.2 * Self.rate)
        if let speculation, speculation.speechEnd != pendingStart + lastSpeechEnd || speculation.start != pendingStart + utteranceStart {
            // Speech went on after the speculative final began: its audio is no longer the utterance.
            speculation.task.cancel()
            self.speculation = nil
        }
        if end - lastSpeechEnd >= Int(options.endOfUtteranceSilence * Self.rate) {
            queueFinal(endingAt: min(end, lastSpeechEnd + tail))
        } else if options.speculativeFinal, speculation == nil, end - lastSpeechEnd >= Int(options.speculativeFinalAfter * Self.rate) {
            // Likely the end of the utterance: transcribe it now, while the VAD confirms the silence.
            // The audio is what `queueFinal` would send (speech + 0.2 s; silence not yet heard is zeros).
            var slice = pending[utteranceStart..<min(end, lastSpeechEnd + tail)]
            if lastSpeechEnd + tail > end { slice = (Array(slice) + [Float](repeating: 0, count: lastSpeechEnd + tail - end))[...] }
            let request = request(slice)
            speculation = (pendingStart + utteranceStart, pendingStart + lastSpeechEnd, pendingStart + lastSpeechEnd + tail,
                           Task { try await self.recognize(request, cached: true) })
        } else if end - utteranceStart >= Int(options.maxUtterance * Self.rate) {
            queueFinal(endingAt: end, stillSpeaking: true)
            // Still speaking: the next utterance starts right here.
            speechStarted = true
            nextPartial = Int(options.partialInterval * Self.rate)
        } else if options.partialInterval > 0, end >= nextPartial, end - lastSpeechEnd < Int(0.2 * Self.rate), !partialInFlight {
            // Partials only while the person is speaking: in a pause the final is near, and a
            // partial now would delay it by a whole Whisper pass. One at a time: a partial that
            // would wait behind another is stale before it starts.
            nextPartial = end + Int(options.partialInterval * Self.rate)
            partialInFlight = true
            let request = request(pending[utteranceStart..<end])
            let times = (pendingStart + firstSpeech, pendingStart + lastSpeechEnd)
            enqueue {
                do {
                    let result = try await self.recognize(request, cached: false)
                    await self.emitTranscript(.partial, result.transcription, seconds: request.seconds, times: times, cached: false)
                    await self.partialDone()
                } catch {
                    await self.partialDone()
                    throw error
                }
            }
        }
    }

    private var utteranceStart: Int { max(0, firstSpeech - Int(options.preRoll * Self.rate)) }

    /// Appends the frames first seen in this VAD window (from `newFrom` on) that hold no speech.
    private func collectBackground(_ probabilities: [Double], frame: Int, windowStart: Int, newFrom: Int) {
        for (index, probability) in probabilities.enumerated() where probability < Self.backgroundThreshold {
            let from = windowStart + index * frame
            guard from >= newFrom, from + frame <= pending.count else { continue }
            background.append(contentsOf: pending[from..<(from + frame)])
        }
        let keep = Int(options.noiseProfileSeconds * Self.rate)
        if background.count > keep { background.removeFirst(background.count - keep) }
    }

    private func partialDone() { partialInFlight = false }

    /// The utterance ends at `end`: `speechStopped` now, its final from the transcription stage (the
    /// speculative one when it covers the same audio), and the audio is let go.
    private func queueFinal(endingAt end: Int, stillSpeaking: Bool = false) {
        let times = (pendingStart + firstSpeech, pendingStart + lastSpeechEnd)
        let transcription: @Sendable () async throws -> (transcription: Transcription, fromCache: Bool)
        let seconds: Double
        if let speculation, speculation.start == pendingStart + utteranceStart, speculation.end == pendingStart + end {
            self.speculation = nil
            transcription = { try await speculation.task.value }
            seconds = Double(speculation.end - speculation.start) / Self.rate
        } else {
            speculation?.task.cancel()
            speculation = nil
            let request = request(pending[utteranceStart..<max(end, utteranceStart + 1)])
            transcription = { try await self.recognize(request, cached: true) }
            seconds = request.seconds
        }
        if !stillSpeaking { emitActivity(.speechStopped, end: lastSpeechEnd, heard: pending.count) }
        enqueue {
            let result = try await transcription()
            await self.emitTranscript(.final, result.transcription, seconds: seconds, times: times, cached: result.fromCache)
        }
        let consumed = min(end, pending.count)
        drop(consumed)
        speechStarted = false
        lastSpeechEnd = 0
        firstSpeech = 0
    }

    private func drop(_ count: Int) {
        pending.removeFirst(count)
        pendingStart += count
        lastSpeechEnd = max(0, lastSpeechEnd - count)
        firstSpeech = max(0, firstSpeech - count)
        nextVAD = max(0, nextVAD - count)
        nextPartial = max(0, nextPartial - count)
    }

    /// A transcript from the transcription stage; a confident one locks the session's language (only a
    /// result that is used does: a discarded speculative final never locks it).
    private func emitTranscript(_ kind: TranscriptEvent.Kind, _ transcription: Transcription, seconds: Double, times: (Int, Int), cached: Bool) {
        lockIfConfident(transcription, seconds: seconds)
        continuation.yield(TranscriptEvent(
            kind: kind, text: transcription.text, language: transcription.language, languageLocked: locked,
            speechStart: Double(times.0) / Self.rate, speechEnd: Double(times.1) / Self.rate,
            cached: cached, noiseReduction: transcription.noiseReduction, heardUntil: Double(pendingStart + pending.count) / Self.rate))
    }

    /// A voice-activity event for the open utterance (no text).
    private func emitActivity(_ kind: TranscriptEvent.Kind, end: Int, heard: Int) {
        continuation.yield(TranscriptEvent(
            kind: kind, text: "", language: language ?? "", languageLocked: locked,
            speechStart: Double(pendingStart + firstSpeech) / Self.rate, speechEnd: Double(pendingStart + end) / Self.rate,
            cached: false, heardUntil: Double(pendingStart + heard) / Self.rate))
    }

    /// What one Whisper request sends: taken when the request is decided, so a speculative final that
    /// runs later still sends the noise profile and language of that moment (not whatever the session
    /// heard meanwhile), and the result does not depend on scheduling.
    private struct Request: Sendable {
        var wav: Data
        var seconds: Double
        var language: String?
        var noise: Data?
        var key: String
    }

    private func request(_ audio: ArraySlice<Float>) -> Request {
        let wav = PCM.wav(audio)
        // The session's background as the noise profile, once there is enough of it (else the engine
        // learns it from the clip's own pauses).
        let noise = options.denoise && background.count >= Int(0.25 * Self.rate) ? PCM.wav(background[...]) : nil
        let key = [ContentHash.of(wav), language ?? "auto:" + options.languageCandidates.joined(separator: ","),
                   options.denoise ? "denoise:" + (noise.map { ContentHash.of($0) } ?? "clip") : "raw"].joined(separator: "|")
        return Request(wav: wav, seconds: Double(audio.count) / Self.rate, language: language, noise: noise, key: key)
    }

    /// Whisper on the request's audio in its language (or detecting it).
    private func recognize(_ request: Request, cached useCache: Bool) async throws -> (transcription: Transcription, fromCache: Bool) {
        if useCache, let cache, let bytes = await cache.get("asr", ContentHash.of(request.key)),
           let hit = try? JSONDecoder().decode(Transcription.self, from: Data(bytes)) {
            return (hit, true)
        }
        let result = try await transcriber.transcribe(audio: request.wav, filename: "audio.wav", language: request.language,
                                                      languageCandidates: request.language == nil ? options.languageCandidates : [],
                                                      denoise: options.denoise, noise: request.noise, wordTimestamps: false)
        if useCache, let cache, let bytes = try? JSONEncoder().encode(result) {
            await cache.set("asr", ContentHash.of(request.key), Array(bytes), ttl: 24 * 3600)
        }
        return (result, false)
    }

    private func lockIfConfident(_ result: Transcription, seconds: Double) {
        guard !locked, seconds >= 1.0, !result.text.isEmpty, result.languageProbability >= options.languageLockProbability else { return }
        language = result.language
        locked = true
    }
}

extension StreamingSpeechRecognizer {
    /// Transcribes a whole file (any format and rate ffmpeg reads, converted to 16 kHz mono), streamed
    /// through the recognizer in `chunkSeconds` chunks; returns every event.
    public func transcribeFile(_ path: String, chunkSeconds: Double = 0.1) async throws -> [TranscriptEvent] {
        let audio: AudioSamples
        do { audio = try await AudioSamples.load(path) } catch AnimationError.unreadableAudio(let reason) {
            throw SpeechError.unreadableAudio(reason)
        } catch {
            throw SpeechError.unreadableAudio("\(error)")
        }
        return try await transcribe(samples: audio.samples, chunkSeconds: chunkSeconds)
    }

    /// Streams 16 kHz mono `samples` through the recognizer in `chunkSeconds` chunks, as fast as the
    /// engine allows, then finishes; returns every event.
    public func transcribe(samples: [Float], chunkSeconds: Double = 0.1) async throws -> [TranscriptEvent] {
        let chunk = max(1, Int(chunkSeconds * Self.rate))
        async let collected: [TranscriptEvent] = { var all: [TranscriptEvent] = []; for try await event in events { all.append(event) }; return all }()
        for start in stride(from: 0, to: samples.count, by: chunk) {
            try await push(Array(samples[start..<min(start + chunk, samples.count)]))
        }
        try await finish()
        return try await collected
    }
}
