import CProtobufC

#if canImport(Glibc)
  import Glibc
#endif

/// Reads a message's fields from the protobuf-c struct that `protobuf_c_message_unpack`
/// produced. Generated code calls it with the field's index in the descriptor.
public struct CMessageReader {
  let base: UnsafeRawPointer
  let fields: UnsafePointer<ProtobufCFieldDescriptor>
  let path: String
  /// The arena protobuf-c unpacked into, which knows each string's length on the wire.
  let arena: CArena

  private func slot(_ index: Int) -> UnsafeRawPointer { base + Int(fields[index].offset) }

  private func count(_ index: Int) -> Int { (base + Int(fields[index].quantifier_offset)).load(as: Int.self) }

  private func elements<T>(_ index: Int, as type: T.Type) -> UnsafeBufferPointer<T> {
    let n = count(index)
    guard n > 0, let start = slot(index).load(as: UnsafeRawPointer?.self) else {
      return UnsafeBufferPointer(start: nil, count: 0)
    }
    return UnsafeBufferPointer(start: start.assumingMemoryBound(to: T.self), count: n)
  }

  private func fieldPath(_ index: Int) -> String { "\(path).\(String(cString: fields[index].name))" }

  /// The field number of the oneof member that is set, or 0; `index` is any member of the oneof.
  public func oneofCase(_ index: Int) -> UInt32 {
    (base + Int(fields[index].quantifier_offset)).load(as: UInt32.self)
  }

  /// A numeric field stored as `T`.
  public func scalar<T: BitwiseCopyable>(_ index: Int, as type: T.Type = T.self) -> T {
    slot(index).loadUnaligned(as: T.self)
  }

  /// A `bool` field.
  public func bool(_ index: Int) -> Bool { slot(index).load(as: Int32.self) != 0 }

  /// An enum field; unknown numbers are kept.
  public func enumValue<E: ProtoEnum>(_ index: Int, as type: E.Type = E.self) -> E {
    E(rawValue: slot(index).load(as: Int32.self))
  }

  /// A `string` field.
  public func string(_ index: Int) throws(ProtoError) -> String {
    try decodeString(slot(index).load(as: UnsafePointer<CChar>?.self), index)
  }

  /// A `bytes` field.
  public func bytes(_ index: Int) -> [UInt8] { copy(slot(index).load(as: ProtobufCBinaryData.self)) }

  /// A singular message field; nil when absent.
  public func message<M: ProtoMessage>(_ index: Int, as type: M.Type = M.self) throws(ProtoError) -> M? {
    guard let child = slot(index).load(as: UnsafeRawPointer?.self) else { return nil }
    return try Self.decode(M.self, at: child, path: fieldPath(index), arena: arena)
  }

  /// A repeated numeric field.
  public func repeatedScalar<T: BitwiseCopyable>(_ index: Int, as type: T.Type = T.self) -> [T] {
    Array(elements(index, as: T.self))
  }

  /// A repeated `bool` field.
  public func repeatedBool(_ index: Int) -> [Bool] { elements(index, as: Int32.self).map { $0 != 0 } }

  /// A repeated enum field.
  public func repeatedEnum<E: ProtoEnum>(_ index: Int, as type: E.Type = E.self) -> [E] {
    elements(index, as: Int32.self).map(E.init(rawValue:))
  }

  /// A repeated `string` field.
  public func repeatedString(_ index: Int) throws(ProtoError) -> [String] {
    var result: [String] = []
    for pointer in elements(index, as: UnsafePointer<CChar>?.self) { result.append(try decodeString(pointer, index)) }
    return result
  }

  /// A repeated `bytes` field.
  public func repeatedBytes(_ index: Int) -> [[UInt8]] { elements(index, as: ProtobufCBinaryData.self).map(copy) }

  /// A repeated message field.
  public func repeatedMessage<M: ProtoMessage>(_ index: Int, as type: M.Type = M.self) throws(ProtoError) -> [M] {
    var result: [M] = []
    let path = fieldPath(index)
    for child in elements(index, as: UnsafeRawPointer.self) {
      result.append(try Self.decode(M.self, at: child, path: path, arena: arena))
    }
    return result
  }

  /// A `map` field; `entry` reads the key (index 0) and value (index 1) of one entry. A repeated
  /// key keeps its last value, as the proto spec requires.
  public func map<Key: ProtoMapKey, Value>(
    _ index: Int,
    entry: (CMessageReader) throws(ProtoError) -> (Key, Value)
  ) throws(ProtoError) -> [Key: Value] {
    let entryFields = fields[index].descriptor.assumingMemoryBound(to: ProtobufCMessageDescriptor.self).pointee.fields!
    var result: [Key: Value] = [:]
    let path = fieldPath(index)
    for child in elements(index, as: UnsafeRawPointer.self) {
      let (key, value) = try entry(CMessageReader(base: child, fields: entryFields, path: path, arena: arena))
      result[key] = value
    }
    return result
  }

  static func decode<M: ProtoMessage>(
    _ type: M.Type, at base: UnsafeRawPointer, path: String, arena: CArena
  ) throws(ProtoError) -> M {
    try M(_decoding: CMessageReader(base: base, fields: M._protobufC.fields, path: path, arena: arena))
  }

  private func decodeString(_ pointer: UnsafePointer<CChar>?, _ index: Int) throws(ProtoError) -> String {
    guard let pointer else { return "" }
    let length = Int(strlen(pointer))
    if let size = arena.requestedSize(of: pointer), size != length + 1 {
      throw ProtoError(
        .stringWithNUL,
        "\(fieldPath(index)): the string holds a NUL character, which Shoal's codec (protobuf-c) cannot carry")
    }
    let bytes = UnsafeBufferPointer(start: UnsafeRawPointer(pointer).assumingMemoryBound(to: UInt8.self), count: length)
    guard let string = String(validating: bytes, as: UTF8.self) else {
      throw ProtoError(.invalidUTF8, "\(fieldPath(index)): string is not valid UTF-8")
    }
    return string
  }

  private func copy(_ data: ProtobufCBinaryData) -> [UInt8] {
    guard data.len > 0, let bytes = data.data else { return [] }
    return Array(UnsafeBufferPointer(start: bytes, count: data.len))
  }
}
