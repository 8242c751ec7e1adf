/// Where a server listens or a client connects: `unix:///abs/path`, `unix:relative/path`
/// (relative to the working directory) or `tcp://host:port`.
public enum RPCAddress: Sendable, Hashable, CustomStringConvertible {
  /// A Unix-domain socket at an absolute path.
  case unix(path: String)
  /// A TCP host and port (port 0 asks the system for a free one when binding).
  case tcp(host: String, port: Int)

  /// Parses an address string.
  ///
  /// - Throws: `RPCError` `INVALID_ARGUMENT` naming the accepted forms.
  public init(parsing text: String, relativeTo directory: String? = nil) throws(RPCError) {
    if text.hasPrefix("unix://") {
      let path = String(text.dropFirst("unix://".count))
      guard path.hasPrefix("/") else { throw Self.invalid(text) }
      self = .unix(path: path)
    } else if text.hasPrefix("unix:") {
      let path = String(text.dropFirst("unix:".count))
      guard !path.isEmpty else { throw Self.invalid(text) }
      if path.hasPrefix("/") {
        self = .unix(path: path)
      } else {
        let base = directory ?? Self.currentDirectory()
        self = .unix(path: base.hasSuffix("/") ? base + path : base + "/" + path)
      }
    } else if text.hasPrefix("tcp://") {
      let rest = text.dropFirst("tcp://".count)
      guard let colon = rest.lastIndex(of: ":"), let port = Int(rest[rest.index(after: colon)...]),
        (0...65535).contains(port)
      else { throw Self.invalid(text) }
      var host = String(rest[..<colon])
      if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
      guard !host.isEmpty else { throw Self.invalid(text) }
      self = .tcp(host: host, port: port)
    } else {
      throw Self.invalid(text)
    }
  }

  private static func invalid(_ text: String) -> RPCError {
    RPCError(
      .invalidArgument, "'\(text)' is not an address; use unix:///abs/path, unix:relative/path or tcp://host:port")
  }

  private static func currentDirectory() -> String {
    var buffer = [CChar](repeating: 0, count: 4096)
    guard getcwd(&buffer, buffer.count) != nil else { return "." }
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
  }

  public var description: String {
    switch self {
    case .unix(let path): "unix://\(path)"
    case .tcp(let host, let port): host.contains(":") ? "tcp://[\(host)]:\(port)" : "tcp://\(host):\(port)"
    }
  }
}

#if canImport(Glibc)
  import Glibc
#endif
