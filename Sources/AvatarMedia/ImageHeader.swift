/// The three photo formats Avatar accepts, recognised from their bytes.
public enum ImageFormat: String, Sendable, Codable {
    case jpeg, png, webp

    public var contentType: String { "image/\(rawValue)" }
    public var fileExtension: String { self == .jpeg ? "jpg" : rawValue }

    /// The format from the first bytes (12 are enough), or nil.
    public static func sniff(_ head: some Collection<UInt8>) -> ImageFormat? {
        let b = Array(head.prefix(12))
        if b.count >= 3, b[0] == 0xFF, b[1] == 0xD8, b[2] == 0xFF { return .jpeg }
        if b.count >= 8, b[0..<8] == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] { return .png }
        if b.count >= 12, b[0..<4] == Array("RIFF".utf8)[...], b[8..<12] == Array("WEBP".utf8)[...] { return .webp }
        return nil
    }

    /// A name for other common formats, for an error message that tells the user what they sent.
    public static func describe(_ head: some Collection<UInt8>) -> String? {
        let b = Array(head.prefix(16))
        func starts(_ s: String) -> Bool { b.starts(with: Array(s.utf8)) }
        if starts("GIF8") { return "GIF" }
        if starts("BM") { return "BMP" }
        if starts("%PDF") { return "PDF" }
        if b.starts(with: [0x49, 0x49, 0x2A, 0x00]) || b.starts(with: [0x4D, 0x4D, 0x00, 0x2A]) { return "TIFF" }
        if b.count >= 12, starts("RIFF"), Array(b[8..<12]) == Array("WAVE".utf8) { return "WAV audio" }
        if b.count >= 12, Array(b[4..<8]) == Array("ftyp".utf8) {
            let brand = String(decoding: b[8..<12], as: UTF8.self)
            return brand.hasPrefix("hei") || brand.hasPrefix("mif1") ? "HEIC" : "MP4/QuickTime"
        }
        if starts("ID3") || (b.count >= 2 && b[0] == 0xFF && (b[1] & 0xE0) == 0xE0) { return "MP3 audio" }
        if starts("OggS") { return "Ogg" }
        if starts("fLaC") { return "FLAC audio" }
        if starts("PK") { return "ZIP" }
        if starts("<") || starts("{") { return "text" }
        return nil
    }
}

/// Size and orientation read from an image's header, before any pixel is decoded.
public struct ImageHeader: Sendable, Equatable {
    public var format: ImageFormat
    public var width: Int
    public var height: Int
    /// EXIF orientation 1…8 (1 = as stored).
    public var orientation: Int

    public var pixels: Int { width * height }

    public init(format: ImageFormat, width: Int, height: Int, orientation: Int) {
        self.format = format
        self.width = width
        self.height = height
        self.orientation = orientation
    }

    /// The header from the first bytes of a file: nil while more bytes are needed, an error when the
    /// bytes cannot be a valid header.
    public static func parse(_ bytes: [UInt8], format: ImageFormat) throws(MediaError) -> ImageHeader? {
        switch format {
        case .png: return try png(bytes)
        case .jpeg: return try jpeg(bytes)
        case .webp: return try webp(bytes)
        }
    }

    static func be16(_ b: [UInt8], _ i: Int) -> Int { Int(b[i]) << 8 | Int(b[i + 1]) }
    static func be32(_ b: [UInt8], _ i: Int) -> Int { Int(b[i]) << 24 | Int(b[i + 1]) << 16 | Int(b[i + 2]) << 8 | Int(b[i + 3]) }
    static func le16(_ b: [UInt8], _ i: Int) -> Int { Int(b[i]) | Int(b[i + 1]) << 8 }
    static func le24(_ b: [UInt8], _ i: Int) -> Int { Int(b[i]) | Int(b[i + 1]) << 8 | Int(b[i + 2]) << 16 }
    static func le32(_ b: [UInt8], _ i: Int) -> Int { le16(b, i) | le16(b, i + 2) << 16 }

    static func png(_ b: [UInt8]) throws(MediaError) -> ImageHeader? {
        guard b.count >= 24 else { return nil }
        guard Array(b[12..<16]) == Array("IHDR".utf8) else { throw .unreadable("the PNG has no IHDR header") }
        let width = be32(b, 16), height = be32(b, 20)
        guard width > 0, height > 0 else { throw .unreadable("the PNG header gives a size of \(width)×\(height)") }
        return ImageHeader(format: .png, width: width, height: height, orientation: 1)
    }

