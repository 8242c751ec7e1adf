import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// Threads that take the parts of one parallel loop at a time, beside the thread that calls.
///
/// A model's operators come back to back, so after a part a worker keeps looking for the next
/// loop for a short while (yielding its core to anything else runnable) before it sleeps. Handing
/// a part to a worker that is already awake costs about a microsecond; waking a sleeping thread
/// costs tens of microseconds on a virtual machine, which on small convolutions is as long as the
/// work itself.
final class PartWorkers: @unchecked Sendable {
  /// How long a worker looks for the next loop before it sleeps.
  static let spinNanoseconds: UInt64 = 200_000

  /// The number of worker threads (the caller takes one part itself).
  let count: Int
  private let generation = Atomic(0)
  private let remaining = Atomic(0)
  private let sleepers = Atomic(0)
  private let inUse = Atomic(false)
  private let lock: UnsafeMutablePointer<pthread_mutex_t>
  private let wake: UnsafeMutablePointer<pthread_cond_t>
  // Written by the caller before `generation` moves on, read by the workers after they see it.
  private nonisolated(unsafe) var part: ((Int) -> Void)?

  /// Starts `count` worker threads; they live as long as the process.
  init(count: Int) {
    self.count = count
    lock = .allocate(capacity: 1)
    wake = .allocate(capacity: 1)
    pthread_mutex_init(lock, nil)
    pthread_cond_init(wake, nil)
    for index in 0..<count {
      let start = Unmanaged.passRetained(WorkerStart(workers: self, index: index + 1)).toOpaque()
      var thread = pthread_t()
      let created = pthread_create(
        &thread, nil,
        { context in
          let start = Unmanaged<WorkerStart>.fromOpaque(context!).takeRetainedValue()
          start.workers.work(as: start.index)
          return nil
        }, start)
      precondition(created == 0, "cannot start a model core worker thread (error \(created))")
      pthread_detach(thread)
    }
  }

  /// Runs `body(0)` on the calling thread and `body(1)`…`body(count)` on the workers, and
  /// returns when all have returned; false (nothing run) when another loop has the workers.
  func run(_ body: (Int) -> Void) -> Bool {
    guard inUse.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else { return false }
    defer { inUse.store(false, ordering: .releasing) }
    withoutActuallyEscaping(body) { body in
      part = body
      remaining.store(count, ordering: .relaxed)
      generation.add(1, ordering: .sequentiallyConsistent)
      if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
        pthread_mutex_lock(lock)
        pthread_cond_broadcast(wake)
        pthread_mutex_unlock(lock)
      }
      body(0)
      var polls = 0
      while remaining.load(ordering: .acquiring) > 0 {
        polls += 1
        if polls % 64 == 0 { sched_yield() }
      }
      part = nil
    }
    return true
  }

  private func work(as index: Int) {
    var seen = 0
    while true {
      seen = nextLoop(after: seen)
      part!(index)
      remaining.subtract(1, ordering: .releasing)
    }
  }

  /// Waits for the loop after `seen`: polling, then yielding, then asleep.
  private func nextLoop(after seen: Int) -> Int {
    var polls = 0
    var started: UInt64 = 0
    while true {
      let current = generation.load(ordering: .acquiring)
      if current != seen { return current }
      polls += 1
      guard polls % 64 == 0 else { continue }
      sched_yield()
      let now = Self.monotonicNanoseconds()
      if started == 0 { started = now }
      if now - started < Self.spinNanoseconds { continue }
      // Asleep until a caller moves `generation` on. A caller that moves it after the check
      // below sees `sleepers` > 0 and signals under the lock, so the wake-up cannot be missed.
      pthread_mutex_lock(lock)
      sleepers.add(1, ordering: .sequentiallyConsistent)
      var next = generation.load(ordering: .sequentiallyConsistent)
      while next == seen {
        pthread_cond_wait(wake, lock)
        next = generation.load(ordering: .sequentiallyConsistent)
      }
      sleepers.subtract(1, ordering: .sequentiallyConsistent)
      pthread_mutex_unlock(lock)
      return next
    }
  }

  private static func monotonicNanoseconds() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
  }
}

/// What a new worker thread needs: its pool and its part index.
private final class WorkerStart {
  let workers: PartWorkers
  let index: Int
  init(workers: PartWorkers, index: Int) {
    self.workers = workers
    self.index = index
  }
}
