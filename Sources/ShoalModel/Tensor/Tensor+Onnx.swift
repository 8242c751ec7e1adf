public import ShoalProto

/// Conversion between tensors and ONNX's `TensorProto` (initializers, test data, the writer).
extension Tensor {
  /// The tensor an ONNX `TensorProto` holds, from `raw_data`, the typed fields, or an external file
  /// next to the model (`baseDirectory`).
  ///
  /// - Throws: `.unsupported` for element types the core lacks; `.invalidModel` when the data does
  ///   not fill the dimensions.
  public init(onnx proto: Onnx.TensorProto, baseDirectory: String? = nil) throws(ModelError) {
    let label = proto.name.isEmpty ? "tensor" : "tensor '\(proto.name)'"
    guard let dataType = DataType(onnxCode: proto.dataType) else {
      throw ModelError(
        .unsupported, "\(label) has element type \(DataType.onnxName(proto.dataType)), which is not supported")
    }
    let shape = proto.dims.map { Int($0) }
    guard shape.allSatisfy({ $0 >= 0 }) else {
      throw ModelError(.invalidModel, "\(label) has negative dimensions \(shape)")
    }
    // The element count, and that the data holds that many, before anything is allocated: a
    // fuzzed 708-byte model declared a billion-element initializer over 432 bytes of data.
    var count = 1
    for dimension in shape {
      let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
      guard !overflow, product <= Int.max / 8 else {
        throw ModelError(.invalidModel, "\(label) has dimensions \(shape), too many elements to hold")
      }
      count = product
    }
    func check(_ given: Int, _ field: String) throws(ModelError) {
      guard given == count else {
        throw ModelError(
          .invalidModel, "\(label) has \(given) values in \(field) for shape \(shape) (\(count) elements)")
      }
    }
    // External data is read and checked before the tensor is allocated too.
    var external: (bytes: [UInt8], offset: Int)?
    if proto.dataLocation == .external {
      external = try Self.externalData(
        proto, baseDirectory: baseDirectory, label: label, byteCount: count * dataType.byteSize)
    } else if !proto.rawData.isEmpty || count == 0 {
      try check(proto.rawData.count / dataType.byteSize, "raw_data")
    } else {
      switch dataType {
      case .float32: try check(proto.floatData.count, "float_data")
      case .float64: try check(proto.doubleData.count, "double_data")
      case .int64: try check(proto.int64Data.count, "int64_data")
      case .int32, .int8, .uint8, .bool: try check(proto.int32Data.count, "int32_data")
      }
    }
    self.init(zeros: shape, dataType: dataType)
    if let external {
      let byteCount = byteCount
      external.bytes.withUnsafeBytes {
        buffer.pointer.copyMemory(from: $0.baseAddress! + external.offset, byteCount: byteCount)
      }
    } else if !proto.rawData.isEmpty || count == 0 {
      proto.rawData.withUnsafeBytes {
        buffer.pointer.copyMemory(from: $0.baseAddress!, byteCount: min($0.count, byteCount))
      }
    } else {
      // The typed field the element type uses (its count checked above), converted where ONNX
      // widens it (int32_data).
      func fill<Source, Element: TensorElement>(_ values: [Source], _ convert: (Source) -> Element) {
        let pointer = mutablePointer(as: Element.self)
        for (index, value) in values.enumerated() { pointer[index] = convert(value) }
      }
      switch dataType {
      case .float32: fill(proto.floatData) { $0 }
      case .float64: fill(proto.doubleData) { $0 }
      case .int64: fill(proto.int64Data) { $0 }
      case .int32: fill(proto.int32Data) { $0 }
      case .int8: fill(proto.int32Data) { Int8(truncatingIfNeeded: $0) }
      case .uint8: fill(proto.int32Data) { UInt8(truncatingIfNeeded: $0) }
      case .bool: fill(proto.int32Data) { $0 != 0 }
      }
    }
  }

  /// The file holding an externally stored tensor's `byteCount` bytes, and where in it they start.
  private static func externalData(
    _ proto: Onnx.TensorProto, baseDirectory: String?, label: String, byteCount: Int
  ) throws(ModelError) -> (bytes: [UInt8], offset: Int) {
    let fields = Dictionary(proto.externalData.map { ($0.key, $0.value) }, uniquingKeysWith: { $1 })
    guard let location = fields["location"], !location.isEmpty else {
      throw ModelError(.invalidModel, "\(label) is stored externally but names no location")
    }
    guard !location.hasPrefix("/"), !location.split(separator: "/").contains("..") else {
      throw ModelError(.invalidModel, "\(label): external data location '\(location)' must stay beside the model")
    }
    guard let baseDirectory else {
      throw ModelError(.invalidModel, "\(label) is stored in '\(location)'; load the model from its file to read it")
    }
    let bytes = try FileBytes.read(baseDirectory + "/" + location)
    let offset = Int(fields["offset"] ?? "0") ?? -1
    let length = Int(fields["length"] ?? "\(byteCount)") ?? -1
    guard offset >= 0, length == byteCount, length <= bytes.count, offset <= bytes.count - length else {
      throw ModelError(
        .invalidModel, "\(label): '\(location)' holds no \(byteCount) bytes at offset \(fields["offset"] ?? "0")")
    }
    return (bytes, offset)
  }

  /// The tensor as an ONNX `TensorProto` named `name`, its elements in `raw_data`.
  public func onnxProto(name: String) -> Onnx.TensorProto {
    var proto = Onnx.TensorProto()
    proto.name = name
    proto.dims = shape.map { Int64($0) }
    proto.dataType = dataType.onnxCode
    proto.rawData = withUnsafeBytes { Array($0) }
    return proto
  }
}
