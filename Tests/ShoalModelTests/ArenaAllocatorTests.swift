import ShoalTestSupport
import Testing

@testable import ShoalModel

@Suite struct ArenaAllocatorTests {
  @Test func liveRangesNeverOverlapAndFreedBytesAreReused() {
    var random = SplitMix64(seed: 99)
    var allocator = ArenaAllocator()
    var live: [(offset: Int, size: Int)] = []
    var largestLive = 0
    for _ in 0..<5_000 {
      if live.isEmpty || Int.random(in: 0..<3, using: &random) > 0 && live.count < 40 {
        let size = Int.random(in: 1...100_000, using: &random)
        let offset = allocator.allocate(size)
        #expect(offset % 64 == 0)
        for other in live {
          #expect(offset + size <= other.offset || other.offset + other.size <= offset, "overlaps a live range")
        }
        live.append((offset, size))
      } else {
        let index = Int.random(in: 0..<live.count, using: &random)
        allocator.free(live.remove(at: index).offset)
      }
      largestLive = max(largestLive, live.map { $0.size + 64 }.reduce(0, +))
    }
    // Reuse keeps the arena within a small factor of the most that was ever live at once.
    #expect(allocator.highWater <= 3 * largestLive, "high water \(allocator.highWater) for \(largestLive) live")
  }
}
