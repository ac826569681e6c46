import AvatarCore
import Foundation

/// Objective guards on what the renderer draws in and around the mouth (`avatar bench realism`), measured on
/// the rendered pixels of one frame. The mouth box is the bounding box of the moved outer lip contour.
///
/// - `flatShare`: the largest flat region inside the mouth's interior (the moved inner lip contour: what the
///   renderer draws rather than warps) as a share of the box; `flatShareWithLips` the same over lips and interior
///   (a smooth, upscaled photo's own lips are flat by this measure too). Pixels are grown into 4-connected
///   regions of luminance within ±3 of the region's first pixel (in raster order); a region whose luminance
///   standard deviation is under 2 is flat. A painted fill (a white bar, a one-colour cavity) is one big flat
///   region; lips, skin and shaded teeth with the photo's grain are not.
/// - `whiteShare`: the share of the box with luminance over 245.
/// - `hueDistance`: degrees between the mean hue of the interior (inside the moved inner lip contour) and of
///   the lips (between the inner and outer contours), each the hue of the mean opponent-colour vector, so
///   strongly coloured pixels weigh more than greys; nil when the interior has under 20 pixels.
public struct MouthRealism: Sendable, Equatable {
    /// The largest flat region among the pixels the renderer draws (inside the moved inner lip contour).
    public var flatShare: Double
    /// The same over lips and interior (the photo's own smooth lips count here too).
    public var flatShareWithLips: Double
    public var whiteShare: Double
    public var hueDistance: Double?
    public var interiorPixels: Int

    /// Measures one `size`×`size` RGB frame; `points` are the rig's vertices as moved for this frame
    /// (`FaceRenderer.deform`).
    public static func measure(_ frame: UnsafePointer<UInt8>, size: Int, points: [Point2]) -> MouthRealism {
        let outer = (FaceIndex.upperOuterLip + FaceIndex.lowerOuterLip.reversed()).map { points[$0] }
        let inner = (FaceIndex.upperInnerLip + FaceIndex.lowerInnerLip.reversed()).map { points[$0] }
        let minX = max(0, Int(floor(outer.map(\.x).min()!))), maxX = min(size - 1, Int(ceil(outer.map(\.x).max()!)))
        let minY = max(0, Int(floor(outer.map(\.y).min()!))), maxY = min(size - 1, Int(ceil(outer.map(\.y).max()!)))
        guard minX < maxX, minY < maxY else { return MouthRealism(flatShare: 0, flatShareWithLips: 0, whiteShare: 0, hueDistance: nil, interiorPixels: 0) }
        let w = maxX - minX + 1, h = maxY - minY + 1
        var luma = [Double](repeating: 0, count: w * h)
        var interiorLuma = [Double](repeating: .nan, count: w * h)
        var white = 0
        var interiorChroma = (0.0, 0.0), lipChroma = (0.0, 0.0)
        var interiorCount = 0
        for y in minY...maxY {
            for x in minX...maxX {
                let p = frame + (y * size + x) * 3
                let r = Double(p[0]), g = Double(p[1]), b = Double(p[2])
                let l = 0.299 * r + 0.587 * g + 0.114 * b
                luma[(y - minY) * w + (x - minX)] = l
                if l > 245 { white += 1 }
                let centre = Point2(Double(x), Double(y))
                guard FaceRig.contains(outer, centre) else {
                    luma[(y - minY) * w + (x - minX)] = .nan
                    continue
                }
                let a = r - (g + b) / 2, c = 0.866 * (g - b)
                if FaceRig.contains(inner, centre) {
                    interiorLuma[(y - minY) * w + (x - minX)] = l
                    interiorChroma = (interiorChroma.0 + a, interiorChroma.1 + c)
                    interiorCount += 1
                } else {
                    lipChroma = (lipChroma.0 + a, lipChroma.1 + c)
                }
            }
        }
        var hue: Double?
        if interiorCount >= 20 {
            let hi = atan2(interiorChroma.1, interiorChroma.0), hl = atan2(lipChroma.1, lipChroma.0)
            var d = abs(hi - hl) * 180 / .pi
            if d > 180 { d = 360 - d }
            hue = d
        }
        return MouthRealism(flatShare: Double(largestFlatRegion(interiorLuma, width: w, height: h)) / Double(w * h),
                            flatShareWithLips: Double(largestFlatRegion(luma, width: w, height: h)) / Double(w * h),
                            whiteShare: Double(white) / Double(w * h), hueDistance: hue, interiorPixels: interiorCount)
    }

