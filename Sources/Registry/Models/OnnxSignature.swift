import ShoalProto
import ShoalRPC

/// Reads a model's inputs and outputs from its ONNX file (the contract's `onnx.proto`).
enum OnnxSignature {
  /// The inputs (graph inputs that are not initializers) and outputs of the ONNX model `bytes`.
  ///
  /// - Throws: INVALID_ARGUMENT when the bytes are not an ONNX model.
  static func read(
    _ bytes: [UInt8]
  ) throws(RPCError) -> (inputs: [RegistryV1.TensorSpec], outputs: [RegistryV1.TensorSpec]) {
    let model: Onnx.ModelProto
    do {
      model = try Onnx.ModelProto(serializedBytes: bytes)
    } catch {
      throw RPCError(.invalidArgument, "the file is not an ONNX model: \(error)")
    }
    guard model.irVersion > 0, !model.opsetImport.isEmpty, let graph = model.graph, !graph.output.isEmpty else {
      throw RPCError(
        .invalidArgument, "the file is not an ONNX model (no IR version, operator set or graph outputs)")
    }
    let initializers = Set(graph.initializer.map(\.name))
    return (graph.input.filter { !initializers.contains($0.name) }.map(spec), graph.output.map(spec))
  }

  private static func spec(_ value: Onnx.ValueInfoProto) -> RegistryV1.TensorSpec {
    var spec = RegistryV1.TensorSpec()
    spec.name = value.name
    guard case .tensorType(let tensor) = value.type?.value else {
      spec.dtype = "UNDEFINED"
      return spec
    }
    spec.dtype = elementTypeName(tensor.elemType)
    for dimension in tensor.shape?.dim ?? [] {
      switch dimension.value {
      case .dimValue(let size):
        spec.shape.append(size)
        spec.dimensionNames.append("")
      case .dimParam(let name):
        spec.shape.append(-1)
        spec.dimensionNames.append(name)
      case nil:
        spec.shape.append(-1)
        spec.dimensionNames.append("")
      }
    }
    if spec.dimensionNames.allSatisfy(\.isEmpty) { spec.dimensionNames = [] }
    return spec
  }

  /// ONNX's TensorProto.DataType names.
  static func elementTypeName(_ type: Int32) -> String {
    let names = [
      "UNDEFINED", "FLOAT", "UINT8", "INT8", "UINT16", "INT16", "INT32", "INT64", "STRING", "BOOL", "FLOAT16",
      "DOUBLE", "UINT32", "UINT64", "COMPLEX64", "COMPLEX128", "BFLOAT16",
    ]
    return names.indices.contains(Int(type)) ? names[Int(type)] : "TYPE_\(type)"
  }
}
