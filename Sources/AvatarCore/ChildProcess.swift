import Foundation
import Subprocess
import SystemPackage

/// The one way Avatar starts a child process (swift-subprocess underneath).
///
/// Every child starts with an empty signal mask and default signal dispositions (`posix_spawn` with
/// `POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF`): Swift's threads run with most signals blocked, and a
/// child that inherits that mask cannot reap its own children (cmake waits for SIGCHLD forever) nor be
/// stopped with SIGTERM. Every child leads a process group of its own, so stopping it stops everything it
/// started (pip → cmake → make → cc). Waiting and reading happen on Subprocess's I/O thread, never on a
/// thread of Swift's cooperative pool. Cancelling the calling task stops the child: SIGTERM to its group,
/// SIGKILL after `grace`. A missing program is status 127, as in a shell.
public enum ChildProcess {
    /// How a finished child ended.
    public struct Result: Sendable {
        /// The exit status, or 128 + the signal number for a child killed by a signal (as a shell reports it).
        public var status: Int32
        /// Standard output (with standard error too, for `lines` and `capture`).
        public var output: Data
        /// The tail of standard error (the last 64 KiB).
        public var error: Data
        /// True when the child was stopped because `timeout` passed.
        public var timedOut = false
        /// True when the child was stopped because the calling task was cancelled.
        public var cancelled = false

        public var succeeded: Bool { status == 0 && !timedOut && !cancelled }
        /// Standard output as text.
        public var text: String { String(decoding: output, as: UTF8.self) }
        /// The last line of stderr, for an error message.
        public var lastErrorLine: String? { String(decoding: error, as: UTF8.self).split(separator: "\n").last.map(String.init) }
    }

    /// Knobs every call shares.
    public struct Options: Sendable {
        /// Added to (and overriding) the parent's environment.
        public var environment: [String: String] = [:]
        public var workingDirectory: String?
        /// Stop the child (SIGTERM, then SIGKILL after `grace`) when it runs longer than this.
        public var timeout: Duration?
        /// Between SIGTERM and SIGKILL when the child is stopped.
        public var grace: Duration = .seconds(5)
        /// Bytes of standard output kept by `output(of:)`; a child printing more is stopped and fails with 'output too large'.
        public var outputLimit = 512 << 20

        public init(environment: [String: String] = [:], workingDirectory: String? = nil, timeout: Duration? = nil, grace: Duration = .seconds(5)) {
            self.environment = environment
            self.workingDirectory = workingDirectory
            self.timeout = timeout
            self.grace = grace
        }
    }

    static let errorTailLimit = 64 << 10

    // MARK: - Collecting

    /// Runs `arguments` (the program looked up on PATH unless it is a path) and collects its standard output;
    /// `input`, when given, is written to its standard input.
    public static func output(of arguments: [String], input: Data? = nil, options: Options = Options()) async -> Result {
        await execute(arguments, input: input, options: options, mergeErrors: false, line: nil)
    }

    /// `output(of:)` with only the environment to add.
    public static func output(of arguments: [String], environment: [String: String]) async -> Result {
        await output(of: arguments, options: Options(environment: environment))
    }

    /// Runs `arguments` with standard error merged into standard output (like `2>&1`), collected.
    public static func capture(_ arguments: [String], input: Data? = nil, options: Options = Options()) async -> Result {
        await execute(arguments, input: input, options: options, mergeErrors: true, line: nil)
    }

    // MARK: - Streaming

    /// Runs `arguments` and hands each line of its output (stdout and stderr merged) to `line` as it arrives —
    /// for long steps that show progress (apt-get, pip). Returns the exit status (127: not found).
    @discardableResult
    public static func lines(_ arguments: [String], options: Options = Options(), line: @escaping @Sendable (String) -> Void) async -> Int32 {
        let result = await execute(arguments, input: nil, options: options, mergeErrors: true, line: line)
        if result.status == 127, result.output.isEmpty { line(String(decoding: result.error, as: UTF8.self)) }
        return result.status
    }

