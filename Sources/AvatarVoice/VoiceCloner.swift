import AvatarCore
import AvatarEngines
import AvatarStore
import Foundation

/// Audio spoken in a voice profile, with how it was made and how close it measured.
public struct VoiceSynthesis: Sendable {
    public enum Method: String, Sendable {
        /// Base voice + WORLD pitch/formant shift (offline).
        case approximate = "approximate voice match"
        /// Reference-audio cloning on an XTTS server.
        case xtts = "xtts voice clone"
    }

    public var wav: Data
    public var method: Method
    /// Resemblyzer cosine similarity of `wav` to the profile's embedding.
    public var similarity: Double
    public var baseVoice: String?
    /// What to show a person: the method and its measured similarity.
    public var label: String {
        String(format: "%@ (speaker similarity %.2f to the profile)", method.rawValue, similarity)
    }
}

/// Voice cloning, orchestrated from Swift: validates samples, builds a `VoiceProfile`, speaks in it
/// (offline approximate match or XTTS), scores similarity, and prepares fine-tuning data.
/// Inference (analysis, embeddings, WORLD, ASR, TTS) runs in the engine host.
public struct VoiceCloner: Sendable {
    public let host: EngineHostClient
    public let store: AvatarDatabase?
    /// Where profiles keep their reference audio (`voices/<id>/`).
    public let dataDir: String
    public let xtts: XTTSClient?
    public let limits: VoiceSampleLimits
    /// Minimum accepted audio for a profile, seconds.
    public var minProfileSeconds = 4.0
    /// The sentence each candidate base voice speaks to calibrate the formant ratio.
    static let calibrationText = [
        "en": "The quick brown fox jumps over the lazy dog, and then it runs home for dinner.",
        "ru": "Съешь же ещё этих мягких французских булок, да выпей чаю.",
    ]

    public init(host: EngineHostClient, store: AvatarDatabase?, dataDir: String, xtts: XTTSClient? = nil, limits: VoiceSampleLimits = VoiceSampleLimits()) {
        self.host = host
        self.store = store
        self.dataDir = dataDir
        self.xtts = xtts
        self.limits = limits
    }

    // MARK: Validation

    /// Checks each sample; convertible problems (rate, channels, container) are converted into
    /// `workDir` and reported, unfixable ones (noise, clipping, too short…) rejected with what to do.
    /// Never throws: every failure is a per-sample verdict.
    public func validate(_ paths: [String], workDir: String = NSTemporaryDirectory() + "avatar-voice-\(UUID().uuidString.prefix(8))") async -> [VoiceSampleReport] {
        try? FileManager.default.createDirectory(atPath: workDir, withIntermediateDirectories: true)
        var reports: [VoiceSampleReport] = []
        for (index, path) in paths.enumerated() {
            reports.append(await validateOne(path, output: workDir + "/sample-\(index + 1).wav"))
        }
        return reports
    }

