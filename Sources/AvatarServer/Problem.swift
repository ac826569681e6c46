import AvatarAnimation
import AvatarCore
import AvatarEngines
import AvatarMedia
import AvatarStore
import Foundation
import Hummingbird
import Logging

/// An RFC 9457 problem: every failure of the API is answered as `application/problem+json` with
/// `type`, `title`, `status`, `detail`, `fix` (what to do) and `requestId` (the id on the server's log lines).
public struct Problem: Error, Sendable, CustomStringConvertible {
    public var status: HTTPResponse.Status
    /// Short machine-readable code; the problem `type` is `urn:avatar:problem:CODE` (listed in docs/api.md).
    public var code: String
    public var title: String
    public var detail: String
    public var fix: String
    public var headers: HTTPFields = [:]
    /// Extra members (e.g. the engine's warnings).
    public var extra: [String: String] = [:]

    public init(_ status: HTTPResponse.Status, _ code: String, _ title: String, detail: String, fix: String, headers: HTTPFields = [:]) {
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.fix = fix
        self.headers = headers
    }

    public var description: String { "\(status.code) \(code): \(detail)" }

    struct Body: Encodable {
        var type: String
        var title: String
        var status: Int
        var detail: String
        var fix: String
        var instance: String
        var requestId: String
        var code: String
    }

    func response(requestId: String, instance: String) -> Response {
        let body = Body(type: "urn:avatar:problem:\(code)", title: title, status: Int(status.code), detail: detail, fix: fix,
                        instance: instance, requestId: requestId, code: code)
        var data = (try? JSONEncoder().encode(body)) ?? Data("{}".utf8)
        if !extra.isEmpty, var object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] {
            for (key, value) in extra { object[key] = value }
            data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? data
        }
        var headers = headers
        headers[.contentType] = "application/problem+json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(data: data)))
    }

    // MARK: common problems

    static func notFound(_ what: String) -> Problem {
        Problem(.notFound, "not-found", "Not found", detail: "\(what) does not exist (or belongs to another account)",
                fix: "check the id; list what you have with GET /api/v1/avatars")
    }

    static func badRequest(_ code: String, _ detail: String, fix: String) -> Problem {
        Problem(.badRequest, code, "Bad request", detail: detail, fix: fix)
    }

    static func unprocessable(_ code: String, _ detail: String, fix: String) -> Problem {
        Problem(.unprocessableContent, code, "Cannot process this input", detail: detail, fix: fix)
    }

    /// The part of an `AvatarError` message after its last "; " is its advice (the project's message style).
    static func split(_ message: String) -> (detail: String, fix: String?) {
        guard let range = message.range(of: "; ", options: .backwards) else { return (message, nil) }
        return (message, String(message[range.upperBound...]))
    }

    /// The engine host writes "What is wrong. What to do." — the sentences after the first are the advice.
    static func advice(inSentences message: String) -> String? {
        guard let range = message.range(of: ". ") else { return nil }
        let rest = message[range.upperBound...].trimmingCharacters(in: .whitespaces)
        return rest.isEmpty ? nil : rest
    }

    static func from(_ error: MediaError) -> Problem {
        let (detail, advice) = split(error.userMessage)
        let fix = advice ?? "send a different file"
        switch error {
        case .empty: return Problem(.badRequest, "empty-upload", "Empty upload", detail: detail, fix: fix)
        case .tooLarge: return Problem(.contentTooLarge, "upload-too-large", "Upload too large", detail: detail, fix: fix)
        case .unsupportedType: return Problem(.unsupportedMediaType, "unsupported-type", "Unsupported file type", detail: detail, fix: fix)
        case .tooManyPixels: return Problem(.contentTooLarge, "too-many-pixels", "Image has too many pixels", detail: detail, fix: fix)
        case .truncated: return Problem(.unprocessableContent, "truncated-file", "File is cut off", detail: detail, fix: fix)
        case .invalidFileName: return Problem(.badRequest, "invalid-file-name", "Invalid file name", detail: detail, fix: fix)
        case .unreadable: return Problem(.unprocessableContent, "unreadable-file", "File cannot be read", detail: detail, fix: advice ?? "export the file again from the program that made it and upload that")
        case .tooLong: return Problem(.contentTooLarge, "audio-too-long", "Audio too long", detail: detail, fix: fix)
        case .quotaExceeded: return Problem(.init(code: 507, reasonPhrase: "Insufficient Storage"), "quota-exceeded", "Storage quota exceeded", detail: detail, fix: fix)
        case .storage: return Problem(.internalServerError, "storage-failed", "Storage failed", detail: detail, fix: fix)
        }
    }

    static func from(_ error: EngineError) -> Problem {
        switch error {
        case .timeout, .unavailable:
            return Problem(.serviceUnavailable, "engine-unavailable", "Engine unavailable", detail: error.userMessage,
                           fix: "try again in a minute; GET /readyz shows which engine is down and why", headers: [.retryAfter: "30"])
        case .rejected(_, let status, let code, let message) where status == 422 || status == 400 || status == 413:
            return Problem(.unprocessableContent, code.map { $0.replacingOccurrences(of: "_", with: "-") } ?? "engine-rejected", "Cannot process this input",
                           detail: message, fix: split(message).fix ?? advice(inSentences: message) ?? "send a different file")
        default:
            return Problem(.badGateway, "engine-failed", "Engine failed", detail: error.userMessage, fix: "try again; if it repeats, see the engine logs in AVATAR_DATA_DIR/logs")
        }
    }
}

