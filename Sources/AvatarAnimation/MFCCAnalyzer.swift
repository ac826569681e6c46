import Foundation

/// Mel-frequency cepstral coefficients of one 25 ms frame of 16 kHz speech, plus the few spectral figures the
/// lip sync needs (frame level, share of energy above 3 kHz).
///
/// Fixed design, mirrored exactly by `scripts/mouth_templates.py` (which derives the vowel templates in
/// `MouthEstimator`): 400-sample Hamming window after pre-emphasis 0.97, 512-point FFT, 20 triangular mel bands
/// 100–5000 Hz, natural log, DCT-II → c1…c12 (c0, the loudness, is left out).
struct MFCCAnalyzer: Sendable {
    static let window = 400
    static let hop = 160
    static let fftSize = 512
    static let bands = 20
    static let coefficients = 12

    /// The result for one frame.
    struct Frame: Sendable {
        var mfcc: [Double]
        /// RMS level in dB of the raw frame.
        var level: Double
        /// Share of the spectral energy above 3 kHz (a /t/ burst is high, a /p/ burst low).
        var highShare: Double
    }

    private let hamming: [Double]
    private let filters: [(first: Int, weights: [Double])]
    private let dct: [[Double]]
    private let cosTable: [Double]
    private let sinTable: [Double]
    private let bitReverse: [Int]

    init() {
        let n = Self.window
        hamming = (0..<n).map { 0.54 - 0.46 * cos(2 * .pi * Double($0) / Double(n - 1)) }
        func mel(_ f: Double) -> Double { 1127 * log(1 + f / 700) }
        func hertz(_ m: Double) -> Double { 700 * (exp(m / 1127) - 1) }
        let low = mel(100), high = mel(5000)
        let edges = (0..<(Self.bands + 2)).map { hertz(low + (high - low) * Double($0) / Double(Self.bands + 1)) * Double(Self.fftSize) / 16000 }
        var filters: [(Int, [Double])] = []
        for b in 0..<Self.bands {
            let lo = edges[b], c = edges[b + 1], hi = edges[b + 2]
            let first = Int(lo.rounded(.down)) + 1
            var weights: [Double] = []
            var k = first
            while Double(k) < hi {
                let kk = Double(k)
                weights.append(kk <= c ? (kk - lo) / (c - lo) : (hi - kk) / (hi - c))
                k += 1
            }
            filters.append((first, weights))
        }
        self.filters = filters
        dct = (1...Self.coefficients).map { c in (0..<Self.bands).map { b in cos(.pi * Double(c) * (Double(b) + 0.5) / Double(Self.bands)) } }
        let half = Self.fftSize / 2
        cosTable = (0..<half).map { cos(-2 * .pi * Double($0) / Double(Self.fftSize)) }
        sinTable = (0..<half).map { sin(-2 * .pi * Double($0) / Double(Self.fftSize)) }
        let bits = Self.fftSize.trailingZeroBitCount
        bitReverse = (0..<Self.fftSize).map { i in
            var r = 0
            for b in 0..<bits where i & (1 << b) != 0 { r |= 1 << (bits - 1 - b) }
            return r
        }
    }

    /// Analyses the 400 samples starting at `start` (the caller guarantees they exist).
    func analyse(_ samples: UnsafeBufferPointer<Float>, start: Int) -> Frame {
        let n = Self.window, size = Self.fftSize
        var re = [Double](repeating: 0, count: size), im = [Double](repeating: 0, count: size)
        var energy = 0.0
        var previous = Double(samples[start])
        for i in 0..<n {
            let x = Double(samples[start + i])
            energy += x * x
            let emphasised = i == 0 ? x : x - 0.97 * previous
            previous = x
            re[bitReverse[i]] = emphasised * hamming[i]
        }
        // In-place iterative radix-2 FFT (input already in bit-reversed order).
        var length = 2
        while length <= size {
            let step = size / length
            for blockStart in stride(from: 0, to: size, by: length) {
                for j in 0..<(length / 2) {
                    let wr = cosTable[j * step], wi = sinTable[j * step]
                    let a = blockStart + j, b = a + length / 2
                    let tr = re[b] * wr - im[b] * wi, ti = re[b] * wi + im[b] * wr
                    re[b] = re[a] - tr
                    im[b] = im[a] - ti
                    re[a] += tr
                    im[a] += ti
                }
            }
            length *= 2
        }
        var power = [Double](repeating: 0, count: size / 2 + 1)
        var total = 0.0, high = 0.0
        let highBin = 3000 * size / 16000
        for k in 0...(size / 2) {
            power[k] = re[k] * re[k] + im[k] * im[k]
            total += power[k]
            if k >= highBin { high += power[k] }
        }
        var logBands = [Double](repeating: 0, count: Self.bands)
        for (b, filter) in filters.enumerated() {
            var sum = 0.0
            for (i, w) in filter.weights.enumerated() where filter.first + i <= size / 2 { sum += w * power[filter.first + i] }
            logBands[b] = log(sum + 1e-8)
        }
        let mfcc = dct.map { row in zip(row, logBands).reduce(0) { $0 + $1.0 * $1.1 } }
        return Frame(mfcc: mfcc, level: 10 * log10(energy / Double(n) + 1e-10), highShare: total > 0 ? high / total : 0)
    }
}
