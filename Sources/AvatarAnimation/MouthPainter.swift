import Foundation

/// The colours of one photo's mouth interior, measured once per photo from the aligned crop: teeth from the
/// whites of the eyes (the photo's own white balance and exposure), cavity and tongue from the lips' colour,
/// and the photo's grain, so drawn areas are as noisy as the skin around them.
struct MouthPalette: Sendable {
    typealias RGB = (Double, Double, Double)
    /// A lit tooth (before shading); no channel above 225, so nothing drawn reaches near-white.
    var teeth: RGB
    /// Teeth in the mouth's own shade: the same light, a third of the way to the lips' hue (light reflected
    /// inside the mouth).
    var shadedTeeth: RGB
    var lips: RGB
    /// The back of the open mouth, lit a little (corners are darker still).
    var cavity: RGB
    /// The cavity's colour at unit luminance (to add light in its hue).
    var cavityHue: RGB
    var tongue: RGB
    /// The photo's grain around the mouth (`PhotoGrain`): its size and its strength per luminance level.
    var grain: PhotoGrain
    /// Where the teeth colour came from: "eye whites", "the photo's white point" or "skin".
    var teethSource: String
    /// The photo's light across the mouth: the lips' right half against their left half, (R − L) / (R + L),
    /// within ±0.25 (the inside of the mouth is lit from the same side).
    var sideLight: Double

    /// One line for logs and benches.
    var summary: String {
        func f(_ c: RGB) -> String { String(format: "(%.0f, %.0f, %.0f)", c.0, c.1, c.2) }
        return "teeth \(f(teeth)) from \(teethSource), lips \(f(lips)), cavity \(f(cavity)), tongue \(f(tongue)), grain \(grain.summary), light from the \(sideLight > 0.02 ? "right" : sideLight < -0.02 ? "left" : "front") (\(String(format: "%+.2f", sideLight)))"
    }

