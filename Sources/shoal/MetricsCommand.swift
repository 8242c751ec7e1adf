import ArgumentParser
import Foundation
import ShoalClient
import ShoalProto
import ShoalRPC
import ShoalServiceStubs

/// `shoal metrics SERVICE`: the Prometheus metrics of every instance of a service.
struct MetricsCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "metrics",
    abstract: "Print a service's metrics (Prometheus' text format).",
    discussion: """
      Each instance registers where it serves GET /metrics (`shoal serve --metrics`, loopback by default); this \
      command fetches each instance's in turn. SERVICE may also be an http:// URL.
      """)

  @Argument(help: "A service name in the registry, or an http://host:port/metrics URL.") var service: String
  @Option(help: "Only lines whose metric name starts with this.") var prefix: String?
  @OptionGroup var mesh: MeshOptions

  func run() async throws {
    var urls: [String] = []
    if service.hasPrefix("http://") {
      urls = [service]
    } else {
      let client = ShoalClient(location: try mesh.location())
      var request = RegistryV1.ResolveRequest()
      request.service = service
      let instances = try await reportingRPCErrors(command: "metrics", closing: { await client.close() }) {
        try await client.directory.resolve(request, options: CallOptions(timeout: .seconds(5))).instances
      }
      var seen = Set<String>()
      for instance in instances {
        guard let url = instance.metadata["metrics"], seen.insert(url).inserted else { continue }
        urls.append(url)
      }
      guard !urls.isEmpty else {
        logLine("shoal metrics", "no instance of '\(service)' registers a metrics address (see `shoal services`)")
        throw ExitCode(1)
      }
    }
    for url in urls {
      let body: String
      do {
        body = try HTTPGet.fetch(url)
      } catch {
        logLine("shoal metrics", "\(url): \(error)")
        throw ExitCode(1)
      }
      if urls.count > 1 { emit("# from \(url)") }
      for line in body.split(separator: "\n", omittingEmptySubsequences: false) {
        if let prefix {
          let name =
            line.hasPrefix("# ") ? line.split(separator: " ").dropFirst(2).first.map(String.init) ?? "" : String(line)
          guard name.hasPrefix(prefix) else { continue }
        }
        if !line.isEmpty { emit(String(line)) }
      }
    }
  }
}

/// A plain HTTP/1.1 GET over TCP, for the metrics endpoints on this host or the mesh's.
enum HTTPGet {
  struct Failure: Error, CustomStringConvertible {
    var description: String
  }

  /// The body of `url` (http://host:port/path) when it answers 200.
  static func fetch(_ url: String, timeoutSeconds: Int = 5) throws -> String {
    guard url.hasPrefix("http://") else { throw Failure(description: "only http:// URLs") }
    let rest = url.dropFirst(7)
    let hostPort = rest.prefix { $0 != "/" }
    let path = rest.dropFirst(hostPort.count)
    guard let colon = hostPort.lastIndex(of: ":"), let port = UInt16(hostPort[hostPort.index(after: colon)...]) else {
      throw Failure(description: "no port in \(url)")
    }
    let host = String(hostPort[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
    var hints = addrinfo()
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    var found: UnsafeMutablePointer<addrinfo>?
    guard getaddrinfo(host, "\(port)", &hints, &found) == 0, let address = found else {
      throw Failure(description: "cannot resolve \(host)")
    }
    defer { freeaddrinfo(found) }
    let socket = Glibc.socket(address.pointee.ai_family, Int32(SOCK_STREAM.rawValue), 0)
    guard socket >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
    defer { close(socket) }
    var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
    setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    setsockopt(socket, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    guard connect(socket, address.pointee.ai_addr, address.pointee.ai_addrlen) == 0 else {
      throw Failure(description: "cannot connect to \(hostPort): \(String(cString: strerror(errno)))")
    }
    let request = "GET \(path.isEmpty ? "/" : path) HTTP/1.1\r\nHost: \(hostPort)\r\nConnection: close\r\n\r\n"
    _ = request.withCString { send(socket, $0, strlen($0), 0) }
    var response: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
      let count = recv(socket, &buffer, buffer.count, 0)
      if count < 0 { throw Failure(description: "reading: \(String(cString: strerror(errno)))") }
      if count == 0 { break }
      response += buffer[0..<count]
    }
    let text = String(decoding: response, as: UTF8.self)
    guard let split = text.range(of: "\r\n\r\n") else { throw Failure(description: "not an HTTP response") }
    let status = text[..<split.lowerBound].split(separator: " ").dropFirst().first ?? ""
    guard status == "200" else { throw Failure(description: "HTTP \(status)") }
    return String(text[split.upperBound...])
  }
}
