import AvatarAnimation
import AvatarCore
import AvatarEngines
import AvatarSpeech
import Foundation
import Testing

/// One contract per engine kind, which the real engine host and the fakes both pass: what orchestration
/// code may rely on, whichever engine is behind the protocol.
@Suite("Engine contracts (real host and fakes)", .serialized)
struct EngineContractTests {
    enum Implementation: String, CaseIterable, Sendable { case engineHost, fake }

    func transcriber(_ kind: Implementation) async throws -> any Transcriber {
        switch kind {
        case .engineHost: try #require(try await EngineFixture.shared.runtime().engineHost)
        case .fake: FakeTranscriber()
        }
    }

    func detector(_ kind: Implementation) async throws -> any VoiceActivityDetector {
        switch kind {
        case .engineHost: try #require(try await EngineFixture.shared.runtime().engineHost)
        case .fake: FakeVoiceActivityDetector()
        }
    }

    func synthesizer(_ kind: Implementation) async throws -> any SpeechSynthesisEngine {
        switch kind {
        case .engineHost: try #require(try await EngineFixture.shared.runtime().engineHost)
        case .fake: FakeSynthesisEngine()
        }
    }

    static func speech() async throws -> [Float] {
        try await AudioSamples.load(try TestData.librivoxClips()[0].path).samples
    }

    @Test("Transcriber: speech → text in a candidate language; silence → no words; non-audio → rejected 4xx", arguments: Implementation.allCases)
    func transcriber(kind: Implementation) async throws {
        let engine = try await transcriber(kind)
        let spoken = try await engine.transcribe(audio: PCM.wav(try await Self.speech()[...]), filename: "a.wav", language: nil,
                                                 languageCandidates: ["en", "ru"], denoise: false, noise: nil, wordTimestamps: false)
        #expect(!spoken.text.trimmingCharacters(in: .whitespaces).isEmpty)
        #expect(["en", "ru"].contains(spoken.language))
        #expect(spoken.duration > 1)
        let fixed = try await engine.transcribe(audio: PCM.wav([Float](repeating: 0, count: 16000)[...]), filename: "a.wav", language: "ru",
                                                languageCandidates: [], denoise: false, noise: nil, wordTimestamps: false)
        #expect(fixed.language == "ru" && fixed.languageProbability == 1)
        #expect(fixed.text.split(separator: " ").count <= 1, "silence heard as '\(fixed.text)'")
        await #expect {
            _ = try await engine.transcribe(audio: Data("not audio at all".utf8), filename: "a.wav", language: nil, languageCandidates: [],
                                            denoise: false, noise: nil, wordTimestamps: false)
        } throws: { error in
            guard case .rejected(_, let status, _, _)? = error as? EngineError else { return false }
            return (400..<500).contains(status)
        }
    }

    @Test("Voice activity: 32 ms frames covering the audio; speech frames in speech, none in silence", arguments: Implementation.allCases)
    func voiceActivity(kind: Implementation) async throws {
        let engine = try await detector(kind)
        let speech = try await Self.speech()
        let heard = try await engine.voiceActivity(audio: PCM.wav(speech[...]), filename: "a.wav")
        #expect(abs(heard.frameSeconds - 0.032) < 1e-9)
        #expect(abs(Double(heard.probabilities.count) * heard.frameSeconds - Double(speech.count) / 16000) < 0.1)
        #expect(heard.probabilities.filter { $0 >= 0.5 }.count > heard.probabilities.count / 3)
        let silence = try await engine.voiceActivity(audio: PCM.wav([Float](repeating: 0, count: 16000)[...]), filename: "a.wav")
        #expect(silence.probabilities.allSatisfy { $0 < 0.5 })
    }

    @Test("Speech synthesis: voices; audio with word timings inside its duration; an unknown voice → rejected 4xx", arguments: Implementation.allCases)
    func synthesis(kind: Implementation) async throws {
        let engine = try await synthesizer(kind)
        let voices = try await engine.voices()
        let voice = try #require(voices.first { $0.language == "en" })
        let speech = try await engine.timedSpeech(text: "Good morning to you.", voice: voice.id, speed: 1, emotion: "neutral", intensity: 0)
        #expect(speech.duration > 0.5)
        #expect(speech.audio.count > 44 + 8000)
        let timings = try #require(speech.timings)
        #expect(timings.words.count == 4)
        #expect(timings.words.allSatisfy { $0.start <= $0.end && $0.end <= speech.duration + 0.01 })
        await #expect {
            _ = try await engine.timedSpeech(text: "Hello.", voice: "no-such-voice", speed: 1, emotion: "neutral", intensity: 0)
        } throws: { error in
            guard case .rejected(_, let status, _, _)? = error as? EngineError else { return false }
            return (400..<500).contains(status)
        }
    }
}

