import AvatarAnimation
import AvatarCore
import AvatarEngines
import Foundation
import Testing

/// The face animation engine, checked on its *output video* with an independent detector (MediaPipe in
/// the engine host), not with the renderer's own parameters.
@Suite("Face animation (real output)", .serialized)
struct AnimationTests {
    static let fps = 25.0
    static let silence = 1.2

    /// LibriVox speech with 1.2 s silences between clips, and where the silences are.
    static func speech() async throws -> (AudioSamples, [ClosedRange<Double>]) {
        var samples: [Float] = []
        var silences: [ClosedRange<Double>] = []
        for (index, clip) in try TestData.librivoxClips().prefix(4).enumerated() {
            if index > 0 {
                let start = Double(samples.count) / 16000
                samples += [Float](repeating: 0, count: Int(silence * 16000))
                silences.append(start...(start + silence))
            }
            samples += try await AudioSamples.load(clip.path).samples
        }
        return (AudioSamples(samples: samples, sampleRate: 16000), silences)
    }

    static func writeWAV(_ audio: AudioSamples, to path: String) throws {
        var data = Data("RIFF".utf8)
        let bytes = audio.samples.count * 2
        func le32(_ v: Int) -> Data { withUnsafeBytes(of: UInt32(v).littleEndian) { Data($0) } }
        func le16(_ v: Int) -> Data { withUnsafeBytes(of: UInt16(v).littleEndian) { Data($0) } }
        data += le32(36 + bytes) + Data("WAVEfmt ".utf8) + le32(16) + le16(1) + le16(1)
        data += le32(audio.sampleRate) + le32(audio.sampleRate * 2) + le16(2) + le16(16) + Data("data".utf8) + le32(bytes)
        var pcm = Data(capacity: bytes)
        for s in audio.samples { pcm += le16(Int(UInt16(bitPattern: Int16(max(-1, min(1, s)) * 32767)))) }
        try (data + pcm).write(to: URL(fileURLWithPath: path))
    }

    /// Per-frame loudness (dB) over the same 40 ms window a video frame covers.
    static func loudness(_ audio: AudioSamples, frames: Int) -> [Double] {
        (0..<frames).map { k in
            let center = Int(Double(k) / fps * 16000)
            let range = max(0, center - 320)..<min(audio.samples.count, center + 320)
            guard !range.isEmpty else { return -100 }
            let energy = range.reduce(0.0) { $0 + Double(audio.samples[$1]) * Double(audio.samples[$1]) }
            return 10 * log10(energy / Double(range.count) + 1e-10)
        }
    }

    static func pearson(_ a: [Double], _ b: [Double]) -> Double {
        let n = Double(min(a.count, b.count))
        let ma = a.prefix(Int(n)).reduce(0, +) / n, mb = b.prefix(Int(n)).reduce(0, +) / n
        var num = 0.0, da = 0.0, db = 0.0
        for i in 0..<Int(n) {
            num += (a[i] - ma) * (b[i] - mb)
            da += (a[i] - ma) * (a[i] - ma)
            db += (b[i] - mb) * (b[i] - mb)
        }
        return num / max((da * db).squareRoot(), 1e-12)
    }

