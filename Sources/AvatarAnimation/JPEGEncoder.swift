import CTurboJPEG

/// Compresses RGB frames to JPEG with libjpeg-turbo. One encoder per thread or actor (not thread-safe).
public final class JPEGEncoder {
    private let handle: tjhandle
    public let quality: Int32

    public init(quality: Int = 80) throws {
        guard let handle = tjInitCompress() else { throw AnimationError.encoderFailed("libturbojpeg could not start") }
        self.handle = handle
        self.quality = Int32(min(max(quality, 1), 100))
    }

    deinit {
        tjDestroy(handle)
    }

    /// JPEG bytes of an RGB frame (`width * height * 3` bytes at `pixels`).
    public func encode(_ pixels: UnsafePointer<UInt8>, width: Int, height: Int) throws -> [UInt8] {
        var buffer: UnsafeMutablePointer<UInt8>?
        var size: UInt = 0
        let status = tjCompress2(handle, pixels, Int32(width), 0, Int32(height), Int32(TJPF_RGB.rawValue), &buffer, &size,
                                 Int32(TJSAMP_420.rawValue), quality, TJFLAG_FASTDCT)
        defer { if let buffer { tjFree(buffer) } }
        guard status == 0, let buffer else {
            throw AnimationError.encoderFailed(String(cString: tjGetErrorStr2(handle)))
        }
        return Array(UnsafeBufferPointer(start: buffer, count: Int(size)))
    }
}
