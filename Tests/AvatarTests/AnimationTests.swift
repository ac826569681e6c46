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
        try await VideoExporter(renderer: FaceRenderer(rig: rig)).export(audioPath: audioPath, audio: audio, emotion: .neutral, intensity: 0, output: output)

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

    @Test("A face under 56 px, a corrupt image and unreadable audio give clear errors")
    func badInput() async throws {
        let tiny: [[Double]] = (0..<478).map { (i: Int) -> [Double] in
            let x = 100.0 + Double(i % 20)
            let y = 100.0 + 2.0 * Double(i / 20)
            return [x, y, 0.0]
        }
        #expect { try FaceRig(photo: RGBImage(width: 300, height: 300), landmarks: tiny) } throws: { error in
            (error as? AnimationError)?.userMessage.contains("face is 22 px wide; need ≥ 56") == true
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

/// What the renderer draws inside the mouth, measured on its pixels over every speaking frame of the LibriVox
/// speech (`MouthRealismSummary`, the same code as `avatar bench realism`), on portraits it was not tuned on.
/// Landmarks are the engine host's MediaPipe answers stored beside the photos (Fixtures/portraits/README.md),
/// so these run without the engine host; the check with MediaPipe on the output is in `mediapipeSeesTheMouth`.
@Suite("Mouth realism (rendered pixels)", .serialized)
struct MouthRealismTests {
    static let portraits = URL(fileURLWithPath: #filePath).deletingLastPathComponent().path + "/Fixtures/portraits"

    /// The photo (a committed fixture, or a package file in the engine venv) and its stored landmarks.
    static func rig(_ name: String) async throws -> FaceRig {
        let (photo, landmarks) = try await Self.photo(name)
        return try FaceRig(photo: photo, landmarks: landmarks)
    }

    static func photo(_ name: String) async throws -> (RGBImage, [[Double]]) {
        var photo = portraits + "/\(name).jpg"
        if !FileManager.default.fileExists(atPath: photo) {
            let settings = try await AvatarSettings.load(environment: ProcessInfo.processInfo.environment)
            let suffix = name == "astronaut" ? "skimage/data/astronaut.png" : "matplotlib/mpl-data/sample_data/\(name).jpg"
            let lib = settings.venvDir + "/lib"
            guard let relative = FileManager.default.enumerator(atPath: lib)?.first(where: { ($0 as? String)?.hasSuffix(suffix) == true }) as? String else {
                throw TestFailure("\(suffix) not found under \(lib): run `avatar setup`")
            }
            photo = lib + "/" + relative
        }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let face = try decoder.decode(FaceLandmarks.self, from: Data(contentsOf: URL(fileURLWithPath: portraits + "/\(name).landmarks.json")))
        return (try await RGBImage.load(photo), face.landmarks)
    }

    static func inside(_ polygon: [Point2], _ x: Double, _ y: Double) -> Bool {
        var inside = false
        var j = polygon.count - 1
        for i in 0..<polygon.count {
            let a = polygon[i], b = polygon[j]
            if (a.y > y) != (b.y > y), x < (b.x - a.x) * (y - a.y) / (b.y - a.y) + a.x { inside.toggle() }
            j = i
        }
        return inside
    }

    /// Limits about twice the figures measured with the final renderer (docs/animation.md, `avatar bench realism`):
    /// flat region worst (share of the mouth box), near-white worst, mean hue distance (degrees).
    /// Near-white measured 0 % everywhere: its limit is the issue's target (0.5 %). Before this renderer
    /// (flat white bars, one-colour cavity) the worst flat regions were 27 / 21 / 19 % of the box. With the
    /// shaded cavity (throat, lips' inner side at the corners, round tongue tip, the teeth's shadow under their
    /// edges and above the lower ones, lower teeth from moderate openings, wet surface) this test's clip measured
    /// biden 2.05 %, grace_hopper 0.83 %, obama 1.20 %; with the photo's own grain (`PhotoGrain`) and the opening
    /// lit from the floor up, the lower half's grain anchored to the lower lip: biden 1.83 % (a near-black pocket
    /// under the teeth at the corner), grace_hopper 0.90 %, obama 0.97 % (a region of his own photographed teeth);
    /// hue distance 9.7° / 4.6° / 2.4°. The grain's phase alone moves these by about ±0.2 points. With the pocket
    /// under the teeth brightening more steeply to its floor and the corners lined (7d6af8e): biden 1.66 % (the strip
    /// between the rows of teeth), grace_hopper 0.90 %, obama 0.97 %. With the wet surfaces' relief scaled to the
    /// mouth's width and rounded teeth: biden 1.47 %, grace_hopper 0.63 %, obama 0.97 %; with only the tongue's
    /// tip showing through a small opening: biden 1.39 %. With a textured lip lining, crossed inner contours meeting
    /// and the mesh built in a fixed order (40843a4): biden 1.31 % (2 of 539 frames over 1 %), grace_hopper 0.51 %,
    /// obama 0.97 %; the frames are now the same in every run. With the lips moving as one and the opening tapering
    /// towards the corners (session 11): biden 1.08 %, grace_hopper 0.54 %, obama 0.97 %; hue distance 11.4° / 7.4° /
    /// 1.7° (the narrower corners hold less of the lips' red lining), so the hue limits are twice that, within the
    /// issue's 25°.
    static let limits: [String: (flat: Double, white: Double, hue: Double)] = [
        "biden": (0.026, 0.005, 23),
        "grace_hopper": (0.01, 0.005, 15),
        "obama": (0.02, 0.005, 5),
    ]

    @Test("Closed-mouth (biden, grace_hopper) and smiling (obama) portraits: no flat fill, no near-white, an interior in the lips' hue",
          arguments: ["biden", "grace_hopper", "obama"])
    func guards(_ name: String) async throws {
        let rig = try await Self.rig(name)
        let (audio, _) = try await AnimationTests.speech()
        let summary = try MouthRealismSummary.measure(FaceRenderer(rig: rig), track: MouthTrack(audio: audio))
        print(String(format: "%@: %d speaking frames; flat region worst %.2f %% (median %.2f %%); near-white worst %.3f %%; hue distance mean %.1f° (worst %.1f°, %d frames)",
                     name, summary.frames, 100 * summary.flatWorst, 100 * summary.flatMedian, 100 * summary.whiteWorst, summary.hueMean, summary.hueWorst, summary.hueFrames))
        let limit = try #require(Self.limits[name])
        #expect(summary.frames > 300)
        #expect(summary.hueFrames > 100, "the mouth opened in too few frames to judge its interior")
        #expect(summary.flatWorst <= limit.flat)
        #expect(summary.whiteWorst <= limit.white)
        #expect(summary.hueMean <= limit.hue)
    }

    @Test("Crossed inner lip contours (biden's closed mouth, a closed photo's f) meet; a photo whose lips part keeps its own at rest")
    func crossedContoursMeet() async throws {
        let upper = [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308], lower = [78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308]
        let biden = try await Self.rig("biden")
        // The photo's own landmarks cross by a fraction of a pixel (the lower lip's a hair above the upper's).
        #expect(zip(upper, lower).contains { biden.points[$1].y < biden.points[$0].y })
        var f = FacePose()
        f.lipToTeeth = 1
        for pose in [FacePose(), f] {
            let points = FaceRenderer(rig: biden).deform(pose)
            for (u, l) in zip(upper, lower) { #expect(points[l].y >= points[u].y, "\(l) above \(u)") }
        }
        let obama = try await Self.rig("obama")
        let rest = FaceRenderer(rig: obama).deform(FacePose())
        for i in upper + lower { #expect(rest[i] == obama.points[i]) }
    }

    /// The lower lip's pixels (inside its outer and inner contours, their 4 neighbours too) for `points`.
    static func lowerLip(_ points: [Point2]) -> [(Int, Int)] {
        let outer = [61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291], inner = [78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308]
        let polygon = (outer + inner.reversed()).map { points[$0] }
        var pixels: [(Int, Int)] = []
        for y in Int(polygon.map(\.y).min()!)...Int(polygon.map(\.y).max()!) {
            for x in Int(polygon.map(\.x).min()!)...Int(polygon.map(\.x).max()!)
            where [(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)].allSatisfy({ Self.inside(polygon, Double(x + $0.0), Double(y + $0.1)) }) {
                pixels.append((x, y))
            }
        }
        return pixels
    }

    /// Mean absolute Laplacian of luminance over `pixels`: the texture a resampling blurs away.
    static func texture(_ image: RGBImage, _ pixels: [(Int, Int)]) -> Double {
        func luma(_ x: Int, _ y: Int) -> Double {
            let i = (y * image.width + x) * 3
            return 0.299 * Double(image.pixels[i]) + 0.587 * Double(image.pixels[i + 1]) + 0.114 * Double(image.pixels[i + 2])
        }
        let sum = pixels.reduce(0.0) { total, p in
            let (x, y) = p
            return total + abs(4 * luma(x, y) - luma(x - 1, y) - luma(x + 1, y) - luma(x, y - 1) - luma(x, y + 1))
        }
        return sum / Double(max(pixels.count, 1))
    }

    @Test("Each lip moves as one: the landmarks inside a lip keep their place between its contours as the jaw opens, the lips close or meet the teeth",
          arguments: ["biden", "obama", "astronaut"])
    func lipsMoveAsOne(_ name: String) async throws {
        let rig = try await Self.rig(name)
        let renderer = FaceRenderer(rig: rig)
        // MediaPipe's rings inside each lip (a third and two thirds of the way in), column by column with the contours.
        let lips: [(outer: [Int], rings: [[Int]], inner: [Int])] = [
            ([61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291],
             [[76, 184, 74, 73, 72, 11, 302, 303, 304, 408, 306], [62, 183, 42, 41, 38, 12, 268, 271, 272, 407, 292]],
             [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308]),
            ([61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291],
             [[76, 77, 90, 180, 85, 16, 315, 404, 320, 307, 306], [62, 96, 89, 179, 86, 15, 316, 403, 319, 325, 292]],
             [78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308]),
        ]
        func depth(_ points: [Point2], _ lip: (outer: [Int], rings: [[Int]], inner: [Int]), _ ring: Int, _ k: Int) -> Double? {
            let thickness = points[lip.inner[k]].y - points[lip.outer[k]].y
            guard abs(thickness) > 1 else { return nil }
            return (points[lip.rings[ring][k]].y - points[lip.outer[k]].y) / thickness
        }
        var open = FacePose(), m = FacePose(), f = FacePose(), wide = FacePose()
        open.jawOpen = 0.8
        m.lipClose = 1
        f.lipToTeeth = 1
        wide.jawOpen = 0.5
        wide.lipWidth = 1
        for (label, pose) in [("open", open), ("m", m), ("f", f), ("wide", wide)] {
            let moved = renderer.deform(pose)
            var worst = 0.0
            for lip in lips {
                for ring in 0..<2 {
                    for k in 1..<(lip.inner.count - 1) {
                        guard let before = depth(rig.points, lip, ring, k), let after = depth(moved, lip, ring, k) else { continue }
                        worst = max(worst, abs(after - before))
                    }
                }
            }
            // Before the rings moved with their lip, the lower lip's rings followed the jaw a quarter of the way:
            // at "open" they sat above the lip's moved inner edge (depth off by more than 1).
            #expect(worst < 0.15, "\(name) \(label): a landmark inside a lip moved \(worst) of the lip's thickness from its place")
        }
    }

    @Test("The lips keep their texture as the mouth opens: the lower lip of a closed-mouth portrait is not blurred flat",
          arguments: ["biden", "grace_hopper"])
    func lipsKeepTheirTexture(_ name: String) async throws {
        let rig = try await Self.rig(name)
        let renderer = FaceRenderer(rig: rig)
        let rest = Self.texture(renderer.render(FacePose()), Self.lowerLip(renderer.deform(FacePose())))
        var ratios: [String] = []
        for jaw in [0.15, 0.35, 0.6] {
            var pose = FacePose()
            pose.jawOpen = jaw
            let moved = Self.texture(renderer.render(pose), Self.lowerLip(renderer.deform(pose)))
            ratios.append(String(format: "%.2f", moved / rest))
            #expect(moved >= 0.8 * rest, "\(name) at jaw \(jaw): the lower lip's texture fell to \(moved / rest) of the photo's")
        }
        print("\(name): lower lip texture against the photo's at jaw 0.15 / 0.35 / 0.6: \(ratios.joined(separator: " / "))")
    }

    @Test("Every pixel of a frame is drawn anew: the mouth's anti-aliased edge never shows what the frame held before",
          arguments: ["biden", "obama", "astronaut"])
    func nothingOfThePreviousFrame(_ name: String) async throws {
        let renderer = FaceRenderer(rig: try await Self.rig(name))
        var open = FacePose()
        open.jawOpen = 0.8
        var f = FacePose()
        f.lipToTeeth = 1
        for (label, pose) in [("rest", FacePose()), ("open", open), ("f", f)] {
            var black = [UInt8](repeating: 0, count: FaceRig.size * FaceRig.size * 3)
            var white = [UInt8](repeating: 255, count: black.count)
            renderer.render(pose, into: &black)
            renderer.render(pose, into: &white)
            let differing = zip(black, white).filter { $0 != $1 }.count
            #expect(differing == 0, "\(name) \(label): \(differing) bytes still show the frame's old content")
        }
    }

    @Test("At rest a smiling photo's mouth is its own: the middle of the interior is the photo's pixels, with no drawn line across its teeth",
          arguments: ["obama", "astronaut"])
    func restIsThePhoto(_ name: String) async throws {
        let rig = try await Self.rig(name)
        let frame = FaceRenderer(rig: rig).render(FacePose())
        let upper = [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308], lower = [78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308]
        let polygon = (upper + lower.reversed()).map { rig.points[$0] }
        let left = rig.points[78].x, right = rig.points[308].x, width = right - left
        var worst = 0, measured = 0
        for y in Int(polygon.map(\.y).min()!)...Int(polygon.map(\.y).max()!) {
            for x in Int(left + 0.2 * width)...Int(right - 0.2 * width) {
                // Pixels wholly inside the inner contour (their neighbours too).
                guard [(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)].allSatisfy({ Self.inside(polygon, Double(x + $0.0), Double(y + $0.1)) }) else { continue }
                let i = (y * FaceRig.size + x) * 3
                // The painter caps every interior pixel at 240 (no near-white), the photo's own too.
                for c in 0..<3 { worst = max(worst, abs(Int(frame.pixels[i + c]) - min(Int(rig.image.pixels[i + c]), 240))) }
                measured += 1
            }
        }
        #expect(measured > 200, "\(name): only \(measured) interior pixels")
        #expect(worst <= 2, "\(name): a pixel of the mouth at rest differs from the photo by \(worst) levels")
    }

    @Test("The same photo renders the same frames in every run (the mesh does not depend on the process's hash seed)")
    func sameFramesEveryRun() async throws {
        let directory = temporaryDirectory("avatar-same-frames")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var runs: [[Data]] = []
        for run in 0..<2 {
            let frames = directory + "/\(run)"
            let outcome = try await AvatarProcess.run(["bench", "realism", "--sheet-only", "--photo", Self.portraits + "/biden.jpg",
                                                      "--landmarks", Self.portraits + "/biden.landmarks.json", "--sheet", frames + "/sheet.png", "--frames-dir", frames])
            #expect(outcome.status == 0, "\(outcome.stderr)")
            runs.append(try ["rest", "open", "m", "f", "smile"].map { try Data(contentsOf: URL(fileURLWithPath: frames + "/biden-\($0).png")) })
        }
        #expect(runs[0].count == 5)
        #expect(runs[0] == runs[1])
    }

    @Test("The guards catch a painted mouth: flat white bars and a one-colour cavity fail them")
    func guardsCatchPaint() async throws {
        let rig = try await Self.rig("biden")
        var pose = FacePose()
        pose.jawOpen = 0.9
        let renderer = FaceRenderer(rig: rig)
        let points = renderer.deform(pose)
        var frame = renderer.render(pose).pixels
        // Paint the interior as the old renderer did: a white bar under the upper lip, a flat maroon below.
        let upper = [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308].map { points[$0] }
        let lower = [78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308].map { points[$0] }
        let inner = upper + lower.reversed()
        for y in 0..<FaceRig.size {
            for x in 0..<FaceRig.size where Self.inside(inner, Double(x), Double(y)) {
                let top = upper.min { abs($0.x - Double(x)) < abs($1.x - Double(x)) }!.y
                let color: [UInt8] = Double(y) < top + 0.09 * rig.mouthWidth ? [250, 250, 250] : [60, 18, 24]
                for c in 0..<3 { frame[(y * FaceRig.size + x) * 3 + c] = color[c] }
            }
        }
        let painted = frame.withUnsafeBufferPointer { MouthRealism.measure($0.baseAddress!, size: FaceRig.size, points: points) }
        let drawn = renderer.render(pose).pixels.withUnsafeBufferPointer { MouthRealism.measure($0.baseAddress!, size: FaceRig.size, points: points) }
        print("painted: flat \(painted.flatShare), white \(painted.whiteShare); drawn: flat \(drawn.flatShare), white \(drawn.whiteShare), hue \(drawn.hueDistance ?? -1)")
        #expect(painted.flatShare > 0.05 && painted.whiteShare > 0.05)
        #expect(drawn.flatShare < painted.flatShare / 5 && drawn.flatShare <= Self.limits["biden"]!.flat)
        #expect(drawn.whiteShare < 0.001)
    }

    @Test("Teeth take the photo's light: a darker, warmer photo gives darker, warmer teeth; nothing drawn is near-white")
    func teethFollowThePhoto() async throws {
        let (photo, landmarks) = try await Self.photo("biden")
        let rig = try FaceRig(photo: photo, landmarks: landmarks)
        var dim = photo
        for i in stride(from: 0, to: dim.pixels.count, by: 3) {
            dim.pixels[i] = UInt8(Double(dim.pixels[i]) * 0.7)
            dim.pixels[i + 1] = UInt8(Double(dim.pixels[i + 1]) * 0.6)
            dim.pixels[i + 2] = UInt8(Double(dim.pixels[i + 2]) * 0.45)
        }
        var pose = FacePose()
        pose.jawOpen = 0.6
        func teeth(_ renderer: FaceRenderer) -> (Double, Double, Double) {
            // The upper teeth in the middle of the mouth: just under the upper inner lip at landmark 13.
            let points = renderer.deform(pose)
            let frame = renderer.render(pose).pixels
            var sum = (0.0, 0.0, 0.0), n = 0.0
            let x0 = Int(points[13].x), y0 = Int(points[13].y + 0.05 * renderer.rig.mouthWidth)
            for y in (y0 - 1)...(y0 + 1) {
                for x in (x0 - 4)...(x0 + 4) {
                    let i = (y * FaceRig.size + x) * 3
                    sum = (sum.0 + Double(frame[i]), sum.1 + Double(frame[i + 1]), sum.2 + Double(frame[i + 2]))
                    n += 1
                }
            }
            return (sum.0 / n, sum.1 / n, sum.2 / n)
        }
        let normal = teeth(FaceRenderer(rig: rig))
        let dark = teeth(FaceRenderer(rig: try FaceRig(photo: dim, landmarks: landmarks)))
        print("teeth: photo \(normal), dimmed warm photo \(dark)")
        #expect(max(normal.0, normal.1, normal.2) < 235)
        #expect(normal.0 > 120, "teeth should be lighter than the cavity")
        #expect(dark.1 < normal.1 * 0.8)
        #expect(dark.2 / dark.0 < normal.2 / normal.0 - 0.1)
    }

    @Test("MediaPipe on the output of a closed-mouth portrait: the face in every speaking frame, its mouth opening following the intended one")
    func mediapipeSeesTheMouth() async throws {
        let runtime = try await EngineFixture.shared.runtime()
        let host = try #require(runtime.engineHost)
        let rig = try await Self.rig("biden")
        let clip = try await AudioSamples.load(try TestData.librivoxClips()[0].path)
        let encoder = try JPEGEncoder(quality: 80)
        var jpegs: [[UInt8]] = []
        let summary = try MouthRealismSummary.measure(FaceRenderer(rig: rig), track: MouthTrack(audio: clip)) { _, pixels in
            jpegs.append(try encoder.encode(pixels, width: FaceRig.size, height: FaceRig.size))
        }
        var measured: [Double] = [], intended: [Double] = []
        for (k, jpeg) in jpegs.enumerated() {
            guard let face = try? await host.landmarks(image: Data(jpeg), multiple: .largest) else { continue }
            let p = face.landmarks
            measured.append(hypot(p[13][0] - p[14][0], p[13][1] - p[14][1]) / hypot(p[61][0] - p[291][0], p[61][1] - p[291][1]))
            intended.append(summary.intendedOpening[k])
        }
        let r = AnimationTests.pearson(measured, intended)
        print("MediaPipe on biden's output: face in \(measured.count) of \(jpegs.count) speaking frames; opening r = \(String(format: "%.3f", r))")
        #expect(measured.count == jpegs.count)
        #expect(r >= 0.8)
    }

    @Test("Face size: 56–80 px cheek to cheek is animated with a warning that it looks soft; under 56 px is refused")
    func smallFaces() throws {
        func face(width: Double) -> [[Double]] {
            // A stored real face, scaled so its cheeks are `width` apart.
            let decoder = JSONDecoder()
            decoder.keyDecodingStrategy = .convertFromSnakeCase
            let stored = try! decoder.decode(FaceLandmarks.self, from: Data(contentsOf: URL(fileURLWithPath: Self.portraits + "/biden.landmarks.json"))).landmarks
            let cheeks = hypot(stored[234][0] - stored[454][0], stored[234][1] - stored[454][1])
            return stored.map { [$0[0] * width / cheeks, $0[1] * width / cheeks, $0[2]] }
        }
        let photo = RGBImage(width: 200, height: 200, fill: (128, 110, 100))
        let soft = try FaceRig(photo: photo, landmarks: face(width: 64))
        print("64 px: \(soft.warnings)")
        #expect(soft.warnings.count == 1 && soft.warnings[0].contains("64 px wide") && soft.warnings[0].contains("soft"))
        #expect(try FaceRig(photo: photo, landmarks: face(width: 90)).warnings.isEmpty)
        #expect { try FaceRig(photo: photo, landmarks: face(width: 50)) } throws: { error in
            (error as? AnimationError)?.userMessage.contains("face is 49 px wide; need ≥ 56") == true
                || (error as? AnimationError)?.userMessage.contains("face is 50 px wide; need ≥ 56") == true
        }
    }
}
