/// Where a service keeps its database, as written in a mesh file or on the command line:
/// `sqlite` (one file per service in the data directory), `sqlite:/path/file.sqlite`, or a
/// libpq URL `postgres://user@host:port/database` (one schema per service).
public enum StoreURL: Sendable, Hashable, CustomStringConvertible {
  /// SQLite; nil puts the file in the data directory, named after the service.
  case sqlite(String?)
  /// PostgreSQL, given as a libpq connection URL.
  case postgres(String)

  /// The embedded default.
  public static var `default`: StoreURL { .sqlite(nil) }

  /// Parses `text`.
  ///
  /// - Throws: `StoreError.invalid` naming what was expected.
  public init(parsing text: String) throws(StoreError) {
    if text == "sqlite" {
      self = .sqlite(nil)
    } else if text.hasPrefix("sqlite:") {
      let path = String(text.dropFirst("sqlite:".count))
      guard !path.isEmpty else { throw StoreError(.invalid, "'sqlite:' needs a file path after the colon") }
      self = .sqlite(path)
    } else if text.hasPrefix("postgres://") || text.hasPrefix("postgresql://") {
      self = .postgres(text)
    } else {
      throw StoreError(
        .invalid, "store '\(StoreURL.redacted(text))' is not 'sqlite', 'sqlite:PATH' or 'postgres://user@host:port/db'")
    }
  }

  /// The URL as given, with any password replaced by `***`.
  public var description: String {
    switch self {
    case .sqlite(nil): "sqlite"
    case .sqlite(let path?): "sqlite:\(path)"
    case .postgres(let url): StoreURL.redacted(url)
    }
  }

  /// `url` with the password of `user:password@` (and a `password=` parameter) hidden.
  static func redacted(_ url: String) -> String {
    var text = url
    if let scheme = text.range(of: "://"), let at = text[scheme.upperBound...].firstIndex(of: "@"),
      let colon = text[scheme.upperBound..<at].firstIndex(of: ":")
    {
      text.replaceSubrange(text.index(after: colon)..<at, with: "***")
    }
    if let password = text.range(of: "password=") {
      let end = text[password.upperBound...].firstIndex(of: "&") ?? text.endIndex
      text.replaceSubrange(password.upperBound..<end, with: "***")
    }
    return text
  }

  /// The PostgreSQL schema a service's tables live in: its name with `-` as `_`.
  static func schema(for service: String) throws(StoreError) -> String {
    let schema = service.replacing("-", with: "_")
    let valid =
      !schema.isEmpty && schema.utf8.count <= 63
      && schema.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_" }
      && !("0"..."9").contains(schema.unicodeScalars.first!)
    guard valid else {
      throw StoreError(
        .invalid, "'\(service)' cannot name a PostgreSQL schema (use lower-case letters, digits, - and _)")
    }
    return schema
  }
}
