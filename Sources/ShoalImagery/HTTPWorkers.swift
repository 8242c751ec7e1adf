import CHTTPGet
import Foundation

/// Threads that each own a libcurl handle and run blocking requests off Swift's task pool, at
/// most `count` at once. Threads start when work waits and end after a minute without any.
final class HTTPWorkers: @unchecked Sendable {
  private let count: Int
  private let condition = NSCondition()
  private var jobs: [(OpaquePointer) -> Void] = []
  private var threads = 0
  private var idle = 0

  init(count: Int) { self.count = count }

  /// Runs `body` on a worker with its handle.
  func run<T: Sendable>(_ body: @escaping @Sendable (OpaquePointer) -> T) async -> T {
    await withCheckedContinuation { continuation in
      condition.lock()
      jobs.append { handle in continuation.resume(returning: body(handle)) }
      if idle == 0, threads < count {
        threads += 1
        let thread = Thread { [self] in work() }
        thread.name = "shoal-imagery"
        thread.start()
      }
      condition.signal()
      condition.unlock()
    }
  }

  private func work() {
    let handle = shoal_http_handle_new()!
    defer { shoal_http_handle_free(handle) }
    condition.lock()
    while true {
      while jobs.isEmpty {
        idle += 1
        let woken = condition.wait(until: Date().addingTimeInterval(60))
        idle -= 1
        if !woken, jobs.isEmpty {
          threads -= 1
          condition.unlock()
          return
        }
      }
      let job = jobs.removeFirst()
      condition.unlock()
      job(handle)
      condition.lock()
    }
  }
}
