import Synchronization

/// A value shared between a callback and the code that started it (a child's output lines and the step
/// that tallies them), behind a mutex.
public final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>

    public init(_ value: Value) { mutex = Mutex(value) }

    /// Runs `body` with the value, alone.
    public func withLock<Result: Sendable>(_ body: (inout Value) -> Result) -> Result {
        mutex.withLock { value in
            var copy = value
            let result = body(&copy)
            value = copy
            return result
        }
    }
}