    /// The pixel count of the largest flat region (see the type's note).
    static func largestFlatRegion(_ luma: [Double], width: Int, height: Int) -> Int {
        largestFlatRegionPixels(luma, width: width, height: height).count
    }

    /// Marks the largest flat region of the interior in green (to look at where a guard fails).
    public static func markFlatRegion(_ image: inout RGBImage, points: [Point2]) {
        for i in flatRegion(image, points: points) {
            image.pixels[3 * i] = 0
            image.pixels[3 * i + 1] = 255
            image.pixels[3 * i + 2] = 0
        }
    }

    /// A diagnostic, not a guard: the largest flat region (as `flatShare`, a share of the same box) among the
    /// interior pixels for which `keep` (per frame pixel) holds — e.g. only the drawn ones
    /// (`FaceRenderer.photoSourced` false), to tell what the painter draws from a smiling photo's own teeth.
    public static func flatShare(_ image: RGBImage, points: [Point2], keep: [Bool]) -> Double {
        let outer = (FaceIndex.upperOuterLip + FaceIndex.lowerOuterLip.reversed()).map { points[$0] }
        let inner = (FaceIndex.upperInnerLip + FaceIndex.lowerInnerLip.reversed()).map { points[$0] }
        let size = image.width
        let minX = max(0, Int(floor(outer.map(\.x).min()!))), maxX = min(size - 1, Int(ceil(outer.map(\.x).max()!)))
        let minY = max(0, Int(floor(outer.map(\.y).min()!))), maxY = min(size - 1, Int(ceil(outer.map(\.y).max()!)))
        guard minX < maxX, minY < maxY else { return 0 }
        let w = maxX - minX + 1, h = maxY - minY + 1
        var luma = [Double](repeating: .nan, count: w * h)
        for y in minY...maxY {
            for x in minX...maxX where keep[y * size + x] && FaceRig.contains(inner, Point2(Double(x), Double(y))) {
                let i = (y * size + x) * 3
                luma[(y - minY) * w + (x - minX)] = 0.299 * Double(image.pixels[i]) + 0.587 * Double(image.pixels[i + 1]) + 0.114 * Double(image.pixels[i + 2])
            }
        }
        return Double(largestFlatRegion(luma, width: w, height: h)) / Double(w * h)
    }

    /// Per frame pixel (y × size + x): inside the moved inner lip contour (the interior the guards measure).
    public static func interiorMask(points: [Point2], size: Int = FaceRig.size) -> [Bool] {
        let inner = (FaceIndex.upperInnerLip + FaceIndex.lowerInnerLip.reversed()).map { points[$0] }
        return (0..<(size * size)).map { FaceRig.contains(inner, Point2(Double($0 % size), Double($0 / size))) }
    }

    /// The largest flat region of the interior (as `flatShare` measures it), or of lips and interior
    /// (`withLips`, as `flatShareWithLips`): indices of its pixels in the frame (y × width + x).
    public static func flatRegion(_ image: RGBImage, points: [Point2], withLips: Bool = false) -> [Int] {
        let outer = (FaceIndex.upperOuterLip + FaceIndex.lowerOuterLip.reversed()).map { points[$0] }
        let inner = (FaceIndex.upperInnerLip + FaceIndex.lowerInnerLip.reversed()).map { points[$0] }
        let size = image.width
        let minX = max(0, Int(floor(outer.map(\.x).min()!))), maxX = min(size - 1, Int(ceil(outer.map(\.x).max()!)))
        let minY = max(0, Int(floor(outer.map(\.y).min()!))), maxY = min(size - 1, Int(ceil(outer.map(\.y).max()!)))
        guard minX < maxX, minY < maxY else { return [] }
        let w = maxX - minX + 1, h = maxY - minY + 1
        var luma = [Double](repeating: .nan, count: w * h)
        for y in minY...maxY {
            for x in minX...maxX where FaceRig.contains(withLips ? outer : inner, Point2(Double(x), Double(y))) {
                let i = (y * size + x) * 3
                luma[(y - minY) * w + (x - minX)] = 0.299 * Double(image.pixels[i]) + 0.587 * Double(image.pixels[i + 1]) + 0.114 * Double(image.pixels[i + 2])
            }
        }
        return largestFlatRegionPixels(luma, width: w, height: h).map { (minY + $0 / w) * size + minX + $0 % w }
    }

