import AvatarCore
import AvatarServer
import AvatarStore
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Testing

/// openapi.yaml, read through Python's yaml (the venv's python, else python3), checked against real responses.
final class OpenAPISpec: @unchecked Sendable {
    let root: [String: Any]
    static let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("openapi.yaml").path

    static let shared: Result<OpenAPISpec, TestFailure> = {
        let home = ProcessInfo.processInfo.environment["AVATAR_HOME"] ?? NSHomeDirectory() + "/.avatar"
        let script = "import sys, json, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)"
        for python in [home + "/venv/bin/python", "python3"] {
            // A static initialiser cannot await: the blocking test helper reads the converted spec.
            let output = TestShell.run([python, "-c", script, path])
            if let object = try? JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any] {
                return .success(OpenAPISpec(root: object))
            }
        }
        return .failure(TestFailure("cannot read \(path) (needs Python with PyYAML)"))
    }()

    init(root: [String: Any]) { self.root = root }

    var paths: [String: [String: Any]] { root["paths"] as? [String: [String: Any]] ?? [:] }

    /// `METHOD /template` for every operation.
    var operations: [String] {
        paths.flatMap { path, item in
            item.keys.filter { ["get", "put", "post", "patch", "delete", "head", "options"].contains($0) }.map { "\($0.uppercased()) \(path)" }
        }.sorted()
    }

    func resolve(_ object: [String: Any]) -> [String: Any] {
        guard let ref = object["$ref"] as? String, ref.hasPrefix("#/") else { return object }
        var node: Any = root
        for key in ref.dropFirst(2).split(separator: "/") {
            node = (node as? [String: Any])?[String(key)] ?? [:]
        }
        return resolve(node as? [String: Any] ?? [:])
    }

    /// The template a concrete path matches (`/api/v1/avatars/abc` → `/api/v1/avatars/{id}`).
    func template(for path: String) -> String? {
        let parts = path.split(separator: "?").first.map { $0.split(separator: "/") } ?? []
        let candidates = paths.keys.filter { template in
            let t = template.split(separator: "/")
            return t.count == parts.count && zip(t, parts).allSatisfy { $0 == $1 || ($0.hasPrefix("{") && $0.hasSuffix("}")) }
        }
        // An exact path beats a template (`/docs/openapi.yaml` over `/docs/{asset}`).
        return candidates.min { a, b in a.filter { $0 == "{" }.count < b.filter { $0 == "{" }.count }
    }

    /// What is wrong with a response for the spec: status, content type, required fields and their types.
    func violations(method: String, path: String, status: UInt, headers: HTTPFields, body: ByteBuffer) -> [String] {
        guard let template = template(for: path) else {
            // The server's own 404 for a path it does not have is not an operation.
            return status == 404 && String(buffer: body).contains("urn:avatar:problem:no-such-route") ? [] : ["\(path) is not in the spec"]
        }
        guard let operation = paths[template]?[method.lowercased()] as? [String: Any] else { return ["\(method) \(template) is not in the spec"] }
        let responses = operation["responses"] as? [String: Any] ?? [:]
        guard let declared = responses[String(status)] as? [String: Any] else {
            return ["\(method) \(template) answered \(status), which the spec does not list (\(responses.keys.sorted().joined(separator: ", ")))"]
        }
        let response = resolve(declared)
        guard let content = response["content"] as? [String: Any] else {
            return body.readableBytes == 0 || status == 303 ? [] : ["\(method) \(template) \(status): the spec declares no body, got \(body.readableBytes) bytes"]
        }
        let type = headers[.contentType]?.split(separator: ";").first.map { String($0).trimmingCharacters(in: .whitespaces) } ?? ""
        guard let media = content[type] as? [String: Any] else {
            return ["\(method) \(template) \(status): content type '\(type)' is not one of \(content.keys.sorted())"]
        }
        guard type.hasSuffix("json"), let schema = media["schema"] as? [String: Any] else { return [] }
        guard let value = try? JSONSerialization.jsonObject(with: Data(buffer: body), options: [.fragmentsAllowed]) else {
            return ["\(method) \(template) \(status): the body is not JSON"]
        }
        return check(value, against: schema, at: "\(method) \(template) \(status)")
    }

    func check(_ value: Any, against schemaRef: [String: Any], at where_: String, depth: Int = 0) -> [String] {
        var schema = resolve(schemaRef)
        if let all = schema["allOf"] as? [[String: Any]] {
            var required: [String] = []
            var properties: [String: Any] = [:]
            for part in all.map(resolve) {
                required += part["required"] as? [String] ?? []
                properties.merge(part["properties"] as? [String: Any] ?? [:]) { a, _ in a }
            }
            schema = ["type": "object", "required": required, "properties": properties]
        }
        var problems: [String] = []
        switch schema["type"] as? String {
        case "object":
            guard let object = value as? [String: Any] else { return ["\(where_): expected an object"] }
            for key in schema["required"] as? [String] ?? [] where object[key] == nil || object[key] is NSNull {
                problems.append("\(where_): required '\(key)' is missing")
            }
            let properties = schema["properties"] as? [String: Any] ?? [:]
            if depth < 4 {
                for (key, property) in properties {
                    if let child = object[key], !(child is NSNull), let propertySchema = property as? [String: Any] {
                        problems += check(child, against: propertySchema, at: "\(where_).\(key)", depth: depth + 1)
                    }
                }
            }
        case "array":
            guard let array = value as? [Any] else { return ["\(where_): expected an array"] }
            if let items = schema["items"] as? [String: Any], depth < 4 {
                for (index, item) in array.enumerated() { problems += check(item, against: items, at: "\(where_)[\(index)]", depth: depth + 1) }
            }
        case "string":
            if !(value is String) { problems.append("\(where_): expected a string") }
            if let allowed = schema["enum"] as? [String], let text = value as? String, !allowed.contains(text) { problems.append("\(where_): '\(text)' is not one of \(allowed)") }
        case "integer":
            if (value as? NSNumber).map({ $0.doubleValue == $0.doubleValue.rounded() }) != true { problems.append("\(where_): expected an integer") }
        case "number":
            if !(value is NSNumber) { problems.append("\(where_): expected a number") }
        case "boolean":
            if !(value is Bool) { problems.append("\(where_): expected a boolean") }
        default:
            break
        }
        return problems
    }
}

