import CProtobufC

/// Builds the protobuf-c struct tree of one message for packing, then frees it.
///
/// Strings are copied into an arena (protobuf-c wants them NUL-terminated). Small `bytes` values
/// are copied too; large ones are pinned: the struct points at the Swift array's own storage
/// for the duration of the pack, inside nested `withUnsafeBufferPointer` scopes.
final class CMessageEncoder {
  /// Byte arrays at least this long are pointed at rather than copied.
  static let pinThreshold = 1024
  /// At most this many arrays are pinned per message (each adds a nested scope); the rest are copied.
  static let maxPinned = 16

  let arena = CArena()
  private var pinned: [(bytes: [UInt8], slot: UnsafeMutablePointer<ProtobufCBinaryData>)] = []

  /// Builds `message`'s struct tree and calls `body` with its root while every pointer in it is valid.
  static func withPackable<M: ProtoMessage, Result>(
    _ message: M,
    _ body: (UnsafePointer<ProtobufCMessage>) throws -> Result
  ) rethrows -> Result {
    let encoder = CMessageEncoder()
    let root = encoder.build(message)
    return try encoder.withPinnedBytes(from: 0) {
      try body(UnsafePointer(root.assumingMemoryBound(to: ProtobufCMessage.self)))
    }
  }

  /// A C struct for `message`, allocated in the arena.
  func build<M: ProtoMessage>(_ message: M) -> UnsafeMutableRawPointer {
    let type = M._protobufC
    let base = arena.allocateMessage(type)
    message._encode(to: CMessageWriter(base: base, fields: type.fields, encoder: self))
    return base
  }

  func setBinary(_ slot: UnsafeMutablePointer<ProtobufCBinaryData>, _ bytes: [UInt8]) {
    if bytes.count >= Self.pinThreshold && pinned.count < Self.maxPinned {
      slot.pointee = ProtobufCBinaryData(len: bytes.count, data: nil)
      pinned.append((bytes, slot))
      return
    }
    let copy = arena.allocate(UInt8.self, count: bytes.count)
    bytes.withUnsafeBufferPointer { source in
      if let from = source.baseAddress { copy.initialize(from: from, count: source.count) }
    }
    slot.pointee = ProtobufCBinaryData(len: bytes.count, data: copy)
  }

  private func withPinnedBytes<Result>(from index: Int, _ body: () throws -> Result) rethrows -> Result {
    guard index < pinned.count else { return try body() }
    return try pinned[index].bytes.withUnsafeBufferPointer { storage in
      pinned[index].slot.pointee.data = UnsafeMutablePointer(mutating: storage.baseAddress)
      return try withPinnedBytes(from: index + 1, body)
    }
  }
}