    static func largestFlatRegionPixels(_ luma: [Double], width: Int, height: Int) -> [Int] {
        var visited = [Bool](repeating: false, count: luma.count)
        var stack: [Int] = []
        var largest: [Int] = []
        var region: [Int] = []
        for seed in luma.indices where !visited[seed] && !luma[seed].isNaN {
            let reference = luma[seed]
            visited[seed] = true
            stack.append(seed)
            region.removeAll(keepingCapacity: true)
            var count = 0, sum = 0.0, squares = 0.0
            while let i = stack.popLast() {
                region.append(i)
                count += 1
                sum += luma[i]
                squares += luma[i] * luma[i]
                let x = i % width
                for (j, ok) in [(i - 1, x > 0), (i + 1, x < width - 1), (i - width, i >= width), (i + width, i + width < luma.count)]
                where ok && !visited[j] && abs(luma[j] - reference) <= 3 {
                    visited[j] = true
                    stack.append(j)
                }
            }
            let mean = sum / Double(count)
            let std = max(squares / Double(count) - mean * mean, 0).squareRoot()
            if std < 2, count > largest.count { largest = region }
        }
        return largest
    }

    /// The intended inner-lip opening of a moved mesh, as MediaPipe would measure it: the gap between landmarks
    /// 13 and 14 over the corner-to-corner width (61–291).
    public static func opening(_ points: [Point2]) -> Double {
        (points[13] - points[14]).length / max((points[61] - points[291]).length, 1e-9)
    }
}

extension RGBImage {
    /// Writes the image as PNG or JPEG (by the extension) through ffmpeg.
    public func write(to path: String) async throws {
        let raw = NSTemporaryDirectory() + "avatar-image-\(UUID().uuidString).rgb"
        defer { try? FileManager.default.removeItem(atPath: raw) }
        try Data(pixels).write(to: URL(fileURLWithPath: raw))
        var arguments = ["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "\(width)x\(height)", "-i", raw]
        if path.lowercased().hasSuffix(".jpg") || path.lowercased().hasSuffix(".jpeg") { arguments += ["-q:v", "3"] }
        let result = await ChildProcess.output(of: arguments + ["-frames:v", "1", "-update", "1", path])
        guard result.status == 0 else { throw AnimationError.encoderFailed(result.lastErrorLine ?? "ffmpeg failed writing \(path)") }
    }

    /// The `width`×`height` region at (`x`, `y`), scaled by `scale` (box-filtered when shrinking).
    public func crop(x: Int, y: Int, width cw: Int, height ch: Int, scale: Double = 1) -> RGBImage {
        let ow = max(1, Int(Double(cw) * scale)), oh = max(1, Int(Double(ch) * scale))
        var out = RGBImage(width: ow, height: oh)
        let step = 1 / scale
        let taps = max(1, Int(step.rounded(.up)))
        for oy in 0..<oh {
            for ox in 0..<ow {
                var sum = (0, 0, 0), n = 0
                for ty in 0..<taps {
                    for tx in 0..<taps {
                        let sx = min(max(x + Int(Double(ox) * step) + tx, 0), width - 1)
                        let sy = min(max(y + Int(Double(oy) * step) + ty, 0), height - 1)
                        let i = (sy * width + sx) * 3
                        sum = (sum.0 + Int(pixels[i]), sum.1 + Int(pixels[i + 1]), sum.2 + Int(pixels[i + 2]))
                        n += 1
                    }
                }
                let o = (oy * ow + ox) * 3
                out.pixels[o] = UInt8(sum.0 / n)
                out.pixels[o + 1] = UInt8(sum.1 / n)
                out.pixels[o + 2] = UInt8(sum.2 / n)
            }
        }
        return out
    }

    /// Pastes `tile` with its top-left corner at (`x`, `y`).
    public mutating func paste(_ tile: RGBImage, x: Int, y: Int) {
        for ty in 0..<tile.height where y + ty >= 0 && y + ty < height {
            for tx in 0..<tile.width where x + tx >= 0 && x + tx < width {
                let s = (ty * tile.width + tx) * 3, d = ((y + ty) * width + x + tx) * 3
                pixels[d] = tile.pixels[s]
                pixels[d + 1] = tile.pixels[s + 1]
                pixels[d + 2] = tile.pixels[s + 2]
            }
        }
    }
}

/// `MouthRealism` over every speaking frame of a clip.
public struct MouthRealismSummary: Sendable {
    /// Speaking frames measured (the lip-sync track's loudness or opening above zero).
    public var frames: Int
    public var flatWorst: Double
    /// The clip frame with the worst flat region (to look at).
    public var flatWorstFrame: Int
    public var flatMedian: Double
    /// Frames whose flat region is over the target (1 % of the box).
    public var flatOverTarget: Int
    /// Worst flat region over lips and interior (`MouthRealism.flatShareWithLips`), and its clip frame.
    public var flatWithLipsWorst: Double
    public var flatWithLipsWorstFrame: Int
    public var flatWithLipsMedian: Double
    public var whiteWorst: Double
    public var whiteMean: Double
    /// Over the frames with an interior of at least 20 pixels.
    public var hueMean: Double
    public var hueWorst: Double
    public var hueFrames: Int
    /// Per measured frame: its index in the clip and the intended inner-lip opening (`MouthRealism.opening`).
    public var frameIndices: [Int]
    public var intendedOpening: [Double]

