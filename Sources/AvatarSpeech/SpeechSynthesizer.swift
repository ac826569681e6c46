import AvatarCache
import AvatarCore
import AvatarEngines
import Foundation

/// How to speak.
public struct SynthesisOptions: Sendable, Hashable {
    /// A voice id from `voices()`; nil picks the default voice of `language`.
    public var voice: String?
    /// ISO 639-1; used to pick a voice when `voice` is nil and for the espeak-ng fallback.
    public var language: String
    /// The prosody (`Emotion.Label.prosody` maps a conversation emotion to it).
    public var emotion: ProsodyStyle
    /// 0 (neutral) … 1 (strongest).
    public var intensity: Double
    /// Speaking-rate factor on top of the emotion's (0.25…4).
    public var speed: Double
    /// On an engine failure for a natural voice, speak with espeak-ng in the same language instead.
    public var fallbackToEspeak: Bool

    public init(voice: String? = nil, language: String = "en", emotion: ProsodyStyle = .neutral, intensity: Double = 0.7,
                speed: Double = 1.0, fallbackToEspeak: Bool = true) {
        self.voice = voice
        self.language = language
        self.emotion = emotion
        self.intensity = intensity
        self.speed = speed
        self.fallbackToEspeak = fallbackToEspeak
    }

    /// The default voice per language: Piper Joe for English, Festival NSh for Russian, espeak-ng otherwise.
    public static func defaultVoice(language: String) -> String {
        switch language {
        case "en": return "en_US-joe-medium"
        case "ru": return "msu_ru_nsh"
        default: return "espeak-\(language)"
        }
    }

    var resolvedVoice: String { voice ?? Self.defaultVoice(language: language) }
    var effectiveIntensity: Double { emotion == .neutral ? 0 : max(0, min(1, intensity)) }
}

/// One synthesised sentence (or clause) of a longer text.
public struct SpeechSegment: Sendable {
    /// Position in the text's sentences.
    public var index: Int
    public var text: String
    public var voice: String
    /// A WAV file at the voice's own rate.
    public var wav: Data
    public var sampleRate: Int
    public var duration: Double
    /// The audio at 16 kHz mono, for the animator and the real-time stream.
    public var samples16k: [Float]
    /// Phoneme/word times (relative to this segment's audio), when the engine gives them.
    public var timings: SpeechTimings?
    public var prosody: TimedSpeech.Prosody
    /// Served from the audio cache.
    public var cached: Bool
    /// The voice failed and espeak-ng spoke instead.
    public var fellBack: Bool
    /// Seconds from the request to this segment being ready.
    public var latency: Double
}

/// Text to speech: sentence-by-sentence streaming, emotions, timings, a cache.
public protocol SpeechSynthesizer: Sendable {
    func voices() async throws -> [Voice]
    /// One utterance, whole.
    func synthesize(_ text: String, options: SynthesisOptions) async throws -> SpeechSegment
    /// Segments already cut by `SpeakableSegmenter` (a conversation's clauses), each synthesised while the previous
    /// one is being played.
    func stream(_ segments: [SpeakableSegment], options: SynthesisOptions) -> AsyncThrowingStream<SpeechSegment, any Error>
}

extension SpeechSynthesizer {
    /// A whole text, cut by the one segmenter into sentences (and clauses of long ones), then streamed.
    public func stream(_ text: String, options: SynthesisOptions) -> AsyncThrowingStream<SpeechSegment, any Error> {
        stream(SpeakableSegmenter.segments(of: text, minClause: 120), options: options)
    }
}

/// `SpeechSynthesizer` on the engine host's `/v1/audio/speech` (verbose_json for timings).
public struct EngineSpeechSynthesizer: SpeechSynthesizer {
    /// Bump when the engine's output for the same request changes (invalidates the cache).
    static let cacheVersion = "tts-2"
    let host: any SpeechSynthesisEngine
    let cache: CacheManager?
    let cacheTTL: Double

    /// `host`: the engine host, or any other text-to-speech engine (a fake in orchestration tests).
    public init(host: any SpeechSynthesisEngine, cache: CacheManager?, cacheTTL: Double = 7 * 24 * 3600) {
        self.host = host
        self.cache = cache
        self.cacheTTL = cacheTTL
    }

    public func voices() async throws -> [Voice] {
        try await host.voices()
    }

    public func synthesize(_ text: String, options: SynthesisOptions) async throws -> SpeechSegment {
        try await segment(text, index: 0, options: options, started: ContinuousClock.now)
    }