    func validateOne(_ path: String, output: String) async -> VoiceSampleReport {
        var report = VoiceSampleReport(path: path, verdict: .rejected, problems: [], conversions: [], notes: [])
        func reject(_ code: String, _ message: String) -> VoiceSampleReport {
            report.problems.append(.init(code: code, message: message))
            report.verdict = .rejected
            return report
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue else {
            return reject("unreadable", "no such file")
        }
        let size = ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int) ?? 0
        guard size > 0 else { return reject("empty", "the file is empty (0 bytes); record again") }
        guard let probe = await AudioFile.probe(path) else {
            return reject("unreadable", "not audio ffmpeg can read; send WAV, FLAC, MP3, OGG/Opus or M4A")
        }
        guard probe.duration <= limits.maxSeconds else {
            return reject("too_long", String(format: "%.0f s long; the limit is %.0f s per sample — split it into shorter recordings", probe.duration, limits.maxSeconds))
        }
        let ext = (path as NSString).pathExtension.lowercased()
        let expected: [String: [String]] = ["wav": ["wav"], "mp3": ["mp3"], "flac": ["flac"], "ogg": ["ogg"], "opus": ["ogg"],
                                            "m4a": ["mov", "mp4", "m4a"], "webm": ["matroska", "webm"]]
        if let containers = expected[ext], !containers.contains(where: { probe.container.contains($0) }) {
            report.notes.append("the extension .\(ext) does not match the content (\(probe.container)); read by content")
        } else if expected[ext] == nil {
            report.notes.append("unexpected extension '.\(ext)'; the content is \(probe.container)/\(probe.codec), read by content")
        }
        // Upload the original (clipping is measured on it) unless it is too large for the engine host.
        var upload = path
        if size > limits.maxUploadBytes {
            do { try await AudioFile.convert(path, to: output, rate: limits.targetSampleRate) } catch {
                return reject("unreadable", (error as? VoiceError)?.userMessage ?? "\(error)")
            }
            upload = output
        }
        let analysis: VoiceAnalysis
        do {
            guard let data = FileManager.default.contents(atPath: upload) else { return reject("unreadable", "cannot read the file") }
            analysis = try await host.analyzeVoice(audio: data, filename: (path as NSString).lastPathComponent)
        } catch let error as EngineError {
            switch error.code {
            case "empty_input": return reject("empty", "it decodes to no audio; record again")
            case "unsupported_media": return reject("unreadable", "not audio the engine can decode; send WAV, FLAC, MP3, OGG/Opus or M4A")
            default: return reject("unreadable", error.userMessage)
            }
        } catch {
            return reject("unreadable", "\(error)")
        }
        report.analysis = analysis
        if analysis.duration < limits.minSeconds {
            report.problems.append(.init(code: "too_short", message: String(format: "%.1f s; record at least %.0f s of speech per sample", analysis.duration, limits.minSeconds)))
        }
        if analysis.sampleRate < limits.minSampleRate {
            report.problems.append(.init(code: "low_sample_rate", message: "\(analysis.sampleRate) Hz loses the voice's upper frequencies; record at \(limits.minSampleRate) Hz or more"))
        }
        if analysis.clippedFraction > limits.maxClippedFraction {
            report.problems.append(.init(code: "clipped", message: String(format: "%.2f %% of samples are at full scale (distorted); record again with the input gain lower, peaks around −6 dBFS", analysis.clippedFraction * 100)))
        }
        if let snr = analysis.snrDb, snr < limits.minSNR {
            report.problems.append(.init(code: "noisy", message: String(format: "estimated SNR %.1f dB (at least %.0f dB needed); record in a quieter room, closer to the microphone", snr, limits.minSNR)))
        }
        if analysis.speechRatio < limits.minSpeechRatio {
            report.problems.append(.init(code: "little_speech", message: String(format: "only %.0f %% of it is speech; trim the silence or record continuous speech", analysis.speechRatio * 100)))
        }
        if analysis.f0.medianHz == nil {
            report.problems.append(.init(code: "no_voice", message: "no voiced speech found (no pitch); record someone speaking"))
        }
        guard report.problems.isEmpty else { return report }

        if analysis.channels > 1 { report.conversions.append("\(analysis.channels == 2 ? "stereo" : "\(analysis.channels) channels") → mono (channels averaged)") }
        let rate = min(analysis.sampleRate, limits.targetSampleRate)
        if analysis.sampleRate != rate { report.conversions.append("\(analysis.sampleRate) Hz → \(rate) Hz") }
        if !(analysis.container.contains("wav") && analysis.codec == "pcm_s16le") {
            report.conversions.append("\(analysis.container)/\(analysis.codec) → 16-bit PCM WAV")
        }
        do { try await AudioFile.convert(path, to: output, rate: rate) } catch {
            return reject("unreadable", (error as? VoiceError)?.userMessage ?? "\(error)")
        }
        report.convertedPath = output
        report.verdict = report.conversions.isEmpty ? .accepted : .converted
        return report
    }

    // MARK: Profiles

    /// Validates the samples and builds a profile from the usable ones: speaker embedding, F0 statistics,
    /// the nearest base voice of the language (gender, then F0) and its calibrated formant ratio. Saved
    /// to the store when there is one.
    public func createVoice(name: String, language: String, samples: [String]) async throws -> (profile: VoiceProfile, reports: [VoiceSampleReport]) {
        guard (1...64).contains(name.count), name.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) else {
            throw VoiceError.invalidName(name)
        }
        if let store, try store.voiceProfile(named: name) != nil { throw VoiceError.duplicateName(name) }
        let voices = try await host.voices()
        // Natural voices only: the espeak-ng fallback voices are formant synthesis, no base for a match.
        let candidates = voices.filter { $0.language == language && $0.engine != "espeak" }
        guard !candidates.isEmpty else {
            throw VoiceError.unsupportedLanguage(language, supported: Array(Set(voices.filter { $0.engine != "espeak" }.map(\.language))).sorted())
        }
        let id = UUID().uuidString
        let folder = dataDir + "/voices/" + id
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let reports = await validate(samples, workDir: folder + "/samples")
        let usable = reports.filter(\.usable)
        guard !usable.isEmpty else {
            try? FileManager.default.removeItem(atPath: folder)
            throw VoiceError.noUsableSamples(reasons: reports.map { r in "\((r.path as NSString).lastPathComponent): " + r.problems.map(\.message).joined(separator: "; ") })
        }
        let seconds = usable.compactMap(\.analysis?.duration).reduce(0, +)
        guard seconds >= minProfileSeconds else {
            try? FileManager.default.removeItem(atPath: folder)
            throw VoiceError.notEnoughSpeech(seconds: seconds, minimum: minProfileSeconds)
        }
        var embeddings: [[Double]] = []
        var logMean = 0.0, logStd = 0.0, median = 0.0, weight = 0.0
        var envelope: [Double] = []
        for report in usable {
            guard let path = report.convertedPath, let data = FileManager.default.contents(atPath: path), let analysis = report.analysis else { continue }
            embeddings.append(try await host.speakerEmbedding(audio: data).embedding)
            if let m = analysis.f0.logMean, let s = analysis.f0.logStd, let hz = analysis.f0.medianHz {
                let w = analysis.duration * analysis.f0.voicedRatio
                logMean += m * w; logStd += s * w; median += hz * w; weight += w
            }
            if let env = analysis.envelope {
                envelope = envelope.isEmpty ? env.map { $0 * analysis.duration } : zip(envelope, env).map { $0 + $1 * analysis.duration }
            }
        }
        guard weight > 0 else { throw VoiceError.noUsableSamples(reasons: ["no sample has voiced speech"]) }
        logMean /= weight; logStd /= weight; median /= weight
        envelope = envelope.map { $0 / seconds }
        let embedding = SpeakerEmbedding.centroid(embeddings)
        let gender = median < 165 ? "male" : "female"

