import AvatarCore
import Logging
import ServiceLifecycle

/// Runs every managed engine for the life of the server and stops them all on graceful shutdown.
public final class EngineSupervisor: Service {
    public let engines: [ManagedEngine]

    public init(engines: [ManagedEngine]) {
        self.engines = engines
    }

    /// The engine with this name, if supervised.
    public func engine(named name: String) -> ManagedEngine? {
        engines.first { $0.engineName == name }
    }

    public func statuses() async -> [ComponentStatus] {
        var result: [ComponentStatus] = []
        for engine in engines { result.append(await engine.status()) }
        return result
    }

    public func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            for engine in engines {
                group.addTask { await engine.run() }
            }
            // Wait for shutdown, then cancel the engines' loops: each stops its child before returning.
            group.addTask {
                try? await gracefulShutdown()
            }
            await group.next()
            group.cancelAll()
        }
    }
}
