import Foundation

/// Measures prosody on audio, independently of how it was made: used by `avatar bench tts` and the tests
/// to check that each emotion really changes pitch, rate and loudness.
public enum ProsodyMeasure {
    /// Median fundamental frequency (Hz) over voiced 40 ms frames (10 ms hop), by normalised
    /// autocorrelation in 60…400 Hz; nil when nothing is voiced. Expects 16 kHz.
    public static func medianF0(_ input: [Float], sampleRate inputRate: Int = 16000) -> Double? {
        // Work at half the rate (pairs averaged): speech F0 is far below 4 kHz, and it is 4× cheaper.
        let samples = stride(from: 0, to: input.count - 1, by: 2).map { (input[$0] + input[$0 + 1]) / 2 }
        let sampleRate = inputRate / 2
        let frame = Int(0.04 * Double(sampleRate)), hop = Int(0.01 * Double(sampleRate))
        let minLag = sampleRate / 400, maxLag = sampleRate / 60
        guard samples.count > frame + maxLag else { return nil }
        let peak = samples.reduce(Float(0)) { max($0, abs($1)) }
        var f0s: [Double] = []
        samples.withUnsafeBufferPointer { x in
            var start = 0
            while start + frame + maxLag < x.count {
                var energy: Float = 0
                for i in start..<start + frame { energy += x[i] * x[i] }
                let rms = sqrt(energy / Float(frame))
                if rms > 0.05 * peak {
                    var correlations = [Double](repeating: 0, count: maxLag + 1)
                    var best = 0.0
                    for lag in minLag...maxLag {
                        var dot: Float = 0, e2: Float = 0
                        for i in start..<start + frame {
                            dot += x[i] * x[i + lag]
                            e2 += x[i + lag] * x[i + lag]
                        }
                        correlations[lag] = Double(dot) / (sqrt(Double(energy) * Double(e2)) + 1e-12)
                        best = max(best, correlations[lag])
                    }
                    // The shortest lag at a local peak close to the best: multiples of the period
                    // correlate as well as the period itself (the octave error).
                    var bestLag = 0
                    for lag in (minLag + 1)..<maxLag where correlations[lag] >= 0.9 * best
                        && correlations[lag] >= correlations[lag - 1] && correlations[lag] >= correlations[lag + 1] {
                        bestLag = lag
                        break
                    }
                    if best > 0.75, bestLag > minLag, bestLag < maxLag { f0s.append(Double(sampleRate) / Double(bestLag)) }
                }
                start += hop
            }
        }
        guard !f0s.isEmpty else { return nil }
        return f0s.sorted()[f0s.count / 2]
    }

    /// RMS level (dBFS) of the samples louder than -40 dB of the peak (the speech, not the pauses).
    public static func activeLevel(_ samples: [Float]) -> Double {
        let peak = samples.reduce(Float(0)) { max($0, abs($1)) }
        let gate = peak * 0.01
        var sum = 0.0, n = 0
        for s in samples where abs(s) > gate { sum += Double(s) * Double(s); n += 1 }
        return n > 0 ? 10 * log10(sum / Double(n) + 1e-12) : -120
    }
}
