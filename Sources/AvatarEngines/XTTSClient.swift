import AsyncHTTPClient
import AvatarCore
import Foundation

/// Real voice cloning on an XTTS-v2 server a GPU user runs (the API of Coqui's *XTTS streaming server*):
///
/// * `POST /clone_speaker` (multipart `wav_file`) → `{"gpt_cond_latent": [[…]], "speaker_embedding": […]}`
/// * `POST /tts` (JSON `text`, `language`, `speaker_embedding`, `gpt_cond_latent`) → a JSON string: base64 WAV
/// * `GET /languages` → `["en", "ru", …]`
///
/// The conditioning latents of a reference recording are cached per recording (content hash), so a
/// profile's reference is uploaded once per process.
public actor XTTSClient {
    /// What a reference recording conditions XTTS with.
    public struct Conditioning: Codable, Sendable, Equatable {
        public var gptCondLatent: [[Double]]
        public var speakerEmbedding: [Double]
    }

    let http: EngineHTTP
    private var cache: [String: Conditioning] = [:]

    public init(endpoint: any EngineEndpoint, client: HTTPClient, timeout: Double) {
        http = EngineHTTP(endpoint: endpoint, client: client, timeout: timeout)
    }

    /// Languages the server synthesises.
    public func languages() async throws -> [String] {
        let response = try await http.send(.GET, "/languages", timeout: 10)
        return try http.decode([String].self, from: response.body)
    }

    /// Conditioning latents computed by the server from a reference recording (WAV).
    public func cloneSpeaker(reference: Data) async throws -> Conditioning {
        let key = ContentHash.of(reference)
        if let cached = cache[key] { return cached }
        var form = MultipartForm()
        form.addFile("wav_file", filename: "reference.wav", contentType: "audio/wav", data: reference)
        let response = try await http.send(.POST, "/clone_speaker", body: form.finished(), contentType: form.contentType)
        let conditioning = try http.decode(Conditioning.self, from: response.body)
        guard !conditioning.speakerEmbedding.isEmpty, !conditioning.gptCondLatent.isEmpty else {
            throw EngineError.invalidResponse(engine: http.engine, reason: "empty conditioning latents")
        }
        cache[key] = conditioning
        return conditioning
    }

    /// Speaks `text` in the voice of `reference`; returns a WAV file.
    public func synthesize(text: String, language: String, reference: Data) async throws -> Data {
        let conditioning = try await cloneSpeaker(reference: reference)
        struct Request: Encodable {
            var text: String
            var language: String
            var speakerEmbedding: [Double]
            var gptCondLatent: [[Double]]
        }
        let body = try JSONEncoder.engine.encode(Request(text: text, language: language, speakerEmbedding: conditioning.speakerEmbedding, gptCondLatent: conditioning.gptCondLatent))
        let response = try await http.send(.POST, "/tts", body: body, contentType: "application/json")
        let encoded = try http.decode(String.self, from: response.body)
        guard let wav = Data(base64Encoded: encoded), wav.count > 44, wav.prefix(4) == Data("RIFF".utf8) else {
            throw EngineError.invalidResponse(engine: http.engine, reason: "no audio for non-empty text (the /tts answer is not a base64 WAV)")
        }
        return wav
    }
}
