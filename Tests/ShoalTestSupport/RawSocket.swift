#if canImport(Glibc)
  import Glibc
#endif

/// A plain blocking socket for tests that speak to a server byte by byte: garbage, truncated
/// frames, protocol violations.
public final class RawSocket {
  private let fd: Int32

  /// Connects to a Unix-domain socket.
  public init(unixPath path: String) throws {
    fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
      for (i, byte) in path.utf8.prefix(raw.count - 1).enumerated() { raw[i] = byte }
    }
    let result = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
      }
    }
    guard result == 0 else {
      close(fd)
      throw TestEnvironmentError("cannot connect to \(path): errno \(errno)")
    }
  }

  deinit { close(fd) }

  /// Writes all of `bytes`; false if the peer has closed.
  @discardableResult
  public func send(_ bytes: [UInt8]) -> Bool {
    var offset = 0
    while offset < bytes.count {
      let written = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
      if written <= 0 { return false }
      offset += written
    }
    return true
  }

  /// Everything the peer sends until it closes the connection or `seconds` pass.
  public func readUntilClosed(seconds: Double = 5) -> (bytes: [UInt8], closed: Bool) {
    read(seconds: seconds) { _ in false }
  }

  /// What the peer sends until `done` holds for everything read so far, the peer closes, or
  /// `seconds` pass.
  public func read(seconds: Double = 5, until done: ([UInt8]) -> Bool) -> (bytes: [UInt8], closed: Bool) {
    var result: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    let end = Double(clockMillis()) + seconds * 1000
    while Double(clockMillis()) < end {
      var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
      let ready = poll(&poller, 1, Int32(max(1, end - Double(clockMillis()))))
      if ready <= 0 { continue }
      let count = recv(fd, &buffer, buffer.count, 0)
      if count <= 0 { return (result, true) }
      result += buffer[0..<count]
      if done(result) { return (result, false) }
    }
    return (result, false)
  }

  private func clockMillis() -> Int {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return now.tv_sec * 1000 + now.tv_nsec / 1_000_000
  }
}
