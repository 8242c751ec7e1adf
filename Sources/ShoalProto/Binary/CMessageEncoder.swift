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
  /// Whether a NUL in a string becomes U+FFFD instead of failing the encoding.
  private let replacesNUL: Bool
  /// The first string field found holding a NUL.
  private var fieldWithNUL: String?

  private init(replacesNUL: Bool) { self.replacesNUL = replacesNUL }

  /// Builds `message`'s struct tree and calls `body` with its root while every pointer in it is
  /// valid.
  ///
  /// - Throws: `ProtoError` `.stringWithNUL` naming the field, for a string holding a NUL
  ///   (unless `replacingNUL`, for diagnostic text, where each NUL becomes U+FFFD).
  static func withPackable<M: ProtoMessage, Result>(
    _ message: M, replacingNUL: Bool = false,
    _ body: (UnsafePointer<ProtobufCMessage>) -> Result
  ) throws(ProtoError) -> Result {
    let encoder = CMessageEncoder(replacesNUL: replacingNUL)
    let root = encoder.build(message)
    if let field = encoder.fieldWithNUL {
      throw ProtoError(
        .stringWithNUL,
        "\(M.protoMessageName): string field '\(field)' holds a NUL character, which Shoal's codec (protobuf-c) "
          + "cannot carry; remove it")
    }
    return encoder.withPinnedBytes(from: 0) {
      body(UnsafePointer(root.assumingMemoryBound(to: ProtobufCMessage.self)))
    }
  }

  /// A NUL-terminated copy of `value` for the string field `field`; a NUL inside it is noted (or
  /// replaced).
  func cString(_ value: String, field: ProtobufCFieldDescriptor) -> UnsafeMutablePointer<CChar> {
    let (pointer, holdsNUL) = arena.cString(value)
    guard holdsNUL else { return pointer }
    if replacesNUL { return arena.cString(value.replacing("\u{0}", with: "\u{FFFD}")).pointer }
    if fieldWithNUL == nil { fieldWithNUL = String(cString: field.name) }
    return pointer
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
