// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "Avatar",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "avatar", targets: ["AvatarCLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-configuration", from: "1.4.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/swiftlang/swift-subprocess", from: "1.0.2"),
        // Already in the graph through async-http-client; SHA-256 for token hashes and content-hash file names.
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        // The live session's WebSocket (server in AvatarServer; client in `avatar bench session` and the tests).
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket", from: "2.8.1"),
    ],
    targets: [
        // Domain types, settings and the error protocol every module shares.
        .target(
            name: "AvatarCore",
            dependencies: [
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Subprocess", package: "swift-subprocess"),
            ]
        ),
        // Clients for the out-of-process engines and the supervisor that runs them.
        .target(
            name: "AvatarEngines",
            dependencies: [
                "AvatarCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // SQLite persistence (GRDB) with migrations.
        .target(
            name: "AvatarStore",
            dependencies: [
                "AvatarCore",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // Uploads: streamed to disk under limits, type sniffed from bytes, atomic content-hash names, temp area.
        .target(
            name: "AvatarMedia",
            dependencies: [
                "AvatarCore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // Memory LRU + Redis (RESP over SwiftNIO) cache.
        .target(
            name: "AvatarCache",
            dependencies: [
                "AvatarCore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // libturbojpeg (Debian libturbojpeg0-dev) for the real-time JPEG frames.
        .systemLibrary(
            name: "CTurboJPEG",
            pkgConfig: "libturbojpeg",
            providers: [.apt(["libturbojpeg0-dev"])]
        ),
        // Face animation: rig from landmarks, lip sync, expressions, CPU renderer, JPEG frames, MP4 export.
        .target(
            name: "AvatarAnimation",
            dependencies: ["AvatarCore", "CTurboJPEG"],
            // Per-pixel loops: optimised in debug builds too, so `make test` (debug) renders a live session at 25 fps
            // on two cores instead of about half that.
            swiftSettings: [.unsafeFlags(["-O"], .when(configuration: .debug))]
        ),
        // The conversation: model chain with fallbacks, persona, memory, emotion, child safety, speakable stream.
        .target(
            name: "AvatarConversation",
            dependencies: [
                "AvatarCore", "AvatarEngines", "AvatarStore", "AvatarCache",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]
        ),
        // Speech: streaming recognizer (VAD end of utterance, partials, ru/en language lock, result cache).
        .target(
            name: "AvatarSpeech",
            dependencies: ["AvatarCore", "AvatarEngines", "AvatarCache", "AvatarAnimation"]
        ),
        // Voice cloning: sample validation, profiles, approximate match / XTTS, training data and jobs.
        .target(
            name: "AvatarVoice",
            dependencies: ["AvatarCore", "AvatarEngines", "AvatarStore"]
        ),
        // Provisioning (`avatar setup`) and diagnostics (`avatar doctor`).
        .target(
            name: "AvatarSetup",
            dependencies: ["AvatarCore"]
        ),
        // The Hummingbird application: routes, middleware, health.
        .target(
            name: "AvatarServer",
            dependencies: [
                "AvatarCore", "AvatarEngines", "AvatarStore", "AvatarCache", "AvatarMedia", "AvatarAnimation", "AvatarConversation", "AvatarVoice", "AvatarSpeech",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "_NIOFileSystem", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        // A live-session WebSocket client (docs/protocol.md) for `avatar bench session` and the tests.
        .target(
            name: "AvatarSessionClient",
            dependencies: [
                "AvatarCore",
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "AvatarCLI",
            dependencies: [
                "AvatarCore", "AvatarEngines", "AvatarServer", "AvatarSetup", "AvatarStore", "AvatarCache", "AvatarAnimation", "AvatarConversation", "AvatarSpeech", "AvatarVoice", "AvatarSessionClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "AvatarTests",
            dependencies: [
                "AvatarCore", "AvatarEngines", "AvatarServer", "AvatarStore", "AvatarCache", "AvatarSetup", "AvatarAnimation", "AvatarConversation", "AvatarSpeech", "AvatarVoice", "AvatarMedia", "AvatarSessionClient",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            exclude: ["Fakes", "Fixtures"]
        ),
    ]
)
