import AvatarCache
import AvatarCore
import AvatarEngines
import Foundation
import NIOCore
import Testing

@Suite("Wire formats")
struct CodecTests {
    @Test("Server-sent events split across chunks")
    func serverSentEvents() {
        var parser = ServerSentEventParser()
        #expect(parser.feed("data: {\"a\":").isEmpty)
        #expect(parser.feed("1}\n\nda") == ["{\"a\":1}"])
        #expect(parser.feed("ta: [DONE]\r\n\r\n: comment\n\n") == ["[DONE]"])
    }

    @Test("Lines and events are split on bytes: a Cyrillic letter or emoji split across reads stays whole")
    func multiByteSplits() {
        let text = "data: {\"t\":\"Привет 🙂\"}\n\n"
        var parser = ServerSentEventParser()
        var events: [String] = []
        for byte in Array(text.utf8) { events += parser.feed(ByteBuffer(bytes: [byte])) }
        #expect(events == ["{\"t\":\"Привет 🙂\"}"])
        var lines = LineSplitter()
        var found: [String] = []
        for byte in Array("ёж\r\nщи 🙂\nхвост".utf8) { found += lines.feed(ByteBuffer(bytes: [byte])) }
        #expect(found == ["ёж", "щи 🙂"])
        #expect(lines.remainder == "хвост")
    }

    @Test("WAV header parsing")
    func wavInfo() {
        var header = Data("RIFF".utf8) + le32(36 + 32000) + Data("WAVEfmt ".utf8) + le32(16)
        header += le16(1) + le16(1) + le32(16000) + le32(32000) + le16(2) + le16(16)
        header += Data("data".utf8) + le32(32000) + Data(count: 32000)
        let info = WAVInfo(header)
        #expect(info?.sampleRate == 16000)
        #expect(info?.channels == 1)
        #expect(abs((info?.duration ?? 0) - 1.0) < 1e-9)
        #expect(WAVInfo(Data("not a wav".utf8)) == nil)
    }

    func le32(_ value: Int) -> Data { withUnsafeBytes(of: UInt32(value).littleEndian) { Data($0) } }
    func le16(_ value: Int) -> Data { withUnsafeBytes(of: UInt16(value).littleEndian) { Data($0) } }
}
