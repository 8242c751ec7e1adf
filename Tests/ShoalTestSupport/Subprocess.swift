import Foundation

/// What a finished child process returned.
public struct SubprocessResult: Sendable {
  /// The exit status (or the signal number if it was killed).
  public var status: Int32
  public var stdout: [UInt8]
  public var stderr: [UInt8]

  /// Standard output as UTF-8 text.
  public var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
  /// Standard error as UTF-8 text.
  public var stderrText: String { String(decoding: stderr, as: UTF8.self) }
}

/// Runs real programs for tests: the built `shoal` binary, protoc, Python.
public enum Subprocess {
  /// Runs `executable` with `arguments`, feeding `stdin`, and waits for it without blocking a
  /// thread of the cooperative pool (which has one thread per core). Output goes through
  /// temporary files, so a chatty child never blocks on a full pipe.
  public static func run(
    _ executable: String, _ arguments: [String], stdin: [UInt8] = [], environment: [String: String] = [:]
  ) async throws -> SubprocessResult {
    let running = try Running(executable, arguments, stdin: stdin, environment: environment)
    while running.process.isRunning {
      if let status = running.statusWritten() { return try running.finish(status: status) }
      try await Task.sleep(for: .milliseconds(5))
    }
    return try running.finish(status: nil)
  }

  /// A started child with its output files. The child runs under `/bin/sh`, which writes its
  /// exit status to a file: Foundation on Linux may notice a child's exit only once another,
  /// longer-running child has exited too (seconds, or a minute, later), and the file says at once.
  private struct Running {
    let process = Process()
    let directory: TemporaryDirectory
    let handles: [FileHandle]

    init(_ executable: String, _ arguments: [String], stdin: [UInt8], environment: [String: String]) throws {
      directory = try TemporaryDirectory()
      try Data(stdin).write(to: directory.url.appendingPathComponent("stdin"))
      _ = FileManager.default.createFile(atPath: directory.path("stdout"), contents: nil)
      _ = FileManager.default.createFile(atPath: directory.path("stderr"), contents: nil)
      process.executableURL = URL(fileURLWithPath: "/bin/sh")
      process.arguments = ["-c", Self.recordingStatus, executable] + arguments
      var environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
      environment["SHOAL_SUBPROCESS_STATUS"] = directory.path("status")
      process.environment = environment
      let input = try FileHandle(forReadingFrom: directory.url.appendingPathComponent("stdin"))
      let output = try FileHandle(forWritingTo: directory.url.appendingPathComponent("stdout"))
      let error = try FileHandle(forWritingTo: directory.url.appendingPathComponent("stderr"))
      handles = [input, output, error]
      process.standardInput = input
      process.standardOutput = output
      process.standardError = error
      try process.run()
    }

    /// Runs the program (`$0`) and writes its exit status where SHOAL_SUBPROCESS_STATUS says,
    /// whole (renamed into place).
    static let recordingStatus =
      #""$0" "$@"; status=$?; file=$SHOAL_SUBPROCESS_STATUS; "#
      + #"echo $status >"$file.tmp" && mv "$file.tmp" "$file"; exit $status"#

    /// The exit status the shell wrote, once it has (128 + N for a child killed by signal N).
    func statusWritten() -> Int32? {
      guard let text = try? String(contentsOfFile: directory.path("status"), encoding: .utf8) else { return nil }
      return Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// The result, with `status` as the shell wrote it, or else Foundation's once it has reaped the child.
    func finish(status: Int32?) throws -> SubprocessResult {
      if status == nil { process.waitUntilExit() }
      for handle in handles { try? handle.close() }
      return SubprocessResult(
        status: status ?? statusWritten() ?? process.terminationStatus,
        stdout: [UInt8](try Data(contentsOf: directory.url.appendingPathComponent("stdout"))),
        stderr: [UInt8](try Data(contentsOf: directory.url.appendingPathComponent("stderr")))
      )
    }
  }

  /// The full path of a program on `PATH`, or nil.
  public static func which(_ name: String) -> String? {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    for directory in path.split(separator: ":") {
      let candidate = "\(directory)/\(name)"
      if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    return nil
  }
}

/// Runs CPU-bound `body` on a thread of its own and waits for it without holding a thread of
/// the cooperative pool (which has one thread per core and runs every other test too).
public func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
  try await withCheckedThrowingContinuation { continuation in
    let thread = Thread {
      do {
        continuation.resume(returning: try body())
      } catch {
        continuation.resume(throwing: error)
      }
    }
    thread.start()
  }
}
