import ArgumentParser
import AvatarCore
import AvatarSetup
import Foundation

/// `avatar setup`: installs and verifies Debian packages, the engine venv and the models.
struct Setup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Install and verify everything Avatar needs (Debian + PyPI only; idempotent).")

    @Option(help: "The repository's engine/ folder.")
    var source: String = "engine"

    @Flag(help: "Also install what the test suite needs (test recordings).")
    var withTestTools = false

    func run() async throws {
        let settings = try await loadSettings()
        guard FileManager.default.fileExists(atPath: source + "/requirements.txt") else {
            throw CLIFailure("\(source)/requirements.txt not found: run from the repository root or pass --source PATH/engine", code: 2)
        }
        let provisioner = Provisioner(settings: settings, engineSource: source, includeTestTools: withTestTools)
        do {
            // Ctrl-C or SIGTERM stops the running step's children (pip, cmake, apt-get) with it.
            try await TerminationSignals.cancelling { try await provisioner.run() }
        } catch let error as any AvatarError {
            throw CLIFailure(error.userMessage)
        } catch is CancellationError {
            throw CLIFailure("setup stopped by a signal; its children were stopped too. Run `avatar setup` again to continue", code: 143)
        }
    }
}