    @Test("astronaut.png + LibriVox speech → MP4 in sync, with blinks that close and reopen the eyes")
    func generateAndMeasure() async throws {
        let runtime = try await EngineFixture.shared.runtime()
        let host = try #require(runtime.engineHost)
        let directory = temporaryDirectory("avatar-animation")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let photoData = try TestData.skimage("astronaut.png", settings: runtime.settings)
        let photoPath = directory + "/astronaut.png"
        try photoData.write(to: URL(fileURLWithPath: photoPath))
        let (audio, silences) = try await Self.speech()
        let audioPath = directory + "/speech.wav"
        try Self.writeWAV(audio, to: audioPath)

        let face = try await host.landmarks(image: photoData)
        let rig = try FaceRig(photo: try await RGBImage.load(photoPath), landmarks: face.landmarks)
        let output = directory + "/out.mp4"
        try await VideoExporter(renderer: FaceRenderer(rig: rig)).export(audioPath: audioPath, audio: audio, emotion: "neutral", intensity: 0, output: output)

        // The container: H.264 512×512 25 fps + AAC, as long as the audio.
        let probe = TestShell.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,width,height,r_frame_rate:format=duration", "-of", "json", output])
        let info = try #require(try JSONSerialization.jsonObject(with: Data(probe.utf8)) as? [String: Any])
        let streams = info["streams"] as? [[String: Any]] ?? []
        let video = try #require(streams.first { $0["codec_name"] as? String == "h264" })
        #expect(video["width"] as? Int == 512 && video["height"] as? Int == 512)
        #expect(video["r_frame_rate"] as? String == "25/1")
        #expect(streams.contains { $0["codec_name"] as? String == "aac" })
        let duration = Double((info["format"] as? [String: Any])?["duration"] as? String ?? "0") ?? 0
        #expect(abs(duration - audio.duration) <= 0.1, "video \(duration) s, audio \(audio.duration) s")

        // Every frame through MediaPipe.
        let framesDir = directory + "/frames"
        try FileManager.default.createDirectory(atPath: framesDir, withIntermediateDirectories: true)
        _ = TestShell.run(["ffmpeg", "-v", "error", "-i", output, "-q:v", "2", framesDir + "/%05d.jpg"])
        let files = try FileManager.default.contentsOfDirectory(atPath: framesDir).sorted()
        #expect(files.count >= Int(audio.duration * Self.fps) - 1)
        var mouth: [Double] = []
        var eyes: [Double] = []
        for file in files {
            let frame = try await host.landmarks(image: try Data(contentsOf: URL(fileURLWithPath: framesDir + "/" + file)), multiple: .largest)
            let p = frame.landmarks
            func distance(_ a: Int, _ b: Int) -> Double { hypot(p[a][0] - p[b][0], p[a][1] - p[b][1]) }
            mouth.append(distance(13, 14) / distance(61, 291))
            eyes.append((distance(159, 145) / distance(33, 133) + distance(386, 374) / distance(263, 362)) / 2)
        }

        // Sync: mouth opening vs loudness, best lag within ±1 frame (±40 ms).
        let level = Self.loudness(audio, frames: mouth.count)
        var best = (correlation: -1.0, lag: 0)
        for lag in -1...1 {
            let a = Array(mouth[max(0, lag)..<(mouth.count + min(0, lag))])
            let b = Array(level[max(0, -lag)..<(level.count + min(0, -lag))])
            let r = Self.pearson(a, b)
            if r > best.correlation { best = (r, lag) }
        }
        print("sync: peak correlation \(String(format: "%.2f", best.correlation)) at lag \(best.lag * 40) ms")
        #expect(best.correlation >= 0.5)

        // Silence: the mouth rests (as in the photo) in the middle of every silent stretch.
        let rest = mouth.sorted()[mouth.count / 10]
        let speaking = mouth.sorted()[mouth.count * 9 / 10]
        for gap in silences {
            let middle = Int(((gap.lowerBound + gap.upperBound) / 2) * Self.fps)
            let window = mouth[(middle - 3)...(middle + 3)]
            print("silence at \(String(format: "%.1f", gap.lowerBound)) s: mouth \(String(format: "%.3f", window.max()!)) (rest \(String(format: "%.3f", rest)), speaking \(String(format: "%.3f", speaking)))")
            #expect(window.max()! < rest + 0.25 * (speaking - rest))
        }

        // Blinks: the eye aperture dips below 40 % of its open value and comes back above 85 %.
        let open = eyes.sorted()[eyes.count / 2]
        var blinks = 0
        var closedAt: Int?
        var reopened = true
        for (k, value) in eyes.enumerated() {
            if closedAt == nil, value < 0.4 * open {
                closedAt = k
                blinks += 1
                reopened = false
            } else if let start = closedAt, value > 0.85 * open {
                #expect(k - start < 10, "eye stayed closed \(k - start) frames")
                closedAt = nil
                reopened = true
            }
        }
        let perTwenty = Double(blinks) * 20 / audio.duration
        print("blinks: \(blinks) in \(String(format: "%.1f", audio.duration)) s (\(String(format: "%.1f", perTwenty)) per 20 s), min aperture \(String(format: "%.3f", eyes.min()!)) vs open \(String(format: "%.3f", open))")
        #expect(perTwenty >= 3)
        #expect(reopened)
    }