    init(rig: FaceRig) {
        let image = rig.image, points = rig.points
        func luma(_ c: RGB) -> Double { 0.299 * c.0 + 0.587 * c.1 + 0.114 * c.2 }
        func pixel(_ x: Int, _ y: Int) -> RGB {
            let i = (min(max(y, 0), image.height - 1) * image.width + min(max(x, 0), image.width - 1)) * 3
            return (Double(image.pixels[i]), Double(image.pixels[i + 1]), Double(image.pixels[i + 2]))
        }
        /// Pixels inside `polygon` for which `keep` holds.
        func pixels(in polygon: [Point2], where keep: (Point2) -> Bool = { _ in true }) -> [RGB] {
            let minX = Int(floor(polygon.map(\.x).min()!)), maxX = Int(ceil(polygon.map(\.x).max()!))
            let minY = Int(floor(polygon.map(\.y).min()!)), maxY = Int(ceil(polygon.map(\.y).max()!))
            var found: [RGB] = []
            guard minX < maxX, minY < maxY else { return found }
            for y in max(minY, 0)...min(maxY, image.height - 1) {
                for x in max(minX, 0)...min(maxX, image.width - 1) {
                    let p = Point2(Double(x), Double(y))
                    if FaceRig.contains(polygon, p), keep(p) { found.append(pixel(x, y)) }
                }
            }
            return found
        }
        /// The mean of the colours whose luminance rank lies in `range` (shares of the sorted list).
        func mean(_ colors: [RGB], ranks range: ClosedRange<Double>) -> RGB? {
            guard colors.count >= 8 else { return nil }
            let sorted = colors.sorted { luma($0) < luma($1) }
            let slice = sorted[Int(range.lowerBound * Double(sorted.count))..<max(Int(range.upperBound * Double(sorted.count)), Int(range.lowerBound * Double(sorted.count)) + 1)]
            let sum = slice.reduce((0.0, 0.0, 0.0)) { ($0.0 + $1.0, $0.1 + $1.1, $0.2 + $1.2) }
            let n = Double(slice.count)
            return (sum.0 / n, sum.1 / n, sum.2 / n)
        }

        // Skin: two discs on the cheeks, for its colour.
        var skinColors: [RGB] = []
        let radius = max(0.05 * rig.faceHeight, 3)
        for cheek in [points[50], points[280]] {
            let cx = Int(cheek.x), cy = Int(cheek.y), r = Int(radius)
            for y in (cy - r)...(cy + r) where y > 0 && y < image.height - 1 {
                for x in (cx - r)...(cx + r) where x > 0 && x < image.width - 1 && (x - cx) * (x - cx) + (y - cy) * (y - cy) <= r * r {
                    skinColors.append(pixel(x, y))
                }
            }
        }
        let skin = mean(skinColors, ranks: 0.2...0.9) ?? (170, 130, 110)

        // Eye whites: inside the lids, away from the iris; the brighter half.
        var whites: [RGB] = []
        for (upper, lower, iris) in [(FaceIndex.rightEyeUpper, FaceIndex.rightEyeLower, FaceIndex.rightIris),
                                     (FaceIndex.leftEyeUpper, FaceIndex.leftEyeLower, FaceIndex.leftIris)] {
            let polygon = (upper + lower.reversed()).map { points[$0] }
            let centre = points[iris[0]]
            let irisRadius = iris.dropFirst().map { (points[$0] - centre).length }.reduce(0, +) / Double(iris.count - 1)
            whites += pixels(in: polygon) { ($0 - centre).length > irisRadius * 1.15 }
        }

        func chroma(_ c: RGB) -> Double { (max(c.0, c.1, c.2) - min(c.0, c.1, c.2)) / max(c.0, c.1, c.2, 1) }
        // The white reference: the brightest tenth of the eye whites when they are open, clear and light enough;
        // otherwise the photo's own white point (the brightest nearly grey pixels of the crop: a collar, a highlight).
        var white: RGB
        if let eyes = mean(whites, ranks: 0.88...1), chroma(eyes) < 0.25, luma(eyes) > 0.9 * luma(skin) {
            white = eyes
            teethSource = "eye whites"
        } else {
            var greys: [RGB] = []
            for i in stride(from: 0, to: image.pixels.count, by: 3 * 3) {
                let c = (Double(image.pixels[i]), Double(image.pixels[i + 1]), Double(image.pixels[i + 2]))
                if chroma(c) < 0.2, luma(c) > luma(skin) { greys.append(c) }
            }
            if let patch = mean(greys, ranks: 0.9...0.99) {
                // Half its tint: a light blue shirt should not make the teeth blue.
                let grey = luma(patch)
                white = ((patch.0 + grey) / 2, (patch.1 + grey) / 2, (patch.2 + grey) / 2)
                teethSource = "the photo's white point"
            } else {
                let level = min(luma(skin) * 1.5, 230)
                white = (level, level, level)
                teethSource = "skin"
            }
        }
        // Teeth: a little warmer than white, about 85 % of the white's light, but at least 10 % above the skin
        // (shadowed eyes) and never above 215 (a lit tooth before shading; shading only darkens).
        let warm: RGB = (white.0 * 0.98, white.1 * 0.94, white.2 * 0.84)
        let target = min(max(0.85 * luma(white), 1.1 * luma(skin), 70), 215)
        var teeth = (warm.0 * target / luma(warm), warm.1 * target / luma(warm), warm.2 * target / luma(warm))
        let brightest = max(teeth.0, teeth.1, teeth.2)
        if brightest > 225 { teeth = (teeth.0 * 225 / brightest, teeth.1 * 225 / brightest, teeth.2 * 225 / brightest) }
        self.teeth = teeth

        // Lips: between the inner and outer contours, without the darkest quarter (the seam between the lips).
        let inner = (FaceIndex.upperInnerLip + FaceIndex.lowerInnerLip.reversed()).map { points[$0] }
        let outer = (FaceIndex.upperOuterLip + FaceIndex.lowerOuterLip.reversed()).map { points[$0] }
        let lips = mean(pixels(in: outer) { !FaceRig.contains(inner, $0) }, ranks: 0.25...0.9) ?? (150, 80, 80)
        grain = PhotoGrain(image, around: outer, without: inner, mouthWidth: rig.mouthWidth)
        self.lips = lips
        let middle = (points[FaceIndex.upperInnerLip.first!].x + points[FaceIndex.upperInnerLip.last!].x) / 2
        let leftLips = mean(pixels(in: outer) { $0.x < middle && !FaceRig.contains(inner, $0) }, ranks: 0.25...0.9).map(luma)
        let rightLips = mean(pixels(in: outer) { $0.x >= middle && !FaceRig.contains(inner, $0) }, ranks: 0.25...0.9).map(luma)
        if let leftLips, let rightLips, leftLips + rightLips > 0 {
            sideLight = min(max((rightLips - leftLips) / (rightLips + leftLips), -0.25), 0.25)
        } else {
            sideLight = 0
        }
        let scale = luma(self.teeth) / max(luma(lips), 1)
        shadedTeeth = (self.teeth.0 * 0.67 + lips.0 * scale * 0.33, self.teeth.1 * 0.67 + lips.1 * scale * 0.33, self.teeth.2 * 0.67 + lips.2 * scale * 0.33)
        // The cavity keeps the lips' hue at a fraction of their light; the tongue is a lit version of it.
        cavity = (lips.0 * 0.4 + 4, lips.1 * 0.28 + 3, lips.2 * 0.29 + 3)
        let cavityLuma = max(luma(cavity), 1)
        cavityHue = (cavity.0 / cavityLuma, cavity.1 / cavityLuma, cavity.2 / cavityLuma)
        tongue = (min(lips.0 * 0.95 + 10, 230), lips.1 * 0.72 + 4, lips.2 * 0.76 + 4)
    }
}

