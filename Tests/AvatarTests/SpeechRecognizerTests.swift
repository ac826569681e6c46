import AvatarAnimation
import AvatarCache
import AvatarCore
import AvatarEngines
import AvatarSpeech
import Foundation
import Logging
import Testing

/// The streaming recognizer against the real engine host (Silero VAD + Whisper base).
@Suite("SpeechRecognizer", .serialized)
struct SpeechRecognizerTests {
    static let chunk = 1600  // 0.1 s

    /// Streams `samples` then `silence` seconds of zeros in 0.1 s chunks; returns the events seen before
    /// `finish`, whether an utterance was still open then, and the events `finish` added.
    static func stream(_ recognizer: StreamingSpeechRecognizer, _ samples: [Float], silence: Double) async throws -> (before: [TranscriptEvent], open: Bool, after: [TranscriptEvent]) {
        let collector = Task { var all: [TranscriptEvent] = []; for try await e in recognizer.events { all.append(e) }; return all }
        let audio = samples + [Float](repeating: 0, count: Int(silence * 16000))
        for start in stride(from: 0, to: audio.count, by: chunk) {
            try await recognizer.push(Array(audio[start..<min(start + chunk, audio.count)]))
        }
        let open = await recognizer.utteranceOpen
        try await recognizer.finish()
        let all = try await collector.value
        guard open, let last = all.lastIndex(where: { $0.kind == .final }) else { return (all, open, []) }
        // finish() closed the open utterance: its final is the last one, its speechStopped the last one.
        let stopped = all.lastIndex { $0.kind == .speechStopped }
        let before = all.indices.filter { $0 != last && $0 != stopped }.map { all[$0] }
        return (before, open, [all[last]])
    }

    static func cache() -> CacheManager { CacheManager(logger: Logger(label: "test-speech-cache")) }

    @Test("LibriVox clips streamed in chunks: partials, end of utterance in silence, WER ≤ 5 %")
    func librivox() async throws {
        let host = try #require(try await EngineFixture.shared.runtime().engineHost)
        var references: [String] = []
        var hypotheses: [String] = []
        for clip in try TestData.librivoxClips() {
            let audio = try await AudioSamples.load(clip.path)
            let recognizer = try StreamingSpeechRecognizer(host: host, cache: nil)
            let run = try await Self.stream(recognizer, audio.samples, silence: 1.0)
            #expect(!run.open, "utterance still open after 1 s of silence: \(clip.path)")
            #expect(run.after.isEmpty)
            let finals = run.before.filter { $0.kind == .final }
            #expect(!finals.isEmpty)
            #expect(run.before.contains { $0.kind == .partial }, "no partial while speaking: \(clip.path)")
            // Partials come before the final they lead to.
            if let firstFinal = run.before.firstIndex(where: { $0.kind == .final }) {
                #expect(run.before[..<firstFinal].contains { $0.kind == .partial })
            }
            #expect(finals.allSatisfy { $0.language == "en" })
            references.append(clip.text)
            hypotheses.append(finals.map(\.text).joined(separator: " "))
        }
        let wer = wordErrorRate(reference: references.joined(separator: " "), hypothesis: hypotheses.joined(separator: " "))
        print("streamed LibriVox WER: \(String(format: "%.3f", wer)) over \(references.count) clips")
        #expect(wer <= 0.05, "WER \(wer): \(hypotheses)")
    }

    @Test("Voice activity comes from the VAD hop: speechStarted ≤ 150 ms of audio after the onset, before any transcript; speechStopped before the final")
    func voiceActivityEvents() async throws {
        let host = try #require(try await EngineFixture.shared.runtime().engineHost)
        for clip in try TestData.librivoxClips().prefix(3) {
            let audio = try await AudioSamples.load(clip.path)
            let recognizer = try StreamingSpeechRecognizer(host: host, cache: nil)
            // 20 ms chunks, as a browser's microphone sends them, after 1 s of silence.
            let samples = [Float](repeating: 0, count: 16000) + audio.samples + [Float](repeating: 0, count: 16000)
            let collector = Task { var all: [TranscriptEvent] = []; for try await e in recognizer.events { all.append(e) }; return all }
            for start in stride(from: 0, to: samples.count, by: 320) {
                try await recognizer.push(Array(samples[start..<min(start + 320, samples.count)]))
            }
            try await recognizer.finish()
            let events = try await collector.value
            let started = try #require(events.first, "no events for \(clip.path)")
            #expect(started.kind == .speechStarted, "first event \(started.kind)")
            #expect(started.text.isEmpty)
            #expect(started.speechStart >= 0.9, "onset \(started.speechStart) s inside the leading silence")
            let delay = started.heardUntil - started.speechStart
            print(String(format: "speechStarted %.3f s of audio after the onset (%@)", delay, (clip.path as NSString).lastPathComponent))
            #expect(delay <= 0.15, "speechStarted \(delay) s after the onset")
            let stopped = try #require(events.firstIndex { $0.kind == .speechStopped })
            let final = try #require(events.firstIndex { $0.kind == .final })
            #expect(stopped < final)
            #expect(events[final].speechStart == started.speechStart)
            #expect(events.filter { $0.kind == .speechStarted }.count == events.filter { $0.kind == .final }.count)
        }
    }

