/// An error a user or operator can act on.
///
/// Every module's error enum conforms, so the server, the CLI and the logs can all show the same
/// one-line message and decide on retries without knowing the module.
public protocol AvatarError: Error, CustomStringConvertible, Sendable {
    /// One line that says what went wrong and what to do about it.
    var userMessage: String { get }
    /// Whether trying the same operation again later can succeed.
    var retryable: Bool { get }
    /// The HTTP status this error answers with when it reaches an API client (the live session sends the same
    /// class of failure as an `error` event): 4xx when the sender can fix the request, 503 when trying again
    /// later can succeed, 500 when it is the server's fault. By default 503 if retryable, else 500.
    var httpStatus: Int { get }
}

extension AvatarError {
    public var description: String { userMessage }
    public var httpStatus: Int { retryable ? 503 : 500 }
}
