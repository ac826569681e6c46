import AvatarAnimation
import AvatarCore
import AvatarEngines
import AvatarMedia
import AvatarStore
import AvatarVoice
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import Synchronization

/// What a video job is asked to make.
struct VideoJobInput: Codable, Sendable {
    /// Text the avatar says (synthesised in its voice), or
    var text: String?
    /// an uploaded voice sample of this avatar (its id from `GET …/voice`) to lip-sync to.
    var audioSampleId: String?
    var emotion: String?
    var intensity: Double?
    var engine: String?
}

/// A job as the API shows it.
struct JobView: ResponseEncodable {
    var id: String
    var avatarId: String
    var kind: String
    var state: String
    var progress: Double
    var error: String?
    var attempts: Int
    var cached: Bool
    var videoUrl: String?
    var createdAt: Date
    var updatedAt: Date

    init(_ job: JobRecord, cached: Bool = false) {
        id = job.id
        avatarId = job.avatarId
        kind = job.kind
        state = job.state.rawValue
        progress = (job.progress * 1000).rounded() / 1000
        error = job.error
        attempts = job.attempts
        self.cached = cached
        videoUrl = job.state == .succeeded ? "/api/v1/jobs/\(job.id)/video" : nil
        createdAt = job.createdAt
        updatedAt = job.updatedAt
    }
}

struct JobList: ResponseEncodable {
    var jobs: [JobView]
}

/// The video workers: jobs live in SQLite, `workers` of them render at a time (1 suits 2 cores: the renderer
/// itself uses every core), and at start-up the jobs a dead process left running are queued again.
public final class JobQueue: Service, Sendable {
    let services: APIServices
    let workers: Int
    /// Jobs the user cancelled, with when: a running render is stopped within `cancelPoll` of it.
    let cancelled = Mutex<[String: ContinuousClock.Instant]>([:])
    static let cancelPoll: Duration = .milliseconds(100)
    /// How each cancelled render ended ("… stopped 0.08 s after the cancel …"), shown as the job's `error` (in memory).
    let stopNotes = Mutex<[String: String]>([:])

    /// The job as the API shows it, with how its cancel ended when the worker has stopped it.
    func view(_ job: JobRecord) -> JobView {
        var view = JobView(job)
        if job.state == .cancelled, let note = stopNotes.withLock({ $0[job.id] }) { view.error = note }
        return view
    }
    /// Set on graceful shutdown: a running render stops and its job goes back to the queue.
    let stopping = Mutex<Bool>(false)
    let logger: Logger
    static let maxAttempts = 3
    /// How long after its creation a job waits for an engine that is down, before it fails.
    static let retryWindow: TimeInterval = 900

    init(services: APIServices, workers: Int) {
        self.services = services
        self.workers = max(1, workers)
        logger = services.runtime.logger
    }

