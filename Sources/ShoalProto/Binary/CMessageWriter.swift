import CProtobufC

/// Writes a message's fields into its protobuf-c struct. Generated code calls it with the
/// field's index in the descriptor (fields sorted by number).
public struct CMessageWriter {
  let base: UnsafeMutableRawPointer
  let fields: UnsafePointer<ProtobufCFieldDescriptor>
  let encoder: CMessageEncoder

  private func field(_ index: Int) -> (offset: UnsafeMutableRawPointer, descriptor: ProtobufCFieldDescriptor) {
    let descriptor = fields[index]
    if descriptor.flags & UInt32(PROTOBUF_C_FIELD_FLAG_ONEOF.rawValue) != 0 {
      // A oneof member counts as set, even at its default value, once its case is stored.
      (base + Int(descriptor.quantifier_offset)).storeBytes(of: descriptor.id, as: UInt32.self)
    }
    return (base + Int(descriptor.offset), descriptor)
  }

  private func isOneofMember(_ index: Int) -> Bool {
    fields[index].flags & UInt32(PROTOBUF_C_FIELD_FLAG_ONEOF.rawValue) != 0
  }

  private func storeRepeated<T>(_ index: Int, count: Int, _ fill: (UnsafeMutablePointer<T>) -> Void) {
    guard count > 0 else { return }
    let descriptor = fields[index]
    let elements = encoder.arena.allocate(T.self, count: count)
    fill(elements)
    (base + Int(descriptor.quantifier_offset)).storeBytes(of: count, as: Int.self)
    (base + Int(descriptor.offset)).storeBytes(of: UnsafeMutableRawPointer(elements), as: UnsafeMutableRawPointer.self)
  }

  /// A numeric field (any integer or floating-point proto type) stored as `T`.
  public func scalar<T: BitwiseCopyable>(_ index: Int, _ value: T) {
    field(index).offset.storeBytes(of: value, as: T.self)
  }

  /// A `bool` field (protobuf-c stores it as an `int`).
  public func bool(_ index: Int, _ value: Bool) {
    field(index).offset.storeBytes(of: value ? 1 : 0, as: Int32.self)
  }

  /// An enum field.
  public func enumValue<E: ProtoEnum>(_ index: Int, _ value: E) {
    field(index).offset.storeBytes(of: value.rawValue, as: Int32.self)
  }

  /// A `string` field.
  public func string(_ index: Int, _ value: String) {
    if value.isEmpty && !isOneofMember(index) { return }
    field(index).offset.storeBytes(
      of: encoder.cString(value, field: fields[index]), as: UnsafeMutablePointer<CChar>.self)
  }

  /// A `bytes` field.
  public func bytes(_ index: Int, _ value: [UInt8]) {
    if value.isEmpty && !isOneofMember(index) { return }
    let slot = field(index).offset.assumingMemoryBound(to: ProtobufCBinaryData.self)
    encoder.setBinary(slot, value)
  }

  /// A singular message field.
  public func message<M: ProtoMessage>(_ index: Int, _ value: M) {
    field(index).offset.storeBytes(of: encoder.build(value), as: UnsafeMutableRawPointer.self)
  }

  /// A repeated numeric field.
  public func repeatedScalar<T: BitwiseCopyable>(_ index: Int, _ values: [T]) {
    storeRepeated(index, count: values.count) { (elements: UnsafeMutablePointer<T>) in
      values.withUnsafeBufferPointer { source in
        elements.initialize(from: source.baseAddress!, count: source.count)
      }
    }
  }

  /// A repeated `bool` field.
  public func repeatedBool(_ index: Int, _ values: [Bool]) {
    storeRepeated(index, count: values.count) { (elements: UnsafeMutablePointer<Int32>) in
      for (i, value) in values.enumerated() { elements[i] = value ? 1 : 0 }
    }
  }

  /// A repeated enum field.
  public func repeatedEnum<E: ProtoEnum>(_ index: Int, _ values: [E]) {
    storeRepeated(index, count: values.count) { (elements: UnsafeMutablePointer<Int32>) in
      for (i, value) in values.enumerated() { elements[i] = value.rawValue }
    }
  }

  /// A repeated `string` field.
  public func repeatedString(_ index: Int, _ values: [String]) {
    storeRepeated(index, count: values.count) { (elements: UnsafeMutablePointer<UnsafeMutablePointer<CChar>>) in
      for (i, value) in values.enumerated() { elements[i] = encoder.cString(value, field: fields[index]) }
    }
  }

  /// A repeated `bytes` field.
  public func repeatedBytes(_ index: Int, _ values: [[UInt8]]) {
    storeRepeated(index, count: values.count) { (elements: UnsafeMutablePointer<ProtobufCBinaryData>) in
      for (i, value) in values.enumerated() { encoder.setBinary(elements + i, value) }
    }
  }

  /// A repeated message field.
  public func repeatedMessage<M: ProtoMessage>(_ index: Int, _ values: [M]) {
    storeRepeated(index, count: values.count) { (elements: UnsafeMutablePointer<UnsafeMutableRawPointer>) in
      for (i, value) in values.enumerated() { elements[i] = encoder.build(value) }
    }
  }

  /// A `map` field: one entry message per key, in key order. `entry` writes the key (index 0)
  /// and the value (index 1) into the entry's writer.
  public func map<Key: ProtoMapKey, Value>(
    _ index: Int,
    _ values: [Key: Value],
    entry: (CMessageWriter, Key, Value) -> Void
  ) {
    guard !values.isEmpty else { return }
    let entryType = ProtobufCMessageType(
      fields[index].descriptor.assumingMemoryBound(to: ProtobufCMessageDescriptor.self)
    )
    let sorted = values.sortedForEncoding
    storeRepeated(index, count: sorted.count) { (elements: UnsafeMutablePointer<UnsafeMutableRawPointer>) in
      for (i, pair) in sorted.enumerated() {
        let entryBase = encoder.arena.allocateMessage(entryType)
        entry(CMessageWriter(base: entryBase, fields: entryType.fields, encoder: encoder), pair.key, pair.value)
        elements[i] = entryBase
      }
    }
  }
}