/// Turns every error thrown under it into a problem response.
struct ProblemMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            let problem = Self.problem(for: error, context: context)
            if problem.status.code >= 500 {
                context.logger.error("request failed", metadata: ["error": .string("\(error)")])
            }
            return problem.response(requestId: context.id, instance: request.uri.path)
        }
    }

    static func problem(for error: any Error, context: Context) -> Problem {
        switch error {
        case let problem as Problem:
            return problem
        case let error as MediaError:
            return Problem.from(error)
        case let error as EngineError:
            return Problem.from(error)
        case let error as AnimationError:
            let (detail, fix) = Problem.split(error.userMessage)
            return Problem.unprocessable("photo-not-usable", detail, fix: fix ?? "use another photo")
        case let error as DecodingError:
            return Problem.badRequest("invalid-json", "the JSON body does not match the schema: \(Self.describe(error))",
                                      fix: "compare the body with the request example in /openapi.yaml")
        case let error as HTTPError:
            switch error.status {
            case .notFound:
                return Problem(.notFound, "no-such-route", "Not found", detail: "there is no such path", fix: "see /docs for the API's paths")
            case .methodNotAllowed:
                return Problem(.methodNotAllowed, "method-not-allowed", "Method not allowed", detail: "this path does not accept this method", fix: "see /docs for the methods of each path", headers: error.headers)
            case .badRequest:
                // Hummingbird's JSON decoding wraps the decoder's error in a 400 with its message.
                return Problem.badRequest("invalid-json", "the JSON body is not valid or does not match the schema: \(error.body ?? "unreadable")",
                                          fix: "compare the body with the request example in /openapi.yaml")
            case .contentTooLarge:
                return Problem(.contentTooLarge, "body-too-large", "Request body too large", detail: error.body ?? "the request body is too large", fix: "send a smaller body")
            default:
                return Problem(error.status, "http-\(error.status.code)", error.status.reasonPhrase,
                               detail: error.body ?? error.status.reasonPhrase, fix: "see /docs", headers: error.headers)
            }
        case let error as any AvatarError:
            // The error says which status it maps to: a request its sender can fix is not a server error.
            let (detail, fix) = Problem.split(error.userMessage)
            let status = HTTPResponse.Status(code: error.httpStatus)
            if status.code < 500 {
                return Problem(status, "invalid-request", status.reasonPhrase, detail: detail, fix: fix ?? "change the request as the detail says")
            }
            return Problem(status, status.code == 503 ? "unavailable" : "internal", "Server error", detail: detail,
                           fix: fix ?? "try again; if it repeats, report it with the request id")
        default:
            return Problem(.internalServerError, "internal", "Server error", detail: "an unexpected error occurred",
                           fix: "try again; if it repeats, report it with the request id")
        }
    }

    static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let keys = context.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }
            return keys.isEmpty ? "the body" : "'\(keys.joined(separator: "."))'"
        }
        switch error {
        case .keyNotFound(let key, let context): return "\(path(context)) is missing '\(key.stringValue)'"
        case .typeMismatch(_, let context), .valueNotFound(_, let context): return "\(path(context)) has the wrong type"
        case .dataCorrupted(let context): return "\(path(context)) is not valid JSON or not a valid value"
        @unknown default: return "\(error)"
        }
    }
}
