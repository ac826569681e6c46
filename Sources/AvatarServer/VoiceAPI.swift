import AvatarCore
import AvatarEngines
import AvatarMedia
import AvatarStore
import AvatarVoice
import Foundation
import Hummingbird

/// One voice sample's verdict (the `VoiceCloner` validation report), as the API shows it.
struct SampleView: Encodable {
    struct ProblemView: Encodable {
        var code: String
        var message: String
    }

    var id: String
    var seconds: Double
    var originalName: String?
    var verdict: String
    var problems: [ProblemView]
    var conversions: [String]
    var notes: [String]
    var sampleRate: Int?
    var channels: Int?
    var snrDb: Double?
    var speechRatio: Double?
    var clippedFraction: Double?
}

/// The avatar's voice profile after the samples, with its measured similarity and an honest label.
struct VoiceProfileView: Encodable {
    var label: String
    var method: String
    var baseVoice: String
    var gender: String
    var language: String
    var sampleSeconds: Double
    var sampleCount: Int
    /// Speaker similarity (Resemblyzer cosine) to the samples of the base voice as is, and after the match.
    var baseSimilarity: Double
    var matchSimilarity: Double
}

struct VoiceUploadResponse: ResponseEncodable {
    var sample: SampleView
    var samples: Int
    /// nil until the usable samples hold enough speech; `profileStatus` says why.
    var profile: VoiceProfileView?
    var profileStatus: String
}

struct VoiceState: ResponseEncodable {
    var samples: [SampleView]
    var profile: VoiceProfileView?
}

enum AudioIntake {
    /// Duration of an ffmpeg-readable audio file (nil when the container does not say: a streamed WebM from a
    /// browser's MediaRecorder has no duration in its header), or why it is not audio at all.
    static func probe(_ path: String) async throws -> Double? {
        let result = await ChildProcess.output(of: ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries", "format=duration:stream=codec_type", "-of", "default=nw=1", path])
        let text = String(decoding: result.output, as: UTF8.self)
        guard result.status == 0, text.contains("codec_type=audio") else {
            if result.status == 127 { throw MediaError.storage("ffprobe is not installed (run `avatar setup`)") }
            throw MediaError.unreadable("no audio stream could be read (\(result.lastErrorLine ?? "ffprobe found no audio")); send a recording ffmpeg reads, e.g. WAV, MP3, OGG, FLAC, M4A, WebM")
        }
        // `duration=N/A` (a MediaRecorder WebM, an Ogg stream without a last page): the length is measured by decoding.
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("duration=") }),
              let seconds = Double(line.dropFirst("duration=".count)), seconds > 0 else { return nil }
        return seconds
    }

    /// ffmpeg → 16 kHz mono 16-bit WAV (on its own thread). `maxSeconds` stops decoding just past it, so a file whose
    /// length was unknown cannot decode for hours; returns the seconds of audio written.
    @discardableResult
    static func toWAV(_ path: String, output: String, maxSeconds: Double? = nil) async throws -> Double {
        var arguments = ["ffmpeg", "-v", "error", "-y", "-i", path, "-vn", "-ac", "1", "-ar", "16000", "-c:a", "pcm_s16le"]
        if let maxSeconds { arguments += ["-t", String(format: "%.3f", maxSeconds + 1)] }
        let result = await ChildProcess.output(of: arguments + ["-f", "wav", output])
        guard result.status == 0 else {
            throw MediaError.unreadable("ffmpeg could not convert the audio (\(result.lastErrorLine ?? "?")); export it again as WAV or MP3")
        }
        let bytes = (try? FileManager.default.attributesOfItem(atPath: output)[.size] as? Int) ?? 0
        let seconds = Double(max(0, bytes - 44)) / 32000
        guard seconds > 0.05 else {
            throw MediaError.unreadable("the audio decodes to no sound (\(bytes) bytes of WAV); record again and check the microphone")
        }
        return seconds
    }
}

