import Dispatch
import Glibc
import Synchronization
import Testing

@testable import ShoalModel

@Suite struct PartWorkersTests {
  @Test func everyPartRunsOnceAndItsWritesAreSeenAfterwards() {
    let workers = PartWorkers(count: 3)
    let slots = UnsafeMutableBufferPointer<Int>.allocate(capacity: 4)
    defer { slots.deallocate() }
    // Loops back to back, and some after the workers have gone to sleep.
    for round in 1...300 {
      slots.initialize(repeating: 0)
      let ran = workers.run { part in slots[part] += round }
      #expect(ran)
      #expect(Array(slots) == [round, round, round, round], "round \(round)")
      if round % 100 == 0 { usleep(UInt32(PartWorkers.spinNanoseconds / 1000) * 3) }
    }
  }

  @Test func loopsFromSeveralThreadsAtOnceCoverEveryIndexOnce() {
    let count = 100_003
    let hits = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: count)
    defer { hits.deallocate() }
    let shared = UncheckedSendable(hits)
    for _ in 0..<20 {
      hits.initialize(repeating: 0)
      // Four callers share the workers: one at a time gets them, the others use Dispatch's
      // threads; a part may start a loop of its own.
      DispatchQueue.concurrentPerform(iterations: 4) { caller in
        let share = caller * (count / 4)..<(caller == 3 ? count : (caller + 1) * (count / 4))
        Parallel.forEachRange(share.count, costPerItem: 1_000) { range in
          Parallel.forEachRange(range.count, costPerItem: 1_000) { inner in
            for index in inner { shared.value[share.lowerBound + range.lowerBound + index] += 1 }
          }
        }
      }
      #expect(hits.allSatisfy { $0 == 1 })
    }
  }
}
