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
  /// Runs `executable` with `arguments`, feeding `stdin`, and waits for it. Output goes through
  /// temporary files, so a chatty child never blocks on a full pipe.
  public static func run(
    _ executable: String, _ arguments: [String], stdin: [UInt8] = [], environment: [String: String] = [:]
  ) throws -> SubprocessResult {
    let directory = try TemporaryDirectory()
    let inputURL = directory.url.appendingPathComponent("stdin")
    let outputURL = directory.url.appendingPathComponent("stdout")
    let errorURL = directory.url.appendingPathComponent("stderr")
    try Data(stdin).write(to: inputURL)
    _ = FileManager.default.createFile(atPath: outputURL.path, contents: nil)
    _ = FileManager.default.createFile(atPath: errorURL.path, contents: nil)

    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    let input = try FileHandle(forReadingFrom: inputURL)
    let output = try FileHandle(forWritingTo: outputURL)
    let error = try FileHandle(forWritingTo: errorURL)
    defer {
      try? input.close()
      try? output.close()
      try? error.close()
    }
    process.standardInput = input
    process.standardOutput = output
    process.standardError = error
    try process.run()
    process.waitUntilExit()
    return SubprocessResult(
      status: process.terminationStatus,
      stdout: [UInt8](try Data(contentsOf: outputURL)),
      stderr: [UInt8](try Data(contentsOf: errorURL))
    )
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