    @Test("A Festival Russian sentence: auto-detected as ru, the language locks, WER ≤ 15 %")
    func russianLocks() async throws {
        let host = try #require(try await EngineFixture.shared.runtime().engineHost)
        let text = "Сегодня хорошая погода, и мы пойдём гулять в парк."
        let wav = try await host.speech(text: text, voice: "msu_ru_nsh")
        let path = temporaryDirectory("speech-ru") + "/ru.wav"
        try wav.write(to: URL(fileURLWithPath: path))
        let audio = try await AudioSamples.load(path)
        let recognizer = try StreamingSpeechRecognizer(host: host, cache: nil)
        let run = try await Self.stream(recognizer, audio.samples, silence: 0.8)
        let finals = (run.before + run.after).filter { $0.kind == .final }
        let final = try #require(finals.last)
        #expect(final.language == "ru")
        #expect(final.languageLocked)
        let wer = wordErrorRate(reference: text, hypothesis: finals.map(\.text).joined(separator: " "))
        print("Festival ru WER: \(String(format: "%.3f", wer)) — \(final.text)")
        #expect(wer <= 0.15)
    }

    @Test("The same utterance twice: the second final comes from the cache, same text")
    func cacheHit() async throws {
        let host = try #require(try await EngineFixture.shared.runtime().engineHost)
        let clip = try #require(try TestData.librivoxClips().first)
        let audio = try await AudioSamples.load(clip.path)
        let cache = Self.cache()
        var options = RecognizerOptions()
        options.partialInterval = 0
        options.language = "en"
        let first = try await Self.stream(try StreamingSpeechRecognizer(host: host, cache: cache, options: options), audio.samples, silence: 1.0)
        let second = try await Self.stream(try StreamingSpeechRecognizer(host: host, cache: cache, options: options), audio.samples, silence: 1.0)
        let a = first.before.filter { $0.kind == .final }
        let b = second.before.filter { $0.kind == .final }
        #expect(!a.isEmpty && a.count == b.count)
        #expect(a.allSatisfy { !$0.cached })
        #expect(b.allSatisfy { $0.cached })
        #expect(a.map(\.text) == b.map(\.text))
        #expect(await cache.currentMetrics().hits == b.count)
    }

    @Test("Speech longer than maxUtterance is cut into several finals that keep the words")
    func longSpeechIsCut() async throws {
        let host = try #require(try await EngineFixture.shared.runtime().engineHost)
        var longest: (clip: (path: String, text: String), audio: AudioSamples)?
        for clip in try TestData.librivoxClips() {
            let audio = try await AudioSamples.load(clip.path)
            if audio.duration > longest?.audio.duration ?? 0 { longest = (clip, audio) }
        }
        let (clip, audio) = try #require(longest)
        var options = RecognizerOptions()
        options.maxUtterance = 3
        // A long silence setting, so that only the length limit (not a pause) can split the clip.
        options.endOfUtteranceSilence = 2
        options.partialInterval = 0
        options.language = "en"
        let run = try await Self.stream(try StreamingSpeechRecognizer(host: host, cache: nil, options: options), audio.samples, silence: 2.5)
        let finals = (run.before + run.after).filter { $0.kind == .final }
        #expect(finals.count >= Int(audio.duration / 3), "\(finals.count) finals for \(audio.duration) s")
        // Cutting mid-word costs a little accuracy, not the transcript.
        let wer = wordErrorRate(reference: clip.text, hypothesis: finals.map(\.text).joined(separator: " "))
        #expect(wer <= 0.3, "WER \(wer): \(finals.map(\.text))")
    }

    @Test("/v1/audio/vad: speech frames high, silence low, empty and junk uploads are clear errors")
    func vadEndpoint() async throws {
        let host = try #require(try await EngineFixture.shared.runtime().engineHost)
        let clip = try #require(try TestData.librivoxClips().first)
        let speech = try await host.voiceActivity(audio: try Data(contentsOf: URL(fileURLWithPath: clip.path)))
        #expect(abs(speech.frameSeconds - 0.032) < 1e-9)
        #expect(abs(Double(speech.probabilities.count) * speech.frameSeconds - speech.duration) < 0.04)
        #expect(Double(speech.probabilities.filter { $0 >= 0.5 }.count) > 0.5 * Double(speech.probabilities.count))
        let silence = try await host.voiceActivity(audio: PCM.wav([Float](repeating: 0, count: 16000)[...]))
        #expect(silence.probabilities.count == 31)
        #expect(silence.probabilities.allSatisfy { $0 < 0.2 })
        await #expect(throws: EngineError.self) { _ = try await host.voiceActivity(audio: Data()) }
        await #expect(throws: EngineError.self) { _ = try await host.voiceActivity(audio: Data("not audio at all".utf8)) }
    }

