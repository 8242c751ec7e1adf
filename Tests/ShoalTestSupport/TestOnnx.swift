import ShoalModel

/// Small, valid ONNX files: one Relu over a [batch, n] input; a linear classifier.
public enum TestOnnx {
  /// A Relu model with input `name` of shape [batch, features].
  public static func relu(features: Int64 = 4, name: String = "x") -> [UInt8] {
    var graph = OnnxGraphBuilder(name: "relu", opset: 13)
    graph.input(name, .float32, [.symbolic("batch"), .fixed(Int(features))])
    graph.node("Relu", [name], ["y"])
    graph.output("y", .float32, [.symbolic("batch"), .fixed(Int(features))])
    // The names are the caller's test constants, without NUL: writing cannot fail.
    return try! graph.bytes()
  }

  /// A linear classifier `softmax(x · W + b)` of input `x` [batch, features] into `classes`
  /// columns of output `probs`, with weights drawn from `seed` (another seed: another model).
  /// With `fixedBatch`, dimension 0 is fixed to that size instead of free.
  public static func classifier(
    features: Int = 4, classes: Int = 3, seed: UInt64 = 1, fixedBatch: Int? = nil
  )
    -> [UInt8]
  {
    var random = SplitMix64(seed: seed)
    func value() -> Float { Float(Double(random.next() % 2001) / 1000 - 1) }
    var graph = OnnxGraphBuilder(name: "classifier", opset: 13)
    let batch: Model.ValueSpec.Dimension = fixedBatch.map { .fixed($0) } ?? .symbolic("batch")
    graph.input("x", .float32, [batch, .fixed(features)])
    graph.initializer(
      "w", Tensor(shape: [features, classes], elements: (0..<(features * classes)).map { _ in value() }))
    graph.initializer("b", Tensor(shape: [classes], elements: (0..<classes).map { _ in value() }))
    graph.node("MatMul", ["x", "w"], ["logits0"])
    graph.node("Add", ["logits0", "b"], ["logits"])
    graph.node("Softmax", ["logits"], ["probs"], attributes: ["axis": .int(1)])
    graph.output("probs", .float32, [batch, .fixed(classes)])
    return try! graph.bytes()
  }
}