extension FaceRenderer {
    /// One pixel column of the mouth interior.
    struct MouthColumn {
        var top = 0.0, bottom = 0.0, across = 0.0
        /// The photo's own interior at this column (a smiling photo): where to copy it from.
        var photo = false
        var restX = 0.0, restTop = 0.0, restGap = 0.0
        /// Drawn teeth: the upper teeth's lower edge, the lower teeth's upper edge, the tongue's top.
        var upperEdge = 0.0, lowerEdge = 0.0, tongueTop = 0.0
        /// Light across the mouth (corners dark), teeth visibility (none at the corners), the dark line between
        /// two teeth (0…1 here), the same between two lower teeth (narrower than the upper ones).
        var light = 1.0, teethShare = 1.0, separation = 0.0, lowerSeparation = 0.0
        /// Coverage of this pixel column by the interior, from three sub-columns.
        var subTop = (0.0, 0.0, 0.0), subBottom = (0.0, 0.0, 0.0)
        /// Where the upper teeth end (drawn or the photo's): the palate behind them lies in their shadow.
        var teethBottom = 0.0
        /// The throat: how much darker at its middle (0 where it does not show), its height and half-height.
        var throat = 0.0, throatY = 0.0, throatHeight = 1.0
        /// The photo's side light at this column (a factor around 1).
        var side = 1.0
        /// Pixels from the nearer mouth corner (along the mouth).
        var fromCorner = 0.0
        /// Where across its tooth this column is: 0 at the tooth's middle, 1 at its sides (upper and lower row).
        var toothSide = 0.0, lowerToothSide = 0.0
    }

    /// Tooth widths from the middle outwards (central incisor, lateral incisor, canine, two premolars) as shares
    /// of the inner mouth width, foreshortened towards the corners.
    static let toothWidths = [0.165, 0.125, 0.1, 0.08, 0.07]
    /// The lower teeth's: the lower incisors are about two thirds as wide as the upper ones (5.4 and 5.9 mm
    /// against 8.6 and 6.6 mm), so their gaps fall elsewhere and the two rows' edges do not run parallel.
    static let lowerToothWidths = [0.105, 0.11, 0.095, 0.08, 0.07]

    /// Which tooth of a row with `widths` lies `fromMiddle` (share of the inner mouth width) from the middle,
    /// and where in it (0…1 from its inner side).
    @inline(__always)
    static func tooth(_ fromMiddle: Double, _ widths: [Double]) -> (index: Int, within: Double, width: Double) {
        var start = 0.0
        for (i, tw) in widths.enumerated() {
            if fromMiddle < start + tw || i == widths.count - 1 { return (i, min((fromMiddle - start) / tw, 1), tw) }
            start += tw
        }
        return (widths.count - 1, 1, widths.last!)
    }