    public func run() async throws {
        let (requeued, failed) = try services.runtime.database.requeueInterruptedJobs(maxAttempts: Self.maxAttempts)
        if !requeued.isEmpty || !failed.isEmpty {
            logger.notice("jobs interrupted by a stop", metadata: ["requeued": .string(requeued.joined(separator: ",")), "failed": .string(failed.joined(separator: ","))])
        }
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<workers {
                    group.addTask { await self.work() }
                }
            }
        } onGracefulShutdown: {
            self.stopping.withLock { $0 = true }
        }
    }

    func work() async {
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            guard let job = try? services.runtime.database.claimNextJob() else {
                try? await Task.sleep(for: .milliseconds(200))
                continue
            }
            await process(job)
        }
    }

    func cancel(_ id: String) {
        cancelled.withLock { $0[id] = $0[id] ?? .now }
    }

    func isCancelled(_ id: String) -> Bool {
        stopping.withLock { $0 } || cancelled.withLock { $0[id] != nil }
    }

    /// Runs the render, and stops it as soon as the job is cancelled (or the server stops): a watcher polls the flag
    /// every `cancelPoll` and cancels the render's task, which ends speech synthesis, the frame loop, ffmpeg and a
    /// SadTalker process where they are — not only between frame batches.
    func renderUnlessCancelled(_ job: JobRecord) async throws -> MediaRecord {
        try await withThrowingTaskGroup(of: MediaRecord?.self) { group in
            group.addTask { try await self.render(job) }
            group.addTask {
                while !self.isCancelled(job.id) { try await Task.sleep(for: Self.cancelPoll) }
                throw AnimationError.cancelled
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let record = first else { throw AnimationError.cancelled }
            return record
        }
    }

    func process(_ job: JobRecord) async {
        let database = services.runtime.database
        do {
            let output = try await renderUnlessCancelled(job)
            try database.updateJob(id: job.id) { stored in
                stored.state = .succeeded
                stored.progress = 1
                stored.resultPath = output.path
            }
            logger.info("video job done", metadata: ["job": .string(job.id)])
        } catch AnimationError.cancelled {
            if stopping.withLock({ $0 }) {
                // Stopped by a shutdown, not by the user: queued again for the next start.
                _ = try? database.updateJob(id: job.id) { stored in
                    stored.state = .queued
                    stored.progress = 0
                }
                logger.info("video job queued again for the next start", metadata: ["job": .string(job.id)])
            } else {
                // The render has stopped: how long after the cancel, on the job for the user (and the tests) to see.
                let requested = cancelled.withLock { $0[job.id] } ?? .now
                let after = ContinuousClock.now - requested
                let seconds = Double(after.components.seconds) + Double(after.components.attoseconds) / 1e18
                let progress = (try? database.job(id: job.id, accountId: job.accountId))?.progress ?? 0
                let note = String(format: "cancelled; the render stopped %.2f s after the cancel, at %.0f %%", seconds, progress * 100)
                stopNotes.withLock { $0[job.id] = note }
                logger.info("video job cancelled", metadata: ["job": .string(job.id), "stoppedAfter": .string(String(format: "%.3f s", seconds))])
            }
        } catch let error as any AvatarError where error.retryable && Date().timeIntervalSince(job.createdAt) < Self.retryWindow {
            // An engine still starting (after a restart) or briefly down: the job waits in the queue instead of failing.
            logger.info("video job waits for an engine", metadata: ["job": .string(job.id), "error": .string(error.userMessage)])
            _ = try? database.updateJob(id: job.id) { stored in
                stored.state = .queued
                stored.progress = 0
                stored.attempts -= 1  // waiting for an engine is not a start that crashed
            }
            try? await Task.sleep(for: .seconds(2))
        } catch {
            let message = (error as? any AvatarError)?.userMessage ?? (error as? Problem)?.detail ?? "\(error)"
            logger.warning("video job failed", metadata: ["job": .string(job.id), "error": .string(message)])
            _ = try? database.updateJob(id: job.id) { stored in
                stored.state = .failed
                stored.error = message
            }
        }
        cancelled.withLock { _ = $0.removeValue(forKey: job.id) }
    }

    struct Failure: AvatarError {
        let userMessage: String
        var retryable: Bool { false }
    }

    /// Photo + (speech from text | an uploaded sample) → MP4 with provenance, stored under its content hash.
    func render(_ job: JobRecord) async throws -> MediaRecord {
        let runtime = services.runtime
        let database = runtime.database
        let input = try APIJSON.decoder.decode(VideoJobInput.self, from: Data(job.input.utf8))
        guard let avatar = try database.avatar(id: job.avatarId, accountId: job.accountId) else { throw Failure(userMessage: "the avatar was deleted") }
        let engine = input.engine ?? "builtin"
        guard let photoPath = try AvatarFace.photoPath(of: avatar, accountId: job.accountId, services: services) else {
            throw Failure(userMessage: "the avatar's photo is gone; upload a photo and start the video again")
        }
        let work = services.media.tempDirectory + "/job-\(job.id)"
        try? FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let audioPath: String
        var timings: SpeechTimings?
        let emotion = Emotion.Label(name: input.emotion ?? "neutral") ?? .neutral
        if let sampleId = input.audioSampleId {
            guard let sample = try database.media(id: sampleId, accountId: job.accountId), sample.avatarId == avatar.id else {
                throw Failure(userMessage: "the voice sample \(sampleId) is gone")
            }
            audioPath = services.media.absolute(sample.path)
        } else {
            // Speech needs the engines (a job from an uploaded sample does not).
            guard let host = runtime.engineHost else { throw Failure(userMessage: "the engines are disabled (AVATAR_ENGINES_ENABLED=false)") }
            let text = input.text ?? ""
            let persona = AvatarValidation.persona(of: avatar)
            let language = persona?.languages.first ?? "en"
            let wav: Data
            if avatar.voice == "clone", let profile = try database.voiceProfile(named: "avatar-\(avatar.id)") {
                let cloner = VoiceCloner(host: host, store: database, dataDir: runtime.settings.dataDir)
                wav = try await cloner.synthesize(text, profile: profile).wav
            } else {
                let speech = try await host.timedSpeech(text: text, voice: Self.voice(avatar.voice, language: language), emotion: emotion.prosody.rawValue, intensity: input.intensity ?? 0.7)
                wav = speech.audio
                timings = speech.timings
            }
            audioPath = work + "/speech.wav"
            try wav.write(to: URL(fileURLWithPath: audioPath))
        }
        let rendered = work + "/render.mp4"
        if engine == "sadtalker" {
            // A SadTalker the user installed, in its own process (GPU memory is released when it exits).
            let adapter = try await SadTalkerSetup.adapter(runtime.settings)
            _ = try database.updateJob(id: job.id) { $0.progress = 0.05 }
            let result = try await adapter.generate(photo: photoPath, audio: audioPath, output: rendered, size: 256)
            logger.info("sadtalker job done", metadata: ["job": .string(job.id), "seconds": .string(String(format: "%.1f", result.seconds)), "peakGPUMiB": .stringConvertible(result.peakGPUMiB)])
            return try await stamp(rendered, job: job, avatar: avatar, work: work)
        }
        guard let rig = try await AvatarFace.rig(of: avatar, accountId: job.accountId, services: services) else {
            throw Failure(userMessage: "the avatar's photo is gone; upload a photo and start the video again")
        }
        let sound = try await AudioSamples.load(audioPath)
        let exporter = VideoExporter(renderer: FaceRenderer(rig: rig))
        let database_ = database
        let jobId = job.id
        let lastReported = Locked<Double>(0)
        let speechTimings = timings
        do {
            try await exporter.export(audioPath: audioPath, audio: sound, timings: speechTimings, emotion: emotion, intensity: input.intensity ?? 0.7, output: rendered,
                                progress: { done, total in
                                    let fraction = total > 0 ? 0.95 * Double(done) / Double(total) : 0
                                    let report = lastReported.withLock { last -> Bool in
                                        guard fraction - last >= 0.05 || done == total else { return false }
                                        last = fraction
                                        return true
                                    }
                                    if report { _ = try? database_.updateJob(id: jobId) { $0.progress = fraction } }
                                },
                                isCancelled: { self.isCancelled(jobId) })
        }
        if isCancelled(jobId) { throw AnimationError.cancelled }
        return try await stamp(rendered, job: job, avatar: avatar, work: work)
    }

    /// Provenance: tags in the MP4 and a small visible label; the result stored under its content hash.
    func stamp(_ rendered: String, job: JobRecord, avatar: OwnedAvatar, work: String) async throws -> MediaRecord {
        let final = work + "/final.mp4"
        let stamp = ISO8601DateFormatter().string(from: Date())
        let comment = "AI-generated by Avatar \(avatarVersion); avatar \(avatar.id); made \(stamp)"
        var arguments = ["ffmpeg", "-v", "error", "-y", "-i", rendered, "-map", "0",
                         "-metadata", "title=AI-generated talking head (Avatar)", "-metadata", "comment=\(comment)",
                         "-metadata", "description=\(comment)", "-metadata", "encoder=Avatar \(avatarVersion)"]
        if services.provenanceLabel {
            arguments += ["-vf", "drawtext=text='AI-generated':fontcolor=white@0.85:fontsize=14:x=w-tw-8:y=h-th-8:box=1:boxcolor=black@0.45:boxborderw=4",
                          "-c:v", "libx264", "-preset", "ultrafast", "-crf", "18", "-pix_fmt", "yuv420p", "-c:a", "copy"]
        } else {
            arguments += ["-c", "copy"]
        }
        arguments += ["-movflags", "+faststart+use_metadata_tags", final]
        let stamped = await ChildProcess.output(of: arguments)
        guard stamped.status == 0 else { throw Failure(userMessage: "adding the provenance to the video failed: \(stamped.lastErrorLine ?? "?")") }
        let data = try await FileRead.data(final)
        return try services.storeDerived(data, account: job.accountId, avatarId: avatar.id, kind: "video", ext: "mp4", contentType: "video/mp4", details: job.id)
    }

    /// The engine host voice for an avatar's voice choice.
    static func voice(_ choice: String?, language: String) -> String {
        guard let choice, choice != "auto", choice != "clone" else {
            switch language {
            case "en": return "en_US-joe-medium"
            case "ru": return "msu_ru_nsh"
            default: return "espeak-\(language)"
            }
        }
        return choice
    }

    /// Runs blocking work (decoding, rendering) on a thread of its own, not on the concurrency pool.
    /// The cache key of a request: same photo, audio (or text + voice), emotion and engine → same video.
    static func cacheKey(photoSHA: String, input: VideoJobInput, voice: String?, audioSHA: String?) -> String {
        let parts = [photoSHA, audioSHA ?? "text:\(input.text ?? "")|voice:\(voice ?? "auto")", (Emotion.Label(name: input.emotion ?? "neutral") ?? .neutral).rawValue,
                     String(format: "%.2f", input.intensity ?? 0.7), input.engine ?? "builtin", "r\(FaceRenderer.version)"]
        return ContentHash.of(parts.joined(separator: "\u{1F}")) + "-" + String(parts.joined().count)
    }
}

