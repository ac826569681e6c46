import Foundation
import Hummingbird

/// Serves a stored file, with single-range requests (`Range: bytes=…`) so a browser `<video>` can seek.
enum FileResponder {
    static func respond(_ path: String, contentType: String, request: Request, context: some RequestContext, downloadName: String? = nil) async throws -> Response {
        guard let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.intValue else {
            throw Problem(.gone, "file-missing", "File missing", detail: "the stored file is missing on the server's disk",
                          fix: "upload it again; the server's log has the path")
        }
        var headers: HTTPFields = [.contentType: contentType, .acceptRanges: "bytes"]
        if let downloadName { headers[.contentDisposition] = "attachment; filename=\"\(downloadName)\"" }
        guard let rangeHeader = request.headers[.range] else {
            headers[.contentLength] = String(size)
            return Response(status: .ok, headers: headers, body: size == 0 ? .init() : try await FileIO().loadFile(path: path, context: context))
        }
        guard let range = parse(rangeHeader, size: size) else {
            var problem = Problem(.rangeNotSatisfiable, "range-not-satisfiable", "Range not satisfiable",
                                  detail: "'\(rangeHeader.prefix(60))' is not one byte range inside the file's \(size) bytes",
                                  fix: "send one range such as 'bytes=0-1023', 'bytes=1024-' or 'bytes=-500'")
            problem.headers[.contentRange] = "bytes */\(size)"
            throw problem
        }
        headers[.contentRange] = "bytes \(range.lowerBound)-\(range.upperBound)/\(size)"
        headers[.contentLength] = String(range.count)
        return Response(status: .partialContent, headers: headers, body: try await FileIO().loadFile(path: path, range: range, context: context))
    }

    /// One range of `bytes=a-b`, `bytes=a-` or `bytes=-n`, clamped to the file; nil when unsatisfiable or not one range.
    static func parse(_ header: String, size: Int) -> ClosedRange<Int>? {
        guard size > 0, header.hasPrefix("bytes="), !header.contains(",") else { return nil }
        let spec = header.dropFirst(6).trimmingCharacters(in: .whitespaces)
        let parts = spec.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 2 else { return nil }
        if parts[0].isEmpty {
            guard let suffix = Int(parts[1]), suffix > 0 else { return nil }
            return max(0, size - suffix)...(size - 1)
        }
        guard let start = Int(parts[0]), start >= 0, start < size else { return nil }
        if parts[1].isEmpty { return start...(size - 1) }
        guard let end = Int(parts[1]), end >= start else { return nil }
        return start...min(end, size - 1)
    }
}
