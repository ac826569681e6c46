import AvatarCore
import Foundation
import NIOCore
import NIOPosix

/// A value in Redis's wire protocol (RESP2).
public enum RESPValue: Sendable, Equatable {
    case simple(String)
    case error(String)
    case integer(Int)
    case bulk([UInt8]?)
    case array([RESPValue]?)
}

/// What can go wrong talking to Redis.
public enum CacheError: AvatarError, Equatable {
    case unreachable(String)
    case protocolError(String)
    case server(String)

    public var userMessage: String {
        switch self {
        case .unreachable(let reason): return "Redis is unreachable (\(reason)); the in-memory cache is used meanwhile"
        case .protocolError(let reason): return "Redis sent an unreadable reply (\(reason))"
        case .server(let message): return "Redis refused the command: \(message)"
        }
    }

    public var retryable: Bool {
        if case .unreachable = self { return true }
        return false
    }
}

/// A minimal Redis client over SwiftNIO: one short connection per command, so a restarted or
/// briefly absent Redis needs no reconnection logic. Enough for a cache (GET/SET/DEL/PING/INFO).
public struct RedisClient: Sendable {
    public let host: String
    public let port: Int
    public let timeout: TimeAmount

    public init(host: String, port: Int, timeout: TimeAmount = .seconds(2)) {
        self.host = host
        self.port = port
        self.timeout = timeout
    }

    /// Sends one command and returns its reply; a Redis error reply throws `CacheError.server`.
    public func command(_ parts: [String]) async throws -> RESPValue {
        try await command(parts.map { Array($0.utf8) })
    }

    public func command(_ parts: [[UInt8]]) async throws -> RESPValue {
        var request = ByteBufferAllocator().buffer(capacity: 64)
        RESPCodec.encode(parts, into: &request)
        let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        do {
            channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(timeout)
                .connect(host: host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            throw CacheError.unreachable("\(host):\(port): \(error)")
        }
        // A reply that does not come in time: closing the channel ends the read loop below.
        let underlying = channel.channel
        let timeout = self.timeout
        let watchdog = Task {
            try await Task.sleep(for: .milliseconds(timeout.nanoseconds / 1_000_000))
            underlying.close(promise: nil)
        }
        defer { watchdog.cancel() }
        let reply: RESPValue
        do {
            reply = try await channel.executeThenClose { inbound, outbound in
                try await outbound.write(request)
                var received = ByteBufferAllocator().buffer(capacity: 256)
                for try await var chunk in inbound {
                    received.writeBuffer(&chunk)
                    var view = received
                    if let value = try RESPCodec.decode(&view) { return value }
                }
                throw CacheError.unreachable("no complete reply within \(timeout.nanoseconds / 1_000_000) ms")
            }
        } catch let error as CacheError {
            throw error
        } catch {
            throw CacheError.unreachable("\(host):\(port): \(error)")
        }
        if case .error(let message) = reply { throw CacheError.server(message) }
        return reply
    }

    public func ping() async throws -> Bool {
        try await command(["PING"]) == .simple("PONG")
    }

    public func get(_ key: String) async throws -> [UInt8]? {
        switch try await command(["GET", key]) {
        case .bulk(let bytes): return bytes
        default: throw CacheError.protocolError("GET did not return a bulk string")
        }
    }

    /// Stores a value; `ttl` in milliseconds (nil = no expiry).
    public func set(_ key: String, _ value: [UInt8], ttlMilliseconds ttl: Int?) async throws {
        var parts: [[UInt8]] = [Array("SET".utf8), Array(key.utf8), value]
        if let ttl { parts += [Array("PX".utf8), Array(String(ttl).utf8)] }
        _ = try await command(parts)
    }

    @discardableResult
    public func delete(_ key: String) async throws -> Int {
        if case .integer(let count) = try await command(["DEL", key]) { return count }
        throw CacheError.protocolError("DEL did not return an integer")
    }

    /// The server's `INFO` section as key/value pairs (for version and memory in `/readyz`).
    public func info(_ section: String = "server") async throws -> [String: String] {
        guard case .bulk(let bytes?) = try await command(["INFO", section]) else {
            throw CacheError.protocolError("INFO did not return a bulk string")
        }
        var result: [String: String] = [:]
        for line in String(decoding: bytes, as: UTF8.self).split(whereSeparator: \.isNewline) {
            let pair = line.split(separator: ":", maxSplits: 1)
            if pair.count == 2 { result[String(pair[0])] = String(pair[1]) }
        }
        return result
    }
}

/// RESP2 encoding of commands and incremental decoding of replies.
enum RESPCodec {
    static func encode(_ parts: [[UInt8]], into buffer: inout ByteBuffer) {
        buffer.writeString("*\(parts.count)\r\n")
        for part in parts {
            buffer.writeString("$\(part.count)\r\n")
            buffer.writeBytes(part)
            buffer.writeString("\r\n")
        }
    }

    /// Decodes one value, or returns nil (leaving `buffer` untouched) when more bytes are needed.
    static func decode(_ buffer: inout ByteBuffer) throws -> RESPValue? {
        var view = buffer
        guard let type = view.readInteger(as: UInt8.self), let line = readLine(&view) else { return nil }
        let value: RESPValue
        switch type {
        case UInt8(ascii: "+"): value = .simple(line)
        case UInt8(ascii: "-"): value = .error(line)
        case UInt8(ascii: ":"):
            guard let number = Int(line) else { throw CacheError.protocolError("bad integer '\(line)'") }
            value = .integer(number)
        case UInt8(ascii: "$"):
            guard let length = Int(line) else { throw CacheError.protocolError("bad bulk length '\(line)'") }
            if length < 0 {
                value = .bulk(nil)
            } else {
                guard view.readableBytes >= length + 2, let bytes = view.readBytes(length: length) else { return nil }
                view.moveReaderIndex(forwardBy: 2)
                value = .bulk(bytes)
            }
        case UInt8(ascii: "*"):
            guard let count = Int(line) else { throw CacheError.protocolError("bad array length '\(line)'") }
            if count < 0 {
                value = .array(nil)
            } else {
                var items: [RESPValue] = []
                for _ in 0..<count {
                    guard let item = try decode(&view) else { return nil }
                    items.append(item)
                }
                value = .array(items)
            }
        default:
            throw CacheError.protocolError("unknown reply type \(type)")
        }
        buffer = view
        return value
    }

    private static func readLine(_ buffer: inout ByteBuffer) -> String? {
        guard let end = buffer.readableBytesView.firstIndex(of: UInt8(ascii: "\r")),
              end + 1 < buffer.writerIndex,
              buffer.getInteger(at: end + 1, as: UInt8.self) == UInt8(ascii: "\n") else { return nil }
        let line = buffer.readString(length: end - buffer.readerIndex)
        buffer.moveReaderIndex(forwardBy: 2)
        return line
    }
}
