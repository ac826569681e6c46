import Foundation

/// One photo prepared for animation: the head and shoulders aligned and cropped to 512×512, a triangle
/// mesh over the face, neck and a border ring, and per-vertex weights for each motion.
///
/// Built once per photo from MediaPipe's 478 landmarks; every frame only moves the vertices.
public struct FaceRig: Sendable {
    public static let size = 512

    /// The aligned crop the mesh samples from (settable inside the module only for `FaceRenderer.photoSourced`).
    public internal(set) var image: RGBImage
    /// Neutral vertex positions in crop pixels: the 478 landmarks, then the outer rings.
    public let points: [Point2]
    /// Mesh triangles, without the ones inside the lips (the mouth interior is drawn there).
    public let triangles: [Triangle]
    /// The triangles inside the inner lip contour. They are warped first, under everything else, so that the
    /// painter's anti-aliased edge blends the drawn interior with the photo, never with what the frame held before
    /// (the previous frame, or black).
    public let interiorTriangles: [Triangle]
    /// Per triangle of `triangles`: a vertex on a lip (a contour or a ring inside it). These are resampled with a
    /// sharper kernel (see
    /// `FaceRenderer.render`): the lips move by fractions of a pixel, and bilinear sampling at a half-pixel
    /// shift blurs their texture flat.
    public let touchesLips: [Bool]
    /// Where the face sits in the crop.
    public let mouthCenter: Point2
    public let mouthWidth: Double
    public let faceHeight: Double
    /// What the user should know about this photo (e.g. a small face that will look soft).
    public let warnings: [String]
    /// The smallest face (cheek to cheek, photo pixels) that is animated at all; under `sharpFaceWidth` it is
    /// accepted with a warning, because the crop upscales it and lips and teeth look soft.
    public static let minimumFaceWidth = 56.0
    public static let sharpFaceWidth = 80.0

    let jawWeight: [Double]
    let upperLipWeight: [Double]
    let lipRegionWeight: [Double]
    let headWeight: [Double]
    let eyes: [EyeRig]
    /// Vertices that move when the lips close or meet the teeth, with how much of the upper / lower lip's
    /// travel each follows (inner lip contour 1, outer lip edge 0.6, the rings inside the lips between, skin
    /// around less) and the vertex whose column's gap sets that travel: a lip's outer edge and rings take their
    /// inner contour point's, so each lip moves as one strip (near the corners the gap under an outer point's
    /// own x is smaller, and the lip stretched there).
    let lipGapWeights: [(Int, (upper: Double, lower: Double), column: Int)]
    /// Per inner lip contour point (not the corners): the ring landmarks inside the lip in its column, with how
    /// deep each lies between the outer edge (0) and the inner one (1).
    let lipRings: [Int: [(Int, Double)]]
    /// The photo's inner lip contours (crop pixels), left to right.
    let restUpperInner: [Point2]
    let restLowerInner: [Point2]