    /// The inside of the mouth between the moved inner lip contours, anti-aliased by the exact vertical coverage
    /// of three sub-columns per pixel.
    ///
    /// A photo that shows its own mouth interior keeps it: its upper 70 % is copied unscaled under the upper lip
    /// and its lower 30 % above the lower lip (the lower teeth ride with the jaw). A closed-mouth photo gets
    /// drawn teeth: the upper row hangs from the upper lip (fixed to the skull as the lip lifts), follows the
    /// lip's curve, each tooth with rounded corners and a faint line to the next, shaded under the lip and
    /// towards the corners; the lower row shows only at wide openings. Between them a dark cavity in the lips'
    /// hue, darker at the corners, and the tongue at open vowels (raised for t, d, n, l). Everything drawn
    /// carries the photo's own grain, anchored to the mouth so it moves with it.
    func paintMouth(_ points: [Point2], _ pose: FacePose, _ out: UnsafeMutablePointer<UInt8>) {
        let size = FaceRig.size
        let upperLip = FaceIndex.upperInnerLip.map { points[$0] }
        let lowerLip = FaceIndex.lowerInnerLip.map { points[$0] }
        let upperRest = FaceIndex.upperInnerLip.map { rig.points[$0] }
        let lowerRest = FaceIndex.lowerInnerLip.map { rig.points[$0] }
        let left = upperLip.first!.x, right = upperLip.last!.x
        let minX = max(0, Int(floor(left))), maxX = min(size - 1, Int(ceil(right)))
        let w = rig.mouthWidth
        let band = max(1.5, 0.035 * w)
        let minY = max(0, Int(floor(upperLip.map(\.y).min()!))), maxY = min(size - 1, Int(ceil(lowerLip.map(\.y).max()! + band)))
        guard minX < maxX, minY < maxY, right - left > 2 else { return }
        let restLeft = upperRest.first!.x, restRight = upperRest.last!.x
        let open = min(max(pose.jawOpen, 0), 1)
        // The upper lip lifts with the jaw (`deform`); the teeth stay, so more of them shows.
        let upperShow = 0.07 * w + 0.05 * w * open
        let lowerShow = 0.06 * w * Self.smoothstep(0.2, 0.9, open)
        let tongueRaise = min(max(pose.tongueRaise, 0), 1)

        // The tongue fills the floor of a wide-open mouth (half-width 0.36 of the mouth); through a small opening
        // only its tip shows, narrower than the mouth (half-width 0.25 while the middle of the opening is under 8 %
        // of the mouth's width, widening up to 35 %), the dark cavity beside it.
        let tongueHalfWidth = 0.25 + 0.11 * Self.smoothstep(0.08 * w, 0.35 * w, points[14].y - points[13].y)
        var columns = [MouthColumn](repeating: MouthColumn(), count: maxX - minX + 1)
        for x in minX...maxX {
            var c = MouthColumn()
            let px = Double(x)
            c.across = (px - left) / (right - left)
            c.top = Self.curve(upperLip, at: px)
            c.bottom = Self.curve(lowerLip, at: px)
            let subs = [px - 1.0 / 3, px, px + 1.0 / 3].map { sx -> (Double, Double) in
                guard sx > left, sx < right else { return (0, 0) }
                return (Self.curve(upperLip, at: sx), Self.curve(lowerLip, at: sx))
            }
            c.subTop = (subs[0].0, subs[1].0, subs[2].0)
            c.subBottom = (subs[0].1, subs[1].1, subs[2].1)
            c.restX = restLeft + c.across * (restRight - restLeft)
            c.restTop = Self.curve(upperRest, at: c.restX)
            c.restGap = Self.curve(lowerRest, at: c.restX) - c.restTop
            c.photo = c.restGap > 0.06 * w
            let a = min(max(c.across, 0), 1)
            let fromMiddle = abs(a - 0.5)
            c.light = 0.3 + 0.7 * pow(sin(.pi * a), 0.7)
            // The side teeth (premolars) reach nearly to the corners, in the corners' shade.
            c.teethShare = Self.smoothstep(0.02, 0.08, min(a, 1 - a))
            // Which tooth, and where in it (0…1 from its inner side).
            let (index, within, width) = Self.tooth(fromMiddle, Self.toothWidths)
            let toBoundary = min(within, 1 - within) * width * (right - left)
            c.separation = exp(-toBoundary * toBoundary / 0.5)
            let lowerTooth = Self.tooth(fromMiddle, Self.lowerToothWidths)
            let toLowerBoundary = min(lowerTooth.within, 1 - lowerTooth.within) * lowerTooth.width * (right - left)
            c.lowerSeparation = exp(-toLowerBoundary * toLowerBoundary / 0.5)
            c.toothSide = abs(2 * within - 1)
            c.lowerToothSide = abs(2 * lowerTooth.within - 1)
            // The edge follows the lip's curve, rises towards the corners, each tooth rounded at its corners,
            // the canine a little pointed, the lateral incisors a little shorter.
            let corner = min(within, 1 - within)
            let rounding = corner < 0.3 ? pow(1 - corner / 0.3, 2) : 0
            var length = upperShow * (1 - 0.7 * pow(2 * fromMiddle, 2))
            length -= 0.02 * w * rounding
            if index == 1 { length -= 0.008 * w }
            if index == 2 { length += 0.012 * w * (1 - 2 * abs(within - 0.5)) - 0.006 * w }
            c.upperEdge = c.top + length
            let lowerCorner = min(lowerTooth.within, 1 - lowerTooth.within)
            let lowerRounding = lowerCorner < 0.3 ? pow(1 - lowerCorner / 0.3, 2) : 0
            c.lowerEdge = c.bottom - lowerShow * (1 - 1.6 * pow(2 * fromMiddle, 2)) + 0.012 * w * lowerRounding
            // The tongue lies on the floor of the mouth behind the lower teeth; it shows once the mouth is
            // open more than a tenth of its width, more when raised (t, d, n, l).
            let gap = c.bottom - c.top
            let dome = max(0, 1 - pow((a - 0.5) / tongueHalfWidth, 2)).squareRoot()
            // In a narrow gap the tongue's tip shows just behind the teeth, in their shadow.
            c.tongueTop = c.bottom - (max(0, gap - 0.08 * w) * (0.45 + 0.4 * tongueRaise) + 0.8 * lowerShow + 0.5 * min(gap, 0.08 * w)) * dome
            c.teethBottom = c.photo ? c.top + 0.7 * c.restGap : c.upperEdge
            // The throat shows between the palate and the tongue's back once the mouth is well open: darkest in
            // the middle, a soft oval about a third of the mouth wide.
            let throatTop = max(c.teethBottom, c.top), throatBottom = max(min(c.tongueTop, c.bottom), throatTop + 1)
            c.throat = 0.55 * exp(-pow((a - 0.5) / 0.17, 2)) * Self.smoothstep(0.1 * w, 0.25 * w, gap)
            c.throatY = throatTop + 0.55 * (throatBottom - throatTop)
            c.throatHeight = max(0.5 * (throatBottom - throatTop), 1)
            c.side = 1 + 2 * palette.sideLight * (a - 0.5)
            c.fromCorner = min(a, 1 - a) * (right - left)
            columns[x - minX] = c
        }

        // Grain and surfaces move with the mouth: the palate and cavity with the upper lip, the tongue with the
        // lower lip (the jaw).
        // The surfaces' relief has the same size relative to the mouth whatever the photo's scale (a small face's
        // mouth does not get coarser blotches than a large one's).
        let surfaceScale = Self.surfaceMouthWidth / w
        let anchorX = Int(points[13].x.rounded()), anchorY = Int(points[13].y.rounded())
        let lowerX = Int(points[14].x.rounded()), lowerY = Int(points[14].y.rounded())
        var sample = (UInt8(0), UInt8(0), UInt8(0))
        palette.grain.tile.withUnsafeBufferPointer { grainTile in
        palette.grain.levels.withUnsafeBufferPointer { grainLevels in
        Self.surfaceTexture.withUnsafeBufferPointer { surface in
        rig.image.pixels.withUnsafeBufferPointer { photo in
            withUnsafeMutableBytes(of: &sample) { buffer in
                let sampled = buffer.baseAddress!.assumingMemoryBound(to: UInt8.self)
                for x in minX...maxX {
                    let c = columns[x - minX]
                    guard c.across > 0, c.across < 1 else { continue }
                    let gap = c.bottom - c.top
                    // Lips parted: the lower lip's inner edge shows its wet, darker side.
                    let wet = 0.2 * Self.smoothstep(0, 0.08 * w, gap) * Self.smoothstep(0.02, 0.12, min(c.across, 1 - c.across))
                    // Only the rows this column's interior (and the wet band under it) can touch.
                    let rowTop = max(minY, Int(floor(min(c.subTop.0, c.subTop.1, c.subTop.2) - 0.5)))
                    let rowBottom = min(maxY, Int(ceil(max(c.subBottom.0, c.subBottom.1, c.subBottom.2, c.bottom + band) + 0.5)))
                    guard rowTop <= rowBottom else { continue }
                    for y in rowTop...rowBottom {
                        let py = Double(y)
                        let pixel = out + (y * size + x) * 3
                        var alpha = Self.coverage(c.subTop.0, c.subBottom.0, py) + Self.coverage(c.subTop.1, c.subBottom.1, py) + Self.coverage(c.subTop.2, c.subBottom.2, py)
                        alpha /= 3
                        if alpha <= 0 {
                            if wet > 0, py > c.bottom, py < c.bottom + band {
                                let keep = 1 - wet * (1 - (py - c.bottom) / band)
                                pixel[0] = UInt8(Double(pixel[0]) * keep)
                                pixel[1] = UInt8(Double(pixel[1]) * (keep - 0.03 * wet))
                                pixel[2] = UInt8(Double(pixel[2]) * (keep - 0.02 * wet))
                            }
                            continue
                        }
                        let yc = min(max(py, c.top), c.bottom)
                        // Wet, uneven surfaces (see `surfaceTexture`).
                        let ux = Int((Double(x - anchorX) * surfaceScale).rounded(.down)), uy = Int((Double(y - anchorY) * surfaceScale).rounded(.down))
                        let lx = Int((Double(x - lowerX) * surfaceScale).rounded(.down)), ly = Int((Double(y - lowerY) * surfaceScale).rounded(.down))
                        let upperSurface = Double(surface[((uy + 128) & 255) << 8 | ((ux + 128) & 255)])
                        let lowerSurface = Double(surface[((ly + 64) & 255) << 8 | ((lx + 96) & 255)])
                        var drawn = 1.0
                        var color = interiorColor(c, yc, gap, w, upperSurface, lowerSurface, sampled, photo.baseAddress!, &drawn)
                        if drawn > 0 {
                            // The photo's grain at this light: its own size, anchored to the mouth — the upper half of
                            // the opening (upper teeth, palate) to the upper lip, the lower half (tongue, lower teeth)
                            // to the lower lip, so the grain does not slide over what moves with the jaw.
                            let level = Int(min(max(0.299 * color.0 + 0.587 * color.1 + 0.114 * color.2, 0), 255))
                            let lower = py > (c.top + c.bottom) / 2
                            let gx = x - (lower ? lowerX : anchorX), gy = y - (lower ? lowerY : anchorY)
                            let noise = drawn * Double(grainLevels[level] * grainTile[(gy & PhotoGrain.mask) << PhotoGrain.shift | (gx & PhotoGrain.mask)])
                            color = (color.0 + noise, color.1 + noise, color.2 + noise)
                        }
                        color = (min(max(color.0, 0), 240), min(max(color.1, 0), 240), min(max(color.2, 0), 240))
                        pixel[0] = UInt8(Double(pixel[0]) * (1 - alpha) + color.0 * alpha)
                        pixel[1] = UInt8(Double(pixel[1]) * (1 - alpha) + color.1 * alpha)
                        pixel[2] = UInt8(Double(pixel[2]) * (1 - alpha) + color.2 * alpha)
                    }
                }
            }
        }
        }
        }
        }
    }

