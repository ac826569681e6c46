import Crypto
import Foundation
import NIOCore
import SystemPackage

/// An upload on disk in the temp area, not yet under its real name.
public struct ReceivedFile: Sendable {
    /// Absolute path of the temp file.
    public var tempPath: String
    public var bytes: Int64
    /// SHA-256 of the content, hex.
    public var sha256: String
    /// The first bytes (up to `headBytes`), for format checks.
    public var head: [UInt8]
    /// The last bytes (up to 1 KB), for end-marker checks.
    public var tail: [UInt8]
}

/// Stored files under `root`: `root/ACCOUNT/SHA256.ext`, written atomically (temp file in `root/tmp`,
/// fsync, rename), so a crash never leaves a half file under a real name.
public struct MediaFiles: Sendable {
    public let root: String
    public var tempDirectory: String { root + "/tmp" }

    public init(root: String) throws(MediaError) {
        self.root = root
        do {
            try FileManager.default.createDirectory(atPath: root + "/tmp", withIntermediateDirectories: true)
        } catch {
            throw .storage("cannot create \(root)/tmp: \(error.localizedDescription)")
        }
    }

    /// Streams `body` into a temp file. `limit` is enforced while reading: the first chunk past it stops
    /// the upload (nothing more is read) and removes the temp file. `inspect` sees the head of the file
    /// as it grows (up to `headBytes`), and once more with `finished` at the end; it may throw to stop early, e.g. when a header announces too many pixels.
    public func receive<Body: AsyncSequence>(
        _ body: Body, limit: Int64, headBytes: Int = 512 * 1024,
        inspect: (_ head: [UInt8], _ finished: Bool) throws -> Void = { _, _ in }
    ) async throws -> ReceivedFile where Body.Element == ByteBuffer {
        let path = tempDirectory + "/upload-\(UUID().uuidString.lowercased()).part"
        let descriptor: SystemPackage.FileDescriptor
        do {
            descriptor = try SystemPackage.FileDescriptor.open(FilePath(path), .writeOnly, options: [.create, .exclusiveCreate], permissions: [.ownerReadWrite])
        } catch {
            throw MediaError.storage("cannot create a temp file in \(tempDirectory): \(error)")
        }
        var completed = false
        defer {
            try? descriptor.close()
            if !completed { try? FileManager.default.removeItem(atPath: path) }
        }
        var hasher = SHA256()
        var total: Int64 = 0
        var head: [UInt8] = []
        var tail: [UInt8] = []
        for try await chunk in body {
            total += Int64(chunk.readableBytes)
            if total > limit { throw MediaError.tooLarge(limit: limit) }
            let headBefore = head.count
            try chunk.withUnsafeReadableBytes { raw in
                hasher.update(bufferPointer: raw)
                do { _ = try descriptor.writeAll(raw) } catch { throw MediaError.storage("writing \(path): \(error)") }
                if head.count < headBytes {
                    head.append(contentsOf: raw.prefix(headBytes - head.count))
                }
                tail.append(contentsOf: raw.suffix(1024))
                if tail.count > 1024 { tail.removeFirst(tail.count - 1024) }
            }
            if head.count != headBefore { try inspect(head, false) }
        }
        guard total > 0 else { throw MediaError.empty }
        try inspect(head, true)
        guard fsync(descriptor.rawValue) == 0 else { throw MediaError.storage("fsync \(path): \(String(cString: strerror(errno)))") }
        completed = true
        return ReceivedFile(tempPath: path, bytes: total, sha256: hasher.finalize().map { String(format: "%02x", $0) }.joined(), head: head, tail: tail)
    }

    /// Moves a received file under its content-hash name for `account`; returns the path relative to `root`.
    /// Same content twice → one file (the rename replaces an identical file atomically).
    public func commit(_ file: ReceivedFile, account: String, fileExtension: String) throws(MediaError) -> String {
        try commit(account: account, sha256: file.sha256, fileExtension: fileExtension, from: file.tempPath)
    }

    /// Moves `path` to `ACCOUNT/SHA256.EXT`; each component must be a plain id (no `/`, `.`, `..`).
    public func commit(account: String, sha256: String, fileExtension: String, from path: String) throws(MediaError) -> String {
        let relative = "\(try Self.safeComponent(account))/\(try Self.safeComponent(sha256)).\(try Self.safeComponent(fileExtension))"
        try moveIntoPlace(path, relative: relative)
        return relative
    }

    /// Writes bytes atomically under `relative` (temp + fsync + rename).
    public func write(_ data: Data, relative: String) throws(MediaError) {
        let temp = tempDirectory + "/write-\(UUID().uuidString.lowercased()).part"
        do {
            let descriptor = try SystemPackage.FileDescriptor.open(FilePath(temp), .writeOnly, options: [.create, .exclusiveCreate], permissions: [.ownerReadWrite])
            defer { try? descriptor.close() }
            _ = try data.withUnsafeBytes { try descriptor.writeAll($0) }
            guard fsync(descriptor.rawValue) == 0 else { throw MediaError.storage("fsync: \(String(cString: strerror(errno)))") }
        } catch {
            try? FileManager.default.removeItem(atPath: temp)
            throw .storage("writing \(relative): \(error)")
        }
        try moveIntoPlace(temp, relative: relative)
    }

    func moveIntoPlace(_ temp: String, relative: String) throws(MediaError) {
        let target = root + "/" + relative
        do {
            try FileManager.default.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        } catch {
            throw .storage("cannot create the folder of \(relative): \(error.localizedDescription)")
        }
        guard rename(temp, target) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(atPath: temp)
            throw .storage("rename to \(relative): \(reason)")
        }
    }

    public func absolute(_ relative: String) -> String { root + "/" + relative }

    public func remove(_ relative: String) {
        try? FileManager.default.removeItem(atPath: absolute(relative))
    }

    /// Removes temp files older than `age` (uploads cut off by a crash); returns how many.
    @discardableResult
    public func cleanTemp(olderThan age: TimeInterval) -> Int {
        let manager = FileManager.default
        guard let names = try? manager.contentsOfDirectory(atPath: tempDirectory) else { return 0 }
        var removed = 0
        for name in names {
            let path = tempDirectory + "/" + name
            let modified = (try? manager.attributesOfItem(atPath: path)[.modificationDate] as? Date) ?? Date()
            if Date().timeIntervalSince(modified) > age, (try? manager.removeItem(atPath: path)) != nil { removed += 1 }
        }
        return removed
    }

    /// A path component from our own ids and extensions only: letters, digits, `-`.
    static func safeComponent(_ text: String) throws(MediaError) -> String {
        guard !text.isEmpty, text.utf8.allSatisfy({ (48...57).contains($0) || (65...90).contains($0) || (97...122).contains($0) || $0 == 45 }) else {
            throw .storage("unsafe path component '\(text)'")
        }
        return text
    }
}
