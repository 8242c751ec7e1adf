public import CProtobufC

/// A message type's protobuf-c descriptor: the size and layout of its C struct and the
/// offsets of its fields.
public struct ProtobufCMessageType: @unchecked Sendable {
  // The descriptors are static constants emitted by protoc-c, so the pointer is valid forever.
  let descriptor: UnsafePointer<ProtobufCMessageDescriptor>

  /// Wraps a descriptor returned by one of ShoalProtoC's accessors.
  public init(_ descriptor: UnsafePointer<ProtobufCMessageDescriptor>) {
    self.descriptor = descriptor
  }

  /// The field descriptors, sorted by number. A message without fields has none (protoc-c
  /// emits a null pointer); generated code then never reads this.
  var fields: UnsafePointer<ProtobufCFieldDescriptor> {
    descriptor.pointee.fields.map { $0 } ?? UnsafePointer(Self.noFields)
  }

  private nonisolated(unsafe) static let noFields = UnsafeMutablePointer<ProtobufCFieldDescriptor>.allocate(capacity: 1)
  var structSize: Int { descriptor.pointee.sizeof_message }
}