/// One test server: a temp data dir, an owner and a second account, each with a token.
struct APIHarness {
    let runtime: AvatarRuntime
    let owner: String
    let other: String
    let otherAccount: Account

    static func make(environment extra: [String: String] = [:], runtime given: AvatarRuntime? = nil) async throws -> APIHarness {
        let runtime: AvatarRuntime
        if let given {
            runtime = given
        } else {
            let home = temporaryDirectory("avatar-api")
            var environment = ["AVATAR_HOME": home, "AVATAR_ENGINES_ENABLED": "false", "AVATAR_REDIS": "off",
                               "AVATAR_WEB_ROOT": FileManager.default.currentDirectoryPath + "/Public"]
            environment.merge(extra) { _, new in new }
            let settings = try await AvatarSettings.load(environment: environment)
            runtime = try AvatarRuntime.make(settings: settings, logger: Logger(label: "test-api"))
        }
        let (_, issued) = try runtime.database.ensureOwner()
        let owner = try issued ?? runtime.database.issueToken(accountId: try runtime.database.ensureOwner().account.id, name: "test")
        let otherAccount = try runtime.database.createAccount(name: "other-\(UUID().uuidString.prefix(6))")
        let other = try runtime.database.issueToken(accountId: otherAccount.id, name: "test")
        return APIHarness(runtime: runtime, owner: owner.secret, other: other.secret, otherAccount: otherAccount)
    }
}

/// A test response, checked against the spec on the way.
struct Checked {
    let status: UInt
    let headers: HTTPFields
    let body: ByteBuffer

    var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any]) ?? [:] }
    var text: String { String(buffer: body) }
}

extension TestClientProtocol {
    /// Sends a request with a token (nil: none), records spec violations as test issues, returns the response.
    func call(_ method: HTTPRequest.Method, _ uri: String, token: String?, json: Any? = nil, body: ByteBuffer? = nil,
              headers extra: HTTPFields = [:], sourceLocation: SourceLocation = #_sourceLocation) async throws -> Checked {
        var headers = extra
        if let token { headers[.authorization] = "Bearer \(token)" }
        var payload = body
        if let json {
            headers[.contentType] = "application/json"
            payload = ByteBuffer(data: try JSONSerialization.data(withJSONObject: json))
        }
        let response = try await execute(uri: uri, method: method, headers: headers, body: payload)
        let checked = Checked(status: UInt(response.status.code), headers: response.headers, body: response.body)
        switch OpenAPISpec.shared {
        case .success(let spec):
            for violation in spec.violations(method: method.rawValue, path: uri, status: checked.status, headers: response.headers, body: response.body) {
                Issue.record("spec: \(violation) — body: \(checked.text.prefix(300))", sourceLocation: sourceLocation)
            }
        case .failure(let error):
            Issue.record("\(error)", sourceLocation: sourceLocation)
        }
        if checked.status >= 400 {
            // Every failure is problem+json with what to do and the request id of the X-Request-Id header.
            #expect(response.headers[.contentType] == "application/problem+json", "\(uri): \(checked.text.prefix(200))", sourceLocation: sourceLocation)
            let problem = checked.json
            #expect((problem["fix"] as? String)?.isEmpty == false, sourceLocation: sourceLocation)
            #expect(problem["requestId"] as? String == response.headers[.init("X-Request-Id")!], sourceLocation: sourceLocation)
            #expect((problem["type"] as? String)?.hasPrefix("urn:avatar:problem:") == true, sourceLocation: sourceLocation)
        }
        return checked
    }
}

/// A consent statement for tests.
nonisolated(unsafe) let testConsent: [String: Any] = ["givenBy": "the test suite, the person in the photo", "basis": "self", "grantedAt": "2026-01-15"]