    @Test("transcribeFile: stereo WebM/Opus (48 kHz), Ogg/Vorbis and MP3 (44.1 kHz) are converted with ffmpeg and recognised")
    func commonFormats() async throws {
        let host = try #require(try await EngineFixture.shared.runtime().engineHost)
        let clip = try #require(try TestData.librivoxClips().first)
        let folder = temporaryDirectory("speech-formats")
        for (name, codec, rate) in [("clip.webm", ["-c:a", "libopus"], "48000"), ("clip.ogg", ["-c:a", "libvorbis"], "44100"), ("clip.mp3", ["-c:a", "libmp3lame"], "44100")] {
            let ffmpeg = Process()
            ffmpeg.executableURL = URL(fileURLWithPath: "/usr/bin/ffmpeg")
            ffmpeg.arguments = ["-v", "error", "-y", "-i", clip.path, "-ac", "2", "-ar", rate] + codec + [folder + "/" + name]
            try ffmpeg.run()
            ffmpeg.waitUntilExit()
            try #require(ffmpeg.terminationStatus == 0)
            let recognizer = try StreamingSpeechRecognizer(host: host, cache: nil)
            let finals = try await recognizer.transcribeFile(folder + "/" + name).filter { $0.kind == .final }
            let wer = wordErrorRate(reference: clip.text, hypothesis: finals.map(\.text).joined(separator: " "))
            #expect(wer <= 0.1, "\(name): WER \(wer) \(finals.map(\.text))")
        }
    }

    @Test("A pause shorter than the end-of-utterance silence (0.4 of 0.8 s) starts a speculative final that is dropped: one final with both parts")
    func speculativeFinalDropped() async throws {
        let host = try #require(try await EngineFixture.shared.runtime().engineHost)
        let clips = try TestData.librivoxClips()
        let first = try await AudioSamples.load(clips[1].path).samples.prefix(Int(2.3 * 16000))
        // From 0.3 s: the clip's own leading silence would lengthen the pause.
        let second = try await AudioSamples.load(clips[2].path).samples[Int(0.3 * 16000)..<Int(2.3 * 16000)]
        var options = RecognizerOptions()
        options.language = "en"
        options.endOfUtteranceSilence = 0.8
        let recognizer = try StreamingSpeechRecognizer(host: host, cache: nil, options: options)
        // 0.4 s of silence: past the 0.2 s at which the final is speculatively started, short of the 0.8 s that ends the utterance.
        let audio = Array(first) + [Float](repeating: 0, count: Int(0.4 * 16000)) + Array(second)
        let run = try await Self.stream(recognizer, audio, silence: 1.0)
        let finals = (run.before + run.after).filter { $0.kind == .final }
        #expect(finals.count == 1, "finals: \(finals.map(\.text))")
        let words = Set(WordErrorRate.words(finals.map(\.text).joined(separator: " ")))
        let firstWords = WordErrorRate.words(clips[1].text).prefix(3)
        #expect(firstWords.allSatisfy { words.contains($0) }, "\(finals.map(\.text)) lacks the first part")
        #expect((finals.first?.speechEnd ?? 0) > 2.3 + 0.4 + 1.0, "the final ended at \(finals.first?.speechEnd ?? 0) s: before the second part")
    }

    @Test("Silence alone opens no utterance and yields nothing")
    func silenceOnly() async throws {
        let host = try #require(try await EngineFixture.shared.runtime().engineHost)
        let recognizer = try StreamingSpeechRecognizer(host: host, cache: nil)
        let run = try await Self.stream(recognizer, [], silence: 2.0)
        #expect(!run.open)
        #expect(run.before.isEmpty && run.after.isEmpty)
    }

    @Test("A set language is used and reported as locked from the start")
    func fixedLanguage() async throws {
        let host = try #require(try await EngineFixture.shared.runtime().engineHost)
        let clip = try #require(try TestData.librivoxClips().first)
        let audio = try await AudioSamples.load(clip.path)
        let recognizer = try StreamingSpeechRecognizer(host: host, cache: nil)
        await recognizer.setLanguage("en")
        let run = try await Self.stream(recognizer, audio.samples, silence: 1.0)
        #expect(!run.before.isEmpty)
        #expect(run.before.allSatisfy { $0.languageLocked && $0.language == "en" })
    }

