/// An error a user or operator can act on.
///
/// Every module's error enum conforms, so the server, the CLI and the logs can all show the same
/// one-line message and decide on retries without knowing the module.
public protocol AvatarError: Error, CustomStringConvertible, Sendable {
    /// One line that says what went wrong and what to do about it.
    var userMessage: String { get }
    /// Whether trying the same operation again later can succeed.
    var retryable: Bool { get }
}

extension AvatarError {
    public var description: String { userMessage }
}
