/// First-fit placement of intermediate values in one arena: a freed range is reused by later
/// values that fit, and adjacent free ranges merge. Offsets are 64-byte aligned.
struct ArenaAllocator {
  private var free: [(offset: Int, size: Int)] = []
  private var sizes: [Int: Int] = [:]
  /// The arena size needed so far.
  private(set) var highWater = 0

  /// The offset of a new range of `byteCount` bytes.
  mutating func allocate(_ byteCount: Int) -> Int {
    let size = max(byteCount, 1).roundedUp(to: TensorBuffer.alignment)
    if let index = free.firstIndex(where: { $0.size >= size }) {
      let range = free[index]
      if range.size == size {
        free.remove(at: index)
      } else {
        free[index] = (range.offset + size, range.size - size)
      }
      sizes[range.offset] = size
      return range.offset
    }
    // Grow the arena, starting inside a free range at its end if there is one.
    if let last = free.last, last.offset + last.size == highWater {
      free.removeLast()
      sizes[last.offset] = size
      highWater = last.offset + size
      return last.offset
    }
    let offset = highWater
    highWater += size
    sizes[offset] = size
    return offset
  }

  /// Returns the range at `offset` for reuse.
  mutating func free(_ offset: Int) {
    guard let size = sizes.removeValue(forKey: offset) else { return }
    var range = (offset: offset, size: size)
    let index = free.firstIndex(where: { $0.offset > offset }) ?? free.count
    free.insert(range, at: index)
    if index + 1 < free.count, range.offset + range.size == free[index + 1].offset {
      range.size += free[index + 1].size
      free[index] = range
      free.remove(at: index + 1)
    }
    if index > 0, free[index - 1].offset + free[index - 1].size == range.offset {
      free[index - 1].size += range.size
      free.remove(at: index)
    }
  }
}
