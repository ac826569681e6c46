import Foundation
import NIOCore

/// The bytes of the first file part (`Content-Disposition: form-data; …; filename=…`) of a `multipart/form-data`
/// body, streamed: nothing but the part headers and a boundary's length of bytes is held, so the upload limits of
/// `MediaFiles.receive` apply to the file itself as it arrives. Form fields before the file are skipped.
public struct MultipartFilePart<Base: AsyncSequence & Sendable>: AsyncSequence, Sendable where Base.Element == ByteBuffer {
    public typealias Element = ByteBuffer

    /// What the part's headers said, filled in once they are read.
    public final class Info: @unchecked Sendable {
        public internal(set) var filename: String?
        public internal(set) var contentType: String?
    }

    let base: Base
    let boundary: [UInt8]
    public let info = Info()
    /// Bytes of part headers and skipped fields allowed before the file starts.
    static var headerLimit: Int { 64 * 1024 }

    public init(base: Base, boundary: String) {
        self.base = base
        self.boundary = Array("--\(boundary)".utf8)
    }

    /// The boundary of a `multipart/form-data` Content-Type, or nil for any other type.
    public static func boundary(contentType: String?) -> String? {
        guard let contentType, contentType.lowercased().hasPrefix("multipart/form-data") else { return nil }
        for parameter in contentType.split(separator: ";").dropFirst() {
            let kv = parameter.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if kv.count == 2, kv[0].lowercased() == "boundary" {
                let value = kv[1].trimmingCharacters(in: CharacterSet(charactersIn: "\""))
                return (1...70).contains(value.count) ? value : nil
            }
        }
        return nil
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        enum Phase { case headers, body, done }
        var base: Base.AsyncIterator
        let boundary: [UInt8]
        let info: Info
        var phase = Phase.headers
        var pending: [UInt8] = []
        var ended = false

        public mutating func next() async throws -> ByteBuffer? {
            while true {
                switch phase {
                case .done:
                    return nil
                case .headers:
                    if try findFilePart() { phase = .body; continue }
                    guard pending.count <= MultipartFilePart.headerLimit else {
                        throw MediaError.unreadable("no file part in the first 64 KB of the multipart body; send the file as a form field with a filename")
                    }
                    guard try await pull() else {
                        throw MediaError.unreadable("the multipart body has no file part (a form field with a filename)")
                    }
                case .body:
                    let delimiter = Array("\r\n".utf8) + boundary
                    if let range = pending.firstRange(of: delimiter) {
                        let bytes = Array(pending[..<range.lowerBound])
                        pending = []
                        phase = .done
                        return ByteBuffer(bytes: bytes)
                    }
                    // Keep what could be the start of the delimiter; hand on the rest.
                    let keep = delimiter.count - 1
                    if pending.count > keep {
                        let bytes = Array(pending[..<(pending.count - keep)])
                        pending.removeFirst(pending.count - keep)
                        return ByteBuffer(bytes: bytes)
                    }
                    guard try await pull() else {
                        throw MediaError.truncated(format: "multipart")
                    }
                }
            }
        }

        /// Appends the next chunk of the base body; false at its end.
        mutating func pull() async throws -> Bool {
            guard !ended, var chunk = try await base.next() else {
                ended = true
                return false
            }
            pending.append(contentsOf: chunk.readBytes(length: chunk.readableBytes) ?? [])
            return true
        }

        /// Skips parts up to the first with a filename and its headers; true when `pending` starts at its content.
        mutating func findFilePart() throws -> Bool {
            while true {
                guard let start = pending.firstRange(of: boundary) else { return false }
                let afterBoundary = start.upperBound
                let separator = Array("\r\n\r\n".utf8)
                guard let headersEnd = pending[afterBoundary...].firstRange(of: separator) else { return false }
                let headers = String(decoding: pending[afterBoundary..<headersEnd.lowerBound], as: UTF8.self)
                if headers.hasPrefix("--") { throw MediaError.unreadable("the multipart body has no file part (a form field with a filename)") }
                if let filename = Self.parameter("filename", in: headers) {
                    info.filename = filename
                    info.contentType = headers.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-type:") }
                        .map { $0.dropFirst("content-type:".count).trimmingCharacters(in: .whitespaces) }
                    pending.removeFirst(headersEnd.upperBound)
                    return true
                }
                // A plain field: drop it up to the next boundary.
                pending.removeFirst(headersEnd.upperBound)
            }
        }

        static func parameter(_ name: String, in headers: String) -> String? {
            for line in headers.split(separator: "\r\n") where line.lowercased().hasPrefix("content-disposition:") {
                for part in line.split(separator: ";").dropFirst() {
                    let kv = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                    if kv.count == 2, kv[0].lowercased() == name { return kv[1].trimmingCharacters(in: CharacterSet(charactersIn: "\"")) }
                }
            }
            return nil
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: base.makeAsyncIterator(), boundary: boundary, info: info)
    }
}
