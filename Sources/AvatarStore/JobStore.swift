import Foundation
import GRDB

/// A background job (a video render), persisted so that a crash loses nothing.
public struct JobRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "job"
    public enum State: String, Codable, Sendable {
        case queued, running, succeeded, failed, cancelled
        public var finished: Bool { self == .succeeded || self == .failed || self == .cancelled }
    }

    public var id: String
    public var accountId: String
    public var avatarId: String
    public var kind: String
    public var state: State
    /// 0…1.
    public var progress: Double
    /// The request as JSON.
    public var input: String
    public var cacheKey: String?
    /// The result's path relative to the media root.
    public var resultPath: String?
    public var error: String?
    /// How many times a worker started it (a start-up after a crash counts one more).
    public var attempts: Int
    public var createdAt: Date
    public var updatedAt: Date

    public init(id: String = UUID().uuidString.lowercased(), accountId: String, avatarId: String, kind: String, input: String, cacheKey: String?, now: Date = Date()) {
        self.id = id
        self.accountId = accountId
        self.avatarId = avatarId
        self.kind = kind
        self.state = .queued
        self.progress = 0
        self.input = input
        self.cacheKey = cacheKey
        self.resultPath = nil
        self.error = nil
        self.attempts = 0
        self.createdAt = now
        self.updatedAt = now
    }
}

extension AvatarDatabase {
    public func insert(_ job: JobRecord) throws {
        try pool.write { try job.insert($0) }
    }

    public func job(id: String, accountId: String) throws -> JobRecord? {
        try pool.read { try JobRecord.filter(Column("id") == id && Column("accountId") == accountId).fetchOne($0) }
    }

    public func job(id: String) throws -> JobRecord? {
        try pool.read { try JobRecord.fetchOne($0, key: id) }
    }

    public func jobs(accountId: String, avatarId: String? = nil) throws -> [JobRecord] {
        try pool.read { db in
            var request = JobRecord.filter(Column("accountId") == accountId)
            if let avatarId { request = request.filter(Column("avatarId") == avatarId) }
            return try request.order(Column("createdAt").desc).limit(100).fetchAll(db)
        }
    }

    /// A finished, successful job of the account with this cache key whose result is still recorded.
    public func succeededJob(cacheKey: String, accountId: String) throws -> JobRecord? {
        try pool.read { try JobRecord.filter(Column("cacheKey") == cacheKey && Column("accountId") == accountId && Column("state") == JobRecord.State.succeeded.rawValue).order(Column("updatedAt").desc).fetchOne($0) }
    }

    /// Takes the oldest queued job and marks it running (one transaction: two workers never take the same job).
    public func claimNextJob() throws -> JobRecord? {
        try pool.write { db in
            guard var job = try JobRecord.filter(Column("state") == JobRecord.State.queued.rawValue).order(Column("createdAt"), Column("id")).fetchOne(db) else { return nil }
            job.state = .running
            job.attempts += 1
            job.updatedAt = Date()
            try job.update(db)
            return job
        }
    }

    /// Updates a job unless it was cancelled meanwhile (a cancel always wins); returns the stored job.
    @discardableResult
    public func updateJob(id: String, _ change: @Sendable (inout JobRecord) -> Void) throws -> JobRecord? {
        try pool.write { db in
            guard var job = try JobRecord.fetchOne(db, key: id) else { return nil }
            if job.state == .cancelled { return job }
            change(&job)
            job.updatedAt = Date()
            try job.update(db)
            return job
        }
    }

    /// Marks a queued or running job cancelled; returns it (nil when there is no such job of the account).
    public func cancelJob(id: String, accountId: String) throws -> JobRecord? {
        try pool.write { db in
            guard var job = try JobRecord.filter(Column("id") == id && Column("accountId") == accountId).fetchOne(db) else { return nil }
            if !job.state.finished {
                job.state = .cancelled
                job.error = "cancelled by the user"
                job.updatedAt = Date()
                try job.update(db)
            }
            return job
        }
    }

    /// At start-up: jobs left `running` by a process that died go back to the queue; after `maxAttempts` starts
    /// they fail with that reason instead (a job that crashes the server must not crash it forever).
    public func requeueInterruptedJobs(maxAttempts: Int) throws -> (requeued: [String], failed: [String]) {
        try pool.write { db in
            var requeued: [String] = [], failed: [String] = []
            for var job in try JobRecord.filter(Column("state") == JobRecord.State.running.rawValue).fetchAll(db) {
                if job.attempts >= maxAttempts {
                    job.state = .failed
                    job.error = "the server stopped during this job \(job.attempts) times; it was not tried again"
                    failed.append(job.id)
                } else {
                    job.state = .queued
                    job.progress = 0
                    requeued.append(job.id)
                }
                job.updatedAt = Date()
                try job.update(db)
            }
            return (requeued, failed)
        }
    }
}
