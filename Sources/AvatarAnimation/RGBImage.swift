import AvatarCore
import Foundation

/// What can go wrong animating a face.
public enum AnimationError: AvatarError {
    case unreadableImage(String)
    case unreadableAudio(String)
    case faceTooSmall(Int)
    case encoderFailed(String)
    case cancelled

    public var userMessage: String {
        switch self {
        case .unreadableImage(let reason): return "the photo cannot be read (\(reason)); use a JPEG or PNG of a face"
        case .unreadableAudio(let reason): return "the audio cannot be read (\(reason)); use a WAV, MP3, OGG or FLAC file"
        case .faceTooSmall(let pixels): return "the face is \(pixels) px wide; need ≥ \(Int(FaceRig.minimumFaceWidth)) (use a larger or closer photo of the face)"
        case .encoderFailed(let reason): return "video encoding failed: \(reason)"
        case .cancelled: return "the video was cancelled"
        }
    }

    public var httpStatus: Int {
        switch self {
        case .unreadableImage, .unreadableAudio, .faceTooSmall: return 422
        case .encoderFailed: return 500
        case .cancelled: return 409
        }
    }

    public var retryable: Bool { false }
}

/// An 8-bit RGB image, row-major, no padding.
public struct RGBImage: Sendable {
    public let width: Int
    public let height: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    public init(width: Int, height: Int, fill: (UInt8, UInt8, UInt8) = (0, 0, 0)) {
        self.width = width
        self.height = height
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        for i in stride(from: 0, to: pixels.count, by: 3) {
            pixels[i] = fill.0
            pixels[i + 1] = fill.1
            pixels[i + 2] = fill.2
        }
        self.pixels = pixels
    }

    /// Decodes any image ffmpeg reads (PNG, JPEG, WebP, BMP…).
    public static func load(_ path: String) async throws -> RGBImage {
        let probe = await ChildProcess.output(of: ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height", "-of", "csv=p=0", path])
        let size = String(decoding: probe.output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ",").compactMap { Int($0) }
        guard probe.status == 0, size.count == 2, size[0] > 0, size[1] > 0 else {
            throw AnimationError.unreadableImage(probe.status == 0 ? "not an image" : String(decoding: probe.error, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
        }
        let decoded = await ChildProcess.output(of: ["ffmpeg", "-v", "error", "-i", path, "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        guard decoded.status == 0, decoded.output.count == size[0] * size[1] * 3 else {
            throw AnimationError.unreadableImage("decoding failed: \(String(decoding: decoded.error.prefix(200), as: UTF8.self))")
        }
        return RGBImage(width: size[0], height: size[1], pixels: [UInt8](decoded.output))
    }

    /// Bilinear sample with edge clamping; writes three channels at `out`.
    @inline(__always)
    func sample(_ x: Double, _ y: Double, into out: UnsafeMutablePointer<UInt8>, _ base: UnsafePointer<UInt8>) {
        let cx = min(max(x, 0), Double(width - 1))
        let cy = min(max(y, 0), Double(height - 1))
        let x0 = Int(cx), y0 = Int(cy)
        let x1 = min(x0 + 1, width - 1), y1 = min(y0 + 1, height - 1)
        let fx = cx - Double(x0), fy = cy - Double(y0)
        let i00 = (y0 * width + x0) * 3, i10 = (y0 * width + x1) * 3
        let i01 = (y1 * width + x0) * 3, i11 = (y1 * width + x1) * 3
        for c in 0..<3 {
            let top = Double(base[i00 + c]) * (1 - fx) + Double(base[i10 + c]) * fx
            let bottom = Double(base[i01 + c]) * (1 - fx) + Double(base[i11 + c]) * fx
            out[c] = UInt8(min(255, max(0, top * (1 - fy) + bottom * fy + 0.5)))
        }
    }
}

