/// Where a server listens or a client connects: `unix:///abs/path`, `unix:relative/path`
/// (relative to the working directory), `tcp://host:port`, or `tls://host:port` (TCP inside TLS,
/// with the certificates of `TransportSecurity`).
public enum RPCAddress: Sendable, Hashable, CustomStringConvertible {
  /// A Unix-domain socket at an absolute path.
  case unix(path: String)
  /// A TCP host and port (port 0 asks the system for a free one when binding).
  case tcp(host: String, port: Int)
  /// TCP inside TLS: the server shows a certificate, and the client checks it against its CA.
  case tls(host: String, port: Int)

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
    } else if text.hasPrefix("tcp://") || text.hasPrefix("tls://") {
      let rest = text.dropFirst("tcp://".count)
      guard let colon = rest.lastIndex(of: ":"), let port = Int(rest[rest.index(after: colon)...]),
        (0...65535).contains(port)
      else { throw Self.invalid(text) }
      var host = String(rest[..<colon])
      if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
      guard !host.isEmpty else { throw Self.invalid(text) }
      self = text.hasPrefix("tls://") ? .tls(host: host, port: port) : .tcp(host: host, port: port)
    } else {
      throw Self.invalid(text)
    }
  }

  private static func invalid(_ text: String) -> RPCError {
    RPCError(
      .invalidArgument,
      "'\(text)' is not an address; use unix:///abs/path, unix:relative/path, tcp://host:port or tls://host:port")
  }

  private static func currentDirectory() -> String {
    var buffer = [CChar](repeating: 0, count: 4096)
    guard getcwd(&buffer, buffer.count) != nil else { return "." }
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
  }

  /// The host and port of a TCP or TLS address; nil for a Unix socket.
  public var hostAndPort: (host: String, port: Int)? {
    switch self {
    case .unix: nil
    case .tcp(let host, let port), .tls(let host, let port): (host, port)
    }
  }

  /// Whether the address is a loopback one (`127.0.0.0/8`, `::1`, `localhost`) or a Unix socket:
  /// what is sent to it does not leave the machine.
  public var staysOnThisMachine: Bool {
    guard let (host, _) = hostAndPort else { return true }
    return Self.isLoopback(host)
  }

  /// Whether `host` (a name or an address) names this machine's loopback interface.
  public static func isLoopback(_ host: String) -> Bool {
    host == "localhost" || host.hasPrefix("127.") || host == "::1" || host.hasPrefix("::ffff:127.")
  }

  public var description: String {
    switch self {
    case .unix(let path): "unix://\(path)"
    case .tcp(let host, let port): host.contains(":") ? "tcp://[\(host)]:\(port)" : "tcp://\(host):\(port)"
    case .tls(let host, let port): host.contains(":") ? "tls://[\(host)]:\(port)" : "tls://\(host):\(port)"
    }
  }
}

#if canImport(Glibc)
  import Glibc
#endif
