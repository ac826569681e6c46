import Foundation

/// Reads the format of a RIFF/WAVE file without decoding it.
public struct WAVInfo: Sendable, Equatable {
    public var sampleRate: Int
    public var channels: Int
    public var bitsPerSample: Int
    /// Bytes of sample data.
    public var dataBytes: Int
    /// Where the sample data starts in the file.
    public var dataOffset: Int = 44

    public var duration: Double {
        let frameBytes = channels * bitsPerSample / 8
        return frameBytes > 0 && sampleRate > 0 ? Double(dataBytes / frameBytes) / Double(sampleRate) : 0
    }

    /// The one WAV writer: a 16-bit mono PCM file of `samples` at `rate`.
    public static func pcm16<Samples: Collection>(_ samples: Samples, rate: Int) -> Data where Samples.Element == Int16 {
        var data = Data(capacity: 44 + samples.count * 2)
        func append<T: FixedWidthInteger>(_ value: T) { withUnsafeBytes(of: value.littleEndian) { data.append(contentsOf: $0) } }
        let bytes = UInt32(samples.count * 2)
        data.append(contentsOf: Array("RIFF".utf8)); append(36 + bytes)
        data.append(contentsOf: Array("WAVEfmt ".utf8)); append(UInt32(16)); append(UInt16(1)); append(UInt16(1))
        append(UInt32(rate)); append(UInt32(rate * 2)); append(UInt16(2)); append(UInt16(16))
        data.append(contentsOf: Array("data".utf8)); append(bytes)
        for sample in samples { append(sample) }
        return data
    }

    /// Parses the `fmt ` and `data` chunks; nil when `data` is not a PCM WAV.
    public init?(_ data: Data) {
        let bytes = [UInt8](data)
        guard bytes.count >= 12, bytes[0..<4].elementsEqual("RIFF".utf8), bytes[8..<12].elementsEqual("WAVE".utf8) else { return nil }
        func u32(_ i: Int) -> Int { Int(bytes[i]) | Int(bytes[i + 1]) << 8 | Int(bytes[i + 2]) << 16 | Int(bytes[i + 3]) << 24 }
        func u16(_ i: Int) -> Int { Int(bytes[i]) | Int(bytes[i + 1]) << 8 }
        var offset = 12
        var format: (rate: Int, channels: Int, bits: Int)?
        while offset + 8 <= bytes.count {
            let id = String(decoding: bytes[offset..<offset + 4], as: UTF8.self)
            var size = u32(offset + 4)
            let body = offset + 8
            if id == "fmt ", body + 16 <= bytes.count {
                format = (u32(body + 4), u16(body + 2), u16(body + 14))
            } else if id == "data" {
                guard let format else { return nil }
                // Streaming writers leave the size as 0 or 0xFFFFFFFF: take what is there.
                if size == 0 || body + size > bytes.count { size = bytes.count - body }
                self.init(sampleRate: format.rate, channels: format.channels, bitsPerSample: format.bits, dataBytes: size)
                dataOffset = body
                return
            }
            offset = body + size + (size & 1)
        }
        return nil
    }

    public init(sampleRate: Int, channels: Int, bitsPerSample: Int, dataBytes: Int) {
        self.sampleRate = sampleRate
        self.channels = channels
        self.bitsPerSample = bitsPerSample
        self.dataBytes = dataBytes
    }

    /// The samples of a 16-bit PCM WAV as floats in -1…1, channels averaged; nil for anything else.
    public static func monoSamples(_ data: Data) -> (samples: [Float], sampleRate: Int)? {
        guard let info = WAVInfo(data), info.bitsPerSample == 16, info.channels >= 1 else { return nil }
        let channels = info.channels
        let frames = info.dataBytes / (2 * channels)
        var out = [Float](repeating: 0, count: frames)
        data.withUnsafeBytes { raw in
            let base = raw.baseAddress!.advanced(by: info.dataOffset)
            for i in 0..<frames {
                var sum: Float = 0
                for c in 0..<channels {
                    var v: Int16 = 0
                    memcpy(&v, base.advanced(by: (i * channels + c) * 2), 2)
                    sum += Float(Int16(littleEndian: v)) / 32768
                }
                out[i] = sum / Float(channels)
            }
        }
        return (out, info.sampleRate)
    }

    /// Duration in seconds of a WAV file, 0 when it is not one.
    public static func duration(_ data: Data) -> Double {
        WAVInfo(data)?.duration ?? 0
    }
}
