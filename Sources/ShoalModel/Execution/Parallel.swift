import COpenBLAS
import Dispatch
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// Splits work across the machine's cores. The model core parallelises GEMM-shaped work itself
/// (by output columns), so OpenBLAS runs single-threaded inside each part: one split per
/// operator instead of OpenBLAS's thread hand-offs inside every call.
public enum Parallel {
  /// The number of parts work is split into: one per core.
  static let parts: Int = {
    openblas_set_num_threads(1)
    return max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
  }()

  /// The name of the OpenBLAS kernel set in use (`HASWELL`, `SKYLAKEX`, `COOPERLAKE`, …).
  public static var blasCore: String { String(cString: openblas_get_corename()) }

  /// Calls `body` with consecutive ranges covering `0..<count`, in parallel when the work
  /// (`count` × `costPerItem`) is large enough to pay for the hand-off; the ranges start at
  /// multiples of `multipleOf`.
  ///
  /// There is one range per core, and the threads claim them in order from a shared counter
  /// rather than each taking its own: a thread that comes late (still waking up, or its core
  /// taken for a while by another process on a shared machine) leaves its range to one that is
  /// ready instead of being waited for. On this VM that removed most of ResNet-50's slow runs
  /// (medians of 8 alternating processes: 20.4–28.0 ms before, 20.7–22.4 ms after).
  static func forEachRange(
    _ count: Int, costPerItem: Int, multipleOf granule: Int = 8, _ body: (Range<Int>) -> Void
  ) {
    let parts = Self.parts
    guard parts > 1, count >= 2 * granule, count * costPerItem >= 1 << 16 else {
      body(0..<count)
      return
    }
    // By default ranges of multiples of 8 columns, so each part's GEMM keeps aligned vector tails.
    let chunk = ((count + parts - 1) / parts + granule - 1) / granule * granule
    let claimed = Atomic(0)
    withoutActuallyEscaping(body) { body in
      // The ranges are disjoint memory; the closure only lives for this call.
      let shared = UncheckedSendable(body)
      let part = { @Sendable (_: Int) in
        while true {
          let start = claimed.add(1, ordering: .relaxed).oldValue * chunk
          guard start < count else { return }
          shared.value(start..<min(count, start + chunk))
        }
      }
      // The workers take one loop at a time; a loop that finds them busy (another model running
      // at the same time) goes to Dispatch's threads.
      if !workers.run(part) { DispatchQueue.concurrentPerform(iterations: parts, execute: part) }
    }
  }

  /// Worker threads for the parts beyond the caller's own.
  private static let workers = PartWorkers(count: parts - 1)
}

/// A value handed to parallel parts that use it without racing (each writes its own range).
struct UncheckedSendable<Value>: @unchecked Sendable {
  let value: Value
  init(_ value: Value) { self.value = value }
}
