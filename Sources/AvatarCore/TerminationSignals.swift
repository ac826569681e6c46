import Dispatch
import Foundation

/// Turns SIGINT and SIGTERM into task cancellation for a command-line operation (`avatar setup`), so that
/// the children it started are stopped through their teardown (SIGTERM to each child's process group,
/// SIGKILL after a grace period) instead of being orphaned when Avatar dies.
public enum TerminationSignals {
    /// Runs `body` in a task that a SIGINT or SIGTERM cancels (it then ends with `CancellationError`).
    public static func cancelling<R: Sendable>(_ body: @escaping @Sendable () async throws -> R) async throws -> R {
        let task = Task { try await body() }
        let signals = [SIGINT, SIGTERM]
        let sources = signals.map { number in
            // The default action would end the process at once; a dispatch source needs it ignored.
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { task.cancel() }
            source.resume()
            return source
        }
        defer {
            for source in sources { source.cancel() }
            for number in signals { signal(number, SIG_DFL) }
        }
        return try await withTaskCancellationHandler {
            try await task.value
        } onCancel: {
            task.cancel()
        }
    }
}