    /// The colour at height `y` of one interior column; `drawn` is the share of it that is drawn (0 where it is the
    /// photo's own pixel; the photo's grain is added in that share).
    @inline(__always)
    private func interiorColor(_ c: MouthColumn, _ y: Double, _ gap: Double, _ w: Double, _ upperSurface: Double,
                               _ lowerSurface: Double, _ sampled: UnsafeMutablePointer<UInt8>, _ photo: UnsafePointer<UInt8>,
                               _ drawn: inout Double) -> (Double, Double, Double) {
        let fromTop = y - c.top, fromBottom = c.bottom - y
        if c.photo {
            // The photo's own interior, its edges anti-aliased: the share of this pixel row above the cut under the
            // upper teeth and the share below the one over the lower teeth are the photo's (at rest the two cuts
            // meet and the pixel is all photo), the rest is drawn.
            let upper = min(max(0.7 * c.restGap - fromTop + 0.5, 0), 1)
            let lower = min(max(0.3 * c.restGap - fromBottom + 0.5, 0), 1)
            if upper > 0 || lower > 0 {
                let total = upper + lower
                var own = (0.0, 0.0, 0.0)
                if upper > 0 {
                    rig.image.sample(c.restX, c.restTop + fromTop, into: sampled, photo)
                    let k = upper / total
                    own = (own.0 + k * Double(sampled[0]), own.1 + k * Double(sampled[1]), own.2 + k * Double(sampled[2]))
                }
                if lower > 0 {
                    rig.image.sample(c.restX, c.restTop + c.restGap - fromBottom, into: sampled, photo)
                    let k = lower / total
                    own = (own.0 + k * Double(sampled[0]), own.1 + k * Double(sampled[1]), own.2 + k * Double(sampled[2]))
                }
                // (At rest the two shares add up to 1 but for rounding.)
                let share = total > 0.999 ? 1 : total
                drawn = 1 - share
                if share == 1 { return own }
                return Self.blend(paintedColor(c, y, gap, w, upperSurface, lowerSurface), own, share)
            }
        }
        return paintedColor(c, y, gap, w, upperSurface, lowerSurface)
    }

