import ArgumentParser
import AvatarCore
import AvatarEngines
import AvatarServer
import AvatarSessionClient
import Foundation
import Hummingbird
import NIOCore

/// `avatar bench session`: real WebSocket clients against an in-process server with the embedded engines.
struct BenchSession: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "session",
        abstract: "Live sessions: end of speech → first audio and frame, barge-in, delivered fps, A/V offset, false barge-ins, cached replies, concurrent sessions."
    )

    @Option(help: "Spoken turns (LibriVox clips streamed at real-time pace).")
    var turns = 10

    @Option(help: "Barge-ins and echo (false barge-in) trials.")
    var trials = 5

    @Option(help: "Concurrent sessions to try, comma-separated (each sends text turns).")
    var sessions = "1,2,4"

    @Option(help: "Which measurements: turns, bargein, echo, cached, concurrent (comma-separated).")
    var parts = "turns,bargein,echo,cached,concurrent"

    @Option(help: "Directory of LibriVox clips with a `transcription` file (Debian pocketsphinx-testdata).")
    var librivox = "/usr/share/pocketsphinx/test/data/librivox"

    func run() async throws {
        var settings = try await loadSettings()
        settings.logLevel = "warning"
        settings.dataDir = NSTemporaryDirectory() + "avatar-bench-session-\(UUID().uuidString.prefix(8))"
        settings.host = "127.0.0.1"
        let logger = bootstrapLogging(settings)
        let runtime = try makeRuntime(settings, logger)
        guard let supervisor = runtime.supervisor else { throw CLIFailure("the engines are disabled (AVATAR_ENGINES_ENABLED=false); the live session needs them") }
        try await withServer(runtime) { port in
            settings.port = port
            try await measure(runtime: runtime, supervisor: supervisor, settings: settings, port: port)
        }
    }

    func measure(runtime: AvatarRuntime, supervisor: EngineSupervisor, settings: AvatarSettings, port: Int) async throws {
        let token = try runtime.database.ensureOwner().issued?.secret ?? runtime.database.issueToken(accountId: runtime.database.ensureOwner().account.id, name: "bench").secret
        let client = BenchClient(base: "http://127.0.0.1:\(port)", token: token)
        while (try? await client.send(.GET, "/healthz").status) != 200 { try await Task.sleep(for: .milliseconds(100)) }
        print("avatar bench session: server on 127.0.0.1:\(port); starting engines…")
        _ = try await waitUntilReady(supervisor, timeout: settings.engineStartTimeout, logs: settings.dataDir + "/logs/")

        guard let photoPath = BenchEngines.findInVenv(settings, "skimage/data/astronaut.png"), let photo = FileManager.default.contents(atPath: photoPath) else {
            throw CLIFailure("scikit-image's astronaut.png is not in the venv; run `avatar setup`")
        }
        let created = try await client.send(.POST, "/api/v1/avatars", json: #"{"name":"Bench","age":40,"languages":["en"],"manner":"brief","consent":{"givenBy":"bench","basis":"self","grantedAt":"2026-01-01"}}"#)
        guard created.status == 201, let avatar = created.json["id"] as? String else { throw CLIFailure("cannot create an avatar: \(created.text)") }
        let uploaded = try await client.send(.PUT, "/api/v1/avatars/\(avatar)/photo", body: ByteBuffer(data: photo))
        guard uploaded.status == 201 else { throw CLIFailure("photo upload failed: \(uploaded.text)") }
        let clips = try loadClips()
        print("\n" + "measurement".padding(toLength: 52, withPad: " ", startingAt: 0) + "  p50 ms   p95 ms   notes")

        let chosen = Set(parts.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
        if chosen.contains("turns") { try await measureSpokenTurns(port: port, token: token, avatar: avatar, clips: clips) }
        if chosen.contains("bargein") { try await measureBargeIn(port: port, token: token, avatar: avatar, clips: clips) }
        if chosen.contains("echo") { try await measureEcho(port: port, token: token, avatar: avatar) }
        if chosen.contains("cached") { try await measureCached(port: port, token: token, avatar: avatar) }
        if chosen.contains("concurrent") {
            for count in sessions.split(separator: ",").compactMap({ Int($0.trimmingCharacters(in: .whitespaces)) }) {
                try await measureConcurrent(count, port: port, token: token, avatar: avatar)
            }
        }
    }

    func loadClips() throws -> [[Float]] {
        guard let listing = try? String(contentsOfFile: librivox + "/transcription", encoding: .utf8) else {
            throw CLIFailure("no LibriVox clips at \(librivox) (Debian package pocketsphinx-testdata; `avatar setup --with-test-tools`)")
        }
        var clips: [[Float]] = []
        for line in listing.split(separator: "\n") {
            guard let open = line.lastIndex(of: "("), let close = line.lastIndex(of: ")") else { continue }
            let id = line[line.index(after: open)..<close]
            guard let data = FileManager.default.contents(atPath: "\(librivox)/\(id).wav"), let (samples, rate) = WAVInfo.monoSamples(data), rate == 16000 else { continue }
            clips.append(samples)
        }
        guard !clips.isEmpty else { throw CLIFailure("no readable 16 kHz clips in \(librivox)") }
        return clips
    }

    func report(_ name: String, _ values: [Double], _ note: String) {
        let stats = Stats(values)
        print(name.padding(toLength: 52, withPad: " ", startingAt: 0) + String(format: "  %6.0f   %6.0f   ", stats.p50, stats.p95) + note)
    }

    static func milliseconds(_ from: ContinuousClock.Instant, _ to: ContinuousClock.Instant) -> Double { (to - from).seconds * 1000 }

    /// Where speech starts in a clip: the first 20 ms window above −35 dBFS.
    static func onset(_ samples: [Float]) -> Int {
        for start in stride(from: 0, to: samples.count - 320, by: 320) {
            let energy = samples[start..<start + 320].reduce(0) { $0 + $1 * $1 } / 320
            if energy > 3.2e-4 { return start }
        }
        return 0
    }

    func measureSpokenTurns(port: Int, token: String, avatar: String, clips: [[Float]]) async throws {
        let session = try await SessionRecorder.open(port: port, token: token, avatar: avatar)
        try await session.wait("ready", timeout: 30) { !$0.messages("ready").isEmpty }
        var toAudio: [Double] = [], toFrame: [Double] = [], offsets: [Double] = []
        var stages: [String: [Double]] = [:]
        let started = ContinuousClock.now
        let framesBefore = session.frames.count
        for index in 0..<turns {
            let clip = clips[index % clips.count]
            let turn = index + 1
            try await session.speak(clip)
            let endOfClip = ContinuousClock.now
            try await session.speak([Float](repeating: 0, count: 16000))
            try await session.wait("turn \(turn)", timeout: 180) { $0.turnEnd(turn) != nil }
            // Interrupt nothing: wait for the avatar to finish before the next question.
            let events = session.events
            if let audio = events.first(where: { if case .audio(turn, _, _, _) = $0 { return true } else { return false } }),
               case .audio(_, let position, _, let at) = audio {
                toAudio.append(Self.milliseconds(endOfClip, at))
                if let frame = events.first(where: { if case .frame(turn, _, true, _, _) = $0 { return true } else { return false } }),
                   case .frame(_, let frameIndex, _, _, let frameAt) = frame {
                    toFrame.append(Self.milliseconds(endOfClip, frameAt))
                    offsets.append(abs(Double(frameIndex * 640 - position)) / 16)
                }
            }
            for (stage, value) in session.turnEnd(turn)?["timings"] as? [String: Any] ?? [:] {
                if let number = value as? Double { stages[stage, default: []].append(number) }
            }
        }
        let seconds = (ContinuousClock.now - started).seconds
        let fps = Double(session.frames.count - framesBefore) / seconds
        report("end of speech → first avatar audio (client)", toAudio, "\(toAudio.count) spoken turns, from the clip's last sample")
        report("end of speech → first speaking frame (client)", toFrame, "")
        for stage in ["asr_final", "first_clause", "first_audio", "first_frame", "total"] where stages[stage] != nil {
            report("  server stage: \(stage)", stages[stage] ?? [], "from the VAD's end of speech")
        }
        report("first speaking frame vs its audio sample offset", offsets, "|640·k − first audio sample|, ms")
        print("delivered video: \(String(format: "%.1f", fps)) fps over \(String(format: "%.0f", seconds)) s")
        await session.close()
    }

    func measureBargeIn(port: Int, token: String, avatar: String, clips: [[Float]]) async throws {
        var toInterrupted: [Double] = [], toLastMedia: [Double] = [], skipped = 0
        for index in 0..<trials {
            let session = try await SessionRecorder.open(port: port, token: token, avatar: avatar)
            try await session.wait("ready", timeout: 30) { !$0.messages("ready").isEmpty }
            try await session.client.send(["type": "text", "text": "Please tell me a long story about a sailor and the sea, number \(index)."])
            try await session.wait("speaking", timeout: 120) { $0.frames.contains(where: \.speaking) || $0.turnEnd(1) != nil }
            guard session.turnEnd(1) == nil else { await session.close(); continue }
            try await Task.sleep(for: .milliseconds(800))
            let clip = clips[index % clips.count]
            let sent = ContinuousClock.now
            let onset = sent + .milliseconds(Self.onset(clip) / 16)
            let speaking = Task { try await session.speak(clip) }
            // A reply that ends before the person's voice reaches the VAD cannot be interrupted: that trial is skipped.
            try await session.wait("interrupted or the end of the reply", timeout: 30) { !$0.messages("interrupted").isEmpty || $0.turnEnd(1) != nil }
            speaking.cancel()
            guard !session.messages("interrupted").isEmpty else {
                skipped += 1
                await session.close()
                continue
            }
            let events = session.events
            if case .message(_, let at)? = events.first(where: { if case .message(let text, _) = $0 { return text.contains("\"interrupted\"") } else { return false } }) {
                toInterrupted.append(Self.milliseconds(onset, at))
            }
            let lastMedia = events.compactMap { event -> ContinuousClock.Instant? in
                switch event {
                case .audio(1, _, _, let at): return at
                case .frame(_, _, true, _, let at): return at
                default: return nil
                }
            }.max()
            if let lastMedia { toLastMedia.append(max(0, Self.milliseconds(onset, lastMedia))) }
            await session.close()
        }
        report("barge-in: speech onset → interrupted", toInterrupted, "\(toInterrupted.count) trials (\(skipped) replies ended first); VAD needs 96 ms of speech")
        report("barge-in: speech onset → last audio/speaking frame", toLastMedia, "")
    }

    /// The avatar's own voice fed back into the mic at −10 dB (no echo cancellation): turns it cuts itself off.
    func measureEcho(port: Int, token: String, avatar: String) async throws {
        var falseBargeIns = 0, completed = 0
        for index in 0..<trials {
            let session = try await SessionRecorder.open(port: port, token: token, avatar: avatar)
            try await session.wait("ready", timeout: 30) { !$0.messages("ready").isEmpty }
            try await session.client.send(["type": "text", "text": "Tell me something nice about today, number \(index)."])
            var echoed = 0
            let deadline = ContinuousClock.now + .seconds(180)
            while session.turnEnd(1) == nil, ContinuousClock.now < deadline {
                let audio = session.audio.filter { $0.turn == 1 }.flatMap(\.samples)
                if audio.count > echoed {
                    let chunk = audio[echoed..<min(audio.count, echoed + 1600)].map { Float($0) / 32768 * 0.316 }
                    try await session.client.sendMic(chunk[...])
                    echoed += chunk.count
                    try await Task.sleep(for: .milliseconds(chunk.count / 16))
                } else {
                    try await session.client.sendMic([Float](repeating: 0, count: 1600)[...])
                    try await Task.sleep(for: .milliseconds(100))
                }
            }
            if session.turnEnd(1)?["reason"] as? String == "interrupted" { falseBargeIns += 1 } else { completed += 1 }
            await session.close()
        }
        print("false barge-ins with the avatar's voice at −10 dB in the mic (no echo cancellation): \(falseBargeIns) of \(falseBargeIns + completed) turns")
    }

    func measureCached(port: Int, token: String, avatar: String) async throws {
        var first: [Double] = [], cached: [Double] = []
        let session = try await SessionRecorder.open(port: port, token: token, avatar: avatar)
        try await session.wait("ready", timeout: 30) { !$0.messages("ready").isEmpty }
        for turn in 1...4 {
            let sent = ContinuousClock.now
            try await session.client.send(["type": "text", "text": "Hello! How are you?"])
            try await session.wait("turn \(turn)", timeout: 120) { $0.turnEnd(turn) != nil }
            if case .frame(_, _, _, _, let at)? = session.events.first(where: { if case .frame(turn, _, true, _, _) = $0 { return true } else { return false } }) {
                if turn == 1 { first.append(Self.milliseconds(sent, at)) } else { cached.append(Self.milliseconds(sent, at)) }
            }
        }
        await session.close()
        report("greeting, first time: text → first speaking frame", first, "")
        report("greeting, cached: text → first speaking frame", cached, "\(cached.count) repeats (reply and speech from the caches)")
    }

    func measureConcurrent(_ count: Int, port: Int, token: String, avatar: String) async throws {
        let sessions = try await withThrowingTaskGroup(of: SessionRecorder.self) { group in
            for _ in 0..<count { group.addTask { try await SessionRecorder.open(port: port, token: token, avatar: avatar) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        for session in sessions { try await session.wait("ready", timeout: 60) { !$0.messages("ready").isEmpty } }
        let started = ContinuousClock.now
        let before = sessions.map(\.frames.count)
        var latencies: [Double] = []
        try await withThrowingTaskGroup(of: [Double].self) { group in
            for (index, session) in sessions.enumerated() {
                group.addTask {
                    var values: [Double] = []
                    for turn in 1...2 {
                        let sent = ContinuousClock.now
                        try await session.client.send(["type": "text", "text": "Tell me one short fact about the moon, session \(index) turn \(turn)."])
                        try await session.wait("turn \(turn)", timeout: 240) { $0.turnEnd(turn) != nil }
                        if case .frame(_, _, _, _, let at)? = session.events.first(where: { if case .frame(turn, _, true, _, _) = $0 { return true } else { return false } }) {
                            values.append(Self.milliseconds(sent, at))
                        }
                    }
                    return values
                }
            }
            for try await values in group { latencies += values }
        }
        let seconds = (ContinuousClock.now - started).seconds
        let fps = zip(sessions, before).map { Double($0.frames.count - $1) / seconds }
        report("\(count) concurrent session(s): text → first speaking frame", latencies, String(format: "delivered fps per session: min %.1f, mean %.1f", fps.min() ?? 0, fps.reduce(0, +) / Double(max(1, fps.count))))
        for session in sessions { await session.close() }
    }
}