    /// Runs `arguments`, printing its output (stdout and stderr merged) line by line on our standard output.
    @discardableResult
    public static func passthrough(_ arguments: [String], options: Options = Options()) async -> Int32 {
        await lines(arguments, options: options) { text in
            FileHandle.standardOutput.write(Data((text + "\n").utf8))
        }
    }

    // MARK: - Long-running children

    /// How a long-running child ended.
    public enum Termination: Sendable, Equatable {
        case exited(Int32)
        case signaled(Int32)

        /// "exited with status 3" / "was killed by signal 9".
        public var description: String {
            switch self {
            case .exited(let code): "exited with status \(code)"
            case .signaled(let signal): "was killed by signal \(signal)"
            }
        }
    }

    /// Runs a long-lived child whose standard output and error are appended to `logFile` (no pipe that can
    /// fill and block it). `started` gets its process id once it runs. Returns when the child exits.
    /// Cancelling the calling task stops it: SIGTERM to its process group, SIGKILL after `options.grace`.
    public static func runLogged(_ arguments: [String], logFile: String, options: Options = Options(),
                                 started: @escaping @Sendable (Int32) -> Void = { _ in }) async throws -> Termination {
        let descriptors = try openLog(logFile)
        let configuration = try makeConfiguration(arguments, options: options)
        do {
            let result = try await Subprocess.run(
                configuration,
                input: .none,
                output: .fileDescriptor(descriptors.0, closeAfterSpawningProcess: true),
                error: .fileDescriptor(descriptors.1, closeAfterSpawningProcess: true)
            ) { execution in
                started(execution.processIdentifier.value)
            }
            return termination(result.terminationStatus)
        } catch let error as SubprocessError {
            throw ChildProcessError.cannotStart(program: arguments.first ?? "?", reason: "\(error)")
        }
    }

    /// Runs `arguments` with `body` writing its standard input (an encoder fed with frames, say). Standard output
    /// is discarded, standard error collected (tail). Cancelling the calling task stops the child.
    public static func withStandardInput<R: Sendable>(
        _ arguments: [String], options: Options = Options(),
        body: @escaping @Sendable (InputWriter) async throws -> R
    ) async throws -> (value: R, result: Result) {
        let configuration = try makeConfiguration(arguments, options: options)
        do {
            let outcome = try await Subprocess.run(
                configuration, input: .inputWriter, output: .discarded, error: .sequence
            ) { execution -> (R?, (any Error)?, Data) in
                async let errors = collect(execution.standardError, limit: errorTailLimit, keepTail: true, line: nil)
                var value: R?
                var failure: (any Error)?
                do {
                    value = try await body(InputWriter(writer: execution.standardInputWriter))
                } catch {
                    failure = error
                }
                try? await execution.standardInputWriter.finish()
                let tail = (try? await errors) ?? Data()
                return (value, failure, tail)
            }
            let (value, failure, tail) = outcome.closureResult
            if Task.isCancelled || failure is CancellationError { throw CancellationError() }
            let result = Result(status: code(outcome.terminationStatus), output: Data(), error: tail)
            guard let value else {
                // Writing failed: the child closed its input (it exited); its own message says why.
                throw ChildProcessError.failed(program: arguments.first ?? "?", status: result.status,
                                               message: result.lastErrorLine ?? failure.map { "\($0)" } ?? "no output")
            }
            return (value, result)
        } catch let error as SubprocessError {
            if case .executableNotFound = error.code {
                throw ChildProcessError.notFound(program: arguments.first ?? "?")
            }
            throw ChildProcessError.cannotStart(program: arguments.first ?? "?", reason: "\(error)")
        }
    }

    /// Writes to a child's standard input.
    public struct InputWriter: Sendable {
        let writer: StandardInputWriter

        /// Writes all of `bytes`; throws when the child closed its input (it exited).
        public func write(_ bytes: UnsafeRawBufferPointer) async throws {
            _ = try await writer.write(Array(bytes))
        }

