import Foundation

/// The photo's own grain around the mouth, measured once per photo, so what the painter draws (teeth, cavity,
/// tongue) is as grainy as the lips and skin next to it — the same strength at the same light and the same grain
/// size — instead of smooth (a seam) or finer than the photo (static).
///
/// Measured on the aligned crop in a box around the lips (the mouth interior left out): the high-frequency
/// residual of luminance (a pixel less the mean of its four neighbours), its robust σ in four bands of local
/// light, and its correlation between neighbouring pixels. An upscaled or JPEG-compressed photo's grain is a few
/// pixels across (neighbouring residuals correlate 0.2–0.4 where white noise gives −0.4), so the tile is white
/// noise blurred until its residual correlates as the photo's does, then scaled so its residual has the photo's
/// σ at each light. Static: a 128² tile, anchored to the mouth by the painter, so it moves with the mouth and does
/// not shimmer from frame to frame.
struct PhotoGrain: Sendable {
    static let shift = 7, mask = 127, side = 128
    /// Unit-σ grain of the photo's size, `side`², tiling without a seam.
    let tile: [Float]
    /// The grain's σ (in luminance levels) to add at each luminance level 0…255.
    let levels: [Float]
    /// The Gaussian blur (in pixels) that gave the tile the photo's grain size (0: white noise).
    let blur: Double
    /// The photo's residual: neighbour correlation, and per band of light (mean luminance, residual σ, pixels).
    let correlation: Double
    let bands: [(light: Double, sigma: Double, count: Int)]

    var summary: String {
        let strengths = [15, 40, 100, 180].map { String(format: "%.1f", levels[$0]) }.joined(separator: "/")
        return "σ \(strengths) at luminance 15/40/100/180, size: blur \(String(format: "%.1f", blur)) px (residual correlation \(String(format: "%.2f", correlation)))"
    }

    /// Band edges of local light (luminance), and the fewest pixels a band needs to be measured.
    static let bandEdges: [Double] = [0, 50, 100, 150, 256]
    static let minimumCount = 60

    init(_ image: RGBImage, around outer: [Point2], without inner: [Point2], mouthWidth w: Double) {
        let margin = 0.3 * w
        let x0 = max(Int(floor(outer.map(\.x).min()! - margin)), 2), x1 = min(Int(ceil(outer.map(\.x).max()! + margin)), image.width - 3)
        let y0 = max(Int(floor(outer.map(\.y).min()! - 0.5 * margin)), 2), y1 = min(Int(ceil(outer.map(\.y).max()! + margin)), image.height - 3)
        func luma(_ x: Int, _ y: Int) -> Double {
            let i = (y * image.width + x) * 3
            return 0.299 * Double(image.pixels[i]) + 0.587 * Double(image.pixels[i + 1]) + 0.114 * Double(image.pixels[i + 2])
        }
        // The residual of every pixel in the box (nan inside the mouth), and its local light (3×3 mean).
        let bw = max(x1 - x0 + 1, 0), bh = max(y1 - y0 + 1, 0)
        var residual = [Double](repeating: .nan, count: bw * bh)
        var light = [Double](repeating: 0, count: bw * bh)
        if bw > 0, bh > 0 {
            for y in y0...y1 {
                for x in x0...x1 where !FaceRig.contains(inner, Point2(Double(x), Double(y))) {
                    let centre = luma(x, y)
                    let around = (luma(x - 1, y) + luma(x + 1, y) + luma(x, y - 1) + luma(x, y + 1)) / 4
                    var sum = 0.0
                    for dy in -1...1 { for dx in -1...1 { sum += luma(x + dx, y + dy) } }
                    residual[(y - y0) * bw + x - x0] = centre - around
                    light[(y - y0) * bw + x - x0] = sum / 9
                }
            }
        }
        func robustSigma(_ values: [Double]) -> Double {
            guard !values.isEmpty else { return 0 }
            let sorted = values.map(abs).sorted()
            return 1.4826 * sorted[sorted.count / 2]
        }
        let all = residual.filter { !$0.isNaN }
        let overall = max(robustSigma(all), 0.3)
        // Neighbour correlation of the residual, edges (a lip line, a wrinkle) clipped to 3 σ.
        var sxy = 0.0, sxx = 0.0, pairs = 0
        for y in 0..<bh {
            for x in 0..<bw {
                let a = residual[y * bw + x]
                guard !a.isNaN else { continue }
                let ca = min(max(a, -3 * overall), 3 * overall)
                sxx += ca * ca
                for j in [x + 1 < bw ? y * bw + x + 1 : -1, y + 1 < bh ? (y + 1) * bw + x : -1] where j >= 0 && !residual[j].isNaN {
                    sxy += ca * min(max(residual[j], -3 * overall), 3 * overall)
                    pairs += 1
                }
            }
        }
        correlation = pairs > 100 && sxx > 0 ? sxy / Double(pairs) / (sxx / Double(all.count)) : -0.4

        // Per band of light: the residual's robust σ where the band has enough pixels.
        var bands: [(light: Double, sigma: Double, count: Int)] = []
        for (low, high) in zip(Self.bandEdges, Self.bandEdges.dropFirst()) {
            var values: [Double] = [], lightSum = 0.0
            for i in residual.indices where !residual[i].isNaN && light[i] >= low && light[i] < high {
                values.append(residual[i])
                lightSum += light[i]
            }
            if values.count >= Self.minimumCount { bands.append((lightSum / Double(values.count), robustSigma(values), values.count)) }
        }
        if bands.isEmpty { bands = [(100, overall, all.count)] }
        // Darker than the skin, a photo carries less noise, not more: a dark band measured noisier than the one
        // above it is structure (the lip line, a nostril's edge) and takes that band's σ.
        if let skin = bands.indices.max(by: { bands[$0].count < bands[$1].count }), skin > 0 {
            for i in stride(from: skin - 1, through: 0, by: -1) { bands[i].sigma = min(bands[i].sigma, bands[i + 1].sigma) }
        }
        self.bands = bands

        // The tile: the blur whose residual correlation is nearest the photo's (at most 1 px: coarser reads as
        // blotches, not grain).
        var best: (tile: [Float], blur: Double, residualSigma: Double, distance: Double)?
        for blur in [0, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0] {
            let tile = Self.tile(blur: blur)
            let (sigma, corr) = Self.residualStatistics(tile)
            let distance = abs(corr - correlation)
            if best == nil || distance < best!.distance { best = (tile, blur, sigma, distance) }
        }
        tile = best!.tile
        blur = best!.blur
        // Residual σ per unit of the tile's σ: the photo's residual σ over this is the grain's σ.
        let perUnit = max(best!.residualSigma, 0.05)
        var levels = [Float](repeating: 0, count: 256)
        for level in 0..<256 {
            let l = Double(level)
            // Piecewise linear between the bands' mean light, constant beyond the first and last.
            var sigma = bands.first!.sigma
            if l >= bands.last!.light {
                sigma = bands.last!.sigma
            } else if l > bands.first!.light {
                for (a, b) in zip(bands, bands.dropFirst()) where l >= a.light && l <= b.light {
                    sigma = a.sigma + (b.sigma - a.sigma) * (l - a.light) / max(b.light - a.light, 1e-9)
                }
            }
            // Grain cannot go far under black: near black a photo's noise is clipped (at most 1 + L/4 levels).
            levels[level] = Float(min(sigma / perUnit, 6, 1 + l / 4))
        }
        self.levels = levels
    }

