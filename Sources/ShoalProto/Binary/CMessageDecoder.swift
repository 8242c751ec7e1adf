import CProtobufC

/// Unpacks bytes with protobuf-c, copies the result into a Swift value and frees the C tree.
enum CMessageDecoder {
  static func decode<M: ProtoMessage>(_ type: M.Type, from bytes: UnsafeRawBufferPointer) throws(ProtoError) -> M {
    let descriptor = M._protobufC.descriptor
    // protobuf-c dereferences its input pointer even for zero bytes.
    var empty: UInt8 = 0
    let unpacked = withUnsafePointer(to: &empty) { emptyPointer in
      protobuf_c_message_unpack(
        descriptor,
        nil,
        bytes.count,
        bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? emptyPointer
      )
    }
    guard let unpacked else {
      throw ProtoError(
        .malformedBinary, "\(M.protoMessageName): \(bytes.count) bytes are not a valid encoding of this message")
    }
    defer { protobuf_c_message_free_unpacked(unpacked, nil) }
    return try CMessageReader.decode(M.self, at: UnsafeRawPointer(unpacked), path: M.protoMessageName)
  }
}
