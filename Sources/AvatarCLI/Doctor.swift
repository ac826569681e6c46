import ArgumentParser
import AsyncHTTPClient
import AvatarCore
import AvatarSetup
import AvatarStore
import Foundation

/// `avatar doctor`: every dependency and engine with version, path, status and fix.
struct Doctor: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check every dependency and engine; print the fix for each failure.")

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    func run() async throws {
        let settings = try await loadSettings()
        var checks = await AvatarSetup.Doctor(settings: settings).checks()
        checks.append(dataDirectoryCheck(settings))
        checks += await serverChecks(settings)

        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(checks), as: UTF8.self))
        } else {
            for check in checks {
                let mark = check.status == .ok ? "ok  " : check.status == .warn ? "warn" : "FAIL"
                var line = "[\(mark)] \(check.name)"
                if let version = check.version { line += "  \(version)" }
                if let path = check.path { line += "  \(path)" }
                if let detail = check.detail { line += "  — \(detail)" }
                print(line)
                if let fix = check.fix, check.status != .ok { print("       fix: \(fix)") }
            }
            let failed = checks.filter { $0.status == .fail }.count
            print(failed == 0 ? "All checks passed." : "\(failed) check(s) failed.")
        }
        if checks.contains(where: { $0.status == .fail }) { throw ExitCode(1) }
    }

    func dataDirectoryCheck(_ settings: AvatarSettings) -> DoctorCheck {
        do {
            try settings.prepareDataDirectory()
            let database = try AvatarDatabase(path: settings.databasePath)
            let migrations = try database.appliedMigrations()
            return DoctorCheck(name: "data dir + database", status: .ok, path: settings.databasePath, detail: "migrations: \(migrations.joined(separator: ", "))")
        } catch let error as any AvatarError {
            return DoctorCheck(name: "data dir + database", status: .fail, path: settings.dataDir, detail: error.userMessage, fix: "set AVATAR_DATA_DIR to a writable folder")
        } catch {
            return DoctorCheck(name: "data dir + database", status: .fail, path: settings.dataDir, detail: "\(error)", fix: "set AVATAR_DATA_DIR to a writable folder")
        }
    }

    /// The running server's view of its engines, when one is up on the configured port.
    func serverChecks(_ settings: AvatarSettings) async -> [DoctorCheck] {
        let host = settings.host == "0.0.0.0" ? "127.0.0.1" : settings.host
        var request = HTTPClientRequest(url: "http://\(host):\(settings.port)/readyz")
        request.method = .GET
        guard let response = try? await HTTPClient.shared.execute(request, timeout: .seconds(3)),
              let body = try? await response.body.collect(upTo: 1 << 20),
              let object = try? JSONSerialization.jsonObject(with: Data(String(buffer: body).utf8)) as? [String: Any],
              let components = object["components"] as? [[String: Any]] else {
            return [DoctorCheck(name: "server", status: .warn, detail: "no server answering on \(host):\(settings.port); engine states are shown by a running server",
                                fix: "start it with `make run` (or `avatar serve`), then run `avatar doctor` again")]
        }
        return components.map { component in
            let name = component["name"] as? String ?? "?"
            let state = component["state"] as? String ?? "?"
            let details = component["details"] as? [String: String] ?? [:]
            let status: DoctorCheck.Status = state == "ready" || state == "disabled" ? .ok : state == "degraded" ? .warn : .fail
            return DoctorCheck(name: "running:\(name)", status: status, version: details["redis_version"] ?? details["sqlite"],
                               path: details["url"] ?? details["path"], detail: (component["reason"] as? String) ?? state,
                               fix: status == .ok ? nil : "see \(settings.dataDir)/logs/\(name).log")
        }
    }
}
