import AsyncHTTPClient
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1

/// The HTTP plumbing every engine client shares: one request with a deadline, and the mapping of
/// transport failures and error bodies onto `EngineError`.
struct EngineHTTP: Sendable {
    let endpoint: any EngineEndpoint
    let client: HTTPClient
    let timeout: Double
    /// Largest response body accepted (audio and landmark JSON stay far below it).
    static let maxBody = 64 * 1024 * 1024

    var engine: String { endpoint.engineName }

    /// Sends a request and returns status and body; non-2xx answers become `EngineError.rejected`.
    func send(
        _ method: HTTPMethod, _ path: String, body: Data? = nil, contentType: String? = nil,
        timeout override: Double? = nil
    ) async throws -> (headers: HTTPHeaders, body: Data) {
        let response = try await execute(method, path, body: body, contentType: contentType, timeout: override)
        let bytes: ByteBuffer
        do {
            bytes = try await response.body.collect(upTo: Self.maxBody)
        } catch {
            throw mapTransport(error, seconds: override ?? timeout)
        }
        let data = Data(buffer: bytes)
        guard (200..<300).contains(Int(response.status.code)) else {
            throw rejection(status: Int(response.status.code), body: data)
        }
        return (response.headers, data)
    }

    /// Sends a request and returns the live response, for streaming bodies. The caller reads the body.
    func stream(_ method: HTTPMethod, _ path: String, body: Data?, contentType: String?, timeout override: Double? = nil) async throws -> HTTPClientResponse {
        let response = try await execute(method, path, body: body, contentType: contentType, timeout: override)
        guard (200..<300).contains(Int(response.status.code)) else {
            let data = (try? await response.body.collect(upTo: 1024 * 1024)).map { Data(buffer: $0) } ?? Data()
            throw rejection(status: Int(response.status.code), body: data)
        }
        return response
    }

    func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        do {
            return try JSONDecoder.engine.decode(type, from: data)
        } catch {
            throw EngineError.invalidResponse(engine: engine, reason: "\(error)")
        }
    }

    private func execute(_ method: HTTPMethod, _ path: String, body: Data?, contentType: String?, timeout override: Double?) async throws -> HTTPClientResponse {
        let base = try await endpoint.resolve()
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        if let contentType { request.headers.add(name: "Content-Type", value: contentType) }
        if let body { request.body = .bytes(ByteBuffer(data: body)) }
        let seconds = override ?? timeout
        do {
            return try await client.execute(request, timeout: .milliseconds(Int64(seconds * 1000)))
        } catch {
            throw mapTransport(error, seconds: seconds)
        }
    }

    func mapTransport(_ error: any Error, seconds: Double) -> EngineError {
        if let engineError = error as? EngineError { return engineError }
        if let clientError = error as? HTTPClientError {
            switch clientError {
            case .deadlineExceeded, .readTimeout, .connectTimeout, .writeTimeout:
                return .timeout(engine: engine, seconds: seconds)
            case .remoteConnectionClosed:
                return .unavailable(engine: engine, reason: "the engine closed the connection mid-response; it may have crashed")
            default:
                break
            }
        }
        if error is CancellationError { return .unavailable(engine: engine, reason: "request cancelled") }
        if let channelError = error as? ChannelError, case .connectTimeout = channelError {
            return .timeout(engine: engine, seconds: seconds)
        }
        return .unavailable(engine: engine, reason: "cannot connect (\(error))")
    }

    /// Reads an OpenAI-shaped (`{"error":{"message","code"}}`), FastAPI (`{"detail":…}`) or Ollama
    /// (`{"error":"…"}`) error body.
    func rejection(status: Int, body: Data) -> EngineError {
        var message = String(decoding: body.prefix(500), as: UTF8.self)
        var code: String?
        if let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any] {
            if let error = object["error"] as? [String: Any] {
                message = (error["message"] as? String) ?? message
                code = error["code"] as? String
            } else if let error = object["error"] as? String {
                message = error
            } else if let detail = object["detail"] {
                message = "\(detail)"
            }
        }
        if message.isEmpty { message = "no details given" }
        return .rejected(engine: engine, status: status, code: code, message: message)
    }
}

extension JSONDecoder {
    /// Snake-case engine JSON into camel-case Swift properties.
    static var engine: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return decoder
    }
}

extension JSONEncoder {
    static var engine: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return encoder
    }
}

/// A multipart/form-data body for OpenAI-style uploads.
struct MultipartForm {
    let boundary = "avatar-" + UUID().uuidString
    private(set) var body = Data()

    var contentType: String { "multipart/form-data; boundary=\(boundary)" }

    mutating func addField(_ name: String, _ value: String) {
        body.append(Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"\r\n\r\n\(value)\r\n".utf8))
    }

    mutating func addFile(_ name: String, filename: String, contentType: String, data: Data) {
        body.append(Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"; filename=\"\(filename)\"\r\nContent-Type: \(contentType)\r\n\r\n".utf8))
        body.append(data)
        body.append(Data("\r\n".utf8))
    }

    func finished() -> Data {
        body + Data("--\(boundary)--\r\n".utf8)
    }
}
