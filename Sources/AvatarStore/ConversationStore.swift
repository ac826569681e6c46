import Foundation
import GRDB

/// One stored turn of a conversation.
public struct StoredTurn: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "conversationTurn"
    public var id: Int64?
    public var avatarId: String
    public var role: String
    public var text: String
    public var createdAt: Date

    public init(avatarId: String, role: String, text: String, createdAt: Date = Date()) {
        self.avatarId = avatarId
        self.role = role
        self.text = text
        self.createdAt = createdAt
    }

    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}

/// What the avatar remembers of a conversation beyond its recent turns.
public struct StoredMemory: Sendable, Equatable {
    /// Summary of the turns older than the recent window.
    public var summary: String
    /// Id of the last turn folded into the summary.
    public var summarizedThrough: Int64
    /// Facts the user stated, keyed so a newer statement replaces an older one ("name", "likes:…").
    public var facts: [String: String]

    public init(summary: String = "", summarizedThrough: Int64 = 0, facts: [String: String] = [:]) {
        self.summary = summary
        self.summarizedThrough = summarizedThrough
        self.facts = facts
    }
}

extension AvatarDatabase {
    public func appendTurn(_ turn: StoredTurn) throws -> StoredTurn {
        try pool.write { db in
            var copy = turn
            try copy.insert(db)
            return copy
        }
    }

    /// Replaces a stored turn's text (an interrupted reply keeps only what the person heard).
    public func updateTurnText(id: Int64, text: String) throws {
        try pool.write { db in
            try db.execute(sql: "UPDATE conversationTurn SET text = ? WHERE id = ?", arguments: [text, id])
        }
    }

    /// Deletes a stored turn (a reply interrupted before any of it was heard).
    public func deleteTurn(id: Int64) throws {
        try pool.write { db in
            _ = try StoredTurn.deleteOne(db, key: id)
        }
    }

    /// Turns after `afterId`, oldest first.
    public func turns(avatarId: String, after afterId: Int64 = 0) throws -> [StoredTurn] {
        try pool.read { db in
            try StoredTurn.filter(Column("avatarId") == avatarId && Column("id") > afterId).order(Column("id")).fetchAll(db)
        }
    }

    public func memory(avatarId: String) throws -> StoredMemory {
        try pool.read { db in
            var memory = StoredMemory()
            if let row = try Row.fetchOne(db, sql: "SELECT summary, summarizedThrough FROM conversationMemory WHERE avatarId = ?", arguments: [avatarId]) {
                memory.summary = row["summary"]
                memory.summarizedThrough = row["summarizedThrough"]
            }
            for row in try Row.fetchAll(db, sql: "SELECT key, fact FROM memoryFact WHERE avatarId = ?", arguments: [avatarId]) {
                memory.facts[row["key"]] = row["fact"]
            }
            return memory
        }
    }

    public func saveSummary(avatarId: String, summary: String, through: Int64) throws {
        try pool.write { db in
            try db.execute(sql: """
                INSERT INTO conversationMemory (avatarId, summary, summarizedThrough) VALUES (?, ?, ?)
                ON CONFLICT(avatarId) DO UPDATE SET summary = excluded.summary, summarizedThrough = excluded.summarizedThrough
                """, arguments: [avatarId, summary, through])
        }
    }

    public func saveFact(avatarId: String, key: String, fact: String) throws {
        try pool.write { db in
            try db.execute(sql: """
                INSERT INTO memoryFact (avatarId, key, fact, createdAt) VALUES (?, ?, ?, ?)
                ON CONFLICT(avatarId, key) DO UPDATE SET fact = excluded.fact, createdAt = excluded.createdAt
                """, arguments: [avatarId, key, fact, Date()])
        }
    }

    public func avatar(named name: String) throws -> AvatarRecord? {
        try pool.read { try AvatarRecord.filter(Column("name") == name).fetchOne($0) }
    }
}
