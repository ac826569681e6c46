import AvatarCore
import Foundation
import Testing

/// The one launcher every child process starts through (issue: a fresh machine's `make test` hung in the
/// llama-cpp-python build because children inherited Swift's blocked signal mask).
@Suite("Child processes (the one launcher)", .serialized)
struct ChildProcessTests {
    /// One hex mask line of `/proc/<pid>/status`.
    static func mask(_ name: String, in status: String) -> UInt64? {
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }) else { return nil }
        return UInt64(line.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces), radix: 16)
    }

    static func bit(_ signal: Int32) -> UInt64 { 1 << UInt64(signal - 1) }

    @Test("A child starts with an empty signal mask and default dispositions, whatever the launching thread blocks or ignores")
    func cleanSignalState() async throws {
        // Make the parent's state as hostile as a Swift thread's: SIGUSR2 ignored process-wide (ignored
        // dispositions survive exec), SIGTERM and SIGCHLD blocked on this thread.
        let previous = signal(SIGUSR2, SIG_IGN)
        defer { signal(SIGUSR2, previous) }
        var block = sigset_t()
        sigemptyset(&block)
        sigaddset(&block, SIGTERM)
        sigaddset(&block, SIGCHLD)
        var old = sigset_t()
        pthread_sigmask(SIG_BLOCK, &block, &old)
        let result = await ChildProcess.output(of: ["cat", "/proc/self/status"])
        pthread_sigmask(SIG_SETMASK, &old, nil)

        #expect(result.succeeded, "\(result.lastErrorLine ?? "")")
        #expect(Self.mask("SigBlk", in: result.text) == 0, "child's SigBlk: \(result.text.split(separator: "\n").filter { $0.hasPrefix("Sig") })")
        let ignored = try #require(Self.mask("SigIgn", in: result.text))
        #expect(ignored & Self.bit(SIGUSR2) == 0, "SIGUSR2 still ignored in the child")
        #expect(ignored & Self.bit(SIGTERM) == 0 && ignored & Self.bit(SIGCHLD) == 0)
    }

    @Test("A CMake project configures and builds through the launcher (cmake waits for SIGCHLD: it hung with the inherited mask)")
    func cmakeBuilds() async throws {
        try #require(ExecutableLookup.find("cmake") != nil, "cmake is installed by `avatar setup`")
        let directory = temporaryDirectory("avatar-cmake")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try "cmake_minimum_required(VERSION 3.10)\nproject(hello C)\nadd_executable(hello hello.c)\n"
            .write(toFile: directory + "/CMakeLists.txt", atomically: true, encoding: .utf8)
        try "#include <stdio.h>\nint main(void) { puts(\"built\"); return 0; }\n".write(toFile: directory + "/hello.c", atomically: true, encoding: .utf8)
        let options = ChildProcess.Options(timeout: .seconds(180))
        let configure = await ChildProcess.capture(["cmake", "-S", directory, "-B", directory + "/build"], options: options)
        #expect(configure.succeeded && !configure.timedOut, "\(configure.text.suffix(600))")
        let build = await ChildProcess.capture(["cmake", "--build", directory + "/build"], options: options)
        #expect(build.succeeded && !build.timedOut, "\(build.text.suffix(600))")
        let run = await ChildProcess.output(of: [directory + "/build/hello"])
        #expect(run.text == "built\n")
    }

    @Test("Output and errors are collected, stdin is written, a missing program is 127, leading NAME=value sets the environment")
    func collects() async throws {
        let echo = await ChildProcess.output(of: ["sh", "-c", "cat; echo oops >&2; exit 3"], input: Data("hello".utf8))
        #expect(echo.status == 3)
        #expect(echo.text == "hello")
        #expect(echo.lastErrorLine == "oops")
        let merged = await ChildProcess.capture(["sh", "-c", "echo out; echo err >&2"])
        #expect(merged.text.contains("out") && merged.text.contains("err"))
        let missing = await ChildProcess.output(of: ["avatar-no-such-program"])
        #expect(missing.status == 127)
        #expect(String(decoding: missing.error, as: UTF8.self).contains("not found"))
        let environment = await ChildProcess.output(of: ["AVATAR_TEST_VALUE=42", "sh", "-c", "echo $AVATAR_TEST_VALUE"])
        #expect(environment.text == "42\n")
        // Lines split on bytes, not reads: a Cyrillic word arrives whole.
        let lines = Locked([String]())
        let status = await ChildProcess.lines(["printf", "привет\\nмир"]) { line in lines.withLock { $0.append(line) } }
        #expect(status == 0)
        #expect(lines.withLock { $0 } == ["привет", "мир"])
    }

    /// Reads a pid a child wrote, waiting for the file.
    static func pid(in path: String, within seconds: Double = 20) async throws -> pid_t {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if let text = try? String(contentsOfFile: path, encoding: .utf8), let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                return pid
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestFailure("no pid in \(path) after \(seconds) s")
    }

    /// Alive and not a zombie.
    static func alive(_ pid: pid_t) -> Bool {
        guard kill(pid, 0) == 0, let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        return !stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z")
    }

    static func gone(_ pid: pid_t, within seconds: Double = 10) async throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while alive(pid), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        return !alive(pid)
    }

    @Test("A timeout stops the child and its grandchildren; cancelling the calling task does too")
    func timeoutAndCancel() async throws {
        let directory = temporaryDirectory("avatar-child")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // A shell that starts a grandchild and waits: the teardown must reach the grandchild as well.
        let script = "sleep 300 & echo $! > \(directory)/PID; wait"

        let started = ContinuousClock.now
        let timed = await ChildProcess.output(of: ["sh", "-c", script.replacingOccurrences(of: "PID", with: "a")],
                                              options: ChildProcess.Options(timeout: .milliseconds(500), grace: .seconds(2)))
        #expect(timed.timedOut && !timed.succeeded)
        #expect(ContinuousClock.now - started < .seconds(10))
        #expect(try await Self.gone(try await Self.pid(in: directory + "/a")), "the grandchild outlived the timeout")

        let task = Task { await ChildProcess.output(of: ["sh", "-c", script.replacingOccurrences(of: "PID", with: "b")]) }
        let grandchild = try await Self.pid(in: directory + "/b")
        task.cancel()
        let cancelled = await task.value
        #expect(cancelled.cancelled && !cancelled.succeeded)
        #expect(try await Self.gone(grandchild), "the grandchild outlived the cancellation")
    }

    @Test("`avatar setup` stopped by SIGTERM mid-pip stops pip and what pip started (no orphans)")
    func setupStopsItsChildren() async throws {
        let settings = try await AvatarSettings.load()
        let directory = temporaryDirectory("avatar-setup-term")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // A venv of its own (so the real one is untouched) and a local package whose build hangs in a
        // grandchild of pip, as llama-cpp-python's cmake did.
        let venv = directory + "/venv"
        let made = await ChildProcess.output(of: ["python3", "-m", "venv", venv])
        try #require(made.succeeded, "\(made.lastErrorLine ?? "")")
        let package = directory + "/engine/slowpkg"
        try FileManager.default.createDirectory(atPath: package, withIntermediateDirectories: true)
        try """
        import os, subprocess, time
        from setuptools import setup
        open(\(String(reflecting: directory + "/pip.pid")), "w").write(str(os.getpid()))
        child = subprocess.Popen(["sleep", "600"])
        open(\(String(reflecting: directory + "/build.pid")), "w").write(str(child.pid))
        time.sleep(600)
        setup(name="slowpkg", version="0.0.1")
        """.write(toFile: package + "/setup.py", atomically: true, encoding: .utf8)
        // Offline: no index, and the venv's own setuptools builds it (PIP_NO_BUILD_ISOLATION=0 means "no isolation").
        try "--no-index\n./slowpkg\n".write(toFile: directory + "/engine/requirements.txt", atomically: true, encoding: .utf8)

        let avatar = Task {
            try await AvatarProcess.run(["setup", "--source", directory + "/engine"], environment: [
                "AVATAR_HOME": directory, "AVATAR_VENV_DIR": venv, "AVATAR_MODELS_DIR": settings.modelsDir,
                "PIP_NO_BUILD_ISOLATION": "0",
            ], workingDirectory: directory + "/engine", timeout: 120)
        }
        let builder = try await Self.pid(in: directory + "/pip.pid", within: 90)
        let grandchild = try await Self.pid(in: directory + "/build.pid")
        let setupPid = try #require(AvatarProcess.pids(named: "avatar", withArgument: directory + "/engine").first)
        kill(setupPid, SIGTERM)
        let outcome = try await avatar.value
        #expect(outcome.status == 143, "avatar setup exited \(outcome.status): \(outcome.stderr)")
        #expect(outcome.stderr.contains("stopped"))
        #expect(try await Self.gone(builder), "pip's build process outlived avatar setup")
        #expect(try await Self.gone(grandchild), "the build's child outlived avatar setup")
    }
}
