import AvatarCore
import Foundation

/// ffprobe / ffmpeg on local files: what a file holds, and canonical copies of it.
enum AudioFile {
    struct Probe {
        var duration: Double
        var sampleRate: Int
        var channels: Int
        var codec: String
        var container: String
    }

    /// The first audio stream's format, or nil when ffprobe finds no audio.
    static func probe(_ path: String) async -> Probe? {
        let result = await ChildProcess.output(of: ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries",
                          "stream=sample_rate,channels,codec_name,duration:format=format_name,duration", "-of", "json", path])
        guard result.status == 0, let object = try? JSONSerialization.jsonObject(with: result.output) as? [String: Any],
              let stream = (object["streams"] as? [[String: Any]])?.first else { return nil }
        let format = object["format"] as? [String: Any] ?? [:]
        let duration = Double(stream["duration"] as? String ?? "") ?? Double(format["duration"] as? String ?? "") ?? 0
        return Probe(duration: duration, sampleRate: Int(stream["sample_rate"] as? String ?? "") ?? 0,
                     channels: stream["channels"] as? Int ?? 0, codec: stream["codec_name"] as? String ?? "?",
                     container: format["format_name"] as? String ?? "?")
    }

    /// Writes a mono 16-bit WAV at `rate`, optionally loudness-normalised (EBU R128, −23 LUFS). Throws with ffmpeg's last line.
    static func convert(_ input: String, to output: String, rate: Int, normalize: Bool = false) async throws {
        var args = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", input, "-vn"]
        if normalize { args += ["-af", "loudnorm=I=-23:TP=-2:LRA=11"] }
        args += ["-ac", "1", "-ar", String(rate), "-acodec", "pcm_s16le", "-f", "wav", output]
        let result = await ChildProcess.output(of: args)
        guard result.status == 0 else {
            let line = result.lastErrorLine ?? "exit \(result.status)"
            throw VoiceError.badInput(path: input, reason: "ffmpeg could not convert it (\(line))")
        }
    }

    /// 16-bit mono samples of a WAV this module wrote (44-byte header).
    static func readPCM16(_ path: String) throws -> (samples: [Int16], rate: Int) {
        guard let data = FileManager.default.contents(atPath: path), let info = WAVInfo(data), info.bitsPerSample == 16, info.channels == 1 else {
            throw VoiceError.badInput(path: path, reason: "not a 16-bit mono WAV")
        }
        let body = data.suffix(info.dataBytes)
        var samples = [Int16](repeating: 0, count: body.count / 2)
        _ = samples.withUnsafeMutableBytes { body.copyBytes(to: $0) }
        return (samples.map { Int16(littleEndian: $0) }, info.sampleRate)
    }

    /// A 16-bit mono PCM WAV file's bytes.
    static func wav(_ samples: ArraySlice<Int16>, rate: Int) -> Data {
        WAVInfo.pcm16(samples, rate: rate)
    }
}
