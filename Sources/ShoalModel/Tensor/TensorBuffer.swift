#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Memory for tensor elements: 64-byte aligned, either owned (freed with the buffer) or a view
/// into memory another object owns (an execution arena), which the view keeps alive.
final class TensorBuffer: @unchecked Sendable {
  /// The alignment of every owned buffer and every arena offset: one cache line, a full AVX-512 vector.
  static let alignment = 64

  let pointer: UnsafeMutableRawPointer
  let byteCount: Int
  private let owner: AnyObject?

  /// Aligned memory of `byteCount` bytes (at least one cache line is reserved), zeroed unless
  /// the caller is about to write every byte.
  init(byteCount: Int, zeroed: Bool = true) {
    var memory: UnsafeMutableRawPointer?
    let reserved = max(byteCount, 1).roundedUp(to: Self.alignment)
    guard posix_memalign(&memory, Self.alignment, reserved) == 0, let memory else {
      fatalError("out of memory allocating \(reserved) bytes for a tensor")
    }
    if zeroed {
      memset(memory, 0, reserved)
    } else {
      #if DEBUG
        // NaN bits, so that an element a kernel forgot to write shows in the tests.
        memset(memory, 0xFF, reserved)
      #endif
    }
    pointer = memory
    self.byteCount = byteCount
    owner = nil
  }

  /// A view of `byteCount` bytes at `pointer`, which `owner` keeps valid.
  init(viewing pointer: UnsafeMutableRawPointer, byteCount: Int, owner: AnyObject) {
    self.pointer = pointer
    self.byteCount = byteCount
    self.owner = owner
  }

  deinit {
    if owner == nil { free(pointer) }
  }
}

extension Int {
  /// The smallest multiple of `alignment` (a power of two) not below this value.
  func roundedUp(to alignment: Int) -> Int { (self + alignment - 1) & ~(alignment - 1) }
}
