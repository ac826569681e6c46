import Foundation

/// Everything that moves in one frame.
public struct FacePose: Sendable, Equatable {
    /// 0 closed … 1 wide open.
    public var jawOpen = 0.0
    /// -1 rounded (o, u) … 1 wide (i, e).
    public var lipWidth = 0.0
    /// 0 … 1 lips pressed together (m, b, p), whatever the photo's own mouth: the inner lip contours meet.
    public var lipClose = 0.0
    /// 0 … 1 lower lip up against the upper teeth (f, v).
    public var lipToTeeth = 0.0
    /// 0 … 1 tongue tip raised behind the upper teeth (t, d, n, l); drawn only, moves no vertex.
    public var tongueRaise = 0.0
    /// -1 sad … 1 happy.
    public var smile = 0.0
    /// 0 open … 1 closed.
    public var blink = 0.0
    /// Brow raise, -1 (frown) … 1 (surprise).
    public var brows = 0.0
    /// Where the eyes look, -1…1 on each axis (0, 0: at the camera).
    public var gaze = Point2(0, 0)
    /// Head roll in radians and a small shift in pixels.
    public var headRoll = 0.0
    public var headOffset = Point2(0, 0)

    public init() {}
}

/// CPU renderer: moves the rig's vertices for a pose, warps the photo piecewise-affinely, and paints the
/// mouth interior (`MouthPainter.swift`: the photo's own teeth or drawn ones, cavity, tongue).
public struct FaceRenderer: Sendable {
    /// Bumped when the renderer's output changes, so results cached by it (`avatar generate`'s exports, the
    /// server's video jobs) are not served again. 6: the lips move as one, are resampled with Catmull–Rom, and the
    /// opening tapers to its corners (and the mouth work of issue 15 before it, which did not bump it).
    public static let version = 6

    public let rig: FaceRig
    /// Teeth, cavity and tongue colours and the grain, measured once from the photo.
    let palette: MouthPalette

    public init(rig: FaceRig) {
        self.rig = rig
        palette = MouthPalette(rig: rig)
    }

    init(rig: FaceRig, palette: MouthPalette) {
        self.rig = rig
        self.palette = palette
    }

    /// To look at where a frame's pixels come from (`avatar bench realism --frames-dir`): true for every pixel
    /// of the frame for `pose` that depends on the photo (warped, or a smiling photo's own teeth copied into the
    /// mouth, or a drawn pixel's anti-aliased edge), false where the painter drew it from the palette alone.
    /// Renders the frame again from the photo with every bit 7 flipped and the same palette, and compares.
    public func photoSourced(_ pose: FacePose) -> [Bool] {
        var altered = rig
        altered.image.pixels = rig.image.pixels.map { $0 ^ 0x80 }
        let a = render(pose).pixels, b = FaceRenderer(rig: altered, palette: palette).render(pose).pixels
        var changed = [Bool](repeating: false, count: a.count / 3)
        for i in a.indices where a[i] != b[i] { changed[i / 3] = true }
        return changed
    }

    /// The mouth interior's colours as measured from the photo (teeth, lips, cavity, tongue, grain).
    public var mouthColors: String { palette.summary }