        // Nearest base voice: same gender first, then the closest median F0 of its calibration sentence.
        let text = Self.calibrationText[language] ?? Self.calibrationText["en"]!
        var best: (voice: Voice, f0: Double, wav: Data)?
        for voice in candidates.sorted(by: { ($0.gender == gender ? 0 : 1, $0.id) < ($1.gender == gender ? 0 : 1, $1.id) }) {
            if let best, best.voice.gender == gender, voice.gender != gender { break }
            let wav = try await host.speech(text: text, voice: voice.id)
            let f0 = try await host.analyzeVoice(audio: wav).f0.medianHz ?? 0
            let distance = abs(log(max(f0, 1)) - log(median))
            if best == nil || (voice.gender == best!.voice.gender && distance < abs(log(max(best!.f0, 1)) - log(median))) {
                best = (voice, f0, wav)
            }
        }
        guard let base = best else { throw VoiceError.unsupportedLanguage(language, supported: []) }
        let converted = try await host.convertVoice(audio: base.wav, f0LogMean: logMean, f0LogStd: logStd, formantRatio: nil, targetEnvelope: envelope)
        let baseSimilarity = SpeakerEmbedding.cosine(try await host.speakerEmbedding(audio: base.wav).embedding, embedding)
        let matchSimilarity = SpeakerEmbedding.cosine(try await host.speakerEmbedding(audio: converted.wav).embedding, embedding)

        let longest = usable.max { ($0.analysis?.duration ?? 0) < ($1.analysis?.duration ?? 0) }!
        let reference = folder + "/reference.wav"
        try? FileManager.default.removeItem(atPath: reference)
        try FileManager.default.copyItem(atPath: longest.convertedPath!, toPath: reference)
        let profile = VoiceProfile(id: id, name: name, language: language, gender: gender, embedding: embedding,
                                   f0MedianHz: median, f0LogMean: logMean, f0LogStd: logStd, envelope: envelope,
                                   baseVoice: base.voice.id, formantRatio: converted.conversion.formantRatio,
                                   calibrationBaseSimilarity: baseSimilarity, calibrationMatchSimilarity: matchSimilarity,
                                   sampleSeconds: seconds, sampleCount: usable.count, referencePath: reference)
        try store?.saveVoiceProfile(profile)
        return (profile, reports)
    }

    /// The stored profile with this name.
    public func profile(named name: String) throws -> VoiceProfile {
        guard let profile = try store?.voiceProfile(named: name) else { throw VoiceError.unknownVoice(name) }
        return profile
    }

    // MARK: Speaking and scoring

    /// Which synthesis to use.
    public enum Mode: String, Sendable, CaseIterable {
        /// XTTS when configured, else the approximate match.
        case automatic
        case approximate
        case xtts
    }

    /// Speaks `text` in the profile; the result carries its method and measured similarity.
    public func synthesize(_ text: String, profile: VoiceProfile, mode: Mode = .automatic) async throws -> VoiceSynthesis {
        let text = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !text.isEmpty else { throw VoiceError.emptyText }
        let useXTTS: Bool
        switch mode {
        case .automatic: useXTTS = xtts != nil
        case .approximate: useXTTS = false
        case .xtts:
            guard xtts != nil else { throw VoiceError.cloningNotConfigured }
            useXTTS = true
        }
        if useXTTS, let xtts {
            guard let reference = FileManager.default.contents(atPath: profile.referencePath) else {
                throw VoiceError.badInput(path: profile.referencePath, reason: "the profile's reference recording is missing; create the voice again")
            }
            let wav = try await xtts.synthesize(text: text, language: profile.language, reference: reference)
            return VoiceSynthesis(wav: wav, method: .xtts, similarity: try await score(wav, profile: profile), baseVoice: nil)
        }
        let base = try await host.speech(text: text, voice: profile.baseVoice)
        let converted = try await host.convertVoice(audio: base, f0LogMean: profile.f0LogMean, f0LogStd: profile.f0LogStd, formantRatio: profile.formantRatio)
        return VoiceSynthesis(wav: converted.wav, method: .approximate, similarity: try await score(converted.wav, profile: profile), baseVoice: profile.baseVoice)
    }

    /// Speaker similarity (Resemblyzer cosine) of a recording to the profile.
    public func score(_ audio: Data, profile: VoiceProfile) async throws -> Double {
        SpeakerEmbedding.cosine(try await host.speakerEmbedding(audio: audio).embedding, profile.embedding)
    }
}
