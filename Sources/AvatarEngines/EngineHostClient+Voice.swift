import Foundation

/// What the engine host measured on one voice sample (`POST /v1/voice/analyze`).
public struct VoiceAnalysis: Codable, Sendable, Equatable {
    /// Pitch statistics of the voiced frames (WORLD DIO + StoneMask at 16 kHz).
    public struct Pitch: Codable, Sendable, Equatable {
        public var voicedRatio: Double
        public var medianHz: Double?
        /// Mean and standard deviation of the natural log of F0 in Hz.
        public var logMean: Double?
        public var logStd: Double?
    }

    public var duration: Double
    /// The upload's own format, before any conversion.
    public var sampleRate: Int
    public var channels: Int
    public var codec: String
    public var container: String
    public var peakDbfs: Double
    public var rmsDbfs: Double
    /// Share of samples (all channels) at ≥ 98.5 % of full scale.
    public var clippedFraction: Double
    /// Speech level over the quietest 10 % of 32 ms frames, dB; nil for clips under 4 frames.
    public var snrDb: Double?
    /// Share of 32 ms frames the Silero VAD calls speech.
    public var speechRatio: Double
    public var f0: Pitch
    /// "male" (median F0 < 165 Hz) or "female"; nil without voiced speech.
    public var gender: String?
    /// Mean natural-log spectral envelope of the voiced frames, 513 bins from 0 to 8 kHz.
    public var envelope: [Double]?
}

/// A Resemblyzer speaker embedding (`POST /v1/voice/embedding`): 256 values, unit length.
public struct SpeakerEmbedding: Codable, Sendable, Equatable {
    public var embedding: [Double]
    public var duration: Double
    /// Speech left after Resemblyzer trimmed the long silences.
    public var speechSeconds: Double

    /// Cosine similarity of two embeddings.
    public static func cosine(_ a: [Double], _ b: [Double]) -> Double {
        guard a.count == b.count, !a.isEmpty else { return 0 }
        var dot = 0.0, na = 0.0, nb = 0.0
        for i in a.indices {
            dot += a[i] * b[i]
            na += a[i] * a[i]
            nb += b[i] * b[i]
        }
        return na > 0 && nb > 0 ? dot / (na.squareRoot() * nb.squareRoot()) : 0
    }

    /// The normalised mean of several embeddings (a speaker's centroid).
    public static func centroid(_ vectors: [[Double]]) -> [Double] {
        guard let first = vectors.first else { return [] }
        var sum = [Double](repeating: 0, count: first.count)
        for vector in vectors where vector.count == sum.count {
            for i in vector.indices { sum[i] += vector[i] }
        }
        let norm = sum.reduce(0) { $0 + $1 * $1 }.squareRoot()
        return norm > 0 ? sum.map { $0 / norm } : sum
    }
}

/// How the engine host moved an utterance toward a target voice (`POST /v1/voice/convert`).
public struct VoiceConversion: Codable, Sendable, Equatable {
    public var sampleRate: Int
    public var duration: Double
    public var formantRatio: Double
    public var envelopeCorrelation: Double?
    public var sourceF0MedianHz: Double?
    public var targetF0MedianHz: Double?
}

extension EngineHostClient {
    /// Format and quality measurements of a voice sample (any container ffmpeg reads).
    public func analyzeVoice(audio: Data, filename: String = "sample") async throws -> VoiceAnalysis {
        try await postFile("/v1/voice/analyze", audio, filename: filename)
    }

    /// The speaker embedding of a recording. The first call loads the encoder (seconds to tens of seconds).
    public func speakerEmbedding(audio: Data, filename: String = "sample") async throws -> SpeakerEmbedding {
        try await postFile("/v1/voice/embedding", audio, filename: filename)
    }

    /// WORLD conversion of `audio` toward a target pitch (log-F0 mean/std) and a formant ratio; with
    /// `formantRatio` nil the host estimates it from `targetEnvelope`. Returns a WAV at the input's rate.
    public func convertVoice(audio: Data, f0LogMean: Double, f0LogStd: Double, formantRatio: Double?,
                             targetEnvelope: [Double]? = nil) async throws -> (wav: Data, conversion: VoiceConversion) {
        var form = MultipartForm()
        form.addField("f0_log_mean", String(f0LogMean))
        form.addField("f0_log_std", String(f0LogStd))
        if let formantRatio { form.addField("formant_ratio", String(formantRatio)) }
        if let targetEnvelope, formantRatio == nil {
            let json = try JSONSerialization.data(withJSONObject: targetEnvelope)
            form.addField("target_envelope", String(decoding: json, as: UTF8.self))
        }
        form.addFile("file", filename: "utterance.wav", contentType: "audio/wav", data: audio)
        let response = try await http.send(.POST, "/v1/voice/convert", body: form.finished(), contentType: form.contentType)
        guard let header = response.headers.first(name: "X-Voice-Conversion") else {
            throw EngineError.invalidResponse(engine: http.engine, reason: "no X-Voice-Conversion header")
        }
        let conversion = try http.decode(VoiceConversion.self, from: Data(header.utf8))
        return (response.body, conversion)
    }
}
