public import Foundation

/// A long-running child process (a `shoal serve`), whose standard output is collected as it
/// arrives so that a test can wait for the lines it prints.
public final class ServerProcess: @unchecked Sendable {
  private let process = Process()
  private let output = Pipe()
  private let lock = NSLock()
  private var collected = ""

  /// Starts `executable` with `arguments`.
  public init(_ executable: String, _ arguments: [String], environment: [String: String]? = nil) throws {
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if let environment {
      process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    }
    process.standardOutput = output
    process.standardError = output
    try process.run()
    // Read on a thread of its own with blocking reads until the child's end closes (`run` has
    // closed ours), rather than with a `readabilityHandler`: its dispatch source is where
    // libdispatch's manager thread was seen to crash on Linux (swift-bundler issue #150 reports
    // the same signature). The thread holds the reading end, so its descriptor stays open until
    // the thread has read to the end.
    let handle = output.fileHandleForReading
    let reader = Thread { [weak self] in
      var buffer = [UInt8](repeating: 0, count: 1 << 16)
      while true {
        let count = buffer.withUnsafeMutableBytes { read(handle.fileDescriptor, $0.baseAddress, $0.count) }
        if count < 0 && errno == EINTR { continue }
        guard count > 0, let self else { return }
        self.lock.lock()
        self.collected += String(decoding: buffer[..<count], as: UTF8.self)
        self.lock.unlock()
      }
    }
    reader.start()
  }

  deinit {
    if process.isRunning { process.terminate() }
  }

  /// The process id.
  public var pid: Int32 { process.processIdentifier }

  /// Whether the process is still running.
  public var isRunning: Bool { process.isRunning }

  /// Everything printed so far.
  public var text: String {
    lock.lock()
    defer { lock.unlock() }
    return collected
  }

  /// Waits until the output has `count` lines containing `fragment`; returns those lines.
  public func waitForLines(containing fragment: String, count: Int = 1, seconds: Double = 20) async throws -> [String] {
    let end = Date().addingTimeInterval(seconds)
    while Date() < end {
      let lines = text.split(separator: "\n").map(String.init).filter { $0.contains(fragment) }
      if lines.count >= count { return lines }
      guard process.isRunning else { break }
      try await Task.sleep(for: .milliseconds(20))
    }
    throw TestEnvironmentError(
      "no \(count) line(s) with '\(fragment)' from \(process.executableURL?.path ?? "?"); output: \(text)")
  }

  /// Sends `signal` and waits for the process to exit; returns its exit status.
  public func stop(signal: Int32 = SIGTERM, seconds: Double = 20) async throws -> Int32 {
    kill(process.processIdentifier, signal)
    let end = Date().addingTimeInterval(seconds)
    while process.isRunning && Date() < end { try await Task.sleep(for: .milliseconds(20)) }
    guard !process.isRunning else {
      throw TestEnvironmentError("the process did not exit within \(seconds) s of signal \(signal)")
    }
    return process.terminationStatus
  }
}
