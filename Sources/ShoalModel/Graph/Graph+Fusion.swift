#if canImport(Glibc)
  import Glibc
#endif

/// Load-time rewrites that make the graph cheaper to run without changing its results:
/// BatchNormalization folded into the Conv before it, activations fused into Conv and Gemm,
/// convolutional networks in channel blocks where they allow it (without AVX-512).
extension Graph {
  mutating func fuse() {
    foldBatchNormalizations()
    fuseResidualAdds()
    fuseActivations()
    prepareWinograd()
    blockChannels()
    dropUnreadConstants()
    preparePanels()
  }

  /// Constants no node reads any more (weights before BatchNormalization folded into them) are
  /// released; graph outputs and initializers a caller may override stay.
  private mutating func dropUnreadConstants() {
    var read = Set(outputs.map(\.id)).union(overridable)
    for node in nodes { read.formUnion(node.inputs.compactMap { $0 }) }
    constants = constants.filter { read.contains($0.key) }
  }

  /// Convolutions with constant weights (group 1) get them packed for `panelConvolution` too,
  /// on CPUs with AVX-512; not those Winograd runs (which has panels of its own).
  private mutating func preparePanels() {
    for index in nodes.indices {
      guard var conv = nodes[index].kernel as? ConvKernel, conv.group == 1, conv.winogradShape == nil,
        nodes[index].inputs.count > 1,
        let weightID = nodes[index].inputs[1], let weight = fixedConstant(weightID)
      else { continue }
      conv.panels = ConvKernel.panelWeights(weight)
      nodes[index].kernel = conv
    }
  }

  /// A constant no caller can override (initializers that are also graph inputs can be, from IR 4).
  func fixedConstant(_ id: Int) -> Tensor? { overridable.contains(id) ? nil : constants[id] }

  /// How many node inputs read each value, graph outputs counting as readers too.
  private func readerCounts() -> [Int: Int] {
    var counts: [Int: Int] = [:]
    for node in nodes {
      for input in node.inputs.compactMap({ $0 }) { counts[input, default: 0] += 1 }
    }
    for output in outputs { counts[output.id, default: 0] += 1 }
    return counts
  }

  /// The node that reads `value`, when it is the only reader.
  private func soleReader(of value: Int, _ counts: [Int: Int]) -> Int? {
    guard counts[value] == 1 else { return nil }
    return nodes.firstIndex { $0.inputs.contains(value) }
  }

  private mutating func addConstant(_ tensor: Tensor, name: String) -> Int {
    valueNames.append(name)
    constants[valueNames.count - 1] = tensor
    return valueNames.count - 1
  }

  /// Conv → BatchNormalization with constant weights becomes one Conv with scaled weights and bias.
  private mutating func foldBatchNormalizations() {
    var index = 0
    while index < nodes.count {
      defer { index += 1 }
      let counts = readerCounts()
      guard nodes[index].kernel is ConvKernel, let output = nodes[index].outputs.first,
        let readerIndex = soleReader(of: output, counts),
        let normalization = nodes[readerIndex].kernel as? NormalizationKernel,
        case .batch(let epsilon) = normalization.kind, nodes[readerIndex].inputs.first == output,
        nodes[readerIndex].inputs.count == 5, nodes[readerIndex].outputs.count == 1,
        let weightID = nodes[index].inputs[1], let weight = fixedConstant(weightID), weight.dataType == .float32
      else { continue }
      let parameters = nodes[readerIndex].inputs.dropFirst().compactMap { $0.flatMap { fixedConstant($0) } }
      let features = weight.shape[0]
      guard parameters.count == 4, parameters.allSatisfy({ $0.dataType == .float32 && $0.count == features }) else {
        continue
      }
      let bias: Tensor? = nodes[index].inputs.count > 2 ? nodes[index].inputs[2].flatMap { fixedConstant($0) } : nil
      if nodes[index].inputs.count > 2, nodes[index].inputs[2] != nil, bias == nil { continue }
      let (scale, shift, mean, variance) = (
        parameters[0].elements(as: Float.self), parameters[1].elements(as: Float.self),
        parameters[2].elements(as: Float.self), parameters[3].elements(as: Float.self)
      )
      var weights = weight.elements(as: Float.self)
      var biases = bias?.elements(as: Float.self) ?? [Float](repeating: 0, count: features)
      let perFeature = weight.count / features
      for feature in 0..<features {
        let factor = scale[feature] / (variance[feature] + epsilon).squareRoot()
        for i in 0..<perFeature { weights[feature * perFeature + i] *= factor }
        biases[feature] = (biases[feature] - mean[feature]) * factor + shift[feature]
      }
      let name = nodes[index].name
      let newWeight = addConstant(Tensor(shape: weight.shape, elements: weights), name: "\(name):folded-weight")
      let newBias = addConstant(Tensor(shape: [features], elements: biases), name: "\(name):folded-bias")
      nodes[index].inputs = [nodes[index].inputs[0], newWeight, newBias]
      nodes[index].outputs = nodes[readerIndex].outputs
      nodes.remove(at: readerIndex)
    }
  }