    /// The vertex positions for a pose.
    public func deform(_ pose: FacePose) -> [Point2] {
        let w = rig.mouthWidth
        let m = rig.mouthCenter
        var points = rig.points
        for i in points.indices {
            let p = rig.points[i]
            var d = Point2(0, 0)
            d.y += pose.jawOpen * 0.22 * w * rig.jawWeight[i]
            d.y -= pose.jawOpen * 0.05 * w * rig.upperLipWeight[i]
            let side = (p.x - m.x) / (w / 2)
            d.x += pose.lipWidth * 0.08 * w * side * rig.lipRegionWeight[i]
            // Smile: corners up and out (cheeks follow through the lip-region falloff); sad pulls them down.
            d.y -= pose.smile * 0.14 * w * pow(min(abs(side), 1.2), 1.5) * rig.lipRegionWeight[i]
            d.x += pose.smile * 0.05 * w * side * rig.lipRegionWeight[i]
            points[i] = p + d
        }
        if pose.lipClose > 0 || pose.lipToTeeth > 0 {
            // The photo's own lip gap is closed (m, b, p: each lip half-way) or the lower lip rises to the
            // upper teeth (f, v); the lips' outer edges and the skin around follow part of the way.
            let close = min(max(pose.lipClose, 0), 1), teeth = min(max(pose.lipToTeeth, 0), 1) * (1 - close)
            for (i, weight, column) in rig.lipGapWeights {
                let restGap = rig.lipGap(atX: rig.points[column].x)
                // The jaw's share of the gap in this column (it tapers towards the corners; see `FaceRig`).
                let parted = column == i ? 1 : abs(rig.jawWeight[column] - rig.upperLipWeight[column])
                let gap = restGap + (restGap > 0 ? pose.jawOpen * 0.27 * w * parted : 0)
                // They meet in the middle: pushed past it, the lips' triangles folded over each other and drew a
                // serrated seam (the photo's lip line in zigzags).
                points[i].y += close * 0.5 * gap * (weight.upper - weight.lower)
                points[i].y -= teeth * (0.45 * restGap + 0.03 * w) * weight.lower
                points[i].y -= teeth * 0.02 * w * weight.upper
            }
        }
        // Inner lip contours that cross (a closed mouth's landmarks a fraction of a pixel apart, in either order;
        // a lower lip raised to the teeth) meet at their mean instead: crossed, the lips' triangles fold over each
        // other and the sliver between them, neither lip nor opening, is the photo's lip line stretched flat.
        // The rings inside each lip go with their inner edge in proportion to their depth.
        for (upper, lower) in zip(FaceIndex.upperInnerLip, FaceIndex.lowerInnerLip) where upper != lower && points[lower].y < points[upper].y {
            let meet = (points[upper].y + points[lower].y) / 2
            for (inner, shift) in [(upper, meet - points[upper].y), (lower, meet - points[lower].y)] {
                points[inner].y = meet
                for (ring, depth) in rig.lipRings[inner] ?? [] { points[ring].y += shift * depth }
            }
        }
        for eye in rig.eyes {
            let travel = pose.blink * eye.gap
            // A real smile narrows the eyes from below.
            let squint = max(pose.smile, 0) * 0.3
            for (upper, lower) in zip(eye.upper.dropFirst().dropLast(), eye.lower.dropFirst().dropLast()) {
                let gap = rig.points[lower].y - rig.points[upper].y
                points[upper].y += pose.blink * gap * 0.85
                points[lower].y -= (pose.blink * 0.15 + squint * (1 - pose.blink)) * gap
            }
            let meet = rig.points[eye.upper[eye.upper.count / 2]].y + 0.85 * eye.gap
            for index in eye.iris {
                points[index].x += pose.gaze.x * 0.08 * eye.width * (1 - pose.blink)
                points[index].y += pose.gaze.y * 0.04 * eye.width * (1 - pose.blink)
                points[index].y += pose.blink * (meet - rig.points[index].y)
            }
            for (index, share) in eye.skin {
                points[index].y += travel * 0.85 * share
            }
        }
        if pose.brows != 0 {
            for index in FaceIndex.rightBrow + FaceIndex.leftBrow {
                points[index].y -= pose.brows * 0.06 * rig.faceHeight
            }
        }
        if pose.headRoll != 0 || pose.headOffset != Point2(0, 0) {
            let pivot = rig.points[FaceIndex.chin] + Point2(0, 0.25 * rig.faceHeight)
            let c = cos(pose.headRoll), s = sin(pose.headRoll)
            for i in points.indices where rig.headWeight[i] > 0 {
                let d = points[i] - pivot
                let rotated = Point2(d.x * c - d.y * s, d.x * s + d.y * c) + pivot + pose.headOffset
                points[i] = Point2.mix(points[i], rotated, rig.headWeight[i])
            }
        }
        return points
    }

    /// Renders one 512×512 frame into `frame` (RGB, reused between calls to avoid allocation).
    public func render(_ pose: FacePose, into frame: inout [UInt8]) {
        let size = FaceRig.size
        if frame.count != size * size * 3 { frame = [UInt8](repeating: 0, count: size * size * 3) }
        frame.withUnsafeMutableBufferPointer { render(pose, to: $0.baseAddress!) }
    }