        public func write(_ data: Data) async throws {
            _ = try await writer.write(Array(data))
        }
    }

    // MARK: - Implementation

    private static func execute(_ arguments: [String], input: Data?, options: Options, mergeErrors: Bool,
                                line: (@Sendable (String) -> Void)?) async -> Result {
        guard let program = arguments.first else { return Result(status: 127, output: Data(), error: Data("no program given".utf8)) }
        let configuration: Configuration
        do { configuration = try makeConfiguration(arguments, options: options) } catch {
            return Result(status: 127, output: Data(), error: Data("\(program) not found".utf8))
        }
        let limit = options.outputLimit
        let work: @Sendable () async throws -> Result = {
            if mergeErrors {
                let outcome = try await Subprocess.run(
                    configuration, input: inputOption(input), output: .sequence, error: .combinedWithOutput
                ) { execution in
                    try await collect(execution.standardOutput, limit: limit, keepTail: line != nil, line: line)
                }
                return Result(status: code(outcome.terminationStatus), output: outcome.closureResult, error: Data())
            }
            let outcome = try await Subprocess.run(
                configuration, input: inputOption(input), output: .sequence, error: .sequence
            ) { execution in
                async let errors = collect(execution.standardError, limit: errorTailLimit, keepTail: true, line: nil)
                let output = try await collect(execution.standardOutput, limit: limit, keepTail: false, line: nil)
                return (output, try await errors)
            }
            return Result(status: code(outcome.terminationStatus), output: outcome.closureResult.0, error: outcome.closureResult.1)
        }
        return await withDeadline(options.timeout, program: program, work)
    }