  /// 3×3 convolutions with stride 1 and constant weights get the weights Winograd's algorithm
  /// multiplies with, transformed once here: F(4×4, 3×3)'s up to `winograd4MaximumWeights`,
  /// F(2×2, 3×3)'s above. In the environment, `SHOAL_WINOGRAD=2x2` keeps them all on
  /// F(2×2, 3×3) and `SHOAL_WINOGRAD=off` on im2col and GEMM (to compare, or for results closer
  /// to a direct convolution's rounding).
  private mutating func prepareWinograd() {
    let setting = getenv("SHOAL_WINOGRAD").map { String(cString: $0) }
    if setting == "off" { return }
    for index in nodes.indices {
      guard var conv = nodes[index].kernel as? ConvKernel, conv.group == 1,
        conv.window.strides?.allSatisfy({ $0 == 1 }) ?? true, conv.window.dilations?.allSatisfy({ $0 == 1 }) ?? true,
        nodes[index].inputs.count > 1, let weightID = nodes[index].inputs[1], let weight = fixedConstant(weightID),
        weight.rank == 4, weight.shape[0] >= ConvKernel.winogradMinimumChannels,
        weight.shape[1] >= ConvKernel.winogradMinimumChannels
      else { continue }
      let small = weight.shape[0] * weight.shape[1] <= ConvKernel.winograd4MaximumWeights
      guard let transformed = ConvKernel.winogradWeights(weight, tile: small && setting != "2x2" ? 4 : 2) else {
        continue
      }
      // One copy of the transformed weights: packed where the panel and row kernels run.
      conv.winogradShape = transformed.shape
      conv.winogradPanels = ConvKernel.winogradPanelWeights(transformed)
      conv.winograd = conv.winogradPanels == nil ? transformed : nil
      nodes[index].kernel = conv
    }
  }

  /// Conv → Add (of the convolution's output and another value, the convolution's only reader)
  /// becomes one Conv with the other value as a fourth input, added as the outputs are finished;
  /// a Relu after it then fuses in as well. The fused node takes the Add's place in the order,
  /// where the other value has been computed.
  private mutating func fuseResidualAdds() {
    var index = 0
    while index < nodes.count {
      defer { index += 1 }
      guard var conv = nodes[index].kernel as? ConvKernel, conv.activation == nil, conv.residual == nil,
        nodes[index].outputs.count == 1, nodes[index].inputs.count <= 3,
        let addIndex = soleReader(of: nodes[index].outputs[0], readerCounts()),
        let add = nodes[addIndex].kernel as? BinaryKernel, add.operation == .add, add.legacyAxis == nil, !add.mean,
        add.activation == nil, nodes[addIndex].inputs.count == 2, nodes[addIndex].outputs.count == 1
      else { continue }
      let output = nodes[index].outputs[0]
      guard let other = nodes[addIndex].inputs.first(where: { $0 != output }) ?? nil else { continue }
      conv.residual = add
      var fused = nodes[index]
      fused.kernel = conv
      fused.inputs = (fused.inputs + [nil, nil]).prefix(3) + [other]
      fused.outputs = nodes[addIndex].outputs
      fused.opType += "+Add"
      nodes[addIndex] = fused
      nodes.remove(at: index)
      index -= 1
    }
  }

  /// Conv/Gemm/Add → Relu, LeakyRelu, Clip (constant bounds), Sigmoid, Tanh… becomes one node.
  private mutating func fuseActivations() {
    var index = 0
    while index < nodes.count {
      defer { index += 1 }
      guard
        nodes[index].kernel is ConvKernel || nodes[index].kernel is GemmKernel || nodes[index].kernel is BinaryKernel,
        nodes[index].outputs.count == 1,
        let readerIndex = soleReader(of: nodes[index].outputs[0], readerCounts()),
        nodes[readerIndex].outputs.count == 1, let function = activation(of: nodes[readerIndex])
      else { continue }
      if var conv = nodes[index].kernel as? ConvKernel, conv.activation == nil {
        conv.activation = function
        nodes[index].kernel = conv
      } else if var gemm = nodes[index].kernel as? GemmKernel, gemm.activation == nil {
        gemm.activation = function
        nodes[index].kernel = gemm
      } else if var binary = nodes[index].kernel as? BinaryKernel, binary.activation == nil,
        [.add, .sub, .mul].contains(binary.operation), !binary.mean
      {
        binary.activation = function
        nodes[index].kernel = binary
      } else {
        continue
      }
      nodes[index].opType += "+" + nodes[readerIndex].opType
      nodes[index].outputs = nodes[readerIndex].outputs
      nodes.remove(at: readerIndex)
    }
  }

  /// The element-wise function a node applies to its only input, if it is a fusable activation.
  private func activation(of node: Node) -> UnaryKernel.Function? {
    if let unary = node.kernel as? UnaryKernel {
      switch unary.function {
      case .relu, .leakyRelu, .sigmoid, .tanh, .elu, .selu, .hardSigmoid, .softplus, .clip: return unary.function
      default: return nil
      }
    }
    if let clip = node.kernel as? ClipKernel {
      if let bounds = clip.bounds { return .clip(min: bounds.min, max: bounds.max) }
      let bounds = node.inputs.dropFirst().map { id -> Float?? in
        guard let id else { return .some(nil) }
        guard let tensor = fixedConstant(id), tensor.count == 1 else { return nil }
        return .some(Float(tensor.doubles()[0]))
      }
      guard bounds.allSatisfy({ $0 != nil }) else { return nil }
      let low = bounds.count > 0 ? bounds[0]! : nil
      let high = bounds.count > 1 ? bounds[1]! : nil
      return .clip(min: low ?? -.infinity, max: high ?? .infinity)
    }
    return nil
  }
}
