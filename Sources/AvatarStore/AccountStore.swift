import Crypto
import Foundation
import GRDB

/// Someone who owns avatars. The first start of `avatar serve` creates the owner.
public struct Account: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "account"
    public var id: String
    public var name: String
    /// `owner` (made on first start) or `user`.
    public var role: String
    public var createdAt: Date

    public init(id: String = UUID().uuidString.lowercased(), name: String, role: String, createdAt: Date = Date()) {
        self.id = id
        self.name = name
        self.role = role
        self.createdAt = createdAt
    }
}

/// A stored API token: only its SHA-256 is kept.
public struct APIToken: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "apiToken"
    /// Public id (the 8 hex digits after `avt_`), for `avatar token list|revoke`.
    public var id: String
    public var accountId: String
    public var name: String
    public var hash: String
    public var createdAt: Date
    public var lastUsedAt: Date?
    public var revokedAt: Date?
}

/// A token just made: `secret` is the whole token, shown once.
public struct IssuedToken: Sendable {
    public var token: APIToken
    public var secret: String
}

/// Token format `avt_<8 hex id>_<64 hex random>`: 256 random bits from the system's CSPRNG.
public enum TokenFormat {
    public static func make() -> (id: String, secret: String) {
        var generator = SystemRandomNumberGenerator()
        let id = (0..<4).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
        let random = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
        return (id, "avt_\(id)_\(random)")
    }

    public static func hash(_ token: String) -> String {
        SHA256.hash(data: Data(token.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// Whether the text has the shape of a token (cheap check before a database look-up).
    public static func looksValid(_ token: String) -> Bool {
        let parts = token.split(separator: "_", omittingEmptySubsequences: false)
        return parts.count == 3 && parts[0] == "avt" && parts[1].count == 8 && parts[2].count == 64
            && token.utf8.allSatisfy { $0 == UInt8(ascii: "_") || (48...57).contains($0) || (97...122).contains($0) }
    }
}

extension AvatarDatabase {
    /// Creates the owner account and its first token when there is no account yet; otherwise returns the
    /// owner and nil (the first token cannot be shown again: it is stored hashed).
    public func ensureOwner(name: String = "owner") throws -> (account: Account, issued: IssuedToken?) {
        try pool.write { db in
            if let owner = try Account.filter(Column("role") == "owner").fetchOne(db) { return (owner, nil) }
            let owner = Account(name: name, role: "owner")
            try owner.insert(db)
            return (owner, try Self.issue(db, accountId: owner.id, name: "first start"))
        }
    }

    public func createAccount(name: String, role: String = "user") throws -> Account {
        let account = Account(name: name, role: role)
        try pool.write { try account.insert($0) }
        return account
    }

    public func account(named name: String) throws -> Account? {
        try pool.read { try Account.filter(Column("name") == name).fetchOne($0) }
    }

    public func account(id: String) throws -> Account? {
        try pool.read { try Account.fetchOne($0, key: id) }
    }

    public func issueToken(accountId: String, name: String) throws -> IssuedToken {
        try pool.write { try Self.issue($0, accountId: accountId, name: name) }
    }

    static func issue(_ db: Database, accountId: String, name: String) throws -> IssuedToken {
        let (id, secret) = TokenFormat.make()
        let token = APIToken(id: id, accountId: accountId, name: name, hash: TokenFormat.hash(secret), createdAt: Date())
        try token.insert(db)
        return IssuedToken(token: token, secret: secret)
    }

    /// Every token with its account's name, oldest first.
    public func tokens() throws -> [(token: APIToken, account: String)] {
        try pool.read { db in
            let accounts = Dictionary(uniqueKeysWithValues: try Account.fetchAll(db).map { ($0.id, $0.name) })
            return try APIToken.order(Column("createdAt")).fetchAll(db).map { ($0, accounts[$0.accountId] ?? "?") }
        }
    }

    /// Revokes a token by its id; false when there is no such token or it was already revoked.
    public func revokeToken(id: String) throws -> Bool {
        try pool.write { db in
            try db.execute(sql: "UPDATE apiToken SET revokedAt = ? WHERE id = ? AND revokedAt IS NULL", arguments: [Date(), id])
            return db.changesCount > 0
        }
    }

    /// The account a presented token belongs to, or nil when it is unknown or revoked.
    public func authenticate(token: String) throws -> (account: Account, token: APIToken)? {
        guard TokenFormat.looksValid(token) else { return nil }
        let hash = TokenFormat.hash(token)
        return try pool.write { db in
            guard var stored = try APIToken.filter(Column("hash") == hash).fetchOne(db), stored.revokedAt == nil,
                  let account = try Account.fetchOne(db, key: stored.accountId) else { return nil }
            // Last use to the minute: not a write per request.
            if stored.lastUsedAt.map({ Date().timeIntervalSince($0) > 60 }) ?? true {
                stored.lastUsedAt = Date()
                try stored.update(db)
            }
            return (account, stored)
        }
    }
}