extension VoiceProfileView {
    init(_ profile: VoiceProfile, xtts: Bool) {
        method = xtts ? "xtts voice clone" : "approximate voice match"
        label = xtts
            ? String(format: "XTTS voice clone (GPU server); the base voice's similarity was %.2f", profile.calibrationBaseSimilarity)
            : String(format: "approximate voice match, not a clone: the base voice %@ shifted toward the samples (speaker similarity %.2f; the base voice alone %.2f)",
                     profile.baseVoice, profile.calibrationMatchSimilarity, profile.calibrationBaseSimilarity)
        baseVoice = profile.baseVoice
        gender = profile.gender
        language = profile.language
        sampleSeconds = profile.sampleSeconds
        sampleCount = profile.sampleCount
        baseSimilarity = profile.calibrationBaseSimilarity
        matchSimilarity = profile.calibrationMatchSimilarity
    }
}

/// `POST /api/v1/avatars/:id/voice/samples` (body: the audio), `GET /api/v1/avatars/:id/voice`.
func addVoiceRoutes(_ api: RouterGroup<AppRequestContext>, alias: RouterGroup<AppRequestContext>, services: APIServices) {
    let runtime = services.runtime
    @Sendable func upload(_ request: Request, _ context: AppRequestContext) async throws -> EditedResponse<VoiceUploadResponse> {
        let account = try context.requireAccount()
        let avatar = try services.owned(context)
        try await services.limiter.check(account: account.id, kind: .upload)
        let limit = try services.uploadLimit(account: account.id, kindLimit: services.limits.audioBytes)
        let (file, originalName) = try await receiveUpload(request, services: services, limit: limit, headBytes: 64)
        var committed = false
        defer { if !committed { try? FileManager.default.removeItem(atPath: file.tempPath) } }
        let probed = try await AudioIntake.probe(file.tempPath)
        if let probed, probed > services.limits.audioSeconds { throw MediaError.tooLong(seconds: probed, limit: services.limits.audioSeconds) }
        let wavTemp = services.media.tempDirectory + "/voice-\(UUID().uuidString.lowercased()).wav"
        defer { try? FileManager.default.removeItem(atPath: wavTemp) }
        let decoded = try await AudioIntake.toWAV(file.tempPath, output: wavTemp, maxSeconds: services.limits.audioSeconds)
        // Without a duration in the container (a browser's MediaRecorder WebM), the decoded length is the check.
        guard decoded <= services.limits.audioSeconds + 0.5 else { throw MediaError.tooLong(seconds: .infinity, limit: services.limits.audioSeconds) }
        let seconds = probed ?? decoded
        guard let host = runtime.engineHost else {
            throw Problem(.serviceUnavailable, "engines-disabled", "Engines disabled", detail: "the voice engines are off (AVATAR_ENGINES_ENABLED=false)",
                          fix: "start the server with engines enabled")
        }
        let cloner = VoiceCloner(host: host, store: runtime.database, dataDir: runtime.settings.dataDir)
        let checkDir = services.media.tempDirectory + "/voice-check-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: checkDir) }
        guard let report = await cloner.validate([wavTemp], workDir: checkDir).first else {
            throw Problem(.internalServerError, "internal", "Server error", detail: "the sample was not validated", fix: "try again")
        }

        // Stored: the original under its content hash and the 16 kHz WAV; the report with them.
        let relative = try services.media.commit(file, account: account.id, fileExtension: "audio")
        committed = true
        let view = SampleView(id: "", seconds: seconds, originalName: originalName, verdict: report.verdict.rawValue,
                              problems: report.problems.map { .init(code: $0.code, message: $0.message) }, conversions: report.conversions, notes: report.notes,
                              sampleRate: report.analysis?.sampleRate, channels: report.analysis?.channels, snrDb: report.analysis?.snrDb,
                              speechRatio: report.analysis?.speechRatio, clippedFraction: report.analysis?.clippedFraction)
        let wav = try await FileRead.data(wavTemp)
        let wavRecord = try services.storeDerived(wav, account: account.id, avatarId: avatar.id, kind: "voice-wav", ext: "wav", contentType: "audio/wav",
                                                  details: APIJSON.string(view))
        var sample = view
        sample.id = wavRecord.id
        let original = MediaRecord(accountId: account.id, avatarId: avatar.id, kind: "voice-sample", path: relative, sha256: file.sha256, bytes: file.bytes,
                                   contentType: "application/octet-stream", originalName: originalName, details: wavRecord.id)
        try runtime.database.insert(original)

        // The profile is rebuilt from every usable sample of the avatar.
        let (profile, status) = await rebuildProfile(avatar: avatar, cloner: cloner, services: services)
        let count = try runtime.database.media(avatarId: avatar.id, kind: "voice-wav").count
        return EditedResponse(status: .created, response: VoiceUploadResponse(sample: sample, samples: count, profile: profile, profileStatus: status))
    }
    api.post("/avatars/:id/voice/samples", use: upload)
    alias.post("/upload-audio", use: upload)

    api.get("/avatars/:id/voice") { _, context -> VoiceState in
        let avatar = try services.owned(context)
        let samples = try runtime.database.media(avatarId: avatar.id, kind: "voice-wav").compactMap { record -> SampleView? in
            guard var view = record.details.flatMap({ try? APIJSON.decoder.decode(SampleViewDecodable.self, from: Data($0.utf8)) })?.view else { return nil }
            view.id = record.id
            return view
        }
        let profile = try runtime.database.voiceProfile(named: "avatar-\(avatar.id)").map { VoiceProfileView($0, xtts: runtime.settings.xttsURL != nil) }
        return VoiceState(samples: samples, profile: profile)
    }
}

