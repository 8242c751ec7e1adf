import CProtobufC
#if canImport(Glibc)
  import Glibc
#endif

/// A bump allocator for the C struct tree of one encode or decode; everything is freed together.
/// Chunks start small (most messages are small) and double, so a call costs one or two mallocs.
final class CArena {
  private static let firstChunkSize = 512
  private static let largestChunkSize = 64 << 10
  private static let alignment = 16

  private var nextChunkSize = CArena.firstChunkSize

  // The first chunk is kept apart so that a small message costs no array allocation.
  private var firstChunk: UnsafeMutableRawBufferPointer?
  private var moreChunks: [UnsafeMutableRawBufferPointer] = []
  private var next: UnsafeMutableRawPointer?
  private var remaining = 0

  deinit {
    firstChunk?.deallocate()
    for chunk in moreChunks { chunk.deallocate() }
  }

  /// Uninitialised memory for `byteCount` bytes, aligned to 16.
  func allocate(_ byteCount: Int) -> UnsafeMutableRawPointer {
    let size = (max(byteCount, 1) + Self.alignment - 1) & ~(Self.alignment - 1)
    if size > remaining {
      let chunkSize = max(size, nextChunkSize)
      nextChunkSize = min(nextChunkSize * 2, Self.largestChunkSize)
      let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize, alignment: Self.alignment)
      if firstChunk == nil { firstChunk = chunk } else { moreChunks.append(chunk) }
      next = chunk.baseAddress!
      remaining = chunkSize
    }
    let pointer = next!
    next = pointer + size
    remaining -= size
    return pointer
  }

  /// Typed, uninitialised memory for `count` values.
  func allocate<T>(_ type: T.Type, count: Int) -> UnsafeMutablePointer<T> {
    allocate(MemoryLayout<T>.stride * count).bindMemory(to: T.self, capacity: max(count, 1))
  }

  /// A C struct of the given message type, initialised by protobuf-c (defaults everywhere).
  func allocateMessage(_ type: ProtobufCMessageType) -> UnsafeMutableRawPointer {
    let pointer = allocate(type.structSize)
    type.descriptor.pointee.message_init(pointer.assumingMemoryBound(to: ProtobufCMessage.self))
    return pointer
  }

  /// A NUL-terminated copy of a string's UTF-8, and whether the string itself holds a NUL (so
  /// that the copy reads as shorter than the string).
  func cString(_ string: String) -> (pointer: UnsafeMutablePointer<CChar>, holdsNUL: Bool) {
    var string = string
    return string.withUTF8 { utf8 in
      let pointer = allocate(CChar.self, count: utf8.count + 1)
      var holdsNUL = false
      if let base = utf8.baseAddress {
        UnsafeMutableRawPointer(pointer).copyMemory(from: base, byteCount: utf8.count)
        holdsNUL = memchr(base, 0, utf8.count) != nil
      }
      pointer[utf8.count] = 0
      return (pointer, holdsNUL)
    }
  }

  /// A protobuf-c allocator that takes memory from this arena and frees nothing (the arena
  /// frees it all at once), valid while the arena is alive. Each allocation is preceded by the
  /// size asked for (`requestedSize(of:)`).
  var protobufCAllocator: ProtobufCAllocator {
    ProtobufCAllocator(
      alloc: { data, size in
        let block = Unmanaged<CArena>.fromOpaque(data!).takeUnretainedValue().allocate(size + CArena.alignment)
        block.storeBytes(of: size, as: Int.self)
        return block + CArena.alignment
      },
      free: { _, _ in },
      allocator_data: Unmanaged.passUnretained(self).toOpaque()
    )
  }

  /// The size protobuf-c asked for when it allocated `pointer` through `protobufCAllocator`; nil
  /// for memory that is not this arena's (a static default value). protobuf-c unpacks a string of
  /// n bytes into n + 1 (the bytes and a NUL), so a string that reads shorter held a NUL.
  func requestedSize(of pointer: UnsafeRawPointer) -> Int? {
    func holds(_ chunk: UnsafeMutableRawBufferPointer?) -> Bool {
      guard let start = chunk?.baseAddress else { return false }
      return pointer >= start && pointer < start + chunk!.count
    }
    guard holds(firstChunk) || moreChunks.contains(where: holds) else { return nil }
    return (pointer - CArena.alignment).load(as: Int.self)
  }
}
