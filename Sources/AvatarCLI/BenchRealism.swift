import ArgumentParser
import AvatarAnimation
import AvatarCore
import AvatarEngines
import Foundation

/// `avatar bench realism`: objective guards on the mouth the renderer draws, per photo, over every speaking
/// frame of a clip, and MediaPipe's view of the output pixels.
struct BenchRealism: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "realism",
        abstract: "Per photo: flat regions, near-white pixels and interior hue in the mouth box over every speaking frame; MediaPipe on the output frames.",
        discussion: """
        Targets: largest flat region (luminance std < 2, connected) in the drawn interior ≤ 1 % of the mouth box, near-white (> 245) \
        ≤ 0.5 %, interior hue within 25° of the lips' hue, MediaPipe finds the face in every frame and its mouth \
        opening correlates ≥ 0.8 with the intended one. Default photos: scikit-image's astronaut.png and \
        matplotlib's grace_hopper.jpg from the engine venv.
        """)

    @Option(name: .customLong("photo"), help: "A photo (repeat for several).")
    var photos: [String] = []

    @Option(name: .customLong("landmarks"), help: "The engine host's landmarks JSON for the --photo at the same position (skips the engine host for the rig).")
    var landmarkFiles: [String] = []

    @Option(help: "Speech (default: the LibriVox clips of pocketsphinx-testdata, joined: 24.7 s).")
    var audio: String?

    @Option(help: "Phoneme timings of the speech (SpeechTimings JSON).")
    var timings: String?

    @Flag(help: "Skip the MediaPipe check on the output frames (then no engine host is needed with --landmarks).")
    var noMediapipe = false

    @Option(help: "Write a contact sheet (PNG or JPEG): one row per photo, columns rest, open vowel, m, f, smile.")
    var sheet: String?

    @Option(help: "Write every measured frame as JPEG (q80) and openings.csv (frame, intended inner-lip opening) per photo into this folder, for an outside landmark check.")
    var dumpDir: String?

    @Flag(help: "Only write --sheet / --frames-dir (no measurement).")
    var sheetOnly = false

    @Flag(help: "Also report, as a diagnostic, the worst flat region among the drawn interior pixels only (without a smiling photo's own teeth; renders every frame twice).")
    var drawnOnly = false

    @Option(help: "Write each photo's sheet poses as full 512² PNG frames into this folder.")
    var framesDir: String?

    func run() async throws {
        if !landmarkFiles.isEmpty, landmarkFiles.count != photos.count {
            throw CLIFailure("give one --landmarks per --photo (\(photos.count) photos, \(landmarkFiles.count) landmark files)", code: 2)
        }
        if noMediapipe, !landmarkFiles.isEmpty {
            let settings = try await loadSettings()
            try await measure(settings, host: nil)
        } else {
            try await withEngineHost { engines, settings in try await measure(settings, host: engines.host) }
        }
    }

    func measure(_ settings: AvatarSettings, host: EngineHostClient?) async throws {
        var paths = photos
        if paths.isEmpty {
            paths = ["skimage/data/astronaut.png", "matplotlib/mpl-data/sample_data/grace_hopper.jpg"].compactMap { BenchEngines.findInVenv(settings, $0) }
            guard !paths.isEmpty else { throw CLIFailure("no --photo and neither astronaut.png nor grace_hopper.jpg in the engine venv", code: 2) }
        }
        let speech: String
        if let audio { speech = audio } else { speech = try await BenchGenerate.joinedLibriVox() }
        let sound = try await AudioSamples.load(speech)
        let speechTimings = try timings.map { try JSONDecoder().decode(SpeechTimings.self, from: Data(contentsOf: URL(fileURLWithPath: $0))) }
        let track = MouthTrack(timings: speechTimings, audio: sound)
        print("clip: \(speech) (\(String(format: "%.1f", sound.duration)) s, \(speechTimings == nil ? "audio lip sync" : "phoneme timings"))")
        print("photo | speaking frames | flat region in the interior worst / median (% of mouth box) | with the lips worst / median (%) | near-white worst / mean (%) | hue distance mean / worst (°) | MediaPipe face found | opening r")
        var rows: [[RGBImage]] = []
        for (index, path) in paths.enumerated() {
            let name = (path as NSString).lastPathComponent
            let face: FaceLandmarks
            if index < landmarkFiles.count {
                let decoder = JSONDecoder()
                decoder.keyDecodingStrategy = .convertFromSnakeCase
                face = try decoder.decode(FaceLandmarks.self, from: Data(contentsOf: URL(fileURLWithPath: landmarkFiles[index])))
            } else if let host {
                face = try await landmarksWhenReady(host, image: try Data(contentsOf: URL(fileURLWithPath: path)), filename: name, timeout: settings.engineStartTimeout)
            } else {
                throw CLIFailure("no landmarks for \(path)", code: 2)
            }
            for warning in face.warnings ?? [] { print("  \(name): note: \(warning)") }
            let rig = try FaceRig(photo: try await RGBImage.load(path), landmarks: face.landmarks)
            for warning in rig.warnings { print("  \(name): note: \(warning)") }
            let renderer = FaceRenderer(rig: rig)
            print("  \(name): \(renderer.mouthColors)")
            // A reference: the same guard on the photo's own mouth at rest (nothing drawn; a smiling photo's real
            // teeth and cavity, a closed mouth's seam).
            let rest = renderer.render(FacePose())
            let own = rest.pixels.withUnsafeBufferPointer { MouthRealism.measure($0.baseAddress!, size: FaceRig.size, points: renderer.deform(FacePose())) }
            print(String(format: "  %@: the photo's own mouth at rest (nothing drawn): flat region in the interior %.2f %% of the box (%d interior pixels), with the lips %.2f %%",
                         name, 100 * own.flatShare, own.interiorPixels, 100 * own.flatShareWithLips))
            let encoder = try JPEGEncoder(quality: 80)
            var jpegs: [[UInt8]] = []
            if sheetOnly {
                rows.append(try await sheetRow(renderer, name: name))
                continue
            }
            let dump = dumpDir.map { $0 + "/" + ((name as NSString).deletingPathExtension) }
            if let dump { try FileManager.default.createDirectory(atPath: dump, withIntermediateDirectories: true) }
            let summary = try MouthRealismSummary.measure(renderer, track: track) { k, pixels in
                guard (host != nil && !noMediapipe) || dump != nil else { return }
                let jpeg = try encoder.encode(pixels, width: FaceRig.size, height: FaceRig.size)
                if host != nil, !noMediapipe { jpegs.append(jpeg) }
                if let dump { try Data(jpeg).write(to: URL(fileURLWithPath: dump + String(format: "/%05d.jpg", k))) }
            }
            if let dump {
                let rows = zip(summary.frameIndices, summary.intendedOpening).map { String(format: "%d,%.5f", $0, $1) }
                try ("frame,intended\n" + rows.joined(separator: "\n") + "\n").write(toFile: dump + "/openings.csv", atomically: true, encoding: .utf8)
            }
            var mediapipe = "not run"
            if let host, !noMediapipe {
                var measured: [Double] = [], intended: [Double] = []
                for (k, jpeg) in jpegs.enumerated() {
                    guard let found = try? await host.landmarks(image: Data(jpeg), multiple: .largest) else { continue }
                    let p = found.landmarks
                    measured.append(hypot(p[13][0] - p[14][0], p[13][1] - p[14][1]) / hypot(p[61][0] - p[291][0], p[61][1] - p[291][1]))
                    intended.append(summary.intendedOpening[k])
                }
                mediapipe = String(format: "%d/%d (%.1f %%) | %.2f", measured.count, jpegs.count, 100 * Double(measured.count) / Double(max(jpegs.count, 1)),
                                   Self.pearson(measured, intended))
            }
            print(String(format: "%@ | %d | %.2f / %.2f | %.2f / %.2f | %.2f / %.3f | %.1f / %.1f (%d frames) | %@", name, summary.frames, 100 * summary.flatWorst, 100 * summary.flatMedian,
                         100 * summary.flatWithLipsWorst, 100 * summary.flatWithLipsMedian,
                         100 * summary.whiteWorst, 100 * summary.whiteMean, summary.hueMean, summary.hueWorst, summary.hueFrames, mediapipe))
            print(String(format: "  %@: %d of %d frames have a flat region over 1 %% of the box", name, summary.flatOverTarget, summary.frames))
            if drawnOnly {
                let expression = ExpressionTrack(duration: Double(track.shapes.count) / track.fps, emotion: .neutral, intensity: 0)
                var worst = (0.0, 0), over = 0
                for k in summary.frameIndices {
                    let pose = MouthRealismSummary.pose(k, expression: expression, track: track)
                    let drawn = renderer.photoSourced(pose).map { !$0 }
                    let share = MouthRealism.flatShare(renderer.render(pose), points: renderer.deform(pose), keep: drawn)
                    if share > worst.0 { worst = (share, k) }
                    if share > 0.01 { over += 1 }
                }
                print(String(format: "  %@: drawn pixels only (diagnostic): worst flat region %.2f %% of the box (frame %d), %d frames over 1 %%", name, 100 * worst.0, worst.1, over))
            }
            if let framesDir {
                // The frame with the worst flat region, to look at.
                let expression = ExpressionTrack(duration: Double(track.shapes.count) / track.fps, emotion: .neutral, intensity: 0)
                try FileManager.default.createDirectory(atPath: framesDir, withIntermediateDirectories: true)
                let worst = MouthRealismSummary.pose(summary.flatWorstFrame, expression: expression, track: track)
                let rendered = renderer.render(worst)
                let region = MouthRealism.flatRegion(rendered, points: renderer.deform(worst))
                // Drawn or the photo's own pixels? Those that change when the photo does (see `photoSourced`).
                let sourced = renderer.photoSourced(worst)
                let fromPhoto = region.filter { sourced[$0] }.count
                let lumas = region.map { 0.299 * Double(rendered.pixels[3 * $0]) + 0.587 * Double(rendered.pixels[3 * $0 + 1]) + 0.114 * Double(rendered.pixels[3 * $0 + 2]) }
                let xs = region.map { $0 % FaceRig.size }, ys = region.map { $0 / FaceRig.size }
                if !region.isEmpty {
                    print(String(format: "  %@: worst flat region: frame %d, %d px at x %d–%d, y %d–%d, luminance %.0f–%.0f; %d px drawn, %d px the photo's own (copied or an edge)",
                                 name, summary.flatWorstFrame, region.count, xs.min()!, xs.max()!, ys.min()!, ys.max()!, lumas.min()!, lumas.max()!, region.count - fromPhoto, fromPhoto))
                }
                var marked = rendered
                for i in region {
                    marked.pixels[3 * i] = 0
                    marked.pixels[3 * i + 1] = 255
                    marked.pixels[3 * i + 2] = 0
                }
                let stem = framesDir + "/" + ((name as NSString).deletingPathExtension) + "-worst-flat-\(summary.flatWorstFrame)"
                try await marked.write(to: stem + ".png")
                // The same frame with the flat region green where drawn, yellow where the photo's own, and every other
                // photo-sourced pixel inside the mouth tinted blue.
                var sources = rendered
                let interior = MouthRealism.interiorMask(points: renderer.deform(worst))
                for i in sourced.indices where sourced[i] && interior[i] {
                    sources.pixels[3 * i + 2] = 255
                }
                for i in region { (sources.pixels[3 * i], sources.pixels[3 * i + 1], sources.pixels[3 * i + 2]) = sourced[i] ? (255, 255, 0) : (0, 255, 0) }
                try await sources.write(to: stem + "-sources.png")
            }
            if let framesDir {
                // The frame with the worst flat region over lips and interior (a smooth photo's lips, stretched).
                let expression = ExpressionTrack(duration: Double(track.shapes.count) / track.fps, emotion: .neutral, intensity: 0)
                let worst = MouthRealismSummary.pose(summary.flatWithLipsWorstFrame, expression: expression, track: track)
                let points = renderer.deform(worst)
                let rendered = renderer.render(worst)
                let region = MouthRealism.flatRegion(rendered, points: points, withLips: true)
                let interior = MouthRealism.interiorMask(points: points)
                if !region.isEmpty {
                    let lumas = region.map { 0.299 * Double(rendered.pixels[3 * $0]) + 0.587 * Double(rendered.pixels[3 * $0 + 1]) + 0.114 * Double(rendered.pixels[3 * $0 + 2]) }
                    let xs = region.map { $0 % FaceRig.size }, ys = region.map { $0 / FaceRig.size }
                    print(String(format: "  %@: worst flat region with the lips: frame %d, %d px at x %d–%d, y %d–%d, luminance %.0f–%.0f; %d px on the lips, %d in the interior",
                                 name, summary.flatWithLipsWorstFrame, region.count, xs.min()!, xs.max()!, ys.min()!, ys.max()!, lumas.min()!, lumas.max()!,
                                 region.filter { !interior[$0] }.count, region.filter { interior[$0] }.count))
                }
                var marked = rendered
                for i in region { (marked.pixels[3 * i], marked.pixels[3 * i + 1], marked.pixels[3 * i + 2]) = (0, 255, 0) }
                try await marked.write(to: framesDir + "/" + ((name as NSString).deletingPathExtension) + "-worst-flat-lips-\(summary.flatWithLipsWorstFrame).png")
            }
            if sheet != nil || framesDir != nil { rows.append(try await sheetRow(renderer, name: name)) }
        }
        if let sheet {
            let cell = rows.first?.first?.width ?? 240
            var image = RGBImage(width: cell * Self.sheetPoses.count, height: cell * rows.count, fill: (255, 255, 255))
            for (r, row) in rows.enumerated() {
                for (c, tile) in row.enumerated() { image.paste(tile, x: c * cell, y: r * cell) }
            }
            try await image.write(to: sheet)
            print("contact sheet: \(sheet) (rows: \(paths.map { ($0 as NSString).lastPathComponent }.joined(separator: ", ")); columns: \(Self.sheetPoses.map(\.0).joined(separator: ", ")))")
        }
    }

    /// The sheet's poses for one photo, cropped to the face (and written whole into --frames-dir).
    func sheetRow(_ renderer: FaceRenderer, name: String) async throws -> [RGBImage] {
        var row: [RGBImage] = []
        for (label, pose) in Self.sheetPoses {
            let frame = renderer.render(pose)
            if let framesDir {
                try FileManager.default.createDirectory(atPath: framesDir, withIntermediateDirectories: true)
                try await frame.write(to: framesDir + "/" + ((name as NSString).deletingPathExtension) + "-" + label + ".png")
            }
            row.append(frame.crop(x: 96, y: 128, width: 320, height: 320, scale: 0.75))
        }
        return row
    }

    /// Rest, an open vowel, a closure (m), lower lip to the upper teeth (f), a speaking smile.
    static var sheetPoses: [(String, FacePose)] {
        var open = FacePose()
        open.jawOpen = 0.9
        open.lipWidth = 0.1
        var m = FacePose()
        m.lipClose = 1
        var f = FacePose()
        f.lipToTeeth = 1
        f.jawOpen = 0.15
        var smile = FacePose()
        smile.smile = 1
        smile.jawOpen = 0.35
        smile.lipWidth = 0.5
        return [("rest", FacePose()), ("open", open), ("m", m), ("f", f), ("smile", smile)]
    }

    static func pearson(_ a: [Double], _ b: [Double]) -> Double {
        let n = min(a.count, b.count)
        guard n > 2 else { return .nan }
        let ma = a.prefix(n).reduce(0, +) / Double(n), mb = b.prefix(n).reduce(0, +) / Double(n)
        var num = 0.0, da = 0.0, db = 0.0
        for i in 0..<n {
            num += (a[i] - ma) * (b[i] - mb)
            da += (a[i] - ma) * (a[i] - ma)
            db += (b[i] - mb) * (b[i] - mb)
        }
        return num / max((da * db).squareRoot(), 1e-12)
    }
}
