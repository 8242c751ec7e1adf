import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// Threads of a lower scheduling priority (nice 10) that run a job's decoding and resizing, at
/// most `count` at once. On a machine the model's threads keep busy, the decoding then runs in
/// the moments they leave (waiting for each other between operators) instead of taking a core
/// from one of them, which would make the other wait for it: decoded on Swift's task pool, a
/// MobileNet-v2 job reached 0.69× the model's in-process throughput on 2 cores.
final class BackgroundThreads: @unchecked Sendable {
  private let count: Int
  private let condition = NSCondition()
  private var jobs: [() -> Void] = []
  private var threads = 0
  private var idle = 0

  init(count: Int) { self.count = count }

  /// Runs `body` on one of the threads.
  func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
      condition.lock()
      jobs.append { continuation.resume(returning: body()) }
      if idle == 0, threads < count {
        threads += 1
        let thread = Thread { [self] in work() }
        thread.name = "shoal-job-decode"
        thread.start()
      }
      condition.signal()
      condition.unlock()
    }
  }

  private func work() {
    #if canImport(Glibc)
      // On Linux each thread has its own nice value, and 0 names the calling one.
      _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 10)
    #endif
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
      job()
      condition.lock()
    }
  }
}