    /// Renders one frame into memory the caller owns (`512 * 512 * 3` bytes).
    public func render(_ pose: FacePose, to out: UnsafeMutablePointer<UInt8>) {
        let target = deform(pose)
        var source = rig.points
        if pose.lipClose > 0 {
            // Closed lips are drawn from the lips' own colour: where the photo shows its teeth, the inner contour
            // samples the photo 35 % of the way towards the outer lip edge, so the teeth at the lip line do not
            // show between closed lips. Where the photo's lips already meet, they are sampled where they are (moved,
            // the lip line bent between the contour's points into a zigzag). The rings of landmarks inside the lips
            // are drawn in towards the outer edge in proportion, so the lip's texture is squeezed evenly, not folded.
            let close = min(pose.lipClose, 1)
            let inners = FaceIndex.upperInnerLip + FaceIndex.lowerInnerLip, outers = FaceIndex.upperOuterLip + FaceIndex.lowerOuterLip
            let rings = zip(FaceIndex.upperLipRings[0], FaceIndex.upperLipRings[1]).map { [$0, $1] }
                + zip(FaceIndex.lowerLipRings[0], FaceIndex.lowerLipRings[1]).map { [$0, $1] }
            for ((inner, outer), ring) in zip(zip(inners, outers), rings) where !FaceIndex.mouthCorners.contains(inner) {
                let teeth = Self.smoothstep(0, 0.04 * rig.mouthWidth, rig.lipGap(atX: rig.points[inner].x))
                for i in [inner] + ring {
                    source[i] = Point2.mix(rig.points[i], rig.points[outer], 0.35 * close * teeth)
                }
            }
        }
        rig.image.pixels.withUnsafeBufferPointer { src in
            // The interior first: the lips' triangles, drawn after, win where folded triangles overlap.
            for triangle in rig.interiorTriangles {
                warp(triangle, target, source, src.baseAddress!, out)
            }
            Self.catmullRomWeights.withUnsafeBufferPointer { weights in
                for (triangle, sharp) in zip(rig.triangles, rig.touchesLips) {
                    warp(triangle, target, source, src.baseAddress!, out, sharp: sharp ? weights.baseAddress! : nil)
                }
            }
        }
        paintMouth(target, pose, out)
        if pose.lipClose > 0 { paintLipLine(target, strength: min(pose.lipClose, 1), out) }
    }

    /// The thin shadow where closed lips meet, darkest in the middle, fading towards the corners.
    private func paintLipLine(_ points: [Point2], strength: Double, _ out: UnsafeMutablePointer<UInt8>) {
        let size = FaceRig.size
        let upper = FaceIndex.upperInnerLip.map { points[$0] }, lower = FaceIndex.lowerInnerLip.map { points[$0] }
        let left = upper.first!.x, right = upper.last!.x
        guard right - left > 2 else { return }
        for x in max(0, Int(left.rounded(.up)))...min(size - 1, Int(right)) {
            let across = (Double(x) - left) / (right - left)
            let y = (Self.curve(upper, at: Double(x)) + Self.curve(lower, at: Double(x))) / 2
            let row = Int(y.rounded(.down)), fraction = y - Double(row)
            let depth = 0.45 * strength * sin(.pi * across).squareRoot()
            for (r, share) in [(row, 1 - fraction), (row + 1, fraction)] where r >= 0 && r < size {
                let pixel = out + (r * size + x) * 3
                let keep = 1 - depth * share
                pixel[0] = UInt8(Double(pixel[0]) * keep)
                pixel[1] = UInt8(Double(pixel[1]) * keep)
                pixel[2] = UInt8(Double(pixel[2]) * keep)
            }
        }
    }

    /// Convenience: a new image for a pose.
    public func render(_ pose: FacePose) -> RGBImage {
        var frame: [UInt8] = []
        render(pose, into: &frame)
        return RGBImage(width: FaceRig.size, height: FaceRig.size, pixels: frame)
    }

