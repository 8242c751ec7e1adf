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
    output.fileHandleForReading.readabilityHandler = { [weak self] handle in
      let data = handle.availableData
      guard let self, !data.isEmpty else { return }
      self.lock.lock()
      self.collected += String(decoding: data, as: UTF8.self)
      self.lock.unlock()
    }
    try process.run()
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