    /// Prepares a rig. `landmarks` are `[x, y, z]` in pixels of `photo`.
    public init(photo: RGBImage, landmarks: [[Double]]) throws {
        guard landmarks.count >= 468 else { throw AnimationError.unreadableImage("expected 478 face landmarks, got \(landmarks.count)") }
        let raw = landmarks.map { Point2($0[0], $0[1]) }
        let faceTop = raw[FaceIndex.foreheadTop], chin = raw[FaceIndex.chin]
        let rawHeight = (chin - faceTop).length
        // Cheek to cheek (the face oval's widest points): below 56 px the lips are a few pixels tall; up to 80 px
        // the crop magnifies the face over 4× and it looks soft.
        let faceWidth = (raw[234] - raw[454]).length
        guard faceWidth >= Self.minimumFaceWidth else { throw AnimationError.faceTooSmall(Int(faceWidth)) }
        warnings = faceWidth < Self.sharpFaceWidth
            ? ["the face is \(Int(faceWidth)) px wide (under \(Int(Self.sharpFaceWidth)) px): it is magnified and will look soft; a larger or closer photo looks sharper"]
            : []

        // Align: eyes level, forehead-to-chin = 45 % of the frame, nose tip a little below the centre.
        let rightEye = Self.mean(FaceIndex.rightEyeUpper.map { raw[$0] })
        let leftEye = Self.mean(FaceIndex.leftEyeUpper.map { raw[$0] })
        let roll = atan2(leftEye.y - rightEye.y, leftEye.x - rightEye.x)
        let scale = Double(Self.size) * 0.45 / rawHeight
        let anchor = raw[FaceIndex.noseTip]
        let target = Point2(Double(Self.size) / 2, Double(Self.size) * 0.52)
        let cosR = cos(roll), sinR = sin(roll)
        // photo → crop: rotate by -roll about the nose, scale, move the nose to `target`.
        func toCrop(_ p: Point2) -> Point2 {
            let d = p - anchor
            return Point2((d.x * cosR + d.y * sinR) * scale + target.x, (-d.x * sinR + d.y * cosR) * scale + target.y)
        }
        func toPhoto(_ q: Point2) -> Point2 {
            let d = Point2((q.x - target.x) / scale, (q.y - target.y) / scale)
            return Point2(d.x * cosR - d.y * sinR + anchor.x, d.x * sinR + d.y * cosR + anchor.y)
        }
        var crop = RGBImage(width: Self.size, height: Self.size)
        photo.pixels.withUnsafeBufferPointer { source in
            crop.pixels.withUnsafeMutableBufferPointer { target in
                for y in 0..<Self.size {
                    for x in 0..<Self.size {
                        let p = toPhoto(Point2(Double(x), Double(y)))
                        photo.sample(p.x, p.y, into: target.baseAddress! + (y * Self.size + x) * 3, source.baseAddress!)
                    }
                }
            }
        }
        image = crop

        var points = raw.map(toCrop)
        let landmarkCount = points.count
        let center = Self.mean(FaceIndex.faceOval.map { points[$0] })
        // A middle ring (hair, ears, neck) that follows the head half-way, and a fixed border ring.
        var ringWeights: [Double] = []
        for index in FaceIndex.faceOval {
            let p = points[index]
            points.append(center + (p - center) * 1.45)
            ringWeights.append(0.5)
        }
        let step = Double(Self.size) / 8
        for i in 0...8 {
            let t = Double(i) * step
            for p in [Point2(t, 0), Point2(t, Double(Self.size)), Point2(0, t), Point2(Double(Self.size), t)] where !points.contains(p) {
                points.append(p)
                ringWeights.append(0)
            }
        }
        self.points = points

        let mouth = Point2.mix(points[13], points[14], 0.5)
        let width = (points[61] - points[291]).length
        mouthCenter = mouth
        mouthWidth = width
        faceHeight = rawHeight * scale
        let chinPoint = points[FaceIndex.chin]

        // Weights per vertex.
        var jaw = [Double](repeating: 0, count: points.count)
        var upper = [Double](repeating: 0, count: points.count)
        var lips = [Double](repeating: 0, count: points.count)
        var head = [Double](repeating: 1, count: points.count)
        for i in 0..<points.count {
            let p = points[i]
            if i >= landmarkCount {
                head[i] = ringWeights[i - landmarkCount]
                continue
            }
            let vertical = Self.smoothstep(mouth.y - 0.05 * width, mouth.y + 0.2 * width, p.y)
            let horizontal = exp(-pow((p.x - mouth.x) / (1.0 * width), 2))
            let belowChin = 1 - Self.smoothstep(chinPoint.y, chinPoint.y + 0.6 * width, p.y)
            jaw[i] = vertical * horizontal * belowChin
            let above = 1 - Self.smoothstep(mouth.y - 0.45 * width, mouth.y, p.y)
            upper[i] = (1 - above) * (1 - vertical) * exp(-pow((p.x - mouth.x) / (0.6 * width), 2))
            lips[i] = exp(-(p - mouth).length / (0.45 * width))
        }
        // Each lip moves as one: its contours and the rings of landmarks inside it (moved as skin, a lower lip's
        // rings followed the jaw a quarter of the way, and the lip between them stretched and folded).
        let lowerLip = Set(FaceIndex.lowerInnerLip + FaceIndex.lowerOuterLip + FaceIndex.lowerLipRings.joined())
        let upperLip = Set(FaceIndex.upperInnerLip + FaceIndex.upperOuterLip + FaceIndex.upperLipRings.joined())
        // The opening tapers towards the corners: in column k of the contours the lips part by e = 1 − a⁴ of the
        // jaw's travel (a: 0 in the middle of the inner mouth, 1 at its corners), and the rest of the column moves
        // with the corners (half the jaw, half the lip's lift). With every lip point parting fully up to the
        // corners' neighbours, wide-open mouths had straight vertical sides (a hexagon). An ellipse's profile
        // ((1 − a²)^0.35…1) reads as a mouth too, but narrows the whole opening, and MediaPipe measured it less open.
        let cornerLeft = points[FaceIndex.upperInnerLip.first!].x, cornerRight = points[FaceIndex.upperInnerLip.last!].x
        for (k, column) in FaceIndex.upperInnerLip.enumerated() {
            let across = abs(2 * (points[column].x - cornerLeft) / max(cornerRight - cornerLeft, 1) - 1)
            let e = 1 - pow(min(across, 1), 4)
            for contour in [FaceIndex.lowerInnerLip, FaceIndex.lowerOuterLip] + FaceIndex.lowerLipRings {
                jaw[contour[k]] = 0.5 + 0.5 * e
                upper[contour[k]] = 0.5 - 0.5 * e
            }
            for contour in [FaceIndex.upperInnerLip, FaceIndex.upperOuterLip] + FaceIndex.upperLipRings {
                upper[contour[k]] = 0.5 + 0.5 * e
                jaw[contour[k]] = 0.5 - 0.5 * e
            }
        }
        jawWeight = jaw
        upperLipWeight = upper
        // Lip closure: the inner lips meet, their outer edges follow 0.6 of the way, the rings inside the lips
        // by where they lie between the two, nearby skin fades out.
        let innerUpper = Set(FaceIndex.upperInnerLip), innerLower = Set(FaceIndex.lowerInnerLip)
        let outerUpper = Set(FaceIndex.upperOuterLip), outerLower = Set(FaceIndex.lowerOuterLip)
        var ringDepth: [Int: Double] = [:], ringsOf: [Int: [(Int, Double)]] = [:]
        for (rings, outer, inner) in [(FaceIndex.upperLipRings, FaceIndex.upperOuterLip, FaceIndex.upperInnerLip),
                                      (FaceIndex.lowerLipRings, FaceIndex.lowerOuterLip, FaceIndex.lowerInnerLip)] {
            for (r, ring) in rings.enumerated() {
                for (k, i) in ring.enumerated() {
                    let thickness = points[inner[k]].y - points[outer[k]].y
                    let measured = (points[i].y - points[outer[k]].y) / thickness
                    let depth = abs(thickness) > 0.5 ? min(max(measured, 0), 1) : Double(r + 1) / 3
                    ringDepth[i] = depth
                    if !FaceIndex.mouthCorners.contains(inner[k]) { ringsOf[inner[k], default: []].append((i, depth)) }
                }
            }
        }
        var column: [Int: Int] = [:]
        for (inner, others) in [(FaceIndex.upperInnerLip, [FaceIndex.upperOuterLip] + FaceIndex.upperLipRings),
                                (FaceIndex.lowerInnerLip, [FaceIndex.lowerOuterLip] + FaceIndex.lowerLipRings)] {
            for contour in others {
                for (k, i) in contour.enumerated() { column[i] = inner[k] }
            }
        }
        var gapWeights: [(Int, (upper: Double, lower: Double), column: Int)] = []
        for i in 0..<landmarkCount where !FaceIndex.mouthCorners.contains(i) && !FaceIndex.lipRingCorners.contains(i) {
            let p = points[i]
            let near = exp(-pow((p - mouth).length / (0.55 * width), 2))
            let u: Double, l: Double
            if innerUpper.contains(i) { (u, l) = (1, 0) }
            else if innerLower.contains(i) { (u, l) = (0, 1) }
            else if outerUpper.contains(i) { (u, l) = (0.6, 0) }
            else if outerLower.contains(i) { (u, l) = (0, 0.6) }
            else if let depth = ringDepth[i] { (u, l) = upperLip.contains(i) ? (0.6 + 0.4 * depth, 0) : (0, 0.6 + 0.4 * depth) }
            else if p.y < mouth.y { (u, l) = (0.35 * near, 0) }
            else { (u, l) = (0, 0.35 * near) }
            if u > 0.01 || l > 0.01 { gapWeights.append((i, (u, l), column[i] ?? i)) }
        }
        lipGapWeights = gapWeights
        lipRings = ringsOf
        restUpperInner = FaceIndex.upperInnerLip.map { points[$0] }
        restLowerInner = FaceIndex.lowerInnerLip.map { points[$0] }
        lipRegionWeight = lips
        headWeight = head
        eyes = [
            EyeRig(upper: FaceIndex.rightEyeUpper, lower: FaceIndex.rightEyeLower, iris: FaceIndex.rightIris, brow: FaceIndex.rightBrow, points: points),
            EyeRig(upper: FaceIndex.leftEyeUpper, lower: FaceIndex.leftEyeLower, iris: FaceIndex.leftIris, brow: FaceIndex.leftBrow, points: points),
        ]

        // The mesh: the triangles inside the inner lip contour apart (`interiorTriangles`, warped under the painter).
        let inner = Set(FaceIndex.upperInnerLip + FaceIndex.lowerInnerLip)
        let innerPolygon = (FaceIndex.upperInnerLip + FaceIndex.lowerInnerLip.reversed()).map { points[$0] }
        let mesh = Delaunay.triangulate(points)
        func isInterior(_ t: Triangle) -> Bool {
            guard inner.contains(t.a), inner.contains(t.b), inner.contains(t.c) else { return false }
            return Self.contains(innerPolygon, (points[t.a] + points[t.b] + points[t.c]) * (1.0 / 3))
        }
        triangles = mesh.filter { !isInterior($0) }
        interiorTriangles = mesh.filter(isInterior)
        let lipVertices = Set(FaceIndex.upperInnerLip + FaceIndex.lowerInnerLip + FaceIndex.upperOuterLip + FaceIndex.lowerOuterLip
                                  + FaceIndex.upperLipRings.joined() + FaceIndex.lowerLipRings.joined())
        touchesLips = triangles.map { lipVertices.contains($0.a) || lipVertices.contains($0.b) || lipVertices.contains($0.c) }
    }