    /// Fills the destination triangle with the photo's source triangle: an affine map from destination
    /// to source pixels, walked scanline by scanline, bilinear sampling in fixed point.
    ///
    /// `sharp` (the Catmull–Rom weights): Catmull–Rom (4×4 taps) instead of bilinear, for the lips. Bilinear at a
    /// half-pixel shift averages neighbours and halves the texture's variance per axis, so lips that move by
    /// fractions of a pixel soften as they move; Catmull–Rom keeps most of it, and at whole-pixel offsets copies
    /// exactly. Four times the taps, on a few percent of the frame.
    private func warp(_ t: Triangle, _ dst: [Point2], _ src: [Point2], _ image: UnsafePointer<UInt8>, _ out: UnsafeMutablePointer<UInt8>,
                      sharp weights: UnsafePointer<(Int, Int, Int, Int)>? = nil) {
        let size = FaceRig.size
        let q0 = dst[t.a], q1 = dst[t.b], q2 = dst[t.c]
        let det = (q1.x - q0.x) * (q2.y - q0.y) - (q2.x - q0.x) * (q1.y - q0.y)
        guard abs(det) > 1e-9 else { return }
        let p0 = src[t.a], p1 = src[t.b], p2 = src[t.c]
        // Source = p0 + (p1 - p0) * u + (p2 - p0) * v, where (u, v) solve dst = q0 + (q1 - q0) u + (q2 - q0) v.
        let inv = 1 / det
        let ux = (q2.y - q0.y) * inv, uy = -(q2.x - q0.x) * inv
        let vx = -(q1.y - q0.y) * inv, vy = (q1.x - q0.x) * inv
        let ax = (p1.x - p0.x) * ux + (p2.x - p0.x) * vx, bx = (p1.x - p0.x) * uy + (p2.x - p0.x) * vy
        let ay = (p1.y - p0.y) * ux + (p2.y - p0.y) * vx, by = (p1.y - p0.y) * uy + (p2.y - p0.y) * vy
        // Pixel (x, y) is the point (x, y): the crop was sampled that way, so an unmoved triangle copies its
        // pixels exactly instead of blurring them by half a pixel.
        let minY = max(0, Int(ceil(min(q0.y, q1.y, q2.y)))), maxY = min(size - 1, Int(floor(max(q0.y, q1.y, q2.y))))
        guard minY <= maxY else { return }
        let edges = [(q0, q1), (q1, q2), (q2, q0)]
        let width = rig.image.width, height = rig.image.height
        let maxFX = (width - 1) * 65536 - 1, maxFY = (height - 1) * 65536 - 1
        for y in minY...maxY {
            let py = Double(y)
            // The triangle's span on this row: intersect the three edges with the scanline.
            var left = Double.infinity, right = -Double.infinity
            for (a, b) in edges where (a.y <= py && b.y > py) || (b.y <= py && a.y > py) {
                let x = a.x + (py - a.y) * (b.x - a.x) / (b.y - a.y)
                left = min(left, x)
                right = max(right, x)
            }
            guard left <= right else { continue }
            let x0 = max(0, Int(ceil(left))), x1 = min(size - 1, Int(ceil(right)) - 1)
            guard x0 <= x1 else { continue }
            let dy = py - q0.y
            // Source coordinates in 16.16 fixed point, stepped by the affine map's x derivative.
            let sx = p0.x + ax * (Double(x0) - q0.x) + bx * dy
            let sy = p0.y + ay * (Double(x0) - q0.x) + by * dy
            var fxp = Int((sx * 65536).rounded()), fyp = Int((sy * 65536).rounded())
            let stepX = Int((ax * 65536).rounded()), stepY = Int((ay * 65536).rounded())
            var pixel = out + (y * size + x0) * 3
            if let weights {
                for _ in x0...x1 {
                    let cx = min(max(fxp, 0), maxFX), cy = min(max(fyp, 0), maxFY)
                    Self.catmullRom(image, width: width, height: height, cx >> 16, cy >> 16, (cx & 0xFFFF) >> 8, (cy & 0xFFFF) >> 8, pixel, weights: weights)
                    fxp &+= stepX
                    fyp &+= stepY
                    pixel += 3
                }
                continue
            }
            for _ in x0...x1 {
                let cx = min(max(fxp, 0), maxFX), cy = min(max(fyp, 0), maxFY)
                let ix = cx >> 16, iy = cy >> 16
                let fx = (cx & 0xFFFF) >> 8, fy = (cy & 0xFFFF) >> 8
                let row0 = image + (iy * width + ix) * 3, row1 = row0 + width * 3
                let w00 = (256 - fx) * (256 - fy), w10 = fx * (256 - fy), w01 = (256 - fx) * fy, w11 = fx * fy
                pixel[0] = UInt8(truncatingIfNeeded: (Int(row0[0]) * w00 + Int(row0[3]) * w10 + Int(row1[0]) * w01 + Int(row1[3]) * w11 + 32768) >> 16)
                pixel[1] = UInt8(truncatingIfNeeded: (Int(row0[1]) * w00 + Int(row0[4]) * w10 + Int(row1[1]) * w01 + Int(row1[4]) * w11 + 32768) >> 16)
                pixel[2] = UInt8(truncatingIfNeeded: (Int(row0[2]) * w00 + Int(row0[5]) * w10 + Int(row1[2]) * w01 + Int(row1[5]) * w11 + 32768) >> 16)
                fxp &+= stepX
                fyp &+= stepY
                pixel += 3
            }
        }
    }

