/// The load-time rewrite that runs convolutional networks in channel blocks (`ChannelBlocks`),
/// where the CPU has AVX2 without AVX-512.
extension Graph {
  /// Every convolution that has a channel-blocks form, max pooling and Concat along the
  /// channels produce their outputs in blocks; readers that take blocks (those, a fused
  /// residual, GlobalAveragePool) read them, and a reorder is added once per value where blocks
  /// meet a node (or a graph output) that needs NCHW, or the reverse. The graph is left as it is
  /// when the reorders would be more than a quarter of the nodes in blocks.
  mutating func blockChannels() {
    guard ChannelBlocks.available else { return }
    // In order, so that a node's inputs are decided before it: convolutions with a form,
    // max pooling of a known number of channels, Concat of blocks along the channels produce
    // blocks; GlobalAveragePool of blocks reads them.
    var forms: [Int: ChannelBlocksConvKernel.Form] = [:]
    var pools = Set<Int>()
    var concats = Set<Int>()
    var averages = Set<Int>()
    var blocked = Set<Int>()
    var channels: [Int: Int] = [:]
    for (index, node) in nodes.enumerated() {
      // A fused residual must come in blocks of the convolution's shape: one from a node in
      // blocks, not a constant or a graph input that may broadcast.
      let residual = node.inputs.count > 3 ? node.inputs[3] : nil
      if let form = channelBlocksForm(node), residual.map({ blocked.contains($0) }) ?? true {
        forms[index] = form
      } else if let pool = node.kernel as? PoolKernel, case .max = pool.kind, let window = pool.window,
        window.dilations?.allSatisfy({ $0 == 1 }) ?? true, (window.kernelShape?.count ?? 0) == 2,
        node.inputs.count == 1, node.outputs.count == 1, let input = node.inputs[0],
        blocked.contains(input) || (channels[input] ?? 1) % ChannelBlocks.width == 0
      {
        pools.insert(index)
      } else if let movement = node.kernel as? DataMovementKernel, case .concat(let axis) = movement.kind,
        axis == 1 || axis == -3, node.outputs.count == 1, !node.inputs.isEmpty,
        node.inputs.allSatisfy({ $0.map { blocked.contains($0) } ?? false })
      {
        concats.insert(index)
      } else if let pool = node.kernel as? PoolKernel, case .average = pool.kind, pool.window == nil,
        node.inputs.count == 1, node.outputs.count == 1, let input = node.inputs[0], blocked.contains(input)
      {
        averages.insert(index)
      }
      if forms[index] != nil || pools.contains(index) || concats.contains(index) { blocked.insert(node.outputs[0]) }
      if let conv = node.kernel as? ConvKernel, conv.group == 1, node.inputs.count > 1, let weightID = node.inputs[1],
        let weight = fixedConstant(weightID), weight.rank == 4
      {
        channels[node.outputs[0]] = weight.shape[0]
      }
    }
    guard !forms.isEmpty else { return }
    func readsBlocks(_ index: Int, at position: Int) -> Bool {
      if let form = forms[index] {
        if case .direct(_, _, _, planar: true) = form { return position == 3 }
        return position == 0 || position == 3
      }
      return concats.contains(index) || ((pools.contains(index) || averages.contains(index)) && position == 0)
    }
    var toBlocks = Set<Int>()
    var toPlanes = blocked.intersection(outputs.map(\.id))
    for (index, node) in nodes.enumerated() {
      for (position, input) in node.inputs.enumerated() {
        guard let input else { continue }
        if readsBlocks(index, at: position) {
          if !blocked.contains(input) { toBlocks.insert(input) }
        } else if blocked.contains(input) {
          toPlanes.insert(input)
        }
      }
    }
    let inBlocks = forms.count + pools.count + concats.count + averages.count
    guard 4 * (toBlocks.count + toPlanes.count) <= inBlocks else { return }

    var blocksOf: [Int: Int] = [:]
    for value in blocked.union(toBlocks).sorted() {
      valueNames.append(valueNames[value] + ":blocks")
      blocksOf[value] = valueNames.count - 1
    }
    func reorder(_ input: Int, _ output: Int, toBlocks: Bool) -> Node {
      Node(
        name: valueNames[toBlocks ? output : input], opType: toBlocks ? "ToChannelBlocks" : "FromChannelBlocks",
        inputs: [input], outputs: [output], kernel: ChannelBlocksReorderKernel(toBlocks: toBlocks))
    }
    var rewritten: [Node] = []
    var reordered = Set<Int>()
    for (index, original) in nodes.enumerated() {
      var node = original
      for position in node.inputs.indices where readsBlocks(index, at: position) {
        guard let input = node.inputs[position], let blocks = blocksOf[input] else { continue }
        if toBlocks.contains(input) && reordered.insert(input).inserted {
          rewritten.append(reorder(input, blocks, toBlocks: true))
        }
        node.inputs[position] = blocks
      }
      if let form = forms[index], let conv = node.kernel as? ConvKernel, let weightID = node.inputs[1],
        let weight = fixedConstant(weightID)
      {
        var plain = conv
        plain.panels = nil
        node.kernel = ChannelBlocksConvKernel(conv: plain, form: form, weightShape: weight.shape)
        valueNames.append(valueNames[weightID] + ":blocks")
        constants[valueNames.count - 1] = ChannelBlocksConvKernel.pack(weight, form)
        node.inputs[1] = valueNames.count - 1
        node.outputs = [blocksOf[original.outputs[0]]!]
      } else if averages.contains(index) {
        node.kernel = ChannelBlocksAverageKernel()
      } else if pools.contains(index), let pool = node.kernel as? PoolKernel {
        node.kernel = ChannelBlocksMaxPoolKernel(pool: pool)
        node.outputs = [blocksOf[original.outputs[0]]!]
      } else if concats.contains(index) {
        node.outputs = [blocksOf[original.outputs[0]]!]
      }
      rewritten.append(node)
      if blocked.contains(original.outputs[0]), toPlanes.contains(original.outputs[0]) {
        rewritten.append(reorder(node.outputs[0], original.outputs[0], toBlocks: false))
      }
    }
    nodes = rewritten
    joinConcatenatedConvolutions()
  }

