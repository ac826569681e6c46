import Foundation
import GRDB

/// An avatar as the API sees it: the `avatar` row with its owner, consent, voice and photo state.
/// `persona` is the same JSON `Persona.decode` reads, so `avatar chat` and the API share avatars.
public struct OwnedAvatar: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "avatar"
    public var id: String
    public var name: String
    public var persona: String
    public var createdAt: Date
    public var accountId: String?
    /// The consent statement as JSON (who gave it, on what basis, when; when it was recorded).
    public var consent: String?
    public var voice: String?
    /// The current photo's analysis as JSON (media id, face box, warnings), nil before an upload.
    public var photo: String?
    public var updatedAt: Date?

    public init(id: String = UUID().uuidString.lowercased(), name: String, persona: String, accountId: String, consent: String, voice: String, createdAt: Date = Date()) {
        self.id = id
        self.name = name
        self.persona = persona
        self.createdAt = createdAt
        self.accountId = accountId
        self.consent = consent
        self.voice = voice
        self.photo = nil
        self.updatedAt = createdAt
    }
}

/// A stored file: an uploaded photo or voice sample, a derived preview or WAV, a rendered video.
public struct MediaRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "media"
    public var id: String
    public var accountId: String
    public var avatarId: String
    /// `photo`, `preview`, `landmarks`, `voice-sample`, `video`.
    public var kind: String
    /// Path relative to the media root.
    public var path: String
    public var sha256: String
    public var bytes: Int64
    public var contentType: String
    public var originalName: String?
    public var details: String?
    public var createdAt: Date

    public init(id: String = UUID().uuidString.lowercased(), accountId: String, avatarId: String, kind: String, path: String, sha256: String,
                bytes: Int64, contentType: String, originalName: String? = nil, details: String? = nil, createdAt: Date = Date()) {
        self.id = id
        self.accountId = accountId
        self.avatarId = avatarId
        self.kind = kind
        self.path = path
        self.sha256 = sha256
        self.bytes = bytes
        self.contentType = contentType
        self.originalName = originalName
        self.details = details
        self.createdAt = createdAt
    }
}

extension AvatarDatabase {
    public func insert(_ avatar: OwnedAvatar) throws {
        try pool.write { try avatar.insert($0) }
    }

    public func update(_ avatar: OwnedAvatar) throws {
        try pool.write { try avatar.update($0) }
    }

    /// The avatar when it belongs to `accountId`; nil for a missing avatar and for another account's alike.
    public func avatar(id: String, accountId: String) throws -> OwnedAvatar? {
        try pool.read { try OwnedAvatar.filter(Column("id") == id && Column("accountId") == accountId).fetchOne($0) }
    }

    public func avatars(accountId: String) throws -> [OwnedAvatar] {
        try pool.read { try OwnedAvatar.filter(Column("accountId") == accountId).order(Column("createdAt"), Column("id")).fetchAll($0) }
    }

    /// Deletes the avatar with its conversation, memory, media rows, jobs and voice profile in one transaction;
    /// returns the media paths (relative to the media root) no other row still uses, for the caller to remove.
    public func deleteAvatar(id: String, accountId: String) throws -> [String]? {
        try pool.write { db in
            guard try OwnedAvatar.filter(Column("id") == id && Column("accountId") == accountId).fetchOne(db) != nil else { return nil }
            let paths = try String.fetchAll(db, sql: "SELECT DISTINCT path FROM media WHERE avatarId = ?", arguments: [id])
            for table in ["conversationTurn", "conversationMemory", "memoryFact", "media", "job"] {
                try db.execute(sql: "DELETE FROM \(table) WHERE avatarId = ?", arguments: [id])
            }
            try db.execute(sql: "DELETE FROM voiceProfile WHERE name = ?", arguments: ["avatar-\(id)"])
            try db.execute(sql: "DELETE FROM avatar WHERE id = ?", arguments: [id])
            // Content-hash names can be shared by two avatars of one account: keep what is still referenced.
            return try paths.filter { try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM media WHERE path = ?", arguments: [$0]) == 0 }
        }
    }

    public func insert(_ media: MediaRecord) throws {
        try pool.write { try media.insert($0) }
    }

    /// Deletes an avatar's media rows of these kinds; returns the paths no row uses any more.
    public func deleteMedia(avatarId: String, kinds: [String]) throws -> [String] {
        try pool.write { db in
            let rows = try MediaRecord.filter(Column("avatarId") == avatarId && kinds.contains(Column("kind"))).fetchAll(db)
            try MediaRecord.filter(Column("avatarId") == avatarId && kinds.contains(Column("kind"))).deleteAll(db)
            return try Set(rows.map(\.path)).filter { try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM media WHERE path = ?", arguments: [$0]) == 0 }
        }
    }

    public func media(id: String, accountId: String) throws -> MediaRecord? {
        try pool.read { try MediaRecord.filter(Column("id") == id && Column("accountId") == accountId).fetchOne($0) }
    }

    public func media(avatarId: String, kind: String) throws -> [MediaRecord] {
        try pool.read { try MediaRecord.filter(Column("avatarId") == avatarId && Column("kind") == kind).order(Column("createdAt")).fetchAll($0) }
    }

    /// Bytes stored for an account (for its quota).
    public func mediaBytes(accountId: String) throws -> Int64 {
        try pool.read { try Int64.fetchOne($0, sql: "SELECT COALESCE(SUM(bytes), 0) FROM media WHERE accountId = ?", arguments: [accountId]) ?? 0 }
    }

    /// Number of conversation turns stored for an avatar (tests check deletion removes them).
    public func turnCount(avatarId: String) throws -> Int {
        try pool.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM conversationTurn WHERE avatarId = ?", arguments: [avatarId]) ?? 0 }
    }
}
