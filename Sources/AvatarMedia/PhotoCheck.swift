/// Checks a photo upload while it streams in: the type from the first bytes, the size from the header
/// (a decompression bomb is refused before a pixel is decoded), and at the end that the file is complete.
/// One per upload, used from one task.
public final class PhotoCheck: @unchecked Sendable {
    public let maxPixels: Int
    public private(set) var header: ImageHeader?
    var format: ImageFormat?
    /// Bytes within which the header must be found (EXIF segments before the frame header can be ~64 KB each).
    public static let headerWindow = 512 * 1024

    public init(maxPixels: Int) { self.maxPixels = maxPixels }

    public static let accepted = ["JPEG", "PNG", "WebP"]

    public func inspect(_ head: [UInt8], finished: Bool) throws(MediaError) {
        if format == nil {
            guard head.count >= 12 || finished else { return }
            guard let sniffed = ImageFormat.sniff(head) else {
                throw .unsupportedType(detected: ImageFormat.describe(head), accepted: Self.accepted)
            }
            format = sniffed
        }
        guard header == nil, let format else { return }
        if let parsed = try ImageHeader.parse(head, format: format) {
            guard parsed.pixels <= maxPixels else { throw .tooManyPixels(width: parsed.width, height: parsed.height, limit: maxPixels) }
            header = parsed
        } else if finished {
            throw .truncated(format: format.rawValue.uppercased())
        } else if head.count >= Self.headerWindow {
            throw .unreadable("no image size in the first \(Self.headerWindow / 1024) KB of the \(format.rawValue.uppercased()) file")
        }
    }

    /// After the whole file arrived: the end marker must be there.
    public func verifyComplete(_ file: ReceivedFile) throws(MediaError) -> ImageHeader {
        guard let header else { throw .unreadable("no image header") }
        let riffSize = header.format == .webp && file.head.count >= 8
            ? Int(file.head[4]) | Int(file.head[5]) << 8 | Int(file.head[6]) << 16 | Int(file.head[7]) << 24 : nil
        guard ImageHeader.isComplete(format: header.format, tail: file.tail, fileSize: file.bytes, riffSize: riffSize) else {
            throw .truncated(format: header.format.rawValue.uppercased())
        }
        return header
    }
}
