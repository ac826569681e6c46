import AvatarCore
import Foundation
import GRDB

/// What can go wrong with the database.
public enum StoreError: AvatarError {
    case cannotOpen(path: String, reason: String)
    case migrationFailed(String)

    public var userMessage: String {
        switch self {
        case .cannotOpen(let path, let reason):
            return "cannot open the database \(path): \(reason); check AVATAR_DATA_DIR and its permissions"
        case .migrationFailed(let reason):
            return "the database could not be upgraded (\(reason)); your data is untouched — restore from a backup or report this"
        }
    }

    public var retryable: Bool { false }
}

/// A stored avatar: who it is. Photos, voices and conversations hang off its id.
public struct AvatarRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "avatar"

    public var id: String
    public var name: String
    /// The persona (age, interests, manner, backstory) as JSON.
    public var persona: String
    public var createdAt: Date

    public init(id: String = UUID().uuidString, name: String, persona: String = "{}", createdAt: Date = Date()) {
        self.id = id
        self.name = name
        self.persona = persona
        self.createdAt = createdAt
    }
}

/// The SQLite database in the data directory, opened in WAL mode with migrations applied.
public final class AvatarDatabase: Sendable {
    public let path: String
    let pool: DatabasePool

    /// Opens (creating if needed) and migrates the database.
    public init(path: String) throws {
        self.path = path
        do {
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            var configuration = Configuration()
            configuration.busyMode = .timeout(5)
            pool = try DatabasePool(path: path, configuration: configuration)
        } catch {
            throw StoreError.cannotOpen(path: path, reason: "\(error)")
        }
        do {
            try Self.migrator.migrate(pool)
        } catch {
            throw StoreError.migrationFailed("\(error)")
        }
    }

    /// Schema history. Never edit a shipped migration: add a new one.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-avatars") { db in
            try db.create(table: "avatar") { t in
                t.primaryKey("id", .text)
                t.column("name", .text).notNull()
                t.column("persona", .text).notNull().defaults(to: "{}")
                t.column("createdAt", .datetime).notNull()
            }
        }
        migrator.registerMigration("v2-conversations") { db in
            try db.create(table: "conversationTurn") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("avatarId", .text).notNull().indexed()
                t.column("role", .text).notNull()
                t.column("text", .text).notNull()
                t.column("createdAt", .datetime).notNull()
            }
            try db.create(table: "conversationMemory") { t in
                t.primaryKey("avatarId", .text)
                t.column("summary", .text).notNull().defaults(to: "")
                t.column("summarizedThrough", .integer).notNull().defaults(to: 0)
            }
            try db.create(table: "memoryFact") { t in
                t.column("avatarId", .text).notNull()
                t.column("key", .text).notNull()
                t.column("fact", .text).notNull()
                t.column("createdAt", .datetime).notNull()
                t.primaryKey(["avatarId", "key"])
            }
        }
        migrator.registerMigration("v3-voice-profiles") { db in
            try db.create(table: "voiceProfile") { t in
                t.primaryKey("id", .text)
                t.column("name", .text).notNull().unique()
                t.column("language", .text).notNull()
                t.column("profile", .text).notNull()
                t.column("createdAt", .datetime).notNull()
            }
        }
        migrator.registerMigration("v4-accounts-media-jobs") { db in
            try db.create(table: "account") { t in
                t.primaryKey("id", .text)
                t.column("name", .text).notNull().unique()
                t.column("role", .text).notNull()
                t.column("createdAt", .datetime).notNull()
            }
            try db.create(table: "apiToken") { t in
                t.primaryKey("id", .text)
                t.column("accountId", .text).notNull().indexed().references("account", onDelete: .cascade)
                t.column("name", .text).notNull()
                // SHA-256 of the whole token; the token itself is shown once and never stored.
                t.column("hash", .text).notNull().unique()
                t.column("createdAt", .datetime).notNull()
                t.column("lastUsedAt", .datetime)
                t.column("revokedAt", .datetime)
            }
            // Avatars made over the API belong to an account; the CLI's own avatars have none.
            try db.alter(table: "avatar") { t in
                t.add(column: "accountId", .text).indexed()
                t.add(column: "consent", .text)
                t.add(column: "voice", .text)
                t.add(column: "photo", .text)
                t.add(column: "updatedAt", .datetime)
            }
            try db.create(table: "media") { t in
                t.primaryKey("id", .text)
                t.column("accountId", .text).notNull().indexed()
                t.column("avatarId", .text).notNull().indexed()
                t.column("kind", .text).notNull()
                t.column("path", .text).notNull()
                t.column("sha256", .text).notNull()
                t.column("bytes", .integer).notNull()
                t.column("contentType", .text).notNull()
                t.column("originalName", .text)
                t.column("details", .text)
                t.column("createdAt", .datetime).notNull()
            }
            try db.create(table: "job") { t in
                t.primaryKey("id", .text)
                t.column("accountId", .text).notNull().indexed()
                t.column("avatarId", .text).notNull().indexed()
                t.column("kind", .text).notNull()
                t.column("state", .text).notNull().indexed()
                t.column("progress", .double).notNull().defaults(to: 0)
                t.column("input", .text).notNull()
                t.column("cacheKey", .text)
                t.column("resultPath", .text)
                t.column("error", .text)
                t.column("attempts", .integer).notNull().defaults(to: 0)
                t.column("createdAt", .datetime).notNull()
                t.column("updatedAt", .datetime).notNull()
            }
        }
        return migrator
    }

    /// Names of the applied migrations, oldest first.
    public func appliedMigrations() throws -> [String] {
        try pool.read { try Self.migrator.appliedMigrations($0) }
    }

    public func insert(_ avatar: AvatarRecord) throws {
        try pool.write { try avatar.insert($0) }
    }

    public func avatars() throws -> [AvatarRecord] {
        try pool.read { try AvatarRecord.order(Column("createdAt")).fetchAll($0) }
    }

    /// The database's state for `/readyz`.
    public func status() async -> ComponentStatus {
        do {
            let (migrations, journal) = try await pool.read { db in
                (try Self.migrator.appliedMigrations(db), try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? "?")
            }
            return ComponentStatus(name: "database", state: .ready, details: [
                "path": path, "migrations": migrations.joined(separator: ","), "journal_mode": journal,
                "sqlite": ((try? await pool.read { try String.fetchOne($0, sql: "SELECT sqlite_version()") }) ?? nil) ?? "?",
            ])
        } catch {
            return ComponentStatus(name: "database", state: .down, reason: "\(error)", details: ["path": path])
        }
    }
}
