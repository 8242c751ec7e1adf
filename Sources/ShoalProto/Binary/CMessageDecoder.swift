import CProtobufC

/// Unpacks bytes with protobuf-c into an arena, copies the result into a Swift value and drops the arena.
enum CMessageDecoder {
  static func decode<M: ProtoMessage>(_ type: M.Type, from bytes: UnsafeRawBufferPointer) throws(ProtoError) -> M {
    let descriptor = M._protobufC.descriptor
    // The C tree lives in an arena: a few mallocs per message instead of one per field, and no
    // walk to free it.
    let arena = CArena()
    var allocator = arena.protobufCAllocator
    // protobuf-c dereferences its input pointer even for zero bytes.
    var empty: UInt8 = 0
    let unpacked = withUnsafePointer(to: &empty) { emptyPointer in
      protobuf_c_message_unpack(
        descriptor,
        &allocator,
        bytes.count,
        bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? emptyPointer
      )
    }
    guard let unpacked else {
      throw ProtoError(
        .malformedBinary, "\(M.protoMessageName): \(bytes.count) bytes are not a valid encoding of this message")
    }
    return try withExtendedLifetime(arena) { () throws(ProtoError) -> M in
      try CMessageReader.decode(M.self, at: UnsafeRawPointer(unpacked), path: M.protoMessageName, arena: arena)
    }
  }
}