/// Rebuilds `avatar-ID` from the avatar's usable samples; nil with the reason when there is not enough speech.
func rebuildProfile(avatar: OwnedAvatar, cloner: VoiceCloner, services: APIServices) async -> (VoiceProfileView?, String) {
    let database = services.runtime.database
    let name = "avatar-\(avatar.id)"
    do {
        let wavs = try database.media(avatarId: avatar.id, kind: "voice-wav").filter { record in
            (record.details.flatMap { try? APIJSON.decoder.decode(SampleViewDecodable.self, from: Data($0.utf8)) }?.verdict ?? "rejected") != "rejected"
        }.map { services.media.absolute($0.path) }
        guard !wavs.isEmpty else { return (nil, "no usable sample yet; each rejected sample says what to fix") }
        let language = (try? JSONDecoder().decode(StoredPersona.self, from: Data(avatar.persona.utf8)))?.languages.first ?? "en"
        let old = try database.voiceProfile(named: name)
        _ = try database.deleteVoiceProfile(named: name)
        do {
            let (profile, _) = try await cloner.createVoice(name: name, language: language, samples: wavs)
            if let old { try? FileManager.default.removeItem(atPath: services.runtime.settings.dataDir + "/voices/" + old.id) }
            return (VoiceProfileView(profile, xtts: services.runtime.settings.xttsURL != nil), "built from \(profile.sampleCount) sample(s), \(String(format: "%.1f", profile.sampleSeconds)) s of speech")
        } catch {
            if let old { try? database.saveVoiceProfile(old) }
            let message = (error as? any AvatarError)?.userMessage ?? "\(error)"
            return (nil, "not built yet: \(message)")
        }
    } catch {
        return (nil, "not built: \(error)")
    }
}

/// The stored sample view (id filled in from the row).
struct SampleViewDecodable: Decodable {
    var seconds: Double
    var originalName: String?
    var verdict: String
    var problems: [[String: String]]
    var conversions: [String]
    var notes: [String]
    var sampleRate: Int?
    var channels: Int?
    var snrDb: Double?
    var speechRatio: Double?
    var clippedFraction: Double?

    var view: SampleView {
        SampleView(id: "", seconds: seconds, originalName: originalName, verdict: verdict,
                   problems: problems.map { .init(code: $0["code"] ?? "", message: $0["message"] ?? "") }, conversions: conversions, notes: notes,
                   sampleRate: sampleRate, channels: channels, snrDb: snrDb, speechRatio: speechRatio, clippedFraction: clippedFraction)
    }
}
