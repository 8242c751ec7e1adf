import ShoalProto

/// The head as a standard ONNX graph: Gemm (+ Relu) per layer, then Softmax or Sigmoid.
extension DenseHead {
  /// The head that `onnxModel` wrote into `bytes` (alone or after a backbone), read back from
  /// its initializers `head/layerN/weight` and `bias`: to train on from where it was.
  ///
  /// - Throws: `.invalidModel` when the file holds no such head, or its layers do not chain.
  public init(onnx bytes: [UInt8], output: HeadTrainer.OutputKind = .softmax) throws(ModelError) {
    let model: Onnx.ModelProto
    do {
      model = try Onnx.ModelProto(serializedBytes: bytes)
    } catch {
      throw ModelError(.invalidModel, "not an ONNX file: \(error)")
    }
    let initializers = Dictionary(
      (model.graph?.initializer ?? []).map { ($0.name, $0) }
    ) { first, _ in first }
    var layers: [Layer] = []
    while let weight = initializers["head/layer\(layers.count)/weight"],
      let bias = initializers["head/layer\(layers.count)/bias"]
    {
      let weights = try Tensor(onnx: weight)
      let biases = try Tensor(onnx: bias)
      guard weights.rank == 2, weights.dataType == .float32, biases.shape == [weights.shape[1]],
        layers.last.map({ $0.outputs == weights.shape[0] }) ?? true
      else {
        throw ModelError(
          .invalidModel, "head layer \(layers.count) has weights \(weights.shape) and bias \(biases.shape)")
      }
      layers.append(
        Layer(
          inputs: weights.shape[0], outputs: weights.shape[1], weights: weights.elements(as: Float.self),
          bias: biases.elements(as: Float.self)))
    }
    guard !layers.isEmpty else { throw ModelError(.invalidModel, "the file holds no dense head (head/layer0/weight)") }
    self.layers = layers
    self.output = output
  }

  /// The head alone as an ONNX model: input `features` [batch, inputs], output `probabilities`
  /// [batch, classes].
  public func onnxModel(opset: Int = 13) throws(ModelError) -> [UInt8] {
    var graph = OnnxGraphBuilder(name: "dense-head", opset: opset)
    graph.input("features", .float32, [.symbolic("batch"), .fixed(inputs)])
    append(to: &graph, from: "features")
    return try graph.bytes()
  }

  /// A frozen backbone's ONNX model followed by the head: the backbone's output `backboneOutput`
  /// (its only output by default; [batch, inputs] or [batch, inputs, 1, 1], flattened) feeds the
  /// head, whose `probabilities` become the model's only output.
  public func onnxModel(after backbone: [UInt8], backboneOutput: String? = nil) throws(ModelError) -> [UInt8] {
    var graph = try OnnxGraphBuilder(extending: backbone)
    guard graph.opset >= 7 else {
      throw ModelError(.unsupported, "the backbone imports opset \(graph.opset); a head needs opset 7 or later")
    }
    guard let source = backboneOutput ?? (graph.outputNames.count == 1 ? graph.outputNames[0] : nil) else {
      throw ModelError(
        .invalidInput, "the backbone has outputs \(graph.outputNames); name the one that feeds the head")
    }
    guard graph.outputNames.contains(source) else {
      throw ModelError(.invalidInput, "the backbone has no output '\(source)' (it has \(graph.outputNames))")
    }
    graph.removeOutputs()
    graph.node("Flatten", [source], ["head/features"], name: "head/flatten", attributes: ["axis": .int(1)])
    append(to: &graph, from: "head/features")
    return try graph.bytes()
  }

  private func append(to graph: inout OnnxGraphBuilder, from input: String) {
    var current = input
    for (index, layer) in layers.enumerated() {
      let prefix = "head/layer\(index)"
      graph.initializer("\(prefix)/weight", Tensor(shape: [layer.inputs, layer.outputs], elements: layer.weights))
      graph.initializer("\(prefix)/bias", Tensor(shape: [layer.outputs], elements: layer.bias))
      let last = index == layers.count - 1
      let linear = last ? "head/logits" : "\(prefix)/linear"
      graph.node("Gemm", [current, "\(prefix)/weight", "\(prefix)/bias"], [linear], name: "\(prefix)/gemm")
      if last {
        current = linear
      } else {
        graph.node("Relu", [linear], ["\(prefix)/relu"], name: "\(prefix)/relu")
        current = "\(prefix)/relu"
      }
    }
    switch output {
    case .softmax:
      graph.node("Softmax", [current], ["probabilities"], name: "head/softmax", attributes: ["axis": .int(1)])
    case .sigmoid:
      graph.node("Sigmoid", [current], ["probabilities"], name: "head/sigmoid")
    }
    graph.output("probabilities", .float32, [.symbolic("batch"), .fixed(classes)])
  }
}