    /// Runs `work`; past `timeout` it is cancelled (which stops the child) and the result says so.
    private static func withDeadline(_ timeout: Duration?, program: String, _ work: @escaping @Sendable () async throws -> Result) async -> Result {
        func failure(_ error: any Error) -> Result {
            if error is CancellationError {
                return Result(status: 128 + SIGTERM, output: Data(), error: Data("\(program) was stopped (cancelled)".utf8), cancelled: true)
            }
            if let error = error as? SubprocessError {
                if case .executableNotFound = error.code {
                    return Result(status: 127, output: Data(), error: Data("\(program) not found".utf8))
                }
            }
            if let error = error as? ChildProcessError { return Result(status: 1, output: Data(), error: Data("\(program): \(error.message)".utf8)) }
            return Result(status: 126, output: Data(), error: Data("\(program): \(error)".utf8))
        }
        guard let timeout else {
            do {
                var result = try await work()
                if Task.isCancelled { result.cancelled = true }
                return result
            } catch { return failure(error) }
        }
        return await withTaskGroup(of: Result?.self) { group in
            group.addTask {
                do { return try await work() } catch { return failure(error) }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            var finished: Result?
            var timedOut = false
            while let next = await group.next() {
                if let next {
                    finished = next
                    group.cancelAll()
                    break
                }
                if !Task.isCancelled { timedOut = true; group.cancelAll() }
            }
            var result = finished ?? Result(status: 128 + SIGTERM, output: Data(), error: Data())
            if timedOut {
                result.timedOut = true
                result.cancelled = false
                result.error.append(Data("\n\(program) did not finish within \(timeout) and was stopped".utf8))
            }
            return result
        }
    }

    /// Reads a stream to its end, keeping at most `limit` bytes (the head, or with `keepTail` the tail), and
    /// handing complete lines to `line`. Bytes are split into lines before decoding, so a multi-byte
    /// character split across two reads stays whole.
    private static func collect(_ sequence: SubprocessOutputSequence, limit: Int, keepTail: Bool,
                                line: (@Sendable (String) -> Void)?) async throws -> Data {
        var kept = Data()
        var pending = Data()
        for try await buffer in sequence {
            let chunk = buffer.withUnsafeBytes { Data($0) }
            if let line {
                pending.append(chunk)
                while let newline = pending.firstIndex(where: { $0 == 0x0A || $0 == 0x0D }) {
                    let text = String(decoding: pending[pending.startIndex..<newline], as: UTF8.self)
                    pending = Data(pending[pending.index(after: newline)...])
                    if !text.isEmpty { line(text) }
                }
            }
            if keepTail {
                kept.append(chunk)
                if kept.count > limit { kept = Data(kept.suffix(limit)) }
            } else {
                guard kept.count + chunk.count <= limit else { throw ChildProcessError.outputTooLarge(limit: limit) }
                kept.append(chunk)
            }
        }
        if let line, !pending.isEmpty { line(String(decoding: pending, as: UTF8.self)) }
        return kept
    }

    private static func inputOption(_ input: Data?) -> some InputProtocol {
        DataOrNone(data: input)
    }

    /// Leading `NAME=value` arguments set environment variables, as `env NAME=value program …` does.
    static func makeConfiguration(_ arguments: [String], options: Options) throws -> Configuration {
        var environment = options.environment
        var command = arguments[...]
        while let first = command.first, let equals = first.firstIndex(of: "="),
              first[..<equals].allSatisfy({ $0 == "_" || $0.isLetter || $0.isNumber }), !first[..<equals].isEmpty {
            environment[String(first[..<equals])] = String(first[first.index(after: equals)...])
            command = command.dropFirst()
        }
        guard let program = command.first else { throw ChildProcessError.notFound(program: "") }
        var platform = PlatformOptions()
        // A process group of its own: the teardown below reaches everything the child started.
        platform.processGroupID = 0
        platform.teardownSequence = [.gracefulShutDown(toProcessGroup: true, allowedDurationToNextStep: options.grace)]
        let executable: Executable = program.contains("/") ? .path(FilePath(program)) : .name(program)
        var updates: [Environment.Key: String?] = [:]
        for (key, value) in environment { updates[Environment.Key(stringLiteral: key)] = value }
        return Configuration(
            executable: executable,
            arguments: Arguments(Array(command.dropFirst())),
            environment: updates.isEmpty ? .inherit : .inherit.updating(updates),
            workingDirectory: options.workingDirectory.map { FilePath($0) },
            platformOptions: platform
        )
    }

    private static func openLog(_ path: String) throws -> (FileDescriptor, FileDescriptor) {
        let directory = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        do {
            let flags: FileDescriptor.OpenOptions = [.append, .create, .closeOnExec]
            let out = try FileDescriptor.open(FilePath(path), .writeOnly, options: flags, permissions: [.ownerReadWrite, .groupRead, .otherRead])
            let err = try FileDescriptor.open(FilePath(path), .writeOnly, options: flags, permissions: [.ownerReadWrite, .groupRead, .otherRead])
            return (out, err)
        } catch {
            throw ChildProcessError.cannotStart(program: path, reason: "cannot write its log file \(path): \(error)")
        }
    }

    private static func termination(_ status: TerminationStatus) -> Termination {
        switch status {
        case .exited(let code): .exited(code)
        case .signaled(let signal): .signaled(signal)
        }
    }

    private static func code(_ status: TerminationStatus) -> Int32 {
        switch status {
        case .exited(let code): code
        case .signaled(let signal): 128 + signal
        }
    }
}

/// Why a child could not be run.
public enum ChildProcessError: Error, Equatable, Sendable {
    case notFound(program: String)
    case cannotStart(program: String, reason: String)
    case outputTooLarge(limit: Int)
    case failed(program: String, status: Int32, message: String)

    public var message: String {
        switch self {
        case .outputTooLarge(let limit): "printed more than \(limit) bytes and was stopped"
        case .failed(let program, let status, let message): "\(program) exited with \(status): \(message)"
        case .notFound(let program): "\(program) not found"
        case .cannotStart(let program, let reason): "cannot start \(program): \(reason)"
        }
    }
}

/// Standard input from bytes, or none.
private struct DataOrNone: InputProtocol {
    let data: Data?

    func write(with writer: StandardInputWriter) async throws {
        if let data { _ = try await writer.write(Array(data)) }
    }
}
