import AvatarCore
import Foundation

/// Streaming mouth-shape estimator from the audio alone, in the manner of uLipSync.
///
/// Every 10 ms a 25 ms frame is analysed (`MFCCAnalyzer`); its cepstrum, less a running mean (so the
/// speaker and microphone matter less), is compared with templates of the vowels a, e, i, o, u, a nasal
/// murmur (m, n) and a sibilant (s, ʃ, f), giving soft class weights that set the lip width/rounding and scale
/// the jaw. Loudness (RMS in dB, gated between an adapting noise floor and peak) still opens the jaw: silence
/// is always a closed mouth. Lip closure is explicit: a dip of ≥ 12 dB inside speech followed within 40 ms by
/// a burst that is not clearly alveolar closes the lips for the dip, and so does a nasal murmur. Frame k looks at [t − 40 ms, t + 40 ms]: at most 40 ms of look-ahead.
public struct MouthEstimator: Sendable {
    public let sampleRate: Int
    public let fps: Double
    private var floor = -60.0
    private var peak = -25.0
    private var previous = 0.0
    private var previousWidth = 0.0
    private var recentLevels: [Double] = []
    private var stress = 0.0
    private let analyzer = MFCCAnalyzer()
    /// Per 10 ms hop of the current utterance: level, high-band share and class weights.
    private var hops: [Hop] = []
    /// Running cepstral mean over speech hops.
    private var cepstralMean = [Double](repeating: 0, count: MFCCAnalyzer.coefficients)
    private var meanCount = 0.0

    struct Hop: Sendable {
        var level: Double
        var highShare: Double
        var weights: [Double]
    }

    /// Vowel / consonant classes: (jaw scale, lip width) and their cepstral templates (c1…c12), from Piper
    /// en_US-joe-medium with phoneme alignments (`scripts/mouth_templates.py`; 57 % of single 10 ms frames
    /// of held-out sentences classified right among these 7 classes).
    static let classes: [(name: String, jaw: Double, width: Double, template: [Double])] = [
        ("a", 1.0, 0.15, [7.107, -8.079, -3.678, -0.908, 0.105, -0.952, 2.687, 1.688, 2.801, -0.205, -1.275, -0.706]),
        ("e", 0.75, 0.35, [2.222, 1.473, 2.54, 1.121, 0.244, -0.814, -0.984, -0.222, 0.731, 0.016, 0.806, 0.409]),
        ("i", 0.5, 0.85, [-4.452, 4.967, 15.261, -1.015, -0.617, 0.487, 0.629, -1.943, 0.478, -0.578, -1.468, 0.745]),
        ("o", 0.8, -0.7, [12.611, 3.396, -8.297, -12.037, 1.599, 0.893, 1.774, -1.42, -0.091, -0.222, 2.436, -0.207]),
        ("u", 0.45, -1.0, [9.609, 3.66, 0.88, -6.027, 1.979, -1.337, -0.638, -1.916, -0.966, -0.197, -0.692, 0.349]),
        ("m", 0.3, 0.0, [2.877, 4.359, 11.497, 6.408, 0.969, 3.741, -2.528, 1.573, 0.422, -2.786, 1.488, 0.6]),
        ("s", 0.3, 0.45, [-35.093, -2.237, -6.512, 5.354, -4.371, 2.8, -0.351, 0.846, -1.97, 0.977, -0.388, -0.174]),
    ]
    static let nasal = 5
    /// The pooled standard deviation of each coefficient: distances are in these units.
    static let scale: [Double] = [14.22, 8.698, 10.153, 6.835, 4.718, 4.984, 4.038, 3.559, 2.901, 2.783, 2.912, 2.309]

    public init(sampleRate: Int = 16000, fps: Double = 25) {
        self.sampleRate = sampleRate
        self.fps = fps
    }

    /// Samples needed after frame k's time: the look-ahead.
    public var lookAheadSamples: Int { Int(0.04 * Double(sampleRate)) }

    /// Forgets the mouth's motion and the analysed audio (not the level range or the speaker's cepstral mean):
    /// silence after a barge-in, or a new utterance whose sample 0 is at time 0 again.
    public mutating func resetMotion() {
        previous = 0
        previousWidth = 0
        stress = 0
        recentLevels.removeAll()
        hops.removeAll(keepingCapacity: true)
    }