    /// The drawn interior at height `y` of one column: cavity, tongue, the lips' lining, drawn teeth.
    @inline(__always)
    private func paintedColor(_ c: MouthColumn, _ y: Double, _ gap: Double, _ w: Double, _ upperSurface: Double,
                              _ lowerSurface: Double) -> (Double, Double, Double) {
        let p = palette
        let fromTop = y - c.top, fromBottom = c.bottom - y
        // Cavity: lit through the opening, so darkest towards the corners, at the back (the middle of the gap) and
        // in the throat; lighter on the side the photo is lit from; an
        // uneven wet surface that still shows a little where the light is nearly gone (the photo's grain is added by the caller).
        let depth = gap > 0 ? min(max(fromTop / gap, 0), 1) : 0
        var cavityLight = c.light * c.side * (0.7 + 0.3 * abs(2 * depth - 1))
        if c.throat > 0 {
            let t = (y - c.throatY) / c.throatHeight
            cavityLight *= 1 - c.throat * exp(-t * t)
        }
        cavityLight *= 1 + Self.surfaceRelief * upperSurface
        // The bottom of the opening: the lower teeth, or the lower lip where they do not show.
        let floor = !c.photo && c.teethShare > 0 && c.lowerEdge < c.bottom - 0.5 ? c.lowerEdge : c.bottom
        // The upper teeth's shadow: right under their edges (drawn or the photo's) the light from above and in
        // front does not reach; over about a pixel at the crop's scale, following each tooth's rounded edge.
        // Below that the opening is lit from the bottom up: the floor of the mouth (the tongue) faces the light
        // coming in over the lower lip, the wall right under the palate does not, so the pocket under the teeth
        // brightens downwards (a gradient, not one black): from 0.55 of the cavity's light right under the teeth to
        // 2.35 at the floor, steep enough in a narrow pocket that no band of equal light runs along it.
        var teethShade = 1.0
        var fromPalate = 1.0
        let underTeeth = y - c.teethBottom
        if underTeeth > -0.5 {
            let share = c.photo ? 1 : c.teethShare
            if share > 0 {
                teethShade = 1 - 0.6 * share * exp(-max(underTeeth, 0) / max(0.8, 0.012 * w))
                let rise = Self.smoothstep(0, 1, underTeeth / max(floor - c.teethBottom, 1))
                fromPalate = 1 + share * (1.8 * rise - 0.45)
            }
        }
        // The bottom of the opening is a crevice too: just above it less light reaches the tongue and cavity, so a
        // narrow gap is lit in its middle.
        teethShade *= 1 - 0.45 * exp(-max(floor - y, 0) / max(0.8, 0.012 * w))
        cavityLight *= teethShade * fromPalate
        let lift = Self.surfaceLift * upperSurface
        var color = (p.cavity.0 * cavityLight + lift * p.cavityHue.0, p.cavity.1 * cavityLight + lift * p.cavityHue.1,
                     p.cavity.2 * cavityLight + lift * p.cavityHue.2)
        // Tongue: lit on top, darker further down and back, a faint groove in the middle.
        if y > c.tongueTop - 0.5, c.tongueTop < c.bottom {
            let t = min(max((y - c.tongueTop) / max(c.bottom - c.tongueTop, 1), 0), 1)
            let groove = 1 - 0.12 * exp(-pow((c.across - 0.5) / 0.04, 2))
            // The tip is round: its top turns away from the light (a quarter circle about 5 % of the mouth wide),
            // so in a narrow gap the tongue shows as a lit band under a dark rim, not one flat colour.
            let rim = 1 - min(max((y - c.tongueTop) / max(1.5, 0.05 * w), 0), 1)
            let rounded = (1 - rim * rim).squareRoot()
            let light = (0.3 + 0.55 * rounded) * (1 - 0.35 * t) * teethShade * c.light * c.side * groove * (1 + Self.tongueRelief * lowerSurface) * (0.5 + 0.5 * Self.smoothstep(0.02 * w, 0.12 * w, gap))
            let alpha = min(max(y - c.tongueTop + 0.5, 0), 1)
            color = Self.blend(color, (p.tongue.0 * light, p.tongue.1 * light, p.tongue.2 * light), alpha)
        }
        // Towards the corners, where no teeth are, the lips' inner side wraps into the mouth: their colour in
        // shade along the contour, fading into the cavity over a few pixels (no dark seam at the corners).
        let cornerness = 1 - Self.smoothstep(0.06, 0.22, min(c.across, 1 - c.across))
        if cornerness > 0 {
            let edge = max(min(fromTop, fromBottom), 0)
            // At the corner itself the lining is all there is: lit like the lips, turning into the dark over a few
            // pixels from the corner inwards (a gradient, not a dark wedge).
            let wrap = 0.85 * max(cornerness * exp(-edge / (0.04 * w)), exp(-c.fromCorner / (0.05 * w)))
            // The lining is as wet and uneven as the rest of the mouth (a flat lining left the corners one colour).
            let shade = 0.55 * c.side * (1 + Self.liningRelief * upperSurface)
            color = Self.blend(color, (p.lips.0 * shade, p.lips.1 * shade, p.lips.2 * shade), wrap)
        }
        guard !c.photo, c.teethShare > 0 else { return color }
        let shadow = 0.72 + 0.28 * Self.smoothstep(0, 0.1 * w, gap)
        // Lower teeth: only at wide openings, in the upper teeth's shadow.
        if c.lowerEdge < c.bottom - 0.5, y > c.lowerEdge - 0.5 {
            let t = min(max((c.bottom - y) / max(c.bottom - c.lowerEdge, 1), 0), 1)
            let light = (0.5 + 0.2 * Self.smoothstep(0, 0.6, t)) * c.light * c.side * shadow * (1 - 0.3 * c.lowerSeparation) * (1 - Self.toothRoundness * c.lowerToothSide * c.lowerToothSide)
            let alpha = min(max(y - c.lowerEdge + 0.5, 0), 1) * c.teethShare
            color = Self.blend(color, (p.shadedTeeth.0 * light, p.shadedTeeth.1 * light, p.shadedTeeth.2 * light), alpha)
        }
        // Upper teeth: in the lip's shadow at the top, a translucent, slightly cooler incisal edge.
        if y < c.upperEdge + 0.5 {
            let span = max(c.upperEdge - c.top, 1)
            let t = min(max(fromTop / span, 0), 1)
            var light = (0.62 + 0.38 * Self.smoothstep(0, 0.55, t)) * c.light * c.side * shadow * (1 + 0.04 * upperSurface)
            light *= 1 - c.separation * (0.06 + 0.22 * t)
            // Each tooth is rounded across (a labial face, not a flat plate): a little darker towards its sides.
            light *= 1 - Self.toothRoundness * c.toothSide * c.toothSide
            // It also curves back towards its biting edge: its light falls off over its lower half (no flat plateau
            // between the lip's shadow and the edge).
            light *= 1 - Self.incisalFalloff * Self.smoothstep(0.45, 1, t)
            let edge = Self.smoothstep(0.8, 1, t)
            let alpha = min(max(c.upperEdge - y + 0.5, 0), 1) * c.teethShare
            // Lit in the middle of the tooth, the mouth's shade (and hue) under the lip and in a narrow gap.
            let lit = Self.smoothstep(0.15, 0.7, t) * Self.smoothstep(0.02 * w, 0.12 * w, gap)
            let base = Self.blend(p.shadedTeeth, p.teeth, lit)
            let tooth = (base.0 * light * (1 - 0.09 * edge), base.1 * light * (1 - 0.08 * edge), base.2 * light * (1 - 0.05 * edge))
            color = Self.blend(color, tooth, alpha)
        }
        return color
    }