/// `POST /api/v1/avatars/:id/videos`, `GET …/videos`, `GET /api/v1/jobs/:job`, `POST /api/v1/jobs/:job/cancel`, `GET /api/v1/jobs/:job/video`.
func addVideoRoutes(_ api: RouterGroup<AppRequestContext>, alias: RouterGroup<AppRequestContext>, services: APIServices, jobs: JobQueue) {
    let database = services.runtime.database
    @Sendable func start(_ request: Request, _ context: AppRequestContext) async throws -> EditedResponse<JobView> {
        let account = try context.requireAccount()
        let avatar = try services.owned(context)
        let input = try await request.decode(as: VideoJobInput.self, context: context)
        return try await startVideo(input, avatar: avatar, account: account.id, services: services)
    }
    api.post("/avatars/:id/videos", use: start)
    alias.post("/generate-avatar", use: start)
    api.get("/avatars/:id/videos") { _, context -> JobList in
        let account = try context.requireAccount()
        let avatar = try services.owned(context)
        return JobList(jobs: try database.jobs(accountId: account.id, avatarId: avatar.id).map { jobs.view($0) })
    }
    api.get("/jobs/:job") { _, context -> JobView in
        jobs.view(try ownedJob(context, database))
    }
    api.post("/jobs/:job/cancel") { _, context -> JobView in
        let account = try context.requireAccount()
        let job = try ownedJob(context, database)
        jobs.cancel(job.id)
        guard let cancelled = try database.cancelJob(id: job.id, accountId: account.id) else { throw Problem.notFound("job \(job.id)") }
        return JobView(cancelled)
    }
    api.get("/jobs/:job/video") { request, context -> Response in
        let job = try ownedJob(context, database)
        guard job.state == .succeeded, let path = job.resultPath else {
            throw Problem(.conflict, "job-not-finished", "Video not ready", detail: "the job is \(job.state.rawValue)\(job.error.map { ": \($0)" } ?? "")",
                          fix: job.state.finished ? "start a new video" : "poll GET /api/v1/jobs/\(job.id) until its state is succeeded")
        }
        var file = services.media.absolute(path)
        if let size = request.uri.queryParameters["size"].map(String.init), size != "512" {
            guard ["256", "1024"].contains(size) else {
                throw AvatarValidation.invalid("size", "must be 256, 512 or 1024", fix: "send ?size=256, 512 (the rendered size) or 1024")
            }
            // Scaled once with ffmpeg, kept beside the original.
            let scaled = (file as NSString).deletingPathExtension + "-\(size).mp4"
            if !FileManager.default.fileExists(atPath: scaled) {
                let temp = services.media.tempDirectory + "/scale-\(UUID().uuidString.lowercased()).mp4"
                let result = await ChildProcess.output(of: ["ffmpeg", "-v", "error", "-y", "-i", file, "-map", "0", "-vf", "scale=\(size):\(size):flags=lanczos",
                                                             "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p", "-c:a", "copy",
                                                             "-map_metadata", "0", "-movflags", "+faststart+use_metadata_tags", temp])
                guard result.status == 0, rename(temp, scaled) == 0 else {
                    try? FileManager.default.removeItem(atPath: temp)
                    throw Problem(.internalServerError, "conversion-failed", "Conversion failed", detail: "ffmpeg could not scale the video: \(result.lastErrorLine ?? "?")", fix: "download it at 512 (no ?size)")
                }
            }
            file = scaled
        }
        return try await FileResponder.respond(file, contentType: "video/mp4", request: request, context: context, downloadName: "avatar-\(job.avatarId.prefix(8))-\(job.id.prefix(8)).mp4")
    }
}

