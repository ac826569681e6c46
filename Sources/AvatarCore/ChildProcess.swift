import Foundation

/// Runs a short-lived tool (ffmpeg, ffprobe, sox) and collects what it printed.
public enum ChildProcess {
    public struct Result: Sendable {
        public var status: Int32
        public var output: Data
        public var error: Data
        /// The last line of stderr, for an error message.
        public var lastErrorLine: String? { String(decoding: error, as: UTF8.self).split(separator: "\n").last.map(String.init) }
    }

    /// Runs `arguments` (looked up on PATH) and waits. stderr goes to a temporary file, so neither pipe
    /// can fill up and block the child. A missing program is status 127. Blocks the calling thread:
    /// from async code use `output(of:)`.
    public static func run(_ arguments: [String]) -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let errorPath = NSTemporaryDirectory() + "avatar-child-\(UUID().uuidString).err"
        _ = FileManager.default.createFile(atPath: errorPath, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: errorPath) }
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle(forWritingAtPath: errorPath)
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch {
            return Result(status: 127, output: Data(), error: Data("\(arguments.first ?? "?") not found".utf8))
        }
        let output = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, output: output, error: FileManager.default.contents(atPath: errorPath) ?? Data())
    }

    /// `run` on a thread of its own, so that waiting for the child does not hold one of the few
    /// threads Swift concurrency runs tasks on.
    public static func output(of arguments: [String]) async -> Result {
        await withCheckedContinuation { continuation in
            Thread { continuation.resume(returning: run(arguments)) }.start()
        }
    }
}
