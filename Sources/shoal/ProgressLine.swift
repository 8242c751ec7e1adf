import Foundation
import Synchronization

/// A one-line progress bar on standard error, drawn only when standard error is a terminal.
final class ProgressLine: Sendable {
  private let label: String
  private let total: Int
  /// What is counted, e.g. "tiles"; nil: bytes, shown in MiB.
  private let unit: String?
  private let enabled = isatty(STDERR_FILENO) == 1
  private let lastDrawn = Mutex<Int>(-1)

  init(label: String, total: Int, unit: String? = nil) {
    self.label = label
    self.total = max(total, 1)
    self.unit = unit
  }

  /// Redraws for `done` bytes or items (at most once per percent).
  func update(_ done: Int) {
    guard enabled else { return }
    let percent = min(100, done * 100 / total)
    guard
      lastDrawn.withLock({ last in
        defer { last = percent }; return last != percent
      })
    else { return }
    let width = 30
    let filled = percent * width / 100
    let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
    let count =
      unit.map { "\(done)/\(total) \($0)" }
      ?? String(format: "%.1f/%.1f MiB", Double(done) / 1_048_576, Double(total) / 1_048_576)
    let line = "\r\(label) \(bar) \(String(format: "%3d", percent))% \(count)"
    FileHandle.standardError.write(Data(line.utf8))
  }

  /// Ends the line.
  func finish() {
    if enabled { FileHandle.standardError.write(Data("\n".utf8)) }
  }
}

extension ProgressLine {
  /// Sends `bytes` in 1 MiB pieces through `send`, drawing the progress as it goes.
  func sendChunks(of bytes: [UInt8], _ send: ([UInt8]) async throws -> Void) async throws {
    var offset = 0
    while offset < bytes.count {
      let end = min(offset + (1 << 20), bytes.count)
      try await send(Array(bytes[offset..<end]))
      offset = end
      update(offset)
    }
    finish()
  }
}