    @inline(__always)
    static func blend(_ a: (Double, Double, Double), _ b: (Double, Double, Double), _ t: Double) -> (Double, Double, Double) {
        (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t, a.2 + (b.2 - a.2) * t)
    }

    /// How much of the pixel row [y − ½, y + ½] lies between `top` and `bottom`.
    @inline(__always)
    static func coverage(_ top: Double, _ bottom: Double, _ y: Double) -> Double {
        max(0, min(y + 0.5, bottom) - max(y - 0.5, top))
    }

    /// How far the wet surfaces' unevenness moves the cavity's light (a factor 1 ± this × `surfaceTexture`), and
    /// the luminance levels it still adds where the cavity is nearly black; the same for the tongue.
    static let surfaceRelief = 0.6
    static let surfaceLift = 6.0
    static let tongueRelief = 0.4
    /// The same for the lips' inner side (the lining that wraps into the mouth towards the corners).
    static let liningRelief = 0.6
    /// How much darker a tooth is at its sides than in its middle (it curves away from the light).
    static let toothRoundness = 0.1
    /// How much darker a tooth is at its biting edge than at its most lit point, a little below the lip's shadow.
    static let incisalFalloff = 0.08
    /// The mouth width (px) at which `surfaceTexture` is used unscaled; other mouths sample it scaled to their
    /// width, so its features are about 6 % and 3 % of the mouth's width on every photo.
    static let surfaceMouthWidth = 100.0

