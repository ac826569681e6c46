import AvatarCore

/// What can be wrong with an upload. Each case maps to one HTTP status and problem type.
public enum MediaError: AvatarError, Equatable {
    case empty
    case tooLarge(limit: Int64)
    /// The bytes are none of the accepted formats; `detected` names what they look like, when known.
    case unsupportedType(detected: String?, accepted: [String])
    case tooManyPixels(width: Int, height: Int, limit: Int)
    case truncated(format: String)
    case invalidFileName(String)
    case unreadable(String)
    case tooLong(seconds: Double, limit: Double)
    case quotaExceeded(used: Int64, limit: Int64)
    case storage(String)

    public var userMessage: String {
        switch self {
        case .empty:
            return "the upload is empty (0 bytes); send the file's bytes as the request body"
        case .tooLarge(let limit):
            return "the upload is larger than \(Self.megabytes(limit)); send a smaller file"
        case .unsupportedType(let detected, let accepted):
            let seen = detected.map { "its bytes look like \($0)" } ?? "its bytes are not a known format"
            return "unsupported file type: \(seen) (the name and Content-Type are not trusted); send \(accepted.joined(separator: ", "))"
        case .tooManyPixels(let width, let height, let limit):
            return "the image is \(width)×\(height) (\((width * height) / 1_000_000) megapixels), more than \(limit / 1_000_000); scale it down before uploading"
        case .truncated(let format):
            return "the \(format) file is cut off (its end marker is missing); upload the complete file again"
        case .invalidFileName(let name):
            return "the file name '\(name)' is not allowed (no paths, '..', control characters or more than 200 characters); send a plain name like photo.jpg"
        case .unreadable(let reason):
            return "the file cannot be read: \(reason)"
        case .tooLong(let seconds, let limit):
            // `seconds` is infinite when the container gave no length and decoding stopped past the limit.
            let length = seconds.isFinite ? "\(Int(seconds)) s long, more than" : "longer than"
            return "the audio is \(length) \(Int(limit)) s; cut it into shorter clips"
        case .quotaExceeded(let used, let limit):
            return "this account stores \(Self.megabytes(used)) of \(Self.megabytes(limit)); delete avatars or media you no longer need"
        case .storage(let reason):
            return "the file could not be stored: \(reason); check free disk space and AVATAR_DATA_DIR permissions"
        }
    }

    public var retryable: Bool {
        if case .storage = self { return true }
        return false
    }

    static func megabytes(_ bytes: Int64) -> String {
        if bytes < 1024 * 1024 { return "\(bytes) bytes" }
        return bytes % (1024 * 1024) == 0 ? "\(bytes / (1024 * 1024)) MB" : String(format: "%.1f MB", Double(bytes) / 1_048_576)
    }
}

/// Checks a client-given file name. The name is only ever recorded, never used as a path.
public enum FileName {
    public static func validate(_ name: String) throws(MediaError) -> String {
        let bad = name.isEmpty || name.count > 200 || name.contains("/") || name.contains("\\") || name.contains("..")
            || name.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F }
        if bad { throw .invalidFileName(String(name.prefix(80))) }
        return name
    }
}
