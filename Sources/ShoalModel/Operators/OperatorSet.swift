/// What an operator's builder gets: the node's attributes, the model's opset, how many inputs
/// and outputs the node names.
struct OperatorContext {
  let attributes: NodeAttributes
  let opset: Int
  let inputCount: Int
  let outputCount: Int
}

/// Builds a node's kernel from its attributes, refusing attribute values it cannot honour.
typealias OperatorBuilder = @Sendable (OperatorContext) throws -> any Kernel

/// The operators of ONNX's default domain the model core runs.
enum OperatorSet {
  static let builders: [String: OperatorBuilder] = {
    var builders: [String: OperatorBuilder] = [:]
    for table in [
      UnaryKernel.builders, BinaryKernel.builders, ClipKernel.builders, GemmKernel.builders, MatMulKernel.builders,
      ConvKernel.builders, ConvTransposeKernel.builders, PoolKernel.builders, SoftmaxKernel.builders,
      NormalizationKernel.builders, ReduceKernel.builders, ResizeKernel.builders, ShapeOperators.builders,
      DataMovementKernel.builders,
    ] {
      builders.merge(table) { first, _ in first }
    }
    return builders
  }()

  /// Every supported operator name, sorted.
  static var supported: [String] { (Array(builders.keys) + ["Constant"]).sorted() }
}
