import CProtobufC
import CProtobufDescriptor

/// Reads the output of `protoc --descriptor_set_out` (a `google.protobuf.FileDescriptorSet`)
/// with protoc-c's build of `descriptor.proto`.
enum DescriptorSetDecoder {
  /// The files in the set, in the order protoc wrote them (dependencies first).
  static func decode(_ bytes: [UInt8]) throws(GenerationError) -> [ProtoFile] {
    let set = bytes.withUnsafeBufferPointer { buffer in
      google__protobuf__file_descriptor_set__unpack(nil, buffer.count, buffer.baseAddress)
    }
    guard let set else { throw GenerationError(file: "", "the descriptor set is not a valid FileDescriptorSet") }
    defer { google__protobuf__file_descriptor_set__free_unpacked(set, nil) }
    return buffer(set.pointee.file, set.pointee.n_file).map { decodeFile($0!.pointee) }
  }

  private static func buffer<T>(_ start: UnsafeMutablePointer<T>?, _ count: Int) -> UnsafeBufferPointer<T> {
    UnsafeBufferPointer(start: start, count: start == nil ? 0 : count)
  }

  private static func string(_ pointer: UnsafeMutablePointer<CChar>?) -> String {
    pointer.map { String(cString: $0) } ?? ""
  }

  private static func qualified(_ prefix: String, _ name: String) -> String {
    prefix.isEmpty ? name : "\(prefix).\(name)"
  }

  private static func decodeFile(_ file: Google__Protobuf__FileDescriptorProto) -> ProtoFile {
    let package = string(file.package)
    var comments: [[Int32]: String] = [:]
    if let info = file.source_code_info {
      for location in buffer(info.pointee.location, info.pointee.n_location) {
        let location = location!.pointee
        guard let leading = location.leading_comments else { continue }
        comments[Array(buffer(location.path, location.n_path))] = String(cString: leading)
      }
    }
    return ProtoFile(
      name: string(file.name),
      package: package,
      syntax: file.syntax == nil ? "proto2" : string(file.syntax),
      dependencies: buffer(file.dependency, file.n_dependency).map { string($0) },
      messages: buffer(file.message_type, file.n_message_type).enumerated().map {
        decodeMessage($1!.pointee, prefix: package, path: [4, Int32($0)])
      },
      enums: buffer(file.enum_type, file.n_enum_type).enumerated().map {
        decodeEnum($1!.pointee, prefix: package, path: [5, Int32($0)])
      },
      services: buffer(file.service, file.n_service).enumerated().map {
        decodeService($1!.pointee, prefix: package, path: [6, Int32($0)])
      },
      hasExtensions: file.n_extension > 0,
      comments: comments
    )
  }

  private static func decodeMessage(
    _ message: Google__Protobuf__DescriptorProto, prefix: String, path: [Int32]
  ) -> ProtoMessageType {
    let fullName = qualified(prefix, string(message.name))
    return ProtoMessageType(
      name: string(message.name),
      fullName: fullName,
      fields: buffer(message.field, message.n_field).enumerated().map {
        decodeField($1!.pointee, path: path + [2, Int32($0)])
      },
      oneofs: buffer(message.oneof_decl, message.n_oneof_decl).map { string($0!.pointee.name) },
      nestedMessages: buffer(message.nested_type, message.n_nested_type).enumerated().map {
        decodeMessage($1!.pointee, prefix: fullName, path: path + [3, Int32($0)])
      },
      nestedEnums: buffer(message.enum_type, message.n_enum_type).enumerated().map {
        decodeEnum($1!.pointee, prefix: fullName, path: path + [4, Int32($0)])
      },
      isMapEntry: message.options.map { $0.pointee.has_map_entry != 0 && $0.pointee.map_entry != 0 } ?? false,
      hasExtensionRanges: message.n_extension_range > 0 || message.n_extension > 0,
      sourcePath: path
    )
  }

  private static func decodeField(_ field: Google__Protobuf__FieldDescriptorProto, path: [Int32]) -> ProtoField {
    let label: ProtoField.Label
    switch field.label {
    case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_REPEATED: label = .repeated
    case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_REQUIRED: label = .required
    default: label = .optional
    }
    var typeName = string(field.type_name)
    if typeName.hasPrefix(".") { typeName.removeFirst() }
    return ProtoField(
      name: string(field.name),
      number: field.number,
      label: label,
      kind: ProtoField.Kind(rawValue: Int32(field.type.rawValue)) ?? .group,
      typeName: typeName,
      jsonName: string(field.json_name),
      oneofIndex: field.has_oneof_index != 0 ? Int(field.oneof_index) : nil,
      isProto3Optional: field.has_proto3_optional != 0 && field.proto3_optional != 0,
      hasDefaultValue: field.default_value != nil,
      sourcePath: path
    )
  }

  private static func decodeEnum(
    _ enumType: Google__Protobuf__EnumDescriptorProto, prefix: String, path: [Int32]
  ) -> ProtoEnumType {
    ProtoEnumType(
      name: string(enumType.name),
      fullName: qualified(prefix, string(enumType.name)),
      values: buffer(enumType.value, enumType.n_value).map { (string($0!.pointee.name), $0!.pointee.number) },
      sourcePath: path
    )
  }

  private static func decodeService(
    _ service: Google__Protobuf__ServiceDescriptorProto, prefix: String, path: [Int32]
  ) -> ProtoService {
    ProtoService(
      name: string(service.name),
      fullName: qualified(prefix, string(service.name)),
      methods: buffer(service.method, service.n_method).enumerated().map { index, method in
        let method = method!.pointee
        var idempotent = false
        if let options = method.options, options.pointee.has_idempotency_level != 0 {
          idempotent =
            options.pointee.idempotency_level
            != GOOGLE__PROTOBUF__METHOD_OPTIONS__IDEMPOTENCY_LEVEL__IDEMPOTENCY_UNKNOWN
        }
        return ProtoMethod(
          name: string(method.name),
          inputType: String(string(method.input_type).drop { $0 == "." }),
          outputType: String(string(method.output_type).drop { $0 == "." }),
          clientStreaming: method.has_client_streaming != 0 && method.client_streaming != 0,
          serverStreaming: method.has_server_streaming != 0 && method.server_streaming != 0,
          idempotent: idempotent,
          sourcePath: path + [2, Int32(index)]
        )
      },
      sourcePath: path
    )
  }
}