    @Test("A face under 80 px, a corrupt image and unreadable audio give clear errors")
    func badInput() async throws {
        let tiny: [[Double]] = (0..<478).map { (i: Int) -> [Double] in
            let x = 100.0 + Double(i % 20)
            let y = 100.0 + 2.0 * Double(i / 20)
            return [x, y, 0.0]
        }
        #expect { try FaceRig(photo: RGBImage(width: 300, height: 300), landmarks: tiny) } throws: { error in
            (error as? AnimationError)?.userMessage.contains("face is 22 px wide; need ≥ 80") == true
        }
        let directory = temporaryDirectory()
        let junk = directory + "/junk.png"
        try Data("not an image at all".utf8).write(to: URL(fileURLWithPath: junk))
        await #expect(throws: AnimationError.self) { try await RGBImage.load(junk) }
        await #expect(throws: AnimationError.self) { try await AudioSamples.load(junk) }
    }
}

/// Runs a command and returns its stdout.
enum TestShell {
    static func run(_ arguments: [String]) -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try? process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }
}

/// The real-time stream: push speech, take JPEG frames, barge in.
@Suite("Talking head stream (real output)", .serialized)
struct TalkingHeadTests {
    @Test("Idle → speaking frames for pushed speech → idle; clear() closes the mouth at once; MediaPipe sees the mouth move")
    func stream() async throws {
        let runtime = try await EngineFixture.shared.runtime()
        let host = try #require(runtime.engineHost)
        let photo = try TestData.skimage("astronaut.png", settings: runtime.settings)
        let directory = temporaryDirectory("avatar-stream")
        try photo.write(to: URL(fileURLWithPath: directory + "/a.png"))
        let face = try await host.landmarks(image: photo)
        let head = try TalkingHead(renderer: FaceRenderer(rig: try FaceRig(photo: try await RGBImage.load(directory + "/a.png"), landmarks: face.landmarks)))

        let idle = try await head.nextFrame()
        #expect(!idle.speaking)
        #expect(idle.jpeg.prefix(2) == [0xFF, 0xD8] && idle.jpeg.suffix(2) == [0xFF, 0xD9])

        let clip = try await AudioSamples.load(try TestData.librivoxClips()[0].path)
        // Pushed in 200 ms chunks, as TTS streams arrive.
        for start in stride(from: 0, to: clip.samples.count, by: 3200) {
            await head.push(Array(clip.samples[start..<min(start + 3200, clip.samples.count)]))
        }
        await head.finishUtterance()
        var speaking: [VideoFrame] = []
        var after: VideoFrame?
        for _ in 0..<Int(clip.duration * 25) + 10 {
            let frame = try await head.nextFrame()
            if frame.speaking { speaking.append(frame) } else if !speaking.isEmpty { after = frame; break }
        }
        #expect(abs(Double(speaking.count) - clip.duration * 25) <= 2, "\(speaking.count) speaking frames for \(clip.duration) s")
        #expect(after?.jawOpen == 0)

        // An independent look at the pixels: the widest frame's mouth is open wider than the idle frame's.
        let widest = try #require(speaking.max { $0.jawOpen < $1.jawOpen })
        func mouth(_ frame: VideoFrame) async throws -> Double {
            let p = try await host.landmarks(image: Data(frame.jpeg)).landmarks
            return hypot(p[13][0] - p[14][0], p[13][1] - p[14][1]) / hypot(p[61][0] - p[291][0], p[61][1] - p[291][1])
        }
        let open = try await mouth(widest), rest = try await mouth(idle)
        print("stream: mouth \(String(format: "%.3f", open)) at the widest frame vs \(String(format: "%.3f", rest)) idle")
        #expect(open > rest + 0.1)

        // Barge-in: speech pushed, two frames shown, clear() → the next frame is at rest.
        await head.push(clip.samples)
        _ = try await head.nextFrame()
        _ = try await head.nextFrame()
        await head.clear()
        let cleared = try await head.nextFrame()
        #expect(!cleared.speaking && cleared.jawOpen == 0)
    }
}
