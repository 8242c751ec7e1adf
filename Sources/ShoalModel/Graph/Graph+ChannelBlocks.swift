/// The load-time rewrite that runs chains of depthwise and 1×1 convolutions in channel blocks
/// (`ChannelBlocks`), where the CPU has AVX2 without AVX-512.
extension Graph {
  /// Every convolution that has a channel-blocks form produces its output in blocks; readers
  /// that take blocks (those convolutions, a fused residual, GlobalAveragePool) read them, and
  /// a reorder is added once per value where blocks meet a node (or a graph output) that needs
  /// NCHW, or the reverse. The graph is left as it is when the reorders would be more than a
  /// quarter of the nodes in blocks (SqueezeNet's fire modules, whose 3×3 convolutions have no
  /// such form, would reorder around every module).
  mutating func blockChannels() {
    guard ChannelBlocks.available else { return }
    var forms: [Int: ChannelBlocksConvKernel.Form] = [:]
    for index in nodes.indices {
      if let form = channelBlocksForm(nodes[index]) { forms[index] = form }
    }
    guard !forms.isEmpty else { return }
    let blocked = Set(forms.keys.map { nodes[$0].outputs[0] })
    var averages = Set<Int>()
    for (index, node) in nodes.enumerated() where forms[index] == nil {
      guard let pool = node.kernel as? PoolKernel, case .average = pool.kind, pool.window == nil,
        node.inputs.count == 1, node.outputs.count == 1, let input = node.inputs[0], blocked.contains(input)
      else { continue }
      averages.insert(index)
    }
    func readsBlocks(_ index: Int, at position: Int) -> Bool {
      forms[index] != nil ? position == 0 || position == 3 : averages.contains(index) && position == 0
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
    guard 4 * (toBlocks.count + toPlanes.count) <= forms.count + averages.count else { return }

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
      }
      rewritten.append(node)
      if forms[index] != nil, toPlanes.contains(original.outputs[0]) {
        rewritten.append(reorder(node.outputs[0], original.outputs[0], toBlocks: false))
      }
    }
    nodes = rewritten
  }

  /// The channel-blocks form of a convolution node, if it has one: constant float32 weights,
  /// features and channels in whole blocks, and either 1×1 with stride 1 and no padding or
  /// depthwise 3×3 with padding 1 and stride 1 or 2 (no dilation, explicit padding).
  private func channelBlocksForm(_ node: Node) -> ChannelBlocksConvKernel.Form? {
    let width = ChannelBlocks.width
    guard let conv = node.kernel as? ConvKernel, conv.winogradShape == nil, node.inputs.count >= 2,
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
    return nil
  }
}
