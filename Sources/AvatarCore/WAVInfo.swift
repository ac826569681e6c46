import Foundation

/// Reads the format of a RIFF/WAVE file without decoding it.
public struct WAVInfo: Sendable, Equatable {
    public var sampleRate: Int
    public var channels: Int
    public var bitsPerSample: Int
    /// Bytes of sample data.
    public var dataBytes: Int

    public var duration: Double {
        let frameBytes = channels * bitsPerSample / 8
        return frameBytes > 0 && sampleRate > 0 ? Double(dataBytes / frameBytes) / Double(sampleRate) : 0
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

    /// Duration in seconds of a WAV file, 0 when it is not one.
    public static func duration(_ data: Data) -> Double {
        WAVInfo(data)?.duration ?? 0
    }
}
