import Foundation

/// A content fingerprint for change detection and cache keys (FNV-1a, 64 bit, hex). Not for security.
public enum ContentHash {
    public static func of(_ data: Data) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in data {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return String(hash, radix: 16)
    }

    public static func of(_ text: String) -> String { of(Data(text.utf8)) }
}