    @Test("Real machine noise at 5 dB SNR: noise reduction (profile = the session's pauses) is applied to every final and does not make the WER worse")
    func noiseReduction() async throws {
        let host = try #require(try await EngineFixture.shared.runtime().engineHost)
        try #require(FileManager.default.fileExists(atPath: TestData.machineNoise), "install colobot-common-sounds: avatar setup --with-test-tools")
        let noise = try await AudioSamples.load(TestData.machineNoise).samples
        let clips = try TestData.librivoxClips()
        var audio: [[Float]] = []
        for clip in clips { audio.append(try await AudioSamples.load(clip.path).samples) }
        // The same mixture as `avatar bench asr`: 5 starting points in the noise loop.
        let offsets = 5
        var heard: [Bool: [String]] = [false: [], true: []]
        for index in 0..<offsets {
            let session = NoisySession(clips: audio, noise: noise, snr: 5, offset: index * noise.count / offsets)
            for denoise in [false, true] {
                let finals = try await session.finals(host: host, denoise: denoise)
                #expect(finals.count >= clips.count, "\(finals.count) finals for \(clips.count) clips")
                if denoise {
                    // 1.5 s of noise alone before the first clip: every final is cleaned with the session's own profile.
                    #expect(finals.allSatisfy { $0.noiseReduction?.profile == "given" && $0.noiseReduction?.applied == true }, "\(finals.map(\.noiseReduction))")
                } else {
                    #expect(finals.allSatisfy { $0.noiseReduction == nil })
                }
                heard[denoise]!.append(finals.map(\.text).joined(separator: " "))
            }
        }
        let reference = Array(repeating: clips.map(\.text).joined(separator: " "), count: offsets).joined(separator: " ")
        let off = wordErrorRate(reference: reference, hypothesis: heard[false]!.joined(separator: " "))
        let on = wordErrorRate(reference: reference, hypothesis: heard[true]!.joined(separator: " "))
        print(String(format: "WER at 5 dB SNR (machine noise, streamed): noise reduction off %.3f, on %.3f", off, on))
        // Whether it helps is a measurement (`avatar bench asr`: 14.1 % → 13.5 %), a few words in 355; the
        // invariant a test can hold is that it never costs more than 2 points (7 words).
        #expect(on <= off + 0.02, "noise reduction on \(on) is worse than off \(off)")

        // Whole-clip requests: the profile is the noise sent along, else the clip's own pauses; a bad profile is a clear error.
        let session = NoisySession(clips: [audio[1]], noise: noise, snr: 5)
        let clip = PCM.wav(session.samples[...])
        let background = PCM.wav(session.samples[0..<session.clipRanges[0].lowerBound])
        #expect(try await host.transcribe(audio: clip, language: "en", denoise: true, noise: background).noiseReduction?.profile == "given")
        #expect(try await host.transcribe(audio: clip, language: "en", denoise: true).noiseReduction?.profile == "clip-pauses")
        #expect(try await host.transcribe(audio: clip, language: "en").noiseReduction == nil)
        await #expect { try await host.transcribe(audio: clip, language: "en", denoise: true, noise: Data("not audio".utf8)) } throws: { error in
            guard case .rejected(_, 400, "unsupported_media", let message) = error as? EngineError else { return false }
            return message.contains("noise")
        }
    }

    @Test("Unreadable files, bad options and pushes after finish are clear errors")
    func errors() async throws {
        let host = try #require(try await EngineFixture.shared.runtime().engineHost)
        let junk = temporaryDirectory("speech-junk") + "/noise.wav"
        try Data((0..<4000).map { _ in UInt8.random(in: 0...255) }).write(to: URL(fileURLWithPath: junk))
        let recognizer = try StreamingSpeechRecognizer(host: host, cache: nil)
        await #expect(throws: SpeechError.self) { _ = try await recognizer.transcribeFile(junk) }

        var options = RecognizerOptions()
        options.endOfUtteranceSilence = 0
        #expect(throws: SpeechError.self) { _ = try StreamingSpeechRecognizer(host: host, cache: nil, options: options) }
        options = RecognizerOptions()
        options.speculativeFinalAfter = 0.5
        #expect { _ = try StreamingSpeechRecognizer(host: host, cache: nil, options: options) } throws: { error in
            guard case SpeechError.invalidOption(let message) = error else { return false }
            return message.contains("speculativeFinalAfter")
        }

        let finished = try StreamingSpeechRecognizer(host: host, cache: nil)
        try await finished.finish()
        await #expect(throws: SpeechError.sessionFinished) { try await finished.push([0, 0]) }
    }
}