    /// The photo's gap between the inner lips at column `x` (0 outside the mouth).
    func lipGap(atX x: Double) -> Double {
        guard x > restUpperInner.first!.x, x < restUpperInner.last!.x else { return 0 }
        return max(FaceRenderer.curve(restLowerInner, at: x) - FaceRenderer.curve(restUpperInner, at: x), 0)
    }

    static func mean(_ points: [Point2]) -> Point2 {
        points.reduce(Point2(0, 0), +) * (1 / Double(points.count))
    }

    static func smoothstep(_ a: Double, _ b: Double, _ x: Double) -> Double {
        let t = min(max((x - a) / (b - a), 0), 1)
        return t * t * (3 - 2 * t)
    }

    /// Even-odd point-in-polygon.
    static func contains(_ polygon: [Point2], _ p: Point2) -> Bool {
        var inside = false
        var j = polygon.count - 1
        for i in 0..<polygon.count {
            let a = polygon[i], b = polygon[j]
            if (a.y > p.y) != (b.y > p.y), p.x < (b.x - a.x) * (p.y - a.y) / (b.y - a.y) + a.x { inside.toggle() }
            j = i
        }
        return inside
    }
}

/// The vertices that close one eye.
struct EyeRig: Sendable {
    let upper: [Int]
    let lower: [Int]
    let iris: [Int]
    /// Vertices between the upper lid and the brow, with how much of the lid's travel each follows.
    let skin: [(Int, Double)]
    /// The lid gap at the eye's middle, in pixels.
    let gap: Double
    /// Corner to corner, in pixels.
    let width: Double

    init(upper: [Int], lower: [Int], iris: [Int], brow: [Int], points: [Point2]) {
        self.upper = upper
        self.lower = lower
        self.iris = iris
        let middle = upper.count / 2
        gap = max(points[lower[middle]].y - points[upper[middle]].y, 1)
        width = (points[upper.first!] - points[upper.last!]).length
        let lidY = points[upper[middle]].y
        let browY = brow.map { points[$0].y }.reduce(0, +) / Double(brow.count)
        let xs = upper.map { points[$0].x }
        let minX = xs.min()!, maxX = xs.max()!
        let lids = Set(upper + lower + iris)
        var skin: [(Int, Double)] = []
        for (i, p) in points.enumerated() where i < 468 && !lids.contains(i) {
            guard p.x > minX, p.x < maxX, p.y < lidY, p.y > browY else { continue }
            let t = (lidY - p.y) / max(lidY - browY, 1)
            skin.append((i, max(0, 1 - t) * 0.6))
        }
        self.skin = skin
    }
}