    /// The uneven, wet surfaces inside the mouth (palate, cheeks, tongue), 256×256 pixels around an anchor on
    /// the lips, computed once: gradient noise of two octaves (features about 6 and 3 px across where the mouth
    /// is 100 px wide, scaled to the mouth's width by `surfaceMouthWidth`) on a lattice turned by 35°, so no grid or checkerboard
    /// shows; about −1…1 with a standard deviation near 0.35.
    static let surfaceTexture: [Float] = {
        var texture = [Float](repeating: 0, count: 256 * 256)
        let turn = 35 * Double.pi / 180, c = cos(turn), s = sin(turn)
        for y in 0..<256 {
            for x in 0..<256 {
                let u = (Double(x) * c - Double(y) * s), v = (Double(x) * s + Double(y) * c)
                let value = gradientNoise(u / 6, v / 6, seed: 11) + 0.5 * gradientNoise(u / 3 + 17.3, v / 3 + 5.1, seed: 23)
                texture[y * 256 + x] = Float(min(max(value * 1.45, -1), 1))
            }
        }
        return texture
    }()

    /// Gradient (Perlin) noise at (`x`, `y`): a pseudo-random unit gradient at every lattice point, quintic
    /// interpolation; about −0.7…0.7.
    static func gradientNoise(_ x: Double, _ y: Double, seed: Int) -> Double {
        let ix = Int(floor(x)), iy = Int(floor(y))
        let fx = x - Double(ix), fy = y - Double(iy)
        func dot(_ i: Int, _ j: Int, _ dx: Double, _ dy: Double) -> Double {
            let angle = (noise(i &+ seed &* 7919, j &- seed &* 104_729) + 0.5) * 2 * .pi
            return cos(angle) * dx + sin(angle) * dy
        }
        func fade(_ t: Double) -> Double { t * t * t * (t * (t * 6 - 15) + 10) }
        let u = fade(fx), v = fade(fy)
        let top = dot(ix, iy, fx, fy) * (1 - u) + dot(ix + 1, iy, fx - 1, fy) * u
        let bottom = dot(ix, iy + 1, fx, fy - 1) * (1 - u) + dot(ix + 1, iy + 1, fx - 1, fy - 1) * u
        return top * (1 - v) + bottom * v
    }

    /// Deterministic noise in −0.5…0.5 (uniform, σ ≈ 0.29) at an integer position.
    @inline(__always)
    static func noise(_ x: Int, _ y: Int) -> Double {
        var h = UInt32(truncatingIfNeeded: x &* 374_761_393 &+ y &* 668_265_263)
        h = (h ^ (h >> 13)) &* 1_274_126_177
        h ^= h >> 16
        return Double(h & 0xFFFF) / 65535 - 0.5
    }
}