/// The streaming recognizer composed with fakes: voice activity is not held up by transcription, and an
/// engine failure ends the session with that error.
@Suite("Speech recognizer orchestration (fakes)")
struct RecognizerOrchestrationTests {
    /// Two "words" of tone between silences, at 16 kHz.
    static func utterance() -> [Float] {
        let tone = (0..<16000).map { 0.3 * Float(sin(2 * Double.pi * 200 * Double($0) / 16000)) }
        return [Float](repeating: 0, count: 8000) + tone + [Float](repeating: 0, count: 16000)
    }

    @Test("A slow transcriber does not hold up audio intake: speechStarted and speechStopped come while the final is still being transcribed")
    func slowTranscriberDoesNotBlockVAD() async throws {
        let transcriber = FakeTranscriber(text: "slow words", knobs: FakeKnobs(delay: .seconds(2)))
        let recognizer = try StreamingSpeechRecognizer(transcriber: transcriber, detector: FakeVoiceActivityDetector(), cache: nil)
        let collector = Task { var all: [(TranscriptEvent, ContinuousClock.Instant)] = []; for try await e in recognizer.events { all.append((e, .now)) }; return all }
        let audio = Self.utterance()
        let started = ContinuousClock.now
        for start in stride(from: 0, to: audio.count, by: 320) {
            try await recognizer.push(Array(audio[start..<min(start + 320, audio.count)]))
        }
        let pushed = ContinuousClock.now - started
        try await recognizer.finish()
        let events = try await collector.value
        #expect(pushed < .seconds(1.5), "pushing 2.5 s of audio took \(pushed): it waited for Whisper passes")
        let kinds = events.map(\.0.kind)
        #expect(kinds.first == .speechStarted)
        let stopped = try #require(events.first { $0.0.kind == .speechStopped })
        let final = try #require(events.first { $0.0.kind == .final })
        #expect(final.0.text == "slow words")
        #expect(final.1 - stopped.1 > .seconds(1), "the final came with speechStopped: VAD events waited for it")
    }

    @Test("A transcriber failure ends the events with that error and is thrown by the next call")
    func failure() async throws {
        let transcriber = FakeTranscriber(knobs: FakeKnobs(failures: 100, error: .timeout(engine: "fake-asr", seconds: 1)))
        var options = RecognizerOptions()
        options.partialInterval = 0
        let recognizer = try StreamingSpeechRecognizer(transcriber: transcriber, detector: FakeVoiceActivityDetector(), cache: nil, options: options)
        let collector = Task { () -> EngineError? in
            do { for try await _ in recognizer.events {} } catch { return error as? EngineError }
            return nil
        }
        let audio = Self.utterance()
        var thrown: (any Error)?
        do {
            for start in stride(from: 0, to: audio.count, by: 320) {
                try await recognizer.push(Array(audio[start..<min(start + 320, audio.count)]))
            }
            try await recognizer.finish()
        } catch {
            thrown = error
        }
        #expect(await collector.value == .timeout(engine: "fake-asr", seconds: 1))
        #expect((thrown as? EngineError) == .timeout(engine: "fake-asr", seconds: 1))
    }

    @Test("A speculative final that is thrown away (speech resumed) does not lock the language")
    func discardedSpeculationDoesNotLock() async throws {
        // The speculative final (call 1) hears "ru"; speech resumes, so it is discarded; the real final
        // (call 2) hears "en". Locking from call 1 would have sent the final as Russian.
        let transcriber = FakeTranscriber(text: "hello again", detectedByCall: ["ru", "en"])
        var options = RecognizerOptions()
        options.partialInterval = 0
        let recognizer = try StreamingSpeechRecognizer(transcriber: transcriber, detector: FakeVoiceActivityDetector(), cache: nil, options: options)
        let tone = (0..<19200).map { 0.3 * Float(sin(2 * Double.pi * 200 * Double($0) / 16000)) }
        let audio = [Float](repeating: 0, count: 4800) + tone + [Float](repeating: 0, count: 4800) + tone + [Float](repeating: 0, count: 16000)
        let events = try await recognizer.transcribe(samples: audio, chunkSeconds: 0.02)
        let finals = events.filter { $0.kind == .final }
        #expect(finals.count == 1)
        #expect(finals.first?.language == "en", "final in \(finals.first?.language ?? "?")")
        #expect(await transcriber.knobs.calls == 2, "one discarded speculative final and the real one")
    }
}
