import Foundation

/// A voice made from someone's recordings: who it sounds like and how Avatar speaks in it.
///
/// Offline, Avatar cannot clone a voice (no neural cloning weights are obtainable here): it speaks with
/// the nearest base voice and moves pitch and formants toward the target with WORLD — an *approximate
/// voice match*, whose measured speaker similarity is part of the profile. A configured XTTS server
/// does real cloning from `referencePath`.
public struct VoiceProfile: Codable, Sendable, Equatable {
    public var id: String
    public var name: String
    /// ISO-639-1 code; decides the base voices considered.
    public var language: String
    /// "male" or "female", from the median F0.
    public var gender: String
    /// Resemblyzer speaker embedding (256 values, unit length): centroid of the accepted samples.
    public var embedding: [Double]
    public var f0MedianHz: Double
    /// Mean and standard deviation of ln(F0 / Hz) over the voiced frames of the samples.
    public var f0LogMean: Double
    public var f0LogStd: Double
    /// Mean log spectral envelope of the samples (513 bins, 0–8 kHz).
    public var envelope: [Double]
    /// The engine host voice spoken through the pitch/formant shift.
    public var baseVoice: String
    /// Formant ratio base → target, estimated once from a calibration sentence.
    public var formantRatio: Double
    /// Similarity to `embedding` of the calibration sentence: unmodified base voice, and after the shift.
    public var calibrationBaseSimilarity: Double
    public var calibrationMatchSimilarity: Double
    /// Seconds of accepted samples and how many.
    public var sampleSeconds: Double
    public var sampleCount: Int
    /// The longest accepted sample (mono WAV), kept as the reference for XTTS cloning.
    public var referencePath: String
    public var createdAt: Date

    public init(id: String = UUID().uuidString, name: String, language: String, gender: String, embedding: [Double],
                f0MedianHz: Double, f0LogMean: Double, f0LogStd: Double, envelope: [Double], baseVoice: String,
                formantRatio: Double, calibrationBaseSimilarity: Double, calibrationMatchSimilarity: Double,
                sampleSeconds: Double, sampleCount: Int, referencePath: String, createdAt: Date = Date()) {
        self.id = id
        self.name = name
        self.language = language
        self.gender = gender
        self.embedding = embedding
        self.f0MedianHz = f0MedianHz
        self.f0LogMean = f0LogMean
        self.f0LogStd = f0LogStd
        self.envelope = envelope
        self.baseVoice = baseVoice
        self.formantRatio = formantRatio
        self.calibrationBaseSimilarity = calibrationBaseSimilarity
        self.calibrationMatchSimilarity = calibrationMatchSimilarity
        self.sampleSeconds = sampleSeconds
        self.sampleCount = sampleCount
        self.referencePath = referencePath
        self.createdAt = createdAt
    }
}
