import Foundation

/// Threads that run blocking work off Swift's task pool, at most `count` at once, each with a
/// resource of its own made when it starts (a libcurl handle) and let go when it ends. Threads
/// start when work waits and end after a minute without any.
public final class WorkerThreads<Resource>: @unchecked Sendable {
  private let count: Int
  private let name: String
  private let setUp: @Sendable () -> Resource
  private let tearDown: @Sendable (Resource) -> Void
  private let condition = NSCondition()
  private var jobs: [(Resource) -> Void] = []
  private var threads = 0
  private var idle = 0

  /// At most `count` threads named `name`; each runs `setUp` first and `tearDown` last.
  public init(
    count: Int, name: String, setUp: @escaping @Sendable () -> Resource,
    tearDown: @escaping @Sendable (Resource) -> Void = { _ in }
  ) {
    self.count = count
    self.name = name
    self.setUp = setUp
    self.tearDown = tearDown
  }

  /// Runs `body` on a thread with its resource.
  public func run<T: Sendable>(_ body: @escaping @Sendable (Resource) -> T) async -> T {
    await withCheckedContinuation { continuation in
      condition.lock()
      jobs.append { resource in continuation.resume(returning: body(resource)) }
      if idle == 0, threads < count {
        threads += 1
        let thread = Thread { [self] in work() }
        thread.name = name
        thread.start()
      }
      condition.signal()
      condition.unlock()
    }
  }

  private func work() {
    let resource = setUp()
    defer { tearDown(resource) }
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
      job(resource)
      condition.lock()
    }
  }
}

extension WorkerThreads {
  /// Runs `body` on a thread with its resource, its error thrown here.
  public func runThrowing<T: Sendable>(_ body: @escaping @Sendable (Resource) throws -> T) async throws -> T {
    let result: Result<T, any Error> = await run { resource in Result { try body(resource) } }
    return try result.get()
  }
}
