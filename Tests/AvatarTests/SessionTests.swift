import AvatarCore
import AvatarServer
import AvatarSessionClient
import AvatarSpeech
import AvatarStore
import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import Synchronization
import Testing

@Suite("Live session over WebSocket (real engines)", .serialized)
struct SessionTests {
    /// The app on a real port with the shared engines, an owner token and an avatar with the astronaut's photo.
    func withServer(_ body: @Sendable (_ port: Int, _ harness: APIHarness, _ avatar: String) async throws -> Void) async throws {
        let runtime = try await EngineFixture.shared.runtime()
        let harness = try await APIHarness.make(runtime: runtime)
        let app = try buildApplication(runtime: runtime, superviseEngines: false, port: 0)
        let astronaut = try TestData.skimage("astronaut.png", settings: runtime.settings)
        try await app.test(.live) { client in
            let created = try await client.call(.post, "/api/v1/avatars", token: harness.owner, json: [
                "name": "Eileen", "age": 40, "interests": ["space", "flight"], "manner": "calm and friendly", "languages": ["en"], "consent": testConsent,
            ])
            let id = try #require(created.json["id"] as? String)
            let photo = try await client.call(.put, "/api/v1/avatars/\(id)/photo", token: harness.owner, body: ByteBuffer(data: astronaut))
            #expect(photo.status == 201, "\(photo.text)")
            try await body(try #require(client.port), harness, id)
        }
    }

    static func clip(_ index: Int) async throws -> (samples: [Float], text: String) {
        let clips = try TestData.librivoxClips()
        let clip = clips[index]
        let audio = try await AudioSamplesLoader.load(clip.path)
        return (audio, clip.text)
    }

    @Test("Text turn: reply text, audio and speaking frames that cover the audio ± 80 ms; idle frames before; per-stage timings")
    func textTurn() async throws {
        try await withServer { port, harness, avatar in
            let probe = try await SessionRecorder.open(port: port, token: harness.owner, avatar: avatar)
            defer { Task { await probe.close() } }
            try await probe.wait("ready", timeout: 20) { !$0.messages("ready").isEmpty }
            let ready = try #require(probe.messages("ready").first)
            #expect((ready["video"] as? [String: Any])?["fps"] as? Int == 25)
            let notes = ((ready["capabilities"] as? [String: Any])?["notes"] as? [String]) ?? []
            #expect(notes.contains { $0.contains("English-only") }, "the tiny built-in model is named honestly: \(notes)")
            // The avatar is alive before anything is said: idle frames, valid JPEGs, not all the same picture.
            try await probe.wait("1 s of idle frames", timeout: 10) { $0.frames.count >= 25 }
            let idle = probe.frames
            #expect(idle.allSatisfy { !$0.speaking && $0.jpeg.starts(with: [0xFF, 0xD8]) })

            try await probe.client.send(["type": "text", "text": "Hello! Say hi to me in one short sentence."])
            try await probe.wait("turn 1 ends", timeout: 120) { $0.turnEnd(1) != nil }
            let end = try #require(probe.turnEnd(1))
            #expect(end["reason"] as? String == "completed", "\(end)")
            let states = probe.messages("state").compactMap { $0["state"] as? String }
            #expect(states.starts(with: ["thinking", "speaking", "idle"]), "\(states)")
            let done = try #require(probe.messages("reply").first { $0["done"] as? Bool == true })
            let text = done["text"] as? String ?? ""
            #expect(text.count > 3)
            let deltas = probe.messages("reply").filter { $0["done"] as? Bool == false }.compactMap { $0["delta"] as? String }
            #expect(!deltas.isEmpty)

            let audio = probe.audio.filter { $0.turn == 1 }
            let first = try #require(audio.first)
            let audioEnd = audio.map { $0.position + $0.samples.count }.max() ?? 0
            let speaking = probe.frames.filter(\.speaking)
            let firstFrame = try #require(speaking.first), lastFrame = try #require(speaking.last)
            let audioSeconds = Double(audioEnd - first.position) / 16000
            let frameSeconds = Double(lastFrame.index - firstFrame.index + 1) * 0.04
            print("text turn: \(String(format: "%.2f", audioSeconds)) s of audio, \(String(format: "%.2f", frameSeconds)) s of speaking frames; timings \(end["timings"] ?? "-")")
            #expect(abs(audioSeconds - frameSeconds) <= 0.08, "audio \(audioSeconds) s vs speaking frames \(frameSeconds) s")
            // The first speaking frame is the one the first sample belongs to (frame k ↔ sample 640·k).
            #expect(abs(firstFrame.index * 640 - first.position) <= 640, "frame \(firstFrame.index) vs sample \(first.position)")
            let timings = try #require(end["timings"] as? [String: Any])
            for stage in ["first_clause", "first_audio", "first_frame", "total"] {
                #expect((timings[stage] as? Double ?? -1) >= 0, "\(stage) missing in \(timings)")
            }
            // The voice is really there: not silence.
            let peak = audio.flatMap(\.samples).map { abs(Int($0)) }.max() ?? 0
            #expect(peak > 1000)
        }
    }

    @Test("Voice turn: a LibriVox clip streamed in real time → partials, a final with WER ≤ 10 %, then a reply")
    func voiceTurn() async throws {
        try await withServer { port, harness, avatar in
            let probe = try await SessionRecorder.open(port: port, token: harness.owner, avatar: avatar)
            defer { Task { await probe.close() } }
            try await probe.wait("ready", timeout: 20) { !$0.messages("ready").isEmpty }
            let (samples, reference) = try await Self.clip(0)
            try await probe.speak(samples + [Float](repeating: 0, count: 16000))
            try await probe.wait("final transcript", timeout: 30) { !$0.messages("transcript").filter { $0["kind"] as? String == "final" }.isEmpty }
            let final = try #require(probe.messages("transcript").first { $0["kind"] as? String == "final" })
            let wer = WordErrorRate.of(reference: reference, hypothesis: final["text"] as? String ?? "")
            print("session voice turn WER \(String(format: "%.3f", wer)): \(final["text"] ?? "")")
            #expect(wer <= 0.10)
            #expect(probe.messages("state").contains { $0["state"] as? String == "listening" })
            try await probe.wait("turn 1 ends", timeout: 120) { $0.turnEnd(1) != nil }
            let timings = probe.turnEnd(1)?["timings"] as? [String: Any] ?? [:]
            print("voice turn timings: \(timings)")
            #expect((timings["asr_final"] as? Double ?? -1) >= 0)
            #expect(!probe.audio.filter { $0.turn == 1 }.isEmpty)
        }
    }

    @Test("Barge-in: speaking over the avatar cuts the turn; the memory keeps only what was heard")
    func bargeIn() async throws {
        try await withServer { port, harness, avatar in
            let probe = try await SessionRecorder.open(port: port, token: harness.owner, avatar: avatar)
            defer { Task { await probe.close() } }
            try await probe.wait("ready", timeout: 20) { !$0.messages("ready").isEmpty }
            let question = "Please tell me a long story about a sailor, the sea and a lighthouse."
            try await probe.client.send(["type": "text", "text": question])
            try await probe.wait("the avatar speaks", timeout: 120) { $0.frames.contains(where: \.speaking) || $0.turnEnd(1) != nil }
            try #require(probe.turnEnd(1) == nil, "the reply ended before it could be interrupted")
            try await Task.sleep(for: .milliseconds(600))
            let (samples, _) = try await Self.clip(1)
            let started = ContinuousClock.now
            let speaking = Task { try await probe.speak(samples + [Float](repeating: 0, count: 16000)) }
            try await probe.wait("interrupted", timeout: 10) { !$0.messages("interrupted").isEmpty }
            let latency = ContinuousClock.now - started
            print("barge-in: interrupted \(latency) after the person started speaking")
            let interrupted = try #require(probe.messages("interrupted").first)
            #expect(interrupted["turn"] as? Int == 1)
            try await probe.wait("turn 1 ends", timeout: 10) { $0.turnEnd(1) != nil }
            #expect(probe.turnEnd(1)?["reason"] as? String == "interrupted")
            let heard = interrupted["heard"] as? String ?? "?"
            try await speaking.value
            try await probe.wait("the spoken question's transcript", timeout: 60) { !$0.messages("transcript").filter { $0["kind"] as? String == "final" }.isEmpty }
            // Nothing of turn 1 arrives after its interruption.
            let cut = probe.events.firstIndex { if case .message(let text, _) = $0 { return text.contains("\"interrupted\"") } else { return false } } ?? 0
            let lateAudio = probe.events[cut...].contains { if case .audio(1, _, _, _) = $0 { return true } else { return false } }
            #expect(!lateAudio, "audio of the interrupted turn arrived after `interrupted`")
            // The memory: the question, then only what was heard (nothing when nothing was), then the next question.
            let runtime = try await EngineFixture.shared.runtime()
            let turns = try runtime.database.turns(avatarId: avatar)
            let index = try #require(turns.firstIndex { $0.role == "user" && $0.text == question })
            let next = turns.indices.contains(index + 1) ? turns[index + 1] : nil
            if heard.isEmpty {
                #expect(next?.role != "assistant", "nothing was heard, nothing is remembered: \(String(describing: next))")
            } else {
                #expect(next?.role == "assistant" && next?.text == heard, "remembered \(String(describing: next?.text)) but heard \(heard)")
            }
            // The stop button ends the spoken question's turn the same way.
            try await probe.wait("turn 2 starts", timeout: 60) { $0.messages("state").contains { $0["turn"] as? Int == 2 } }
            try await probe.client.send(["type": "interrupt"])
            try await probe.wait("turn 2 ends", timeout: 30) { $0.turnEnd(2) != nil }
            #expect(probe.turnEnd(2)?["reason"] as? String == "interrupted")
        }
    }

    @Test("Bad input gets an error and the socket stays usable; bad token 4401, unknown avatar 4404, no hello 4400")
    func badInput() async throws {
        try await withServer { port, harness, avatar in
            let probe = try await SessionRecorder.open(port: port, token: harness.owner, avatar: avatar)
            defer { Task { await probe.close() } }
            try await probe.wait("ready", timeout: 20) { !$0.messages("ready").isEmpty }
            try await probe.client.sendText("{not json")
            try await probe.client.send(["type": "dance"])
            try await probe.client.send(["type": "text", "text": "   "])
            try await probe.client.sendBinary([1, 1, 0])
            try await probe.client.sendBinary([2, 1, 0, 0] + [UInt8](repeating: 0, count: 12) + [0, 0])
            try await probe.client.sendBinary([1, 1, 0, 0] + [UInt8](repeating: 0, count: 12) + [0, 0, 0])
            try await probe.client.send(["type": "ping", "t": 42])
            try await probe.wait("pong", timeout: 10) { !$0.messages("pong").isEmpty }
            let codes = probe.messages("error").compactMap { $0["code"] as? String }
            #expect(codes == ["bad-json", "unknown-type", "bad-field", "bad-frame", "bad-frame", "bad-frame"], "\(codes)")
            #expect(probe.messages("error").allSatisfy { ($0["message"] as? String ?? "").count > 5 })
            #expect(probe.messages("pong").first?["t"] as? Double == 42)
            #expect(probe.closed == nil)

            let badToken = try await SessionRecorder.open(port: port, token: "avt_00000000_" + String(repeating: "0", count: 64), avatar: avatar)
            try await badToken.wait("closed", timeout: 10) { $0.closed != nil }
            #expect(badToken.closed?.code == 4401, "\(String(describing: badToken.closed))")
            let unknown = try await SessionRecorder.open(port: port, token: harness.owner, avatar: "no-such-avatar")
            try await unknown.wait("closed", timeout: 10) { $0.closed != nil }
            #expect(unknown.closed?.code == 4404)
            let other = try await SessionRecorder.open(port: port, token: harness.other, avatar: avatar)
            try await other.wait("closed", timeout: 10) { $0.closed != nil }
            #expect(other.closed?.code == 4404, "another account's avatar is not found")
            let noHello = SessionRecorder(try await SessionClient.connect(port: port))
            try await noHello.client.send(["type": "text", "text": "hi"])
            try await noHello.wait("closed", timeout: 10) { $0.closed != nil }
            #expect(noHello.closed?.code == 4400)
        }
    }

    @Test("Two sessions on one avatar do not mix; a reconnect within 60 s resumes the turn numbering; idle frames keep coming")
    func concurrentAndResume() async throws {
        try await withServer { port, harness, avatar in
            let first = try await SessionRecorder.open(port: port, token: harness.owner, avatar: avatar)
            let second = try await SessionRecorder.open(port: port, token: harness.owner, avatar: avatar)
            try await first.wait("ready", timeout: 20) { !$0.messages("ready").isEmpty }
            try await second.wait("ready", timeout: 20) { !$0.messages("ready").isEmpty }
            #expect(first.messages("ready").first?["session"] as? String != second.messages("ready").first?["session"] as? String)
            try await first.client.send(["type": "text", "text": "Hi there, how are you today?"])
            try await first.wait("turn 1 ends", timeout: 120) { $0.turnEnd(1) != nil }
            #expect(!first.audio.isEmpty)
            #expect(second.audio.isEmpty && second.messages("reply").isEmpty, "the second tab got the first one's reply")
            #expect(second.frames.allSatisfy { !$0.speaking })
            // The idle avatar keeps moving: frames at ~25 fps, not one repeated picture.
            let idleFrames = second.frames
            print("idle session: \(idleFrames.count) frames, \(Set(idleFrames.map(\.jpeg)).count) distinct")
            #expect(Set(idleFrames.map(\.jpeg)).count > 1)
            await second.close()

            let session = try #require(first.messages("ready").first?["session"] as? String)
            await first.close()
            try await Task.sleep(for: .milliseconds(300))
            let again = try await SessionRecorder.open(port: port, token: harness.owner, avatar: avatar, resume: session)
            defer { Task { await again.close() } }
            try await again.wait("ready", timeout: 20) { !$0.messages("ready").isEmpty }
            #expect(again.messages("ready").first?["resumed"] as? Bool == true)
            #expect(again.messages("ready").first?["session"] as? String == session)
            try await again.client.send(["type": "text", "text": "Thank you!"])
            try await again.wait("turn 2 ends", timeout: 120) { $0.turnEnd(2) != nil }
        }
    }

    @Test("Engine host killed mid-turn: a retryable error and an in-character line; the next turn works after the restart")
    func engineKilledMidTurn() async throws {
        try await withServer { port, harness, avatar in
            let runtime = try await EngineFixture.shared.runtime()
            let supervisor = try #require(runtime.supervisor)
            let probe = try await SessionRecorder.open(port: port, token: harness.owner, avatar: avatar)
            defer { Task { await probe.close() } }
            try await probe.wait("ready", timeout: 20) { !$0.messages("ready").isEmpty }
            try await probe.client.send(["type": "text", "text": "Tell me a long story about a lighthouse keeper and his cat."])
            try await probe.wait("first clause", timeout: 120) { !$0.messages("reply").isEmpty }
            let host = try #require(await supervisor.statuses().first { $0.name == "engine-host" })
            let pid = try #require(host.details["pid"].flatMap { Int32($0) })
            #expect(kill(pid, SIGKILL) == 0)
            try await probe.wait("turn 1 ends", timeout: 120) { $0.turnEnd(1) != nil }
            let error = try #require(probe.messages("error").first, "no error after the engine died: \(probe.messages.map { $0["type"] ?? "?" })")
            #expect(error["code"] as? String == "engine-failed")
            #expect(error["retryable"] as? Bool == true)
            let said = probe.messages("reply").compactMap { $0["delta"] as? String }
            #expect(said.contains { $0.contains("Sorry, I lost my thought.") }, "\(said)")
            #expect(probe.closed == nil, "the session survives")
            // Once the supervisor has the engine host back, the next turn has a voice again.
            let deadline = ContinuousClock.now + .seconds(120)
            while ContinuousClock.now < deadline, await supervisor.statuses().contains(where: { $0.name == "engine-host" && $0.state != .ready }) {
                try await Task.sleep(for: .milliseconds(200))
            }
            try await probe.client.send(["type": "text", "text": "Are you back?"])
            try await probe.wait("turn 2 ends", timeout: 120) { $0.turnEnd(2) != nil }
            #expect(probe.turnEnd(2)?["reason"] as? String == "completed")
            #expect(!probe.audio.filter { $0.turn == 2 }.isEmpty, "no voice after the restart")
        }
    }

    @Test("Idle for 10 s: frames keep coming (no gap of 2 s) and the face never freezes")
    func idleFrames() async throws {
        try await withServer { port, harness, avatar in
            let probe = try await SessionRecorder.open(port: port, token: harness.owner, avatar: avatar)
            defer { Task { await probe.close() } }
            try await probe.wait("ready", timeout: 20) { !$0.messages("ready").isEmpty }
            try await probe.wait("first frame", timeout: 10) { !$0.frames.isEmpty }
            let start = probe.events.count
            try await Task.sleep(for: .seconds(10))
            let arrivals = probe.events.dropFirst(start).compactMap { event -> (ContinuousClock.Instant, [UInt8])? in
                if case .frame(_, _, _, let jpeg, let at) = event { return (at, jpeg) } else { return nil }
            }
            let gaps = zip(arrivals.dropFirst(), arrivals).map { $0.0 - $1.0 }
            let longest = gaps.max() ?? .seconds(10)
            // The rate is a benchmark figure (`avatar bench session`); here: the stream never stalls.
            print("idle: \(arrivals.count) frames in 10 s, longest gap \(longest)")
            #expect(longest < .seconds(2), "the face stalled for \(longest)")
            #expect(arrivals.count >= 100)
            // Never frozen: every second has a picture that differs from the one a second before.
            for second in stride(from: 25, to: arrivals.count, by: 25) {
                #expect(arrivals[second].1 != arrivals[second - 25].1, "frame \(second) equals the one a second earlier")
            }
        }
    }
}

/// The samples of a WAV/any audio file at 16 kHz mono (through ffmpeg).
enum AudioSamplesLoader {
    static func load(_ path: String) async throws -> [Float] {
        let result = await ChildProcess.output(of: ["ffmpeg", "-v", "error", "-i", path, "-f", "s16le", "-ac", "1", "-ar", "16000", "-"])
        guard result.status == 0 else { throw TestFailure("ffmpeg could not read \(path)") }
        return result.output.withUnsafeBytes { raw in raw.bindMemory(to: Int16.self).map { Float($0) / 32768 } }
    }
}
