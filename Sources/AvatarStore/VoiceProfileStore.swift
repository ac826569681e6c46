import AvatarCore
import Foundation
import GRDB

/// One row of `voiceProfile`: the name and language as columns, the rest of the profile as JSON.
struct VoiceProfileRow: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "voiceProfile"
    var id: String
    var name: String
    var language: String
    var profile: String
    var createdAt: Date
}

extension AvatarDatabase {
    /// Saves a voice profile, replacing one with the same id.
    public func saveVoiceProfile(_ profile: VoiceProfile) throws {
        let json = String(decoding: try JSONEncoder().encode(profile), as: UTF8.self)
        let row = VoiceProfileRow(id: profile.id, name: profile.name, language: profile.language, profile: json, createdAt: profile.createdAt)
        try pool.write { try row.save($0) }
    }

    /// The profile with this name (names are unique), or nil.
    public func voiceProfile(named name: String) throws -> VoiceProfile? {
        try pool.read { db in
            try VoiceProfileRow.filter(Column("name") == name).fetchOne(db).map(Self.decode)
        }
    }

    /// Every stored profile, oldest first.
    public func voiceProfiles() throws -> [VoiceProfile] {
        try pool.read { db in try VoiceProfileRow.order(Column("createdAt")).fetchAll(db).map(Self.decode) }
    }

    /// Deletes the profile with this name; false when there was none.
    @discardableResult
    public func deleteVoiceProfile(named name: String) throws -> Bool {
        try pool.write { db in try VoiceProfileRow.filter(Column("name") == name).deleteAll(db) > 0 }
    }

    private static func decode(_ row: VoiceProfileRow) throws -> VoiceProfile {
        try JSONDecoder().decode(VoiceProfile.self, from: Data(row.profile.utf8))
    }
}