    /// Speaks segments already cut (a conversation's clauses): each segment's `speech`, one ahead of the caller.
    public func stream(_ segments: [SpeakableSegment], options: SynthesisOptions) -> AsyncThrowingStream<SpeechSegment, any Error> {
        let sentences = segments.map(\.speech).filter { $0.contains(where: { $0.isLetter || $0.isNumber }) }
        return AsyncThrowingStream { continuation in
            let task = Task {
                let started = ContinuousClock.now
                do {
                    guard !sentences.isEmpty else { throw SpeechError.invalidOption("nothing to say: the text is empty") }
                    // One sentence ahead: the next is synthesised while the caller plays the current one.
                    var next: Task<SpeechSegment, any Error>? = Task { try await segment(sentences[0], index: 0, options: options, started: started) }
                    var index = 0
                    while let pending = next {
                        let current = try await pending.value
                        index += 1
                        next = index < sentences.count
                            ? Task { [index] in try await segment(sentences[index], index: index, options: options, started: started) }
                            : nil
                        continuation.yield(current)
                        try Task.checkCancellation()
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    func segment(_ text: String, index: Int, options: SynthesisOptions, started: ContinuousClock.Instant) async throws -> SpeechSegment {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { throw SpeechError.invalidOption("nothing to say: the text is empty") }
        guard (0.25...4).contains(options.speed) else { throw SpeechError.invalidOption("speed \(options.speed) is outside 0.25…4") }
        let voice = options.resolvedVoice
        let intensity = options.effectiveIntensity
        let key = ContentHash.of(Data("\(Self.cacheVersion)|\(voice)|\(options.emotion.rawValue)|\(String(format: "%.2f", intensity))|\(String(format: "%.2f", options.speed))|\(trimmed)".utf8))
        if let cache, let bytes = await cache.get("tts", key), let speech = try? JSONDecoder().decode(TimedSpeech.self, from: Data(bytes)) {
            return try make(speech, index: index, text: trimmed, cached: true, fellBack: false, started: started)
        }
        var fellBack = false
        let speech: TimedSpeech
        do {
            speech = try await host.timedSpeech(text: trimmed, voice: voice, speed: options.speed, emotion: options.emotion.rawValue, intensity: intensity)
        } catch let error as EngineError where options.fallbackToEspeak && !voice.hasPrefix("espeak-") && error.isSynthesisFailure {
            // The natural voice could not speak this text (Festival's letter-to-sound rules are strict):
            // espeak-ng in the same language says it, robotically, rather than nothing.
            speech = try await host.timedSpeech(text: trimmed, voice: "espeak-\(options.language)", speed: options.speed,
                                                emotion: options.emotion.rawValue, intensity: intensity)
            fellBack = true
        }
        if let cache, !fellBack, let bytes = try? JSONEncoder().encode(speech) {
            await cache.set("tts", key, [UInt8](bytes), ttl: cacheTTL)
        }
        return try make(speech, index: index, text: trimmed, cached: false, fellBack: fellBack, started: started)
    }

    func make(_ speech: TimedSpeech, index: Int, text: String, cached: Bool, fellBack: Bool, started: ContinuousClock.Instant) throws -> SpeechSegment {
        guard let (samples, rate) = WAVInfo.monoSamples(speech.audio) else {
            throw SpeechError.unreadableAudio("the engine returned audio that is not a 16-bit WAV")
        }
        let elapsed = ContinuousClock.now - started
        return SpeechSegment(index: index, text: text, voice: speech.voice, wav: speech.audio, sampleRate: rate,
                             duration: Double(samples.count) / Double(rate), samples16k: Resampler.resample(samples, from: rate, to: 16000),
                             timings: speech.timings, prosody: speech.prosody, cached: cached, fellBack: fellBack,
                             latency: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18)
    }
}

extension EngineError {
    /// The engine ran but could not synthesise this text (as opposed to being down or overloaded).
    var isSynthesisFailure: Bool {
        if case .rejected(_, let status, let code, _) = self { return status >= 500 && code == "tts_failed" }
        return false
    }
}

/// Sample-rate conversion for speech (22.05/48 kHz → 16 kHz): a windowed-sinc low-pass at the lower
/// Nyquist, evaluated at each output instant.
public enum Resampler {
    public static func resample(_ input: [Float], from source: Int, to target: Int) -> [Float] {
        guard source != target, !input.isEmpty else { return input }
        let ratio = Double(target) / Double(source)
        let count = Int((Double(input.count) * ratio).rounded())
        let cutoff = min(1.0, ratio) * 0.95
        let halfWidth = 8
        let zeros = Double(halfWidth) / cutoff
        var output = [Float](repeating: 0, count: count)
        input.withUnsafeBufferPointer { x in
            for n in 0..<count {
                let t = Double(n) / ratio
                let center = Int(t)
                let lo = max(0, center - Int(zeros)), hi = min(x.count - 1, center + Int(zeros) + 1)
                guard lo <= hi else { continue }
                var acc = 0.0, norm = 0.0
                for k in lo...hi {
                    let d = (Double(k) - t) * cutoff
                    let window = 0.5 + 0.5 * cos(Double.pi * d / Double(halfWidth))
                    guard abs(d) < Double(halfWidth) else { continue }
                    let sinc = d == 0 ? 1 : sin(Double.pi * d) / (Double.pi * d)
                    acc += Double(x[k]) * sinc * window
                    norm += sinc * window
                }
                output[n] = Float(norm > 0 ? acc / norm : 0)
            }
        }
        return output
    }
}
