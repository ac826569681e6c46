import AvatarCore
import Foundation
import Logging

/// Two-level cache for AI results: an in-process LRU in front of Redis.
///
/// Redis is optional. When it is off or down, values live only in memory and `status()` says so;
/// a Redis failure never fails the caller.
public actor CacheManager {
    /// Hit/miss counters for monitoring.
    public struct Metrics: Sendable, Codable, Equatable {
        public var hits = 0
        public var misses = 0
        public var redisErrors = 0
        public var memoryEntries = 0
        public var memoryBytes = 0
    }

    /// Counters of one kind of value (the namespace: `llm`, `tts`, `asr`, …).
    public struct TypeStats: Sendable, Codable, Equatable {
        public var hits = 0
        public var misses = 0
        public var sets = 0
        public var bytesSet = 0
        public var memoryEntries = 0
        public var memoryBytes = 0
    }

    private struct Entry {
        var value: [UInt8]
        var expires: ContinuousClock.Instant?
        var lastUse: UInt64
    }

    private let redis: @Sendable () async -> RedisClient?
    private let redisDescription: String?
    private let memoryBudget: Int
    private let logger: Logger
    private var entries: [String: Entry] = [:]
    private var useCounter: UInt64 = 0
    private var metrics = Metrics()
    private var byType: [String: TypeStats] = [:]

    /// - Parameters:
    ///   - redis: the Redis to use right now, or nil when none is available (resolved per call, because a
    ///     managed Redis may move to another port when it restarts).
    ///   - redisDescription: how Redis is configured, for `status()`; nil when Redis is off.
    ///   - memoryBudget: bytes the in-memory level may hold.
    public init(redis: @escaping @Sendable () async -> RedisClient?, redisDescription: String?, memoryBudget: Int = 64 * 1024 * 1024, logger: Logger) {
        self.redis = redis
        self.redisDescription = redisDescription
        self.memoryBudget = memoryBudget
        self.logger = logger
    }

    /// A memory-only cache.
    public init(memoryBudget: Int = 64 * 1024 * 1024, logger: Logger) {
        self.init(redis: { nil }, redisDescription: nil, memoryBudget: memoryBudget, logger: logger)
    }

    public func get(_ namespace: String, _ key: String) async -> [UInt8]? {
        let full = "avatar:\(namespace):\(key)"
        if let entry = entries[full] {
            if let expires = entry.expires, expires < .now {
                remove(full)
            } else {
                useCounter += 1
                entries[full]?.lastUse = useCounter
                metrics.hits += 1
                byType[namespace, default: TypeStats()].hits += 1
                return entry.value
            }
        }
        if let client = await redis() {
            do {
                if let value = try await client.get(full) {
                    metrics.hits += 1
                    byType[namespace, default: TypeStats()].hits += 1
                    store(full, value, ttl: nil)
                    return value
                }
            } catch {
                metrics.redisErrors += 1
                logger.debug("redis get failed", metadata: ["error": .string("\(error)")])
            }
        }
        metrics.misses += 1
        byType[namespace, default: TypeStats()].misses += 1
        return nil
    }

    /// Stores a value in memory and, when available, in Redis; `ttl` in seconds.
    public func set(_ namespace: String, _ key: String, _ value: [UInt8], ttl: Double?) async {
        let full = "avatar:\(namespace):\(key)"
        byType[namespace, default: TypeStats()].sets += 1
        byType[namespace, default: TypeStats()].bytesSet += value.count
        store(full, value, ttl: ttl)
        if let client = await redis() {
            do {
                try await client.set(full, value, ttlMilliseconds: ttl.map { Int($0 * 1000) })
            } catch {
                metrics.redisErrors += 1
                logger.debug("redis set failed", metadata: ["error": .string("\(error)")])
            }
        }
    }

    public func currentMetrics() -> Metrics {
        var copy = metrics
        copy.memoryEntries = entries.count
        copy.memoryBytes = entries.values.reduce(0) { $0 + $1.value.count }
        return copy
    }

    /// Counters per kind of value, with what each holds in memory now.
    public func statsByType() -> [String: TypeStats] {
        var stats = byType
        for (key, entry) in entries {
            let parts = key.split(separator: ":", maxSplits: 2)
            guard parts.count == 3 else { continue }
            let namespace = String(parts[1])
            stats[namespace, default: TypeStats()].memoryEntries += 1
            stats[namespace, default: TypeStats()].memoryBytes += entry.value.count
        }
        return stats
    }

    /// The cache's state for `/readyz`.
    public func status() async -> ComponentStatus {
        guard let redisDescription else {
            return ComponentStatus(name: "cache", state: .ready, reason: nil, details: ["backend": "memory", "redis": "off"])
        }
        guard let client = await redis() else {
            return ComponentStatus(name: "cache", state: .degraded, reason: "Redis (\(redisDescription)) is not ready; using the in-memory cache", details: ["backend": "memory"])
        }
        do {
            let info = try await client.info()
            return ComponentStatus(name: "cache", state: .ready, details: [
                "backend": "redis+memory", "redis": "\(client.host):\(client.port)", "redis_version": info["redis_version"] ?? "?",
            ])
        } catch {
            return ComponentStatus(name: "cache", state: .degraded, reason: "\((error as? CacheError)?.userMessage ?? "\(error)")", details: ["backend": "memory"])
        }
    }

    private func store(_ key: String, _ value: [UInt8], ttl: Double?) {
        guard value.count <= memoryBudget else { return }
        useCounter += 1
        entries[key] = Entry(value: value, expires: ttl.map { .now + .seconds($0) }, lastUse: useCounter)
        var total = entries.values.reduce(0) { $0 + $1.value.count }
        while total > memoryBudget, let oldest = entries.min(by: { $0.value.lastUse < $1.value.lastUse }) {
            total -= oldest.value.value.count
            entries.removeValue(forKey: oldest.key)
        }
    }

    private func remove(_ key: String) {
        entries.removeValue(forKey: key)
    }
}
