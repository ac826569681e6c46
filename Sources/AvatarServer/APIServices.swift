import AsyncHTTPClient
import AvatarCache
import AvatarConversation
import AvatarCore
import AvatarMedia
import AvatarStore
import Foundation
import Hummingbird

/// Limits of the API, per kind of upload and per account.
public struct APILimits: Sendable {
    public var photoBytes: Int64 = 20 * 1024 * 1024
    public var photoPixels = 50_000_000
    public var audioBytes: Int64 = 50 * 1024 * 1024
    public var audioSeconds: Double = 600
    public var accountBytes: Int64 = 2 * 1024 * 1024 * 1024
    /// Requests per minute per token, by kind.
    public var uploadsPerMinute = 20
    public var chatPerMinute = 30
    public var jobsPerMinute = 10
    public var writesPerMinute = 60

    public init() {}
}

/// What the API routes share beyond the runtime: stored files, rate limits, live conversations.
public final class APIServices: Sendable {
    public let runtime: AvatarRuntime
    public let media: MediaFiles
    public let limits: APILimits
    let limiter: RateLimiter
    let conversations: ConversationRegistry
    /// The live WebSocket sessions.
    let sessions: SessionHub
    /// Whether videos get the visible "AI-generated" label (`AVATAR_VIDEO_LABEL`).
    var provenanceLabel: Bool { runtime.settings.videoLabel }

    public init(runtime: AvatarRuntime, limits: APILimits = APILimits(), sessionLimits: SessionLimits = SessionLimits()) throws {
        sessions = SessionHub(limits: sessionLimits)
        self.runtime = runtime
        self.limits = limits
        media = try MediaFiles(root: runtime.settings.dataDir + "/media")
        limiter = RateLimiter(limits: limits)
        conversations = ConversationRegistry(runtime: runtime)
    }

    /// The avatar named by the path's `:id` when it belongs to the caller; 404 otherwise (also for another account's).
    func owned(_ context: AppRequestContext) throws -> OwnedAvatar {
        let account = try context.requireAccount()
        let id = context.parameters.get("id") ?? context.aliasAvatarId ?? ""
        guard let avatar = try runtime.database.avatar(id: id, accountId: account.id) else { throw Problem.notFound("avatar \(id)") }
        return avatar
    }
}

/// Token buckets per (token, kind): `perMinute` requests, refilled continuously. Over the limit → 429 with
/// `Retry-After` (seconds until one request is allowed again).
actor RateLimiter {
    enum Kind: String { case upload, chat, job, write }

    struct Bucket {
        var tokens: Double
        var updated: ContinuousClock.Instant
    }

    let limits: APILimits
    var buckets: [String: Bucket] = [:]

    init(limits: APILimits) { self.limits = limits }

    func perMinute(_ kind: Kind) -> Int {
        switch kind {
        case .upload: return limits.uploadsPerMinute
        case .chat: return limits.chatPerMinute
        case .job: return limits.jobsPerMinute
        case .write: return limits.writesPerMinute
        }
    }

    func check(account: String, kind: Kind) throws {
        let capacity = Double(perMinute(kind))
        let rate = capacity / 60
        let key = account + "|" + kind.rawValue
        let now = ContinuousClock.now
        var bucket = buckets[key] ?? Bucket(tokens: capacity, updated: now)
        let elapsed = now - bucket.updated
        bucket.tokens = min(capacity, bucket.tokens + (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18) * rate)
        bucket.updated = now
        guard bucket.tokens >= 1 else {
            buckets[key] = bucket
            let wait = Int(((1 - bucket.tokens) / rate).rounded(.up))
            throw Problem(.tooManyRequests, "rate-limited", "Too many requests",
                          detail: "more than \(Int(capacity)) \(kind.rawValue) requests a minute", fix: "wait \(wait) s and try again",
                          headers: [.retryAfter: String(max(1, wait))])
        }
        bucket.tokens -= 1
        buckets[key] = bucket
    }
}

/// One live `Conversation` per avatar (its memory is in the database; this keeps the actor and its cache warm).
actor ConversationRegistry {
    let runtime: AvatarRuntime
    var live: [String: Conversation] = [:]

    init(runtime: AvatarRuntime) { self.runtime = runtime }

    func conversation(for avatar: OwnedAvatar) throws -> Conversation {
        if let existing = live[avatar.id] { return existing }
        let persona = try Persona.decode(json: avatar.persona, name: avatar.name)
        let talk = runtime.conversation(avatarId: avatar.id, persona: persona)
        live[avatar.id] = talk
        return talk
    }

    func forget(_ avatarId: String) {
        live[avatarId] = nil
    }
}

/// `GET /api/v1/cache/stats`: hits, misses and bytes per kind of cached value, and whether Redis is in use.
struct CacheStatsView: ResponseEncodable {
    var state: String
    var reason: String?
    var backend: String
    var types: [String: CacheManager.TypeStats]
    var totals: CacheManager.Metrics
}

func addCacheRoutes(_ api: RouterGroup<AppRequestContext>, runtime: AvatarRuntime) {
    api.get("/cache/stats") { _, context -> CacheStatsView in
        _ = try context.requireAccount()
        let status = await runtime.cache.status()
        return CacheStatsView(state: status.state.rawValue, reason: status.reason, backend: status.details["backend"] ?? "memory",
                              types: await runtime.cache.statsByType(), totals: await runtime.cache.currentMetrics())
    }
}
