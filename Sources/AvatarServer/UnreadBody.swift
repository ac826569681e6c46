import Hummingbird
import NIOConcurrencyHelpers

/// Reads (and drops) what is left of a request body when the answer is an error given before the body was read.
///
/// A client that writes its whole body before it reads the answer — Python's `urllib`, which also sends
/// `Connection: close` — never saw a 401, 404, 413 or 415 to a big upload: Hummingbird drops an unread body only on a
/// keep-alive connection, so the server stopped reading, the client's write blocked, and the client waited for its own
/// timeout (a 4 MB upload to a missing avatar: "timed out" after 10 s). Now the error goes out first — a client that
/// reads while it writes (curl, browsers) has it at once — and the rest of the body is read and dropped after it,
/// as Hummingbird itself does on a keep-alive connection.
struct UnreadBodyMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard request.headers[.contentLength].map({ $0 != "0" }) ?? (request.headers[.transferEncoding] != nil) else {
            return try await next(request, context)
        }
        let reader = SharedBodyReader(request.body)
        var request = request
        request.body = RequestBody(asyncSequence: reader)
        var response: Response
        do {
            response = try await next(request, context)
        } catch {
            await reader.drain()
            throw error
        }
        guard response.status.code >= 400 else { return response }
        let body = response.body
        response.body = ResponseBody(contentLength: body.contentLength) { writer in
            do {
                try await body.write(writer)
            } catch {
                await reader.drain()
                throw error
            }
            await reader.drain()
        }
        return response
    }
}

/// One iterator over a request body, shared by the handler (which reads some of it) and then the middleware (which
/// reads the rest). Handler and middleware run one after the other, never at once; the lock only guards the hand-over.
final class SharedBodyReader: AsyncSequence, @unchecked Sendable {
    typealias Element = ByteBuffer

    private let lock = NIOLock()
    private var body: RequestBody?
    private var iterator: RequestBody.AsyncIterator?
    private var finished = false

    init(_ body: RequestBody) {
        self.body = body
    }

    struct AsyncIterator: AsyncIteratorProtocol {
        let reader: SharedBodyReader
        func next() async throws -> ByteBuffer? { try await reader.next() }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(reader: self) }

    func next() async throws -> ByteBuffer? {
        guard var current = take() else { return nil }
        let chunk = try await current.next()
        lock.withLock {
            iterator = current
            if chunk == nil { finished = true }
        }
        return chunk
    }

    /// Reads and drops the rest of the body; stops quietly if the client goes away.
    func drain() async {
        while (try? await next()) ?? nil != nil {}
    }

    private func take() -> RequestBody.AsyncIterator? {
        lock.withLock {
            if finished { return nil }
            if iterator == nil, let body {
                iterator = body.makeAsyncIterator()
                self.body = nil
            }
            defer { iterator = nil }
            return iterator
        }
    }
}
