import Foundation
import HummingbirdWSClient
import Logging
import NIOCore
import NIOWebSocket
import Synchronization

/// A live-session client (docs/protocol.md) for `avatar bench session` and the tests: it connects, sends `hello`,
/// mic audio and control messages, and hands every received message over as an event with its arrival time.
public final class SessionClient: Sendable {
    /// What arrived, in order.
    public enum Event: Sendable {
        /// A JSON control message (raw text; `object` parses it).
        case message(String, at: ContinuousClock.Instant)
        /// Avatar audio: header fields and the PCM16 samples.
        case audio(turn: Int, position: Int, samples: [Int16], at: ContinuousClock.Instant)
        /// A video frame: its index, whether it shows speech, the JPEG.
        case frame(turn: Int, index: Int, speaking: Bool, jpeg: [UInt8], at: ContinuousClock.Instant)
        /// The server closed the socket (code and reason), or the connection failed (code nil).
        case closed(code: Int?, reason: String)
    }

    public let events: AsyncStream<Event>
    private let writer: WebSocketOutboundWriter
    private let task: Task<Void, Never>
    private let micSequence = Mutex<UInt32>(0)

    private init(events: AsyncStream<Event>, writer: WebSocketOutboundWriter, task: Task<Void, Never>) {
        self.events = events
        self.writer = writer
        self.task = task
    }

    /// Opens `ws://host:port/api/v1/session`; `hello` is not sent yet.
    public static func connect(host: String = "127.0.0.1", port: Int, path: String = "/api/v1/session") async throws -> SessionClient {
        let (events, sink) = AsyncStream<Event>.makeStream()
        let (writers, writerSink) = AsyncStream<WebSocketOutboundWriter>.makeStream()
        var logger = Logger(label: "session-client")
        logger.logLevel = .warning
        let task = Task {
            do {
                let close = try await WebSocketClient.connect(url: "ws://\(host):\(port)\(path)", configuration: .init(maxFrameSize: 1 << 22), logger: logger) { inbound, outbound, _ in
                    writerSink.yield(outbound)
                    writerSink.finish()
                    for try await message in inbound.messages(maxSize: 1 << 22) {
                        let now = ContinuousClock.now
                        switch message {
                        case .text(let text):
                            sink.yield(.message(text, at: now))
                        case .binary(let buffer):
                            let bytes = Array(buffer.readableBytesView)
                            guard bytes.count >= 16 else { continue }
                            func u32(_ at: Int) -> Int { Int(bytes[at]) | Int(bytes[at + 1]) << 8 | Int(bytes[at + 2]) << 16 | Int(bytes[at + 3]) << 24 }
                            if bytes[0] == 2 {
                                var samples = [Int16](repeating: 0, count: (bytes.count - 16) / 2)
                                for index in samples.indices {
                                    samples[index] = Int16(bitPattern: UInt16(bytes[16 + 2 * index]) | UInt16(bytes[17 + 2 * index]) << 8)
                                }
                                sink.yield(.audio(turn: u32(4), position: u32(12), samples: samples, at: now))
                            } else if bytes[0] == 3 {
                                sink.yield(.frame(turn: u32(4), index: u32(12), speaking: bytes[2] & 1 == 1, jpeg: Array(bytes[16...]), at: now))
                            }
                        }
                    }
                }
                sink.yield(.closed(code: close.map { Self.code($0.closeCode) }, reason: close?.reason ?? ""))
            } catch {
                sink.yield(.closed(code: nil, reason: "\(error)"))
            }
            writerSink.finish()
            sink.finish()
        }
        var iterator = writers.makeAsyncIterator()
        guard let writer = await iterator.next() else {
            // The connection failed before the upgrade; the reason is in the events.
            var reason = "connection failed"
            for await event in events { if case .closed(_, let why) = event { reason = why } }
            throw SessionClientError(reason: reason)
        }
        return SessionClient(events: events, writer: writer, task: task)
    }

    static func code(_ code: WebSocketErrorCode) -> Int {
        switch code {
        case .normalClosure: return 1000
        case .goingAway: return 1001
        case .protocolError: return 1002
        case .unacceptableData: return 1003
        case .dataInconsistentWithMessage: return 1007
        case .policyViolation: return 1008
        case .messageTooLarge: return 1009
        case .missingExtension: return 1010
        case .unexpectedServerError: return 1011
        case .unknown(let value): return Int(value)
        }
    }

    /// Sends one JSON control message (`v` is added).
    public func send(_ object: [String: Any]) async throws {
        var object = object
        object["v"] = 1
        let data = try JSONSerialization.data(withJSONObject: object)
        try await writer.writeTextMessage(String(decoding: data, as: UTF8.self))
    }

    /// Sends raw text (for tests of bad input).
    public func sendText(_ text: String) async throws {
        try await writer.writeTextMessage(text)
    }

    /// Sends raw bytes (for tests of bad input).
    public func sendBinary(_ bytes: [UInt8]) async throws {
        try await writer.writeBinaryMessage(ByteBuffer(bytes: bytes))
    }

    /// Sends 16 kHz mono samples as one mic frame.
    public func sendMic(_ samples: ArraySlice<Float>) async throws {
        var bytes: [UInt8] = [1, 1, 0, 0, 0, 0, 0, 0]
        let sequence = micSequence.withLock { value in
            value &+= 1
            return value
        }
        withUnsafeBytes(of: sequence.littleEndian) { bytes += $0 }
        bytes += [0, 0, 0, 0]
        bytes.reserveCapacity(bytes.count + samples.count * 2)
        for sample in samples {
            let value = Int16(max(-1, min(1, sample)) * 32767)
            withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
        }
        try await sendBinary(bytes)
    }

    public func close() async {
        try? await writer.close(.normalClosure, reason: nil)
        task.cancel()
    }

    /// Parses a JSON control message.
    public static func object(_ text: String) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
    }
}

public struct SessionClientError: Error, CustomStringConvertible {
    public let reason: String
    public var description: String { "the session could not connect: \(reason)" }
}