  /// A Concat in blocks whose inputs all come from convolutions in blocks that nothing else
  /// reads (no residual; ReLU, Clip or no activation) becomes one node in which they write
  /// straight into the joined output, with no copy (`ChannelBlocksConcatKernel`).
  private mutating func joinConcatenatedConvolutions() {
    var readers: [Int: Int] = [:]
    for node in nodes {
      for input in node.inputs { if let input { readers[input, default: 0] += 1 } }
    }
    for output in outputs { readers[output.id, default: 0] += 1 }
    var producer: [Int: Int] = [:]
    for (index, node) in nodes.enumerated() {
      for output in node.outputs { producer[output] = index }
    }
    var removed = Set<Int>()
    for index in nodes.indices {
      guard let movement = nodes[index].kernel as? DataMovementKernel, case .concat = movement.kind,
        nodes[index].inputs.count > 1, Set(nodes[index].inputs).count == nodes[index].inputs.count
      else { continue }
      var parts: [(index: Int, kernel: ChannelBlocksConvKernel)] = []
      for input in nodes[index].inputs {
        guard let input, readers[input] == 1, let source = producer[input],
          let conv = nodes[source].kernel as? ChannelBlocksConvKernel, conv.conv.residual == nil,
          conv.conv.activationBounds != nil, nodes[source].inputs.count <= 3
        else { break }
        parts.append((source, conv))
      }
      guard parts.count == nodes[index].inputs.count else { continue }
      var inputs: [Int?] = []
      for part in parts {
        let read = nodes[part.index].inputs
        inputs += [read[0], read[1], read.count > 2 ? read[2] : nil]
        removed.insert(part.index)
      }
      nodes[index] = Node(
        name: nodes[index].name, opType: "Conv+Concat", inputs: inputs, outputs: nodes[index].outputs,
        kernel: ChannelBlocksConcatKernel(parts: parts.map(\.kernel)))
    }
    nodes = nodes.indices.filter { !removed.contains($0) }.map { nodes[$0] }
  }

  /// The channel-blocks form of a convolution node, if it has one: constant float32 weights,
  /// features and channels in whole blocks, no dilation, explicit padding, and 1×1 with stride 1
  /// and no padding, depthwise 3×3 with padding 1 and stride 1 or 2, or group 1 with a square
  /// kernel and the same stride and padding on both axes.
  private func channelBlocksForm(_ node: Node) -> ChannelBlocksConvKernel.Form? {
    let width = ChannelBlocks.width
    guard let conv = node.kernel as? ConvKernel, node.inputs.count >= 2,
      node.outputs.count == 1, let weightID = node.inputs[1], let weight = fixedConstant(weightID),
      weight.dataType == .float32, weight.rank == 4, weight.shape[0] % width == 0, conv.window.autoPad == "NOTSET",
      conv.window.dilations?.allSatisfy({ $0 == 1 }) ?? true
    else { return nil }
    let strides = conv.window.strides ?? [1, 1]
    let pads = conv.window.pads ?? [0, 0, 0, 0]
    let (features, depth, kh, kw) = (weight.shape[0], weight.shape[1], weight.shape[2], weight.shape[3])
    if conv.group == 1, kh == 1, kw == 1, depth % width == 0, strides == [1, 1], pads.allSatisfy({ $0 == 0 }) {
      return .pointwise
    }
    if conv.group == features, depth == 1, kh == 3, kw == 3, strides == [1, 1] || strides == [2, 2],
      pads == [1, 1, 1, 1]
    {
      return .depthwise(stride: strides[0])
    }
    // Where Winograd's algorithm runs (stride 1, 3×3, at least 16 channels each way), only
    // when the layer expands the channels at least 4-fold (SqueezeNet's fire modules, whose
    // Winograd layers in NCHW would cut every chain): ResNet-50's 3×3 layers keep their
    // channels, and all in blocks on the direct kernel it took 1.27× onnxruntime's time at
    // batch 1 and 0.96× at batch 8 against 1.17× and 0.91× with Winograd's in NCHW. Channels
    // that do not fill whole blocks (a network's first layer) are read in planes.
    if conv.group == 1, conv.winogradShape == nil || features >= 4 * depth, kh == kw, strides[0] == strides[1],
      pads.allSatisfy({ $0 == pads[0] })
    {
      return .direct(kernel: kh, stride: strides[0], pad: pads[0], planar: depth % width != 0)
    }
    return nil
  }
}