    /// The pose of clip frame `k` as `measure` renders it.
    public static func pose(_ k: Int, expression: ExpressionTrack, track: MouthTrack) -> FacePose {
        expression.pose(at: Double(k) / track.fps, mouth: track.shapes[k])
    }

    /// Renders every speaking frame of `track` with `renderer` (neutral expression, the export's head motion)
    /// and measures it; `each` sees every measured frame's pixels (e.g. to encode it for MediaPipe).
    public static func measure(_ renderer: FaceRenderer, track: MouthTrack, emotion: Emotion.Label = .neutral, intensity: Double = 0,
                               each: (Int, UnsafePointer<UInt8>) throws -> Void = { _, _ in }) rethrows -> MouthRealismSummary {
        let expression = ExpressionTrack(duration: Double(track.shapes.count) / track.fps, emotion: emotion, intensity: intensity)
        var frame: [UInt8] = []
        var flat: [Double] = [], withLips: [Double] = [], white: [Double] = [], hue: [Double] = []
        var indices: [Int] = [], intended: [Double] = []
        for (k, shape) in track.shapes.enumerated() where shape.loudness > 0 || shape.open > 0.02 {
            _ = shape
            let pose = pose(k, expression: expression, track: track)
            let points = renderer.deform(pose)
            renderer.render(pose, into: &frame)
            let measured = frame.withUnsafeBufferPointer { MouthRealism.measure($0.baseAddress!, size: FaceRig.size, points: points) }
            try frame.withUnsafeBufferPointer { try each(k, $0.baseAddress!) }
            flat.append(measured.flatShare)
            withLips.append(measured.flatShareWithLips)
            white.append(measured.whiteShare)
            if let h = measured.hueDistance { hue.append(h) }
            indices.append(k)
            intended.append(MouthRealism.opening(points))
        }
        let n = Double(max(flat.count, 1))
        let worst = flat.indices.max { flat[$0] < flat[$1] }.map { indices[$0] } ?? 0
        return MouthRealismSummary(frames: flat.count, flatWorst: flat.max() ?? 0, flatWorstFrame: worst, flatMedian: flat.sorted().dropFirst(flat.count / 2).first ?? 0,
                                   flatOverTarget: flat.filter { $0 > 0.01 }.count,
                                   flatWithLipsWorst: withLips.max() ?? 0,
                                   flatWithLipsWorstFrame: withLips.indices.max { withLips[$0] < withLips[$1] }.map { indices[$0] } ?? 0,
                                   flatWithLipsMedian: withLips.sorted().dropFirst(withLips.count / 2).first ?? 0,
                                   whiteWorst: white.max() ?? 0, whiteMean: white.reduce(0, +) / n,
                                   hueMean: hue.isEmpty ? 0 : hue.reduce(0, +) / Double(hue.count), hueWorst: hue.max() ?? 0, hueFrames: hue.count,
                                   frameIndices: indices, intendedOpening: intended)
    }
}
