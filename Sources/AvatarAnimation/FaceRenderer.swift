import Foundation

/// Everything that moves in one frame.
public struct FacePose: Sendable, Equatable {
    /// 0 closed … 1 wide open.
    public var jawOpen = 0.0
    /// -1 rounded (o, u) … 1 wide (i, e).
    public var lipWidth = 0.0
    /// -1 sad … 1 happy.
    public var smile = 0.0
    /// 0 open … 1 closed.
    public var blink = 0.0
    /// Brow raise, -1 (frown) … 1 (surprise).
    public var brows = 0.0
    /// Head roll in radians and a small shift in pixels.
    public var headRoll = 0.0
    public var headOffset = Point2(0, 0)

    public init() {}
}

/// CPU renderer: moves the rig's vertices for a pose, warps the photo piecewise-affinely, and paints the
/// mouth interior (dark cavity, upper teeth fixed to the upper lip, lower teeth moving with the jaw).
public struct FaceRenderer: Sendable {
    public let rig: FaceRig

    public init(rig: FaceRig) {
        self.rig = rig
    }

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
        let target = deform(pose)
        let source = rig.points
        rig.image.pixels.withUnsafeBufferPointer { src in
            frame.withUnsafeMutableBufferPointer { dst in
                for triangle in rig.triangles {
                    warp(triangle, target, source, src.baseAddress!, dst.baseAddress!)
                }
                paintMouth(target, dst.baseAddress!)
            }
        }
    }

    /// Convenience: a new image for a pose.
    public func render(_ pose: FacePose) -> RGBImage {
        var frame: [UInt8] = []
        render(pose, into: &frame)
        return RGBImage(width: FaceRig.size, height: FaceRig.size, pixels: frame)
    }

    /// Fills the destination triangle with the photo's source triangle (affine map, bilinear sampling).
    private func warp(_ t: Triangle, _ dst: [Point2], _ src: [Point2], _ image: UnsafePointer<UInt8>, _ out: UnsafeMutablePointer<UInt8>) {
        let size = FaceRig.size
        let q0 = dst[t.a], q1 = dst[t.b], q2 = dst[t.c]
        let area = (q1.x - q0.x) * (q2.y - q0.y) - (q2.x - q0.x) * (q1.y - q0.y)
        guard abs(area) > 1e-9 else { return }
        let p0 = src[t.a], p1 = src[t.b], p2 = src[t.c]
        let minX = max(0, Int(floor(min(q0.x, q1.x, q2.x)))), maxX = min(size - 1, Int(ceil(max(q0.x, q1.x, q2.x))))
        let minY = max(0, Int(floor(min(q0.y, q1.y, q2.y)))), maxY = min(size - 1, Int(ceil(max(q0.y, q1.y, q2.y))))
        guard minX <= maxX, minY <= maxY else { return }
        let inv = 1 / area
        let epsilon = -1e-7
        for y in minY...maxY {
            let py = Double(y) + 0.5
            for x in minX...maxX {
                let px = Double(x) + 0.5
                let w1 = ((px - q0.x) * (q2.y - q0.y) - (q2.x - q0.x) * (py - q0.y)) * inv
                let w2 = ((q1.x - q0.x) * (py - q0.y) - (px - q0.x) * (q1.y - q0.y)) * inv
                let w0 = 1 - w1 - w2
                guard w0 >= epsilon, w1 >= epsilon, w2 >= epsilon else { continue }
                let sx = p0.x * w0 + p1.x * w1 + p2.x * w2
                let sy = p0.y * w0 + p1.y * w1 + p2.y * w2
                rig.image.sample(sx, sy, into: out + (y * size + x) * 3, image)
            }
        }
    }

    /// The inside of the mouth, between the moved inner lip contours, anti-aliased by 3×3 coverage.
    ///
    /// Teeth never stretch: when the photo shows its own mouth interior, its upper half is copied
    /// unscaled under the upper lip and its lower half above the lower lip (so the lower teeth ride
    /// with the jaw) and the new gap between them is a dark cavity. A closed-mouth photo gets drawn
    /// teeth of fixed height instead.
    private func paintMouth(_ points: [Point2], _ out: UnsafeMutablePointer<UInt8>) {
        let size = FaceRig.size
        let upperLip = FaceIndex.upperInnerLip.map { points[$0] }
        let lowerLip = FaceIndex.lowerInnerLip.map { points[$0] }
        let upperRest = FaceIndex.upperInnerLip.map { rig.points[$0] }
        let lowerRest = FaceIndex.lowerInnerLip.map { rig.points[$0] }
        let polygon = upperLip + lowerLip.reversed()
        let minX = max(0, Int(floor(polygon.map(\.x).min()!))), maxX = min(size - 1, Int(ceil(polygon.map(\.x).max()!)))
        let minY = max(0, Int(floor(polygon.map(\.y).min()!))), maxY = min(size - 1, Int(ceil(polygon.map(\.y).max()!)))
        guard minX < maxX, minY < maxY else { return }
        let w = rig.mouthWidth
        let left = upperLip.first!.x, right = upperLip.last!.x
        let restLeft = upperRest.first!.x, restRight = upperRest.last!.x
        var sample = [UInt8](repeating: 0, count: 3)
        rig.image.pixels.withUnsafeBufferPointer { photo in
            sample.withUnsafeMutableBufferPointer { rgb in
                for y in minY...maxY {
                    for x in minX...maxX {
                        var covered = 0
                        var sum = (0.0, 0.0, 0.0)
                        for sy in 0..<3 {
                            for sx in 0..<3 {
                                let p = Point2(Double(x) + (Double(sx) + 0.5) / 3, Double(y) + (Double(sy) + 0.5) / 3)
                                guard FaceRig.contains(polygon, p) else { continue }
                                covered += 1
                                let across = (p.x - left) / max(right - left, 1)
                                let restX = restLeft + across * (restRight - restLeft)
                                let top = Self.curve(upperLip, at: p.x), bottom = Self.curve(lowerLip, at: p.x)
                                let restTop = Self.curve(upperRest, at: restX), restBottom = Self.curve(lowerRest, at: restX)
                                let restGap = restBottom - restTop
                                let fromTop = p.y - top, fromBottom = bottom - p.y
                                var color: (Double, Double, Double)
                                if restGap > 0.06 * w, fromTop < restGap * 0.7 {
                                    rig.image.sample(restX, restTop + fromTop, into: rgb.baseAddress!, photo.baseAddress!)
                                    color = (Double(rgb[0]), Double(rgb[1]), Double(rgb[2]))
                                } else if restGap > 0.06 * w, fromBottom < restGap * 0.3 {
                                    rig.image.sample(restX, restBottom - fromBottom, into: rgb.baseAddress!, photo.baseAddress!)
                                    color = (Double(rgb[0]), Double(rgb[1]), Double(rgb[2]))
                                } else if restGap <= 0.06 * w, across > 0.12, across < 0.88, fromTop < 0.09 * w || fromBottom < 0.06 * w {
                                    color = (226, 222, 212)
                                } else {
                                    // Darkest in the middle of the gap, the tongue's red towards the bottom.
                                    let depth = min(max(fromTop / max(bottom - top, 1), 0), 1)
                                    let tongue = Self.smoothstep(0.55, 1.0, depth)
                                    color = (40 + 90 * tongue, 14 + 30 * tongue, 18 + 32 * tongue)
                                }
                                sum = (sum.0 + color.0, sum.1 + color.1, sum.2 + color.2)
                            }
                        }
                        guard covered > 0 else { continue }
                        let alpha = Double(covered) / 9
                        let n = Double(covered)
                        let pixel = out + (y * size + x) * 3
                        pixel[0] = UInt8(Double(pixel[0]) * (1 - alpha) + sum.0 / n * alpha)
                        pixel[1] = UInt8(Double(pixel[1]) * (1 - alpha) + sum.1 / n * alpha)
                        pixel[2] = UInt8(Double(pixel[2]) * (1 - alpha) + sum.2 / n * alpha)
                    }
                }
            }
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