    /// Catmull–Rom weights for a fraction 0…255 (of 256), each in 1/256 (they sum to 256).
    private static let catmullRomWeights: [(Int, Int, Int, Int)] = (0..<256).map { f in
        let t = Double(f) / 256, t2 = t * t, t3 = t2 * t
        let w0 = Int(((-t3 + 2 * t2 - t) / 2 * 256).rounded()), w2 = Int(((-3 * t3 + 4 * t2 + t) / 2 * 256).rounded())
        let w3 = Int(((t3 - t2) / 2 * 256).rounded())
        return (w0, 256 - w0 - w2 - w3, w2, w3)
    }

    /// One pixel sampled with Catmull–Rom at (`ix` + `fx`/256, `iy` + `fy`/256), taps clamped to the image.
    @inline(__always)
    private static func catmullRom(_ image: UnsafePointer<UInt8>, width: Int, height: Int, _ ix: Int, _ iy: Int, _ fx: Int, _ fy: Int,
                                   _ pixel: UnsafeMutablePointer<UInt8>, weights: UnsafePointer<(Int, Int, Int, Int)>) {
        let wx = weights[fx], wy = weights[fy]
        let x0 = max(ix - 1, 0) * 3, x1 = ix * 3, x2 = min(ix + 1, width - 1) * 3, x3 = min(ix + 2, width - 1) * 3
        let stride = width * 3
        let rows = (image + max(iy - 1, 0) * stride, image + iy * stride, image + min(iy + 1, height - 1) * stride, image + min(iy + 2, height - 1) * stride)
        for c in 0..<3 {
            @inline(__always) func across(_ row: UnsafePointer<UInt8>) -> Int {
                Int(row[x0 + c]) * wx.0 + Int(row[x1 + c]) * wx.1 + Int(row[x2 + c]) * wx.2 + Int(row[x3 + c]) * wx.3
            }
            let sum = across(rows.0) * wy.0 + across(rows.1) * wy.1 + across(rows.2) * wy.2 + across(rows.3) * wy.3
            pixel[c] = UInt8(min(max((sum + 32768) >> 16, 0), 255))
        }
    }

    static func smoothstep(_ a: Double, _ b: Double, _ x: Double) -> Double {
        FaceRig.smoothstep(a, b, x)
    }

    /// Linear interpolation of a lip contour's y at x (contour points ordered left to right).
    static func curve(_ contour: [Point2], at x: Double) -> Double {
        if x <= contour.first!.x { return contour.first!.y }
        for (a, b) in zip(contour, contour.dropFirst()) where x <= b.x {
            let t = (x - a.x) / max(b.x - a.x, 1e-9)
            return a.y + (b.y - a.y) * t
        }
        return contour.last!.y
    }
}
