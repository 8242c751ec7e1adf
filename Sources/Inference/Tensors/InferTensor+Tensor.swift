public import ShoalModel
public import ShoalProto
public import ShoalRPC

/// Open Inference Protocol v2's datatype names and the model core's element types.
public enum InferDatatype {
  /// Every datatype OIP names, with its element size in bytes (0 for BYTES).
  static let sizes: [String: Int] = [
    "BOOL": 1, "UINT8": 1, "UINT16": 2, "UINT32": 4, "UINT64": 8, "INT8": 1, "INT16": 2, "INT32": 4, "INT64": 8,
    "FP16": 2, "FP32": 4, "FP64": 8, "BF16": 2, "BYTES": 0,
  ]

  /// OIP's name for an element type.
  public static func name(of type: DataType) -> String {
    switch type {
    case .bool: "BOOL"
    case .uint8: "UINT8"
    case .int8: "INT8"
    case .int32: "INT32"
    case .int64: "INT64"
    case .float32: "FP32"
    case .float64: "FP64"
    }
  }

  /// OIP's name for an ONNX element type number (`FP32` for FLOAT); the ONNX name where OIP has none.
  public static func name(onnxCode: Int32) -> String {
    if let type = DataType(onnxCode: onnxCode) { return name(of: type) }
    switch onnxCode {
    case 4: return "UINT16"
    case 5: return "INT16"
    case 8: return "BYTES"
    case 10: return "FP16"
    case 12: return "UINT32"
    case 13: return "UINT64"
    case 16: return "BF16"
    default: return DataType.onnxName(onnxCode)
    }
  }

  /// The element type for an OIP name, nil for one the model core does not compute with.
  public static func type(named name: String) -> DataType? {
    DataType.allCases.first { self.name(of: $0) == name }
  }
}

extension InferenceV1.InferTensor {
  /// The tensor `self` carries, checked against the model's declared input `spec`.
  ///
  /// - Throws: INVALID_ARGUMENT naming the input with what was expected and what came: an unknown
  ///   datatype, another datatype than the model's, a shape that does not fit the declared one,
  ///   or raw contents whose size is not the shape's element count times the element size.
  public func tensor(for spec: Model.ValueSpec) throws(RPCError) -> Tensor {
    let expected = InferDatatype.name(onnxCode: spec.elementType)
    guard let size = InferDatatype.sizes[datatype] else {
      throw RPCError(
        .invalidArgument, "input '\(name)': '\(datatype)' is not a datatype (the model expects \(expected))")
    }
    guard datatype == expected, let type = InferDatatype.type(named: datatype) else {
      throw RPCError(.invalidArgument, "input '\(name)': the model expects \(expected), got \(datatype)")
    }
    guard shape.allSatisfy({ $0 >= 0 && $0 <= Int64(Int32.max) }) else {
      throw RPCError(.invalidArgument, "input '\(name)': shape \(shape) has a negative or huge dimension")
    }
    let shape = self.shape.map { Int($0) }
    if let dimensions = spec.dimensions {
      let fits =
        dimensions.count == shape.count
        && zip(dimensions, shape).allSatisfy { declared, given in
          if case .fixed(let size) = declared { return size == given }
          return true
        }
      guard fits else {
        throw RPCError(
          .invalidArgument,
          "input '\(name)': shape \(shape) does not fit the model's \(InferenceV1.TensorMetadata.shape(of: dimensions))"
        )
      }
    }
    let (count, overflow) = shape.reduce((1, false)) { partial, dimension in
      let product = partial.0.multipliedReportingOverflow(by: dimension)
      return (product.partialValue, partial.1 || product.overflow)
    }
    guard !overflow, count.multipliedReportingOverflow(by: size).overflow == false, count * size == rawContents.count
    else {
      throw RPCError(
        .invalidArgument,
        "input '\(name)': raw_contents holds \(rawContents.count) bytes; shape \(shape) of \(datatype) needs "
          + (overflow ? "more than fits in memory" : "\(count * size)"))
    }
    return rawContents.withUnsafeBytes { Tensor(dataType: type, shape: shape, copying: $0) }
  }

  /// An output tensor as OIP sends it.
  public init(name: String, tensor: Tensor) {
    self.init()
    self.name = name
    datatype = InferDatatype.name(of: tensor.dataType)
    shape = tensor.shape.map { Int64($0) }
    rawContents = tensor.withUnsafeBytes { Array($0) }
  }
}

extension InferenceV1.TensorMetadata {
  /// A declared input or output as OIP's metadata gives it: -1 for every dimension that is not
  /// fixed.
  public init(_ spec: Model.ValueSpec) {
    self.init()
    name = spec.name
    datatype = InferDatatype.name(onnxCode: spec.elementType)
    shape = spec.dimensions.map(Self.shape(of:)) ?? []
  }

  /// The declared dimensions with -1 for a free one.
  static func shape(of dimensions: [Model.ValueSpec.Dimension]) -> [Int64] {
    dimensions.map { dimension in
      if case .fixed(let size) = dimension { return Int64(size) }
      return -1
    }
  }
}