func ownedJob(_ context: AppRequestContext, _ database: AvatarDatabase) throws -> JobRecord {
    let account = try context.requireAccount()
    let id = context.parameters.get("job") ?? ""
    guard let job = try database.job(id: id, accountId: account.id) else { throw Problem.notFound("job \(id)") }
    return job
}

/// Validates a video request and queues it, or answers at once from a finished job with the same inputs.
func startVideo(_ input: VideoJobInput, avatar: OwnedAvatar, account: String, services: APIServices) async throws -> EditedResponse<JobView> {
    let database = services.runtime.database
    try await services.limiter.check(account: account, kind: .job)
    guard Emotion.Label(name: input.emotion ?? "neutral") != nil else {
        throw AvatarValidation.invalid("emotion", "must be one of \(Emotion.Label.acceptedNames.joined(separator: ", "))", fix: "send one of those")
    }
    guard (0...1).contains(input.intensity ?? 0.7) else { throw AvatarValidation.invalid("intensity", "must be from 0 to 1", fix: "send e.g. 0.7") }
    switch input.engine ?? "builtin" {
    case "builtin": break
    case "sadtalker": try SadTalkerSetup.checkConfigured(services.runtime.settings)
    default: throw AvatarValidation.invalid("engine", "must be \"builtin\" or \"sadtalker\"", fix: "send \"builtin\" (or leave it out), or \"sadtalker\" where SadTalker is set up")
    }
    guard let stateJSON = avatar.photo, let state = try? APIJSON.decoder.decode(PhotoState.self, from: Data(stateJSON.utf8)) else {
        throw Problem(.conflict, "no-photo", "No photo yet", detail: "the avatar has no photo to animate", fix: "upload one: PUT /api/v1/avatars/\(avatar.id)/photo")
    }
    var audioSHA: String?
    if let sampleId = input.audioSampleId {
        guard let sample = try database.media(id: sampleId, accountId: account), sample.avatarId == avatar.id, sample.kind == "voice-wav" else {
            throw AvatarValidation.invalid("audioSampleId", "is not a voice sample of this avatar", fix: "GET /api/v1/avatars/\(avatar.id)/voice lists them")
        }
        audioSHA = sample.sha256
    } else {
        let text = (input.text ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        guard (1...1000).contains(text.count) else {
            throw AvatarValidation.invalid("text", "send 1 to 1000 characters of text, or audioSampleId", fix: "send {\"text\": \"Hello!\"}")
        }
    }
    let key = JobQueue.cacheKey(photoSHA: state.sha256, input: input, voice: avatar.voice, audioSHA: audioSHA)
    let inputJSON = APIJSON.string(input)
    if let done = try database.succeededJob(cacheKey: key, accountId: account), let path = done.resultPath,
       FileManager.default.fileExists(atPath: services.media.absolute(path)) {
        var job = JobRecord(accountId: account, avatarId: avatar.id, kind: "video", input: inputJSON, cacheKey: key)
        job.state = .succeeded
        job.progress = 1
        job.resultPath = path
        try database.insert(job)
        return EditedResponse(status: .ok, headers: [.location: "/api/v1/jobs/\(job.id)"], response: JobView(job, cached: true))
    }
    let job = JobRecord(accountId: account, avatarId: avatar.id, kind: "video", input: inputJSON, cacheKey: key)
    try database.insert(job)
    return EditedResponse(status: .accepted, headers: [.location: "/api/v1/jobs/\(job.id)"], response: JobView(job))
}

/// SadTalker for video jobs: the same user-installed checkout and job script as `avatar generate --engine sadtalker`.
enum SadTalkerSetup {
    /// 503 with what to configure when `AVATAR_SADTALKER_DIR` is unset or is not a folder.
    static func checkConfigured(_ settings: AvatarSettings) throws {
        let fix = "set AVATAR_SADTALKER_DIR to your SadTalker checkout (and AVATAR_SADTALKER_CHECKPOINTS, AVATAR_SADTALKER_PYTHON: its torch + CUDA Python), restart `avatar serve`; or leave engine out for the built-in renderer"
        guard let directory = settings.sadTalkerDir else {
            throw Problem(.serviceUnavailable, "sadtalker-not-configured", "SadTalker is not set up",
                          detail: "engine \"sadtalker\" needs a SadTalker you installed (GPU); AVATAR_SADTALKER_DIR is not set", fix: fix)
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw Problem(.serviceUnavailable, "sadtalker-not-configured", "SadTalker is not set up",
                          detail: "AVATAR_SADTALKER_DIR is \(directory), which is not a folder", fix: fix)
        }
    }

    /// The adapter: `AVATAR_SADTALKER_PYTHON engine/avatar_engine/sadtalker_job.py JOB.json`, one process per job.
    static func adapter(_ settings: AvatarSettings) async throws -> SadTalkerAdapter {
        guard let checkout = settings.sadTalkerDir else { throw SadTalkerError.notInstalled("AVATAR_SADTALKER_DIR is not set") }
        var script = FileManager.default.currentDirectoryPath + "/engine/avatar_engine/sadtalker_job.py"
        if !FileManager.default.fileExists(atPath: script) {
            // Not run from a checkout: the engine code the venv links.
            let locate = await ChildProcess.output(of: [settings.pythonPath, "-c", "import avatar_engine, os; print(os.path.dirname(avatar_engine.__file__))"])
            let directory = locate.text.trimmingCharacters(in: .whitespacesAndNewlines)
            guard locate.succeeded, !directory.isEmpty else { throw SadTalkerError.notInstalled("the engine code is not found; run `avatar setup`") }
            script = directory + "/sadtalker_job.py"
        }
        return SadTalkerAdapter(command: [settings.sadTalkerPython, script], checkout: checkout, checkpoints: settings.sadTalkerCheckpoints)
    }
}
