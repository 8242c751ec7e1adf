import ShoalProto

/// An attribute value of an ONNX node.
public enum OnnxAttribute: Sendable {
  case int(Int)
  case ints([Int])
  case float(Float)
  case floats([Float])
  case string(String)
  case tensor(Tensor)
}

/// Builds standard ONNX files: a new graph, or an existing model's graph extended with more nodes
/// (a trained head after a frozen backbone).
public struct OnnxGraphBuilder: Sendable {
  private var model: Onnx.ModelProto
  private var graph: Onnx.GraphProto

  /// An empty graph named `name` importing the default operator set at `opset`.
  public init(name: String, opset: Int = 17) {
    model = Onnx.ModelProto()
    model.irVersion = 8
    var set = Onnx.OperatorSetIdProto()
    set.version = Int64(opset)
    model.opsetImport = [set]
    model.producerName = "shoal"
    graph = Onnx.GraphProto()
    graph.name = name
  }

  /// The graph of the ONNX model in `bytes`, to be extended; its outputs are kept until replaced
  /// with `replaceOutputs`.
  public init(extending bytes: [UInt8]) throws(ModelError) {
    do {
      model = try Onnx.ModelProto(serializedBytes: bytes)
    } catch {
      throw ModelError(.invalidModel, "the backbone is not an ONNX model: \(error)")
    }
    guard let graph = model.graph else { throw ModelError(.invalidModel, "the backbone has no graph") }
    self.graph = graph
  }

  /// The names of the graph's outputs.
  public var outputNames: [String] { graph.output.map(\.name) }

  /// The opset version of the default domain.
  public var opset: Int { Int(model.opsetImport.first { $0.domain.isEmpty || $0.domain == "ai.onnx" }?.version ?? 1) }

  /// Adds a graph input.
  public mutating func input(_ name: String, _ type: DataType, _ dimensions: [Model.ValueSpec.Dimension]) {
    graph.input.append(Self.valueInfo(name, type, dimensions))
  }

  /// Adds a graph output; nil `dimensions` declares no shape.
  public mutating func output(_ name: String, _ type: DataType, _ dimensions: [Model.ValueSpec.Dimension]?) {
    graph.output.append(Self.valueInfo(name, type, dimensions))
  }

  /// Removes every graph output (before adding the outputs of new nodes).
  public mutating func removeOutputs() { graph.output = [] }

  /// Adds an initializer (a constant the nodes read).
  public mutating func initializer(_ name: String, _ tensor: Tensor) {
    graph.initializer.append(tensor.onnxProto(name: name))
  }

  /// Adds a node of `op` reading `inputs` ("" for an absent optional input), writing `outputs`.
  public mutating func node(
    _ op: String, _ inputs: [String], _ outputs: [String], name: String = "", attributes: [String: OnnxAttribute] = [:]
  ) {
    var node = Onnx.NodeProto()
    node.opType = op
    node.input = inputs
    node.output = outputs
    node.name = name
    for (key, value) in attributes.sorted(by: { $0.key < $1.key }) {
      var attribute = Onnx.AttributeProto()
      attribute.name = key
      switch value {
      case .int(let v):
        attribute.type = .int
        attribute.i = Int64(v)
      case .ints(let v):
        attribute.type = .ints
        attribute.ints = v.map { Int64($0) }
      case .float(let v):
        attribute.type = .float
        attribute.f = v
      case .floats(let v):
        attribute.type = .floats
        attribute.floats = v
      case .string(let v):
        attribute.type = .string
        attribute.s = Array(v.utf8)
      case .tensor(let v):
        attribute.type = .tensor
        attribute.t = v.onnxProto(name: key)
      }
      node.attribute.append(attribute)
    }
    graph.node.append(node)
  }

  /// The model as ONNX bytes.
  ///
  /// - Throws: `ModelError` `.invalidInput` for a name or string attribute holding a NUL
  ///   character.
  public func bytes() throws(ModelError) -> [UInt8] {
    var model = self.model
    model.graph = graph
    do {
      return try model.serializedBytes()
    } catch {
      throw ModelError(.invalidInput, "cannot write the ONNX model: \(error.message)")
    }
  }

  private static func valueInfo(
    _ name: String, _ type: DataType, _ dimensions: [Model.ValueSpec.Dimension]?
  ) -> Onnx.ValueInfoProto {
    var tensor = Onnx.TypeProto.Tensor()
    tensor.elemType = type.onnxCode
    if let dimensions {
      var shape = Onnx.TensorShapeProto()
      shape.dim = dimensions.map { dimension in
        var proto = Onnx.TensorShapeProto.Dimension()
        switch dimension {
        case .fixed(let size): proto.value = .dimValue(Int64(size))
        case .symbolic(let name): proto.value = .dimParam(name)
        case .unknown: break
        }
        return proto
      }
      tensor.shape = shape
    }
    var typeProto = Onnx.TypeProto()
    typeProto.value = .tensorType(tensor)
    var info = Onnx.ValueInfoProto()
    info.name = name
    info.type = typeProto
    return info
  }
}
