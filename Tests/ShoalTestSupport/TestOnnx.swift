import ShoalModel

/// Small, valid ONNX files: one Relu over a [batch, n] input.
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
}
