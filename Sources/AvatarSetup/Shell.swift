import Foundation

/// Runs external commands for set-up and diagnostics.
public enum Shell {
    /// The outcome of a command.
    public struct Result: Sendable {
        public var status: Int32
        public var output: String
        public var succeeded: Bool { status == 0 }
    }

    /// Runs a command and captures stdout and stderr together. A missing executable is status 127.
    public static func capture(_ arguments: [String], environment: [String: String] = [:], input: String? = nil) -> Result {
        let process = makeProcess(arguments, environment)
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        let inputPipe = Pipe()
        process.standardInput = input == nil ? FileHandle.nullDevice : inputPipe
        do {
            try process.run()
        } catch {
            return Result(status: 127, output: "\(arguments.first ?? "?"): \(error.localizedDescription)")
        }
        if let input {
            inputPipe.fileHandleForWriting.write(Data(input.utf8))
            try? inputPipe.fileHandleForWriting.close()
        }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, output: String(decoding: data, as: UTF8.self))
    }

    /// Runs a command with its output going straight to the terminal (for long steps that show
    /// their own progress: apt-get, pip). Returns the exit status.
    @discardableResult
    public static func passthrough(_ arguments: [String], environment: [String: String] = [:]) -> Int32 {
        let process = makeProcess(arguments, environment)
        process.standardInput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            return 127
        }
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// Runs a command and hands each output line to `line` as it arrives.
    public static func lines(_ arguments: [String], environment: [String: String] = [:], line: (String) -> Void) -> Int32 {
        let process = makeProcess(arguments, environment)
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            line("\(arguments.first ?? "?"): \(error.localizedDescription)")
            return 127
        }
        var pending = Data()
        let handle = pipe.fileHandleForReading
        while true {
            let chunk = handle.availableData
            if chunk.isEmpty { break }
            pending.append(chunk)
            while let newline = pending.firstIndex(of: 0x0A) {
                line(String(decoding: pending[pending.startIndex..<newline], as: UTF8.self))
                pending = Data(pending[pending.index(after: newline)...])
            }
        }
        if !pending.isEmpty { line(String(decoding: pending, as: UTF8.self)) }
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// A process running `arguments` through `env` (PATH lookup) with `environment` added.
    private static func makeProcess(_ arguments: [String], _ environment: [String: String]) -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        return process
    }
}
