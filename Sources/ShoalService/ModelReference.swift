public import ShoalRPC

/// What a caller names a model by: `name@alias`, `name/version` or `name` (the latest version),
/// each with an optional `org/` prefix (the caller's organisation by default).
public struct ModelReference: Sendable, Hashable, CustomStringConvertible {
  /// Which version the reference follows.
  public enum Selector: Sendable, Hashable {
    /// Whatever version the alias points at, now and after it moves.
    case alias(String)
    /// One version, pinned.
    case version(Int64)
    /// The newest version, now and after a new one is pushed.
    case latest
  }

  /// The organisation; nil when the reference did not name one.
  public var organization: String?
  /// The model's name.
  public var model: String
  /// Which version.
  public var selector: Selector

  /// Parses `text`.
  ///
  /// - Throws: INVALID_ARGUMENT naming what is wrong with the reference.
  public init(parsing text: String) throws(RPCError) {
    func fail(_ why: String) -> RPCError {
      RPCError(
        .invalidArgument,
        "model reference '\(text)': \(why) (expected name@alias, name/version or name, with an optional org/ prefix)")
    }
    guard !text.isEmpty else {
      throw RPCError(.invalidArgument, "model: give a model reference (name@alias, name/version or name)")
    }
    var rest = Substring(text)
    var alias: String?
    if let at = rest.firstIndex(of: "@") {
      alias = String(rest[rest.index(after: at)...])
      rest = rest[..<at]
      guard let alias, !alias.isEmpty, !alias.contains("/"), !alias.contains("@") else {
        throw fail("the alias is empty or malformed")
      }
    }
    let parts = rest.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
    guard parts.allSatisfy({ !$0.isEmpty }) else { throw fail("an empty part") }
    var version: Int64?
    var names = parts
    if names.count >= 2, let number = Int64(names.last!) {
      guard alias == nil else { throw fail("both a version and an alias") }
      guard number >= 1 else { throw fail("versions start at 1") }
      version = number
      names.removeLast()
    }
    switch names.count {
    case 1: organization = nil
    case 2: organization = names.removeFirst()
    default: throw fail("too many '/'")
    }
    model = names[0]
    if let alias {
      selector = alias == "latest" ? .latest : .alias(alias)
    } else if let version {
      selector = .version(version)
    } else {
      selector = .latest
    }
  }

  /// A reference with every part given.
  public init(organization: String?, model: String, selector: Selector) {
    self.organization = organization
    self.model = model
    self.selector = selector
  }

  /// The same reference in `organization` when it named none.
  public func qualified(defaultOrganization: String) -> ModelReference {
    var copy = self
    if copy.organization == nil { copy.organization = defaultOrganization }
    return copy
  }

  /// `org/name@alias`, `org/name/3` or `org/name` (without `org/` when it names none).
  public var description: String {
    let name = organization.map { "\($0)/\(model)" } ?? model
    switch selector {
    case .alias(let alias): return "\(name)@\(alias)"
    case .version(let version): return "\(name)/\(version)"
    case .latest: return name
    }
  }

  /// Whether the version it means can change (an alias or the latest).
  public var follows: Bool {
    if case .version = selector { return false }
    return true
  }
}
