import ShoalProto

/// Small, valid ONNX files built with the contract's own types: one Relu over a [batch, n] input.
public enum TestOnnx {
  /// A Relu model with input `name` of shape [batch, features].
  public static func relu(features: Int64 = 4, name: String = "x") -> [UInt8] {
    func value(_ name: String) -> Onnx.ValueInfoProto {
      var dimension0 = Onnx.TensorShapeProto.Dimension()
      dimension0.value = .dimParam("batch")
      var dimension1 = Onnx.TensorShapeProto.Dimension()
      dimension1.value = .dimValue(features)
      var shape = Onnx.TensorShapeProto()
      shape.dim = [dimension0, dimension1]
      var tensor = Onnx.TypeProto.Tensor()
      tensor.elemType = 1
      tensor.shape = shape
      var type = Onnx.TypeProto()
      type.value = .tensorType(tensor)
      var info = Onnx.ValueInfoProto()
      info.name = name
      info.type = type
      return info
    }
    var node = Onnx.NodeProto()
    node.opType = "Relu"
    node.input = [name]
    node.output = ["y"]
    var graph = Onnx.GraphProto()
    graph.name = "relu"
    graph.node = [node]
    graph.input = [value(name)]
    graph.output = [value("y")]
    var opset = Onnx.OperatorSetIdProto()
    opset.version = 13
    var model = Onnx.ModelProto()
    model.irVersion = 8
    model.opsetImport = [opset]
    model.graph = graph
    return model.serializedBytes()
  }
}
