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

  var fields: UnsafePointer<ProtobufCFieldDescriptor> { descriptor.pointee.fields }
  var structSize: Int { descriptor.pointee.sizeof_message }
}
