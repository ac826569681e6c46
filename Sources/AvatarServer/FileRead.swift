import Foundation
import NIOCore
import NIOFileSystem

/// Reading a file the server wrote (an upload's temporary file, a finished video) without blocking a thread of
/// the cooperative pool: NIOFileSystem does the reads on its own I/O threads.
enum FileRead {
    /// The whole file, refused past `limit` bytes.
    static func data(_ path: String, limit: Int = 512 * 1024 * 1024) async throws -> Data {
        let buffer = try await FileSystem.shared.withFileHandle(forReadingAt: FilePath(path)) { handle in
            try await handle.readToEnd(maximumSizeAllowed: .bytes(Int64(limit)))
        }
        return Data(buffer.readableBytesView)
    }
}
