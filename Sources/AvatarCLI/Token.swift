import ArgumentParser
import AvatarCore
import AvatarStore
import Foundation

/// `avatar token create|list|revoke`: API tokens (stored hashed in the database; shown once).
struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token", abstract: "Create, list and revoke API tokens.",
        subcommands: [Create.self, List.self, Revoke.self]
    )

    static func database() async throws -> (AvatarDatabase, AvatarSettings) {
        let settings = try await loadSettings()
        do {
            try settings.prepareDataDirectory()
            return (try AvatarDatabase(path: settings.databasePath), settings)
        } catch let error as any AvatarError {
            throw CLIFailure(error.userMessage)
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make a token (printed once, with a one-click link).")

        @Option(help: "A label to recognise the token by in `avatar token list`.")
        var name = "cli"

        @Option(help: "The account it signs in as: an existing name, or a new account of that name. Default: the owner.")
        var account: String?

        func run() async throws {
            let (database, settings) = try await TokenCommand.database()
            let owner = try database.ensureOwner()
            var target = owner.account
            if let account, account != owner.account.name {
                if let existing = try database.account(named: account) {
                    target = existing
                } else {
                    target = try database.createAccount(name: account)
                    print("Created account \(account).")
                }
            }
            let issued = try database.issueToken(accountId: target.id, name: name)
            print("Token \(issued.token.id) for account \(target.name) (shown once; it is stored hashed):")
            print(issued.secret)
            print("Sign in from a browser: \(signInURL(settings, issued.secret))")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List tokens (ids, accounts, last use; never the tokens).")

        func run() async throws {
            let (database, _) = try await TokenCommand.database()
            let formatter = ISO8601DateFormatter()
            let rows = try database.tokens()
            if rows.isEmpty { print("No tokens yet: `avatar serve` makes the first, or run `avatar token create`.") }
            for (token, account) in rows {
                let state = token.revokedAt.map { "revoked \(formatter.string(from: $0))" } ?? "active"
                let used = token.lastUsedAt.map { formatter.string(from: $0) } ?? "never"
                print("\(token.id)  \(account)  \(token.name)  created \(formatter.string(from: token.createdAt))  last used \(used)  \(state)")
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a token by its id (see `avatar token list`); takes effect at once.")

        @Argument(help: "The token's id (8 hex digits) or the whole token.")
        var id: String

        func run() async throws {
            let (database, _) = try await TokenCommand.database()
            let parts = id.split(separator: "_")
            let tokenId = parts.count == 3 ? String(parts[1]) : id
            if try database.revokeToken(id: tokenId) {
                print("Revoked \(tokenId).")
            } else {
                throw CLIFailure("no active token \(tokenId); see `avatar token list`", code: 2)
            }
        }
    }
}

/// The one-click sign-in link for a token.
func signInURL(_ settings: AvatarSettings, _ token: String) -> String {
    let host = settings.host == "0.0.0.0" || settings.host == "::" ? "127.0.0.1" : settings.host
    return "http://\(host.contains(":") ? "[\(host)]" : host):\(settings.port)/login?token=\(token)"
}