    /// The mouth for frame `frame` of `samples` (whose sample 0 is at time 0).
    public mutating func next(_ samples: UnsafeBufferPointer<Float>, frame: Int) -> MouthShape {
        let rate = Double(sampleRate)
        let t = Double(frame) / fps
        let start = max(0, Int((t - 0.02) * rate)), end = min(samples.count, Int((t + 0.04) * rate))
        var level = -100.0
        if end > start + 1 {
            var energy = 0.0
            for i in start..<end { energy += Double(samples[i]) * Double(samples[i]) }
            level = 10 * log10(energy / Double(end - start) + 1e-10)
        }
        if level > peak { peak = level } else { peak = max(peak - 0.03, floor + 25) }
        if level < floor { floor = max(level, -90) } else { floor = min(floor + 0.02, peak - 25) }
        let gate = max(floor + 8, peak - 35)
        let range = max(peak - gate, 6)
        let raw = pow(min(max((level - gate) / range, 0), 1), 0.8)

        // Spectral analysis (16 kHz only; other rates use loudness alone) up to 40 ms ahead, then the class
        // weights over [t − 40 ms, t + 40 ms].
        let hop = MFCCAnalyzer.hop
        let limit = min(samples.count, Int((t + 0.04) * rate))
        if sampleRate == 16000 {
            while hops.count * hop + MFCCAnalyzer.window <= limit { analyse(samples, at: hops.count * hop) }
        }
        let first = max(0, Int((t - 0.04) * rate) / hop), last = hops.count - 1
        var weights = [Double](repeating: 0, count: Self.classes.count)
        var counted = 0.0
        if first <= last {
            for j in first...last where hops[j].level > gate {
                for c in weights.indices { weights[c] += hops[j].weights[c] }
                counted += 1
            }
        }
        var jawScale = 0.8, width = 0.0, nasal = 0.0
        if counted > 0 {
            jawScale = 0
            for (c, cls) in Self.classes.enumerated() {
                let w = weights[c] / counted
                jawScale += w * cls.jaw
                width += w * cls.width
            }
            nasal = weights[Self.nasal] / counted
        }
        let closure = first <= last ? stopClosure(first...last, gate: gate) : 0

        // Fast opening, slightly slower closing: co-articulation without lag on onsets.
        let value = raw > previous ? previous + (raw - previous) * 0.85 : previous + (raw - previous) * 0.6
        previous = value
        var open = value < 0.03 ? 0 : value * (0.45 + 0.55 * jawScale)
        previousWidth += (width - previousWidth) * 0.6
        // A nasal murmur (quieter than the vowels around it) closes the lips. The template cannot tell /m/ from
        // /n/, so an /n/ closes them too: the jaw is nearly shut for it anyway.
        let murmur = open > 0 && level < peak - 6 ? min(max((nasal - 0.5) / 0.25, 0), 1) : 0
        let close = max(closure, murmur)
        open *= 1 - close
        // A stressed syllable: 8 dB louder than the quietest of the last 160 ms, near the top of the range.
        recentLevels.append(level)
        if recentLevels.count > 4 { recentLevels.removeFirst() }
        if level - (recentLevels.min() ?? level) > 8, level > peak - 10 { stress = 1 } else { stress *= 0.75 }
        return MouthShape(open: open, width: open > 0 ? previousWidth * (1 - close) : 0, stress: stress, close: close, loudness: value < 0.03 ? 0 : value)
    }

    /// 1 when the hops in `range` hold a stop closure: inside speech, a dip ≥ 12 dB under the speech just
    /// before it, then a burst ≥ 10 dB over the dip — unless the burst is clearly alveolar (most of its energy
    /// above 3 kHz: /t/, /d/).
    private func stopClosure(_ range: ClosedRange<Int>, gate: Double) -> Double {
        let before = hops[max(0, range.lowerBound - 10)..<range.lowerBound].map(\.level).max() ?? -100
        guard before > gate + 6 else { return 0 }
        var dip = (level: Double.infinity, index: -1)
        for j in range where hops[j].level < dip.level { dip = (hops[j].level, j) }
        guard dip.index >= 0, dip.level < before - 12 else { return 0 }
        // The release: the first hop 10 dB over the dip (its spectrum says which stop), then speech again.
        guard let release = (dip.index..<(range.upperBound + 1)).first(where: { hops[$0].level > dip.level + 10 }),
              hops[release].highShare < 0.6,
              hops[release...range.upperBound].contains(where: { $0.level > before - 30 }) else { return 0 }
        return 1
    }

    private mutating func analyse(_ samples: UnsafeBufferPointer<Float>, at start: Int) {
        let frame = analyzer.analyse(samples, start: start)
        let speech = frame.level > peak - 30
        if speech {
            meanCount = min(meanCount + 1, 200)
            for c in cepstralMean.indices { cepstralMean[c] += (frame.mfcc[c] - cepstralMean[c]) / meanCount }
        }
        var distances = [Double](repeating: 0, count: Self.classes.count)
        for (k, cls) in Self.classes.enumerated() {
            var d = 0.0
            for c in 0..<MFCCAnalyzer.coefficients {
                let z = (frame.mfcc[c] - cepstralMean[c] - cls.template[c]) / Self.scale[c]
                d += z * z
            }
            distances[k] = d
        }
        // Soft weights: closer templates count more (a softmax over −distance / 2).
        let best = distances.min() ?? 0
        var weights = distances.map { exp(-($0 - best) / 2) }
        let sum = weights.reduce(0, +)
        for k in weights.indices { weights[k] /= sum }
        hops.append(Hop(level: frame.level, highShare: frame.highShare, weights: weights))
    }
}
