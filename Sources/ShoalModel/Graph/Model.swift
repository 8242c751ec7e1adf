import ShoalProto
import Synchronization

/// A loaded ONNX model, ready to run. One model serves any number of concurrent runs: each input
/// shape gets its execution plan once, and each run its own memory.
public final class Model: Sendable {
  /// A graph input or output: its name, element type and dimensions as the file declares them.
  public struct ValueSpec: Sendable, Hashable {
    /// A declared dimension.
    public enum Dimension: Sendable, Hashable, CustomStringConvertible {
      case fixed(Int)
      case symbolic(String)
      case unknown

      public var description: String {
        switch self {
        case .fixed(let size): "\(size)"
        case .symbolic(let name): name
        case .unknown: "?"
        }
      }
    }

    public var name: String
    /// ONNX's element type number (see `DataType.onnxName`).
    public var elementType: Int32
    /// The dimensions, or nil when the file declares no shape.
    public var dimensions: [Dimension]?

    /// A declared value.
    public init(name: String, elementType: Int32, dimensions: [Dimension]?) {
      self.name = name
      self.elementType = elementType
      self.dimensions = dimensions
    }
  }

  /// The inputs a caller provides (graph inputs that are not initializers).
  public let inputs: [ValueSpec]
  /// Graph inputs that have initializers: a caller may override them, or leave their defaults.
  public let overridableInputs: [ValueSpec]
  /// The outputs a run returns.
  public let outputs: [ValueSpec]
  /// The operator sets the model imports: domain ("" for the default) to version.
  public let opsets: [String: Int]
  /// How many nodes of each operator the file holds (before fusion).
  public let operatorCounts: [String: Int]
  /// The producer named in the file (`pytorch 2.4`, `tf2onnx 1.16`, …).
  public let producer: String

  let graph: Graph
  let plans = Mutex<[PlanKey: ExecutionPlan]>([:])
  /// Set once planning needed an input's elements: plans are then keyed by the values of small
  /// integer inputs too.
  let plansByInputValue = Mutex(false)

  /// Loads the ONNX model in `path`; external tensor data is read from beside it.
  public convenience init(contentsOf path: String) throws(ModelError) {
    let directory = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
    try self.init(onnx: try FileBytes.read(path), baseDirectory: directory, fileName: path)
  }

  /// Loads an ONNX model from its bytes.
  ///
  /// - Throws: `.invalidModel` for bytes that are not a valid ONNX graph (naming the node or value
  ///   at fault); `.unsupported` naming every operator and attribute the core lacks.
  public init(onnx bytes: [UInt8], baseDirectory: String? = nil, fileName: String = "the model") throws(ModelError) {
    let proto: Onnx.ModelProto
    do {
      proto = try Onnx.ModelProto(serializedBytes: bytes)
    } catch {
      throw ModelError(.invalidModel, "\(fileName) is not an ONNX model: \(error)")
    }
    guard proto.irVersion > 0, let graphProto = proto.graph, !graphProto.output.isEmpty else {
      throw ModelError(.invalidModel, "\(fileName) is not an ONNX model (no IR version or no graph outputs)")
    }
    var opsets: [String: Int] = [:]
    for opset in proto.opsetImport { opsets[opset.domain == "ai.onnx" ? "" : opset.domain] = Int(opset.version) }
    if opsets[""] == nil && proto.irVersion < 3 { opsets[""] = 1 }
    self.opsets = opsets
    producer = [proto.producerName, proto.producerVersion].filter { !$0.isEmpty }.joined(separator: " ")
    operatorCounts = graphProto.node.reduce(into: [:]) { $0[$1.opType, default: 0] += 1 }
    let initializerNames = Set(graphProto.initializer.map(\.name))
    inputs = graphProto.input.filter { !initializerNames.contains($0.name) }.map(Self.spec)
    overridableInputs =
      proto.irVersion < 4 ? [] : graphProto.input.filter { initializerNames.contains($0.name) }.map(Self.spec)
    outputs = graphProto.output.map(Self.spec)
    graph = try Graph(graphProto, irVersion: proto.irVersion, opset: opsets[""] ?? 1, baseDirectory: baseDirectory)
  }

  /// The declared type of a graph input or output.
  static func spec(_ info: Onnx.ValueInfoProto) -> ValueSpec {
    guard case .tensorType(let tensor) = info.type?.value else {
      return ValueSpec(name: info.name, elementType: 0, dimensions: nil)
    }
    let dimensions = tensor.shape.map { shape in
      shape.dim.map { dimension -> ValueSpec.Dimension in
        switch dimension.value {
        case .dimValue(let size): .fixed(Int(size))
        case .dimParam(let name): .symbolic(name)
        case nil: .unknown
        }
      }
    }
    return ValueSpec(name: info.name, elementType: tensor.elemType, dimensions: dimensions)
  }
}