    /// Unit-σ noise tile: white noise (a triangular hash) blurred by a Gaussian of σ `blur`, wrapping around.
    static func tile(blur: Double) -> [Float] {
        let n = side
        var values = [Double](repeating: 0, count: n * n)
        for y in 0..<n {
            for x in 0..<n {
                values[y * n + x] = FaceRenderer.noise(x, y) + FaceRenderer.noise(x &+ 7_919, y &- 104_729)
            }
        }
        if blur > 0 {
            let radius = Int(ceil(3 * blur))
            var kernel = (-radius...radius).map { exp(-Double($0 * $0) / (2 * blur * blur)) }
            let total = kernel.reduce(0, +)
            kernel = kernel.map { $0 / total }
            var pass = values
            for y in 0..<n {
                for x in 0..<n {
                    var sum = 0.0
                    for (k, weight) in kernel.enumerated() { sum += weight * values[y * n + ((x + k - radius) & mask)] }
                    pass[y * n + x] = sum
                }
            }
            for y in 0..<n {
                for x in 0..<n {
                    var sum = 0.0
                    for (k, weight) in kernel.enumerated() { sum += weight * pass[((y + k - radius) & mask) * n + x] }
                    values[y * n + x] = sum
                }
            }
        }
        let mean = values.reduce(0, +) / Double(values.count)
        let sigma = max((values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count)).squareRoot(), 1e-9)
        return values.map { Float(($0 - mean) / sigma) }
    }

    /// The robust σ of a tile's residual (a pixel less its four neighbours' mean) and the residual's neighbour
    /// correlation, measured as on the photo.
    static func residualStatistics(_ tile: [Float]) -> (sigma: Double, correlation: Double) {
        let n = side
        var residual = [Double](repeating: 0, count: n * n)
        for y in 0..<n {
            for x in 0..<n {
                let around = Double(tile[y * n + ((x + 1) & mask)] + tile[y * n + ((x - 1) & mask)] + tile[((y + 1) & mask) * n + x] + tile[((y - 1) & mask) * n + x]) / 4
                residual[y * n + x] = Double(tile[y * n + x]) - around
            }
        }
        let sorted = residual.map(abs).sorted()
        let sigma = 1.4826 * sorted[sorted.count / 2]
        var sxy = 0.0, sxx = 0.0
        for y in 0..<n {
            for x in 0..<n {
                let a = residual[y * n + x]
                sxx += a * a
                sxy += a * (residual[y * n + ((x + 1) & mask)] + residual[((y + 1) & mask) * n + x]) / 2
            }
        }
        return (sigma, sxy / sxx)
    }
}