    static func webp(_ b: [UInt8]) throws(MediaError) -> ImageHeader? {
        guard b.count >= 30 else { return nil }
        let chunk = String(decoding: b[12..<16], as: UTF8.self)
        switch chunk {
        case "VP8 ":
            // Frame tag (3 bytes), start code 9d 01 2a, then 14-bit width and height.
            guard b[23] == 0x9D, b[24] == 0x01, b[25] == 0x2A else { throw .unreadable("the WebP (VP8) frame header is damaged") }
            return ImageHeader(format: .webp, width: le16(b, 26) & 0x3FFF, height: le16(b, 28) & 0x3FFF, orientation: 1)
        case "VP8L":
            guard b[20] == 0x2F else { throw .unreadable("the WebP (lossless) header is damaged") }
            let bits = le32(b, 21)
            return ImageHeader(format: .webp, width: (bits & 0x3FFF) + 1, height: ((bits >> 14) & 0x3FFF) + 1, orientation: 1)
        case "VP8X":
            return ImageHeader(format: .webp, width: le24(b, 24) + 1, height: le24(b, 27) + 1, orientation: 1)
        default:
            throw .unreadable("unknown WebP chunk '\(chunk)'")
        }
    }

    /// Walks the JPEG markers up to the frame header (SOFn), reading the EXIF orientation on the way.
    static func jpeg(_ b: [UInt8]) throws(MediaError) -> ImageHeader? {
        var i = 2
        var orientation = 1
        while true {
            guard i + 4 <= b.count else { return nil }
            guard b[i] == 0xFF else { throw .unreadable("the JPEG's marker structure is damaged at byte \(i)") }
            let marker = b[i + 1]
            if marker == 0xFF { i += 1; continue }  // fill byte
            if marker == 0xD8 || (0xD0...0xD7).contains(marker) || marker == 0x01 { i += 2; continue }
            if marker == 0xD9 || marker == 0xDA { throw .unreadable("the JPEG has no frame header before its image data") }
            let length = be16(b, i + 2)
            guard length >= 2 else { throw .unreadable("the JPEG has a segment of length \(length)") }
            let isFrame = (0xC0...0xCF).contains(marker) && marker != 0xC4 && marker != 0xC8 && marker != 0xCC
            if isFrame {
                guard i + 9 <= b.count else { return nil }
                let height = be16(b, i + 5), width = be16(b, i + 7)
                guard width > 0, height > 0 else { throw .unreadable("the JPEG frame header gives a size of \(width)×\(height)") }
                return ImageHeader(format: .jpeg, width: width, height: height, orientation: orientation)
            }
            if marker == 0xE1 {
                guard i + 2 + length <= b.count else { return nil }
                orientation = exifOrientation(Array(b[(i + 4)..<(i + 2 + length)])) ?? orientation
            }
            i += 2 + length
        }
    }

    /// The orientation tag (0x0112) of IFD0 in an APP1 "Exif" payload.
    static func exifOrientation(_ p: [UInt8]) -> Int? {
        guard p.count >= 14, Array(p[0..<6]) == [0x45, 0x78, 0x69, 0x66, 0, 0] else { return nil }
        let t = Array(p[6...])
        let little: Bool
        if t[0] == 0x49, t[1] == 0x49 { little = true } else if t[0] == 0x4D, t[1] == 0x4D { little = false } else { return nil }
        func u16(_ i: Int) -> Int? { i + 2 <= t.count ? (little ? le16(t, i) : be16(t, i)) : nil }
        func u32(_ i: Int) -> Int? { i + 4 <= t.count ? (little ? le32(t, i) : be32(t, i)) : nil }
        guard let ifd = u32(4), let count = u16(ifd) else { return nil }
        for entry in 0..<min(count, 256) {
            let at = ifd + 2 + entry * 12
            guard let tag = u16(at) else { return nil }
            if tag == 0x0112, let value = u16(at + 8), (1...8).contains(value) { return value }
        }
        return nil
    }

    /// Whether the file's last bytes hold its format's end marker (a cut-off upload does not).
    public static func isComplete(format: ImageFormat, tail: [UInt8], fileSize: Int64, riffSize: Int?) -> Bool {
        switch format {
        case .jpeg:
            // EOI, allowing a little padding after it.
            return zip(tail, tail.dropFirst()).contains { $0 == 0xFF && $1 == 0xD9 }
        case .png:
            // The IEND chunk: type + CRC are the last 8 bytes.
            guard tail.count >= 8 else { return false }
            return Array(tail[(tail.count - 8)..<(tail.count - 4)]) == Array("IEND".utf8)
        case .webp:
            guard let riffSize else { return false }
            return Int64(riffSize) + 8 <= fileSize
        }
    }
}
