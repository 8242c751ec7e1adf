/// Why a database or blob-store operation failed. Services map `code` to an RPC status once, at
/// their boundary.
public struct StoreError: Error, Sendable, CustomStringConvertible {
  /// The kind of failure.
  public enum Code: String, Sendable, Hashable {
    /// The store cannot be used now: locked, full, gone, unreachable. Retrying later may work;
    /// nothing was written.
    case unavailable
    /// A unique key already holds this value.
    case alreadyExists
    /// Another constraint (foreign key, NOT NULL, CHECK) refused the write.
    case constraint
    /// A concurrent transaction conflicted (deadlock, serialization); retry the transaction.
    case conflict
    /// Stored data failed verification (a blob whose bytes no longer match its digest).
    case dataLoss
    /// A blob or row that was asked for does not exist.
    case notFound
    /// The database is newer than this build, or a URL or name is malformed.
    case invalid
    /// A bug: malformed SQL, an unexpected column type.
    case `internal`
  }

  /// The kind of failure.
  public var code: Code
  /// What went wrong, for a person.
  public var message: String
  /// The back end's own error text or code, when there is one.
  public var cause: String?

  /// An error of kind `code`.
  public init(_ code: Code, _ message: String, cause: String? = nil) {
    self.code = code
    self.message = message
    self.cause = cause
  }

  /// `message` with the cause in parentheses.
  public var description: String {
    guard let cause, !cause.isEmpty else { return message }
    return "\(message) (\(cause))"
  }
}
