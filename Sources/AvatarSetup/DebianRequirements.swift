import AvatarCore
import Foundation

/// A Debian package Avatar needs, and how to see it works.
public struct DebianRequirement: Sendable {
    public var package: String
    /// What it is for, in the doctor's words.
    public var purpose: String
    /// A program it installs, checked on PATH (nil for libraries and data).
    public var program: String?
    /// Arguments that print the program's version.
    public var versionArguments: [String]
}

/// The Debian packages of the product and of its tests.
public enum DebianRequirements {
    public static let runtime: [DebianRequirement] = [
        .init(package: "ffmpeg", purpose: "audio/video conversion and MP4 export", program: "ffmpeg", versionArguments: ["-version"]),
        .init(package: "sox", purpose: "audio measurement", program: "sox", versionArguments: ["--version"]),
        .init(package: "festival", purpose: "TTS engine (en female, ru)", program: "text2wave", versionArguments: []),
        .init(package: "festvox-us-slt-hts", purpose: "Festival voice slt (en, female)", program: nil, versionArguments: []),
        .init(package: "festvox-ru", purpose: "Festival voice msu_ru_nsh (ru)", program: nil, versionArguments: []),
        .init(package: "espeak-ng", purpose: "fallback TTS for other languages", program: "espeak-ng", versionArguments: ["--version"]),
        .init(package: "redis-server", purpose: "shared cache (optional; memory cache otherwise)", program: "redis-server", versionArguments: ["--version"]),
        .init(package: "libsqlite3-dev", purpose: "SQLite for the database", program: nil, versionArguments: []),
        .init(package: "libturbojpeg0-dev", purpose: "JPEG encoding of video frames", program: nil, versionArguments: []),
        .init(package: "cmake", purpose: "builds llama-cpp-python (first set-up only)", program: "cmake", versionArguments: ["--version"]),
        .init(package: "node-typescript", purpose: "type-checks the web client (scripts/build-web.sh)", program: "tsc", versionArguments: ["--version"]),
        .init(package: "esbuild", purpose: "bundles the web client into Public/app.js (scripts/build-web.sh)", program: "esbuild", versionArguments: ["--version"]),
    ]

    public static let testOnly: [DebianRequirement] = [
        .init(package: "pocketsphinx-testdata", purpose: "real English recordings for ASR tests", program: nil, versionArguments: []),
        .init(package: "colobot-common-sounds", purpose: "a real noise recording (machine sound) for the noise-reduction test and bench", program: nil, versionArguments: []),
        .init(package: "chromium", purpose: "headless browser for the web client's tests (tests/browser)", program: "chromium", versionArguments: ["--version"]),
        .init(package: "chromium-driver", purpose: "WebDriver for Chromium (Selenium, tests/browser)", program: "chromedriver", versionArguments: ["--version"]),
        .init(package: "fonts-noto-color-emoji", purpose: "emoji in the web client's test screenshots (docs/screens)", program: nil, versionArguments: []),
    ]

    /// The packages of `names` that `dpkg` does not report as installed.
    public static func missing(_ names: [String]) async -> [String] {
        guard !names.isEmpty else { return [] }
        let result = await ChildProcess.output(of: ["dpkg-query", "-W", "-f", "${Package} ${Status}\n"] + names)
        var installed = Set<String>()
        for line in result.text.split(separator: "\n") where line.hasSuffix("install ok installed") {
            installed.insert(String(line.split(separator: " ")[0]).components(separatedBy: ":")[0])
        }
        return names.filter { !installed.contains($0) }
    }

    /// The installed version of a package, if any.
    public static func version(of package: String) async -> String? {
        let result = await ChildProcess.output(of: ["dpkg-query", "-W", "-f", "${Version}", package])
        let text = result.text.trimmingCharacters(in: .whitespacesAndNewlines)
        return result.succeeded && !text.isEmpty ? text : nil
    }
}
