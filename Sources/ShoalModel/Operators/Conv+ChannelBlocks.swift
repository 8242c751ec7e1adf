import CModelKernels

#if canImport(Glibc)
  import Glibc
#endif

/// Images whose channels lie in blocks of 8, [N, C / 8, H, W, 8] (onnxruntime's NCHWc with
/// c = 8), for convolutional networks (MobileNet's and SqueezeNet's) on CPUs with AVX2 but no
/// AVX-512: a vector then holds 8 channels of one position, so a 7×7 plane or a stride-2 layer
/// fills every lane. The values keep their NCHW shape; only the order of their elements differs
/// (`Graph.blockChannels` chooses which values, and adds the reorders at the chain's ends).
enum ChannelBlocks {
  static let width = 8

  /// Whether the load-time rewrite runs: AVX2 and FMA without AVX-512 (whose kernels work on
  /// NCHW), unless `SHOAL_CHANNEL_BLOCKS=off` says no (to compare).
  static var available: Bool {
    if let setting = getenv("SHOAL_CHANNEL_BLOCKS"), String(cString: setting) == "off" { return false }
    return shoal_kernels_have_avx2() != 0 && shoal_kernels_have_avx512() == 0
  }

  /// Checks that `x` is a float32 [N, C, H, W] whose channels fill whole blocks (or, with
  /// `planes`, any number of channels).
  static func check(_ x: ValueType, _ label: String, planes: Bool = false) throws(ModelError) {
    try requireType(x, [.float32], label)
    guard x.rank == 4, planes || x.shape[1] % width == 0 else {
      throw ModelError(.invalidInput, "\(label) \(x.shape) must be [N, C, H, W] with C a multiple of \(width)")
    }
  }
}

/// Reorders an [N, C, H, W] image into channel blocks (`toBlocks`) or back, block by block.
struct ChannelBlocksReorderKernel: Kernel {
  var toBlocks: Bool

  func plan(_ inputs: [ValueType?]) throws(ModelError) -> KernelPlan {
    let x = try inputs.required(0, "X")
    try ChannelBlocks.check(x, "X")
    return KernelPlan(outputs: [ValueType(dataType: .float32, shape: x.shape)])
  }

  func run(_ inputs: [Tensor?], _ outputs: [Tensor], scratch: UnsafeMutableRawPointer?) throws(ModelError) {
    let x = inputs[0]!
    let (px, py) = (x.pointer(as: Float.self), outputs[0].mutablePointer(as: Float.self))
    let (blocks, positions) = (x.shape[1] / ChannelBlocks.width, x.shape[2] * x.shape[3])
    let imageSize = x.shape[1] * positions
    Parallel.forEachRange(x.shape[0] * blocks, costPerItem: ChannelBlocks.width * positions, multipleOf: 1) { units in
      for unit in units {
        let (n, block) = unit.quotientAndRemainder(dividingBy: blocks)
        let (source, target) = (px + n * imageSize, py + n * imageSize)
        if toBlocks {
          shoal_blocks_from_planes(source, positions, block, block + 1, target)
        } else {
          shoal_planes_from_blocks(source, positions, block, block + 1, target)
        }
      }
    }
  }
}

/// GlobalAveragePool of an image in channel blocks: its output, [N, C, 1, 1], is the same in
/// either order.
struct ChannelBlocksAverageKernel: Kernel {
  func plan(_ inputs: [ValueType?]) throws(ModelError) -> KernelPlan {
    let x = try inputs.required(0, "X")
    try ChannelBlocks.check(x, "X")
    return KernelPlan(outputs: [ValueType(dataType: .float32, shape: [x.shape[0], x.shape[1], 1, 1])])
  }

  func run(_ inputs: [Tensor?], _ outputs: [Tensor], scratch: UnsafeMutableRawPointer?) throws(ModelError) {
    let x = inputs[0]!
    let (px, py) = (x.pointer(as: Float.self), outputs[0].mutablePointer(as: Float.self))
    let (channels, positions) = (x.shape[1], x.shape[2] * x.shape[3])
    Parallel.forEachRange(x.shape[0], costPerItem: channels * positions, multipleOf: 1) { images in
      for n in images {
        shoal_global_average_blocks(
          px + n * channels * positions, channels / ChannelBlocks.width, positions, py + n * channels)
      }
    }
  }

  func flops(_ inputs: [ValueType?], _ outputs: [ValueType]) -> Int { inputs[0]?.shape.elementCount ?? 0 }
}

/// A 1×1 (stride 1, no padding), depthwise 3×3 (padding 1, stride 1 or 2) or direct (group 1,
/// square) convolution from channel blocks (a direct one also from planes) to channel blocks,
/// with the bias, a fused residual (in blocks too) and ReLU or Clip applied as each output is
/// written once. Input 1 is the weights packed at load.
struct ChannelBlocksConvKernel: Kernel {
  enum Form: Sendable {
    case pointwise
    case depthwise(stride: Int)
    /// Group 1, a square kernel with the same stride and padding on both axes; `planar`: the
    /// input is in planes, with any number of channels (a network's first layer, which so
    /// writes blocks without a reorder before it).
    case direct(kernel: Int, stride: Int, pad: Int, planar: Bool)
  }

  /// The convolution it replaces: its geometry, fused activation and residual.
  var conv: ConvKernel
  var form: Form
  /// The unpacked weights' shape, [features, channels / group, kh, kw].
  var weightShape: [Int]

  /// Whether input 0 is in planes rather than blocks.
  var readsPlanes: Bool {
    if case .direct(_, _, _, let planar) = form { return planar }
    return false
  }

  var channels: Int {
    if case .depthwise = form { return weightShape[0] }
    return weightShape[1]
  }

  /// The weights packed for the form's kernel.
  static func pack(_ weight: Tensor, _ form: Form) -> Tensor {
    let packed = Tensor(uninitialized: [weight.count], dataType: .float32)
    switch form {
    case .pointwise:
      shoal_pack_pointwise_blocks(
        weight.pointer(as: Float.self), weight.shape[0], weight.shape[1], packed.mutablePointer(as: Float.self))
    case .depthwise:
      shoal_pack_depthwise_blocks(
        weight.pointer(as: Float.self), weight.shape[0], packed.mutablePointer(as: Float.self))
    case .direct(let kernel, _, _, _):
      shoal_pack_conv_blocks(
        weight.pointer(as: Float.self), weight.shape[0], weight.shape[1], kernel * kernel,
        packed.mutablePointer(as: Float.self))
    }
    return packed
  }

  func plan(_ inputs: [ValueType?]) throws(ModelError) -> KernelPlan {
    let x = try inputs.required(0, "X")
    try ChannelBlocks.check(x, "X", planes: readsPlanes)
    guard x.shape[1] == channels else {
      throw ModelError(.invalidInput, "X has \(x.shape[1]) channels; W \(weightShape) expects \(channels)")
    }
    let geometry = try conv.geometry(x, ValueType(dataType: .float32, shape: weightShape))
    let shape = [x.shape[0], weightShape[0], geometry.output[1], geometry.output[2]]
    if let bias = inputs.optional(2), bias.shape != [weightShape[0]] {
      throw ModelError(.invalidInput, "B \(bias.shape) must be [\(weightShape[0])]")
    }
    if conv.residual != nil {
      let r = try inputs.required(3, "the residual")
      guard r.dataType == .float32, r.shape == shape else {
        throw ModelError(
          .unsupported, "the residual \(r.shape) must have the convolution's shape \(shape) (channel blocks)")
      }
    }
    return KernelPlan(outputs: [ValueType(dataType: .float32, shape: shape)])
  }

  func run(_ inputs: [Tensor?], _ outputs: [Tensor], scratch: UnsafeMutableRawPointer?) throws(ModelError) {
    let (y, py) = (outputs[0], outputs[0].mutablePointer(as: Float.self))
    compute(inputs, into: py, shape: y.shape, imageStride: y.shape.dropFirst().reduce(1, *))
    if conv.activationBounds == nil { conv.activate(py, rows: 1, stride: 0, count: y.count) }
  }

  /// The convolution into `py`, its output `shape`, each image's blocks `imageStride` floats
  /// after the previous image's (more than its own size inside a joined output,
  /// `ChannelBlocksConcatKernel`); an activation other than ReLU or Clip is left to the caller.
  func compute(_ inputs: [Tensor?], into py: UnsafeMutablePointer<Float>, shape: [Int], imageStride: Int) {
    // An empty batch (or plane) has nothing to write, and the splits below would divide by zero.
    guard !shape.contains(0) else { return }
    let x = inputs[0]!
    let (px, packed) = (x.pointer(as: Float.self), inputs[1]!.pointer(as: Float.self))
    let bias = inputs.count > 2 ? inputs[2]?.pointer(as: Float.self) : nil
    let residual = inputs.count > 3 ? inputs[3]?.pointer(as: Float.self) : nil
    let (lower, upper) = conv.activationBounds ?? (-.infinity, .infinity)
    switch form {
    case .pointwise:
      pointwise(px, packed, py, bias, residual, x.shape, shape, imageStride, lower, upper)
    case .depthwise(let stride):
      depthwise(px, packed, py, bias, residual, x.shape, shape, imageStride, stride, lower, upper)
    case .direct(let kernel, let stride, let pad, let planar):
      let geometry = shoal_conv_blocks(
        channels: x.shape[1], features: shape[1], in_h: x.shape[2], in_w: x.shape[3], out_h: shape[2],
        out_w: shape[3], kernel: kernel, stride: stride, pad: pad, planar: planar ? 1 : 0)
      direct(px, packed, py, bias, residual, geometry, batch: x.shape[0], imageStride, lower, upper)
    }
  }

  /// Splits the batch's positions (6 at a time) and, when a small batch has few, the output
  /// blocks' pairs across the cores.
  private func pointwise(
    _ px: UnsafePointer<Float>, _ packed: UnsafePointer<Float>, _ py: UnsafeMutablePointer<Float>,
    _ bias: UnsafePointer<Float>?, _ residual: UnsafePointer<Float>?, _ xShape: [Int], _ yShape: [Int],
    _ imageStride: Int, _ lower: Float, _ upper: Float
  ) {
    let (batch, channels, features, positions) = (xShape[0], xShape[1], yShape[1], yShape[2] * yShape[3])
    let (tiles, pairs) = ((positions + 5) / 6, (features / ChannelBlocks.width + 1) / 2)
    let parts = Parallel.parts
    // About 16 tiles per unit, in a multiple of the cores per image; for small planes the pairs
    // split instead when the batch alone would not share out evenly.
    var (positionChunks, pairChunks) = (1, 1)
    if tiles >= 16 {
      positionChunks = parts * ((tiles + 16 * parts - 1) / (16 * parts))
    } else if batch % parts != 0 || batch < 2 * parts {
      pairChunks = min(pairs, parts)
    }
    let tilesPerChunk = (tiles + positionChunks - 1) / positionChunks
    let units = batch * positionChunks * pairChunks
    Parallel.forEachRange(units, costPerItem: tilesPerChunk * 6 * channels * features / pairChunks, multipleOf: 1) {
      range in
      for unit in range {
        let (image, rest) = unit.quotientAndRemainder(dividingBy: positionChunks * pairChunks)
        let (chunk, pairChunk) = rest.quotientAndRemainder(dividingBy: pairChunks)
        // Chunks as even as whole tiles and pairs allow.
        let (first, end) = (
          chunk * tiles / positionChunks * 6, min(positions, (chunk + 1) * tiles / positionChunks * 6)
        )
        let (firstPair, endPair) = (pairChunk * pairs / pairChunks, (pairChunk + 1) * pairs / pairChunks)
        guard first < end, firstPair < endPair else { continue }
        shoal_pointwise_blocks(
          packed, channels, features, px + image * channels * positions, positions, first, end, firstPair, endPair,
          py + image * imageStride, bias, residual.map { $0 + image * features * positions }, lower, upper)
      }
    }
  }

  /// Splits the batch's images, each in chunks of rows (about 8 tiles of outputs each, so that a
  /// pair of output blocks' weights serves many outputs) and, when a small batch has few, the
  /// output blocks' pairs across the cores.
  private func direct(
    _ px: UnsafePointer<Float>, _ packed: UnsafePointer<Float>, _ py: UnsafeMutablePointer<Float>,
    _ bias: UnsafePointer<Float>?, _ residual: UnsafePointer<Float>?, _ g: shoal_conv_blocks, batch: Int,
    _ imageStride: Int, _ lower: Float, _ upper: Float
  ) {
    let parts = Parallel.parts
    let pairs = (g.features / ChannelBlocks.width + 1) / 2
    let rowsPerChunk = max(1, min(g.out_h, 48 / max(1, g.out_w)))
    var rowChunks = (g.out_h + rowsPerChunk - 1) / rowsPerChunk
    if batch % parts != 0 { rowChunks = min(g.out_h, (rowChunks + parts - 1) / parts * parts) }
    let pairChunks = batch * rowChunks >= 2 * parts ? 1 : min(pairs, parts)
    let (inImage, outImage) = (g.channels * g.in_h * g.in_w, g.features * g.out_h * g.out_w)
    let cost = g.out_h / rowChunks * g.out_w * g.channels * g.kernel * g.kernel * g.features / pairChunks
    Parallel.forEachRange(batch * rowChunks * pairChunks, costPerItem: cost, multipleOf: 1) { range in
      var geometry = g
      for unit in range {
        let (rows, pairChunk) = unit.quotientAndRemainder(dividingBy: pairChunks)
        let (image, chunk) = rows.quotientAndRemainder(dividingBy: rowChunks)
        // Chunks as even as whole rows and pairs allow.
        let (firstRow, endRow) = (chunk * g.out_h / rowChunks, (chunk + 1) * g.out_h / rowChunks)
        let (firstPair, endPair) = (pairChunk * pairs / pairChunks, (pairChunk + 1) * pairs / pairChunks)
        guard firstRow < endRow, firstPair < endPair else { continue }
        shoal_conv_blocks_rows(
          packed, &geometry, px + image * inImage, firstRow, endRow, firstPair, endPair, py + image * imageStride,
          bias, residual.map { $0 + image * outImage }, lower, upper)
      }
    }
  }

  /// Splits the batch's block planes, and their rows when there are few planes, across the cores.
  private func depthwise(
    _ px: UnsafePointer<Float>, _ packed: UnsafePointer<Float>, _ py: UnsafeMutablePointer<Float>,
    _ bias: UnsafePointer<Float>?, _ residual: UnsafePointer<Float>?, _ xShape: [Int], _ yShape: [Int],
    _ imageStride: Int, _ stride: Int, _ lower: Float, _ upper: Float
  ) {
    let width = ChannelBlocks.width
    let (inH, inW, outH, outW) = (xShape[2], xShape[3], yShape[2], yShape[3])
    let planes = yShape[0] * yShape[1] / width
    let blocks = yShape[1] / width
    let rowChunks = planes >= 4 * Parallel.parts ? 1 : min(outH, (4 * Parallel.parts + planes - 1) / planes)
    let rowsPerChunk = (outH + rowChunks - 1) / rowChunks
    let (inPlane, outPlane) = (inH * inW * width, outH * outW * width)
    Parallel.forEachRange(planes * rowChunks, costPerItem: rowsPerChunk * outW * width * 9, multipleOf: 1) { range in
      for unit in range {
        let (plane, chunk) = unit.quotientAndRemainder(dividingBy: rowChunks)
        let (first, end) = (chunk * rowsPerChunk, min(outH, (chunk + 1) * rowsPerChunk))
        guard first < end else { continue }
        let block = plane % blocks
        shoal_depthwise3x3_blocks_plane(
          px + plane * inPlane, inH, inW, stride, packed + block * 9 * width, bias.map { $0 + block * width },
          residual.map { $0 + plane * outPlane }, py + plane / blocks * imageStride + block * outPlane, outH, outW,
          first, end, lower, upper)
      }
    }
  }

  func flops(_ inputs: [ValueType?], _ outputs: [ValueType]) -> Int {
    2 * outputs[0].shape.elementCount * weightShape.dropFirst().reduce(1, *)
  }
}

/// Concat along the channels of convolutions in channel blocks, each writing its blocks straight
/// into the joined output (per image, one part's blocks after the other's) instead of into a
/// value of its own that Concat would then copy: SqueezeNet's fire modules. Inputs: each part's
/// X, packed weights and bias (nil when it has none), three per part.
struct ChannelBlocksConcatKernel: Kernel {
  /// The convolutions, in the order of their outputs along the channels; none with a residual,
  /// each activation ReLU, Clip or none (applied as the outputs are written).
  var parts: [ChannelBlocksConvKernel]

  func plan(_ inputs: [ValueType?]) throws(ModelError) -> KernelPlan {
    var shape: [Int]? = nil
    for (index, part) in parts.enumerated() {
      let y = try part.plan(Array(inputs[3 * index..<3 * index + 3])).outputs[0]
      guard let joined = shape else {
        shape = y.shape
        continue
      }
      guard y.shape[0] == joined[0], y.shape[2...] == joined[2...] else {
        throw ModelError(.invalidInput, "convolution \(index) gives \(y.shape); the others \(joined)")
      }
      shape![1] += y.shape[1]
    }
    return KernelPlan(outputs: [ValueType(dataType: .float32, shape: shape!)])
  }

  func run(_ inputs: [Tensor?], _ outputs: [Tensor], scratch: UnsafeMutableRawPointer?) throws(ModelError) {
    let y = outputs[0]
    let (py, positions) = (y.mutablePointer(as: Float.self), y.shape[2] * y.shape[3])
    var channels = 0
    for (index, part) in parts.enumerated() {
      let shape = [y.shape[0], part.weightShape[0], y.shape[2], y.shape[3]]
      part.compute(
        Array(inputs[3 * index..<3 * index + 3]), into: py + channels * positions, shape: shape,
        imageStride: y.shape.dropFirst().reduce(1, *))
      channels += part.weightShape[0]
    }
  }

  func flops(_ inputs: [ValueType?], _ outputs: [ValueType]) -> Int {
    let (batch, positions) = (outputs[0].shape[0], outputs[0].shape[2] * outputs[0].shape[3])
    return parts.reduce(0) { $0 + 2 * batch * positions * $1.weightShape.reduce(1, *) }
  }
}

/// MaxPool (one output, no indices) from and to channel blocks.
struct ChannelBlocksMaxPoolKernel: Kernel {
  /// The pooling it replaces, for its geometry.
  var pool: PoolKernel

  func plan(_ inputs: [ValueType?]) throws(ModelError) -> KernelPlan {
    let x = try inputs.required(0, "X")
    try ChannelBlocks.check(x, "X")
    let geometry = try pool.geometry(x.shape)
    guard geometry.input[0] == 1, geometry.dilations.allSatisfy({ $0 == 1 }) else {
      throw ModelError(.unsupported, "max pooling in channel blocks takes 2-D windows without dilation")
    }
    return KernelPlan(
      outputs: [ValueType(dataType: .float32, shape: [x.shape[0], x.shape[1], geometry.output[1], geometry.output[2]])])
  }

  func run(_ inputs: [Tensor?], _ outputs: [Tensor], scratch: UnsafeMutableRawPointer?) throws(ModelError) {
    let (x, y) = (inputs[0]!, outputs[0])
    let g = try pool.geometry(x.shape)
    let (px, py) = (x.pointer(as: Float.self), y.mutablePointer(as: Float.self))
    let width = ChannelBlocks.width
    let (inH, inW, outH, outW) = (x.shape[2], x.shape[3], y.shape[2], y.shape[3])
    let planes = x.shape[0] * x.shape[1] / width
    Parallel.forEachRange(planes * outH, costPerItem: outW * g.kernelSize * width, multipleOf: 1) { range in
      for unit in range {
        let (plane, oh) = unit.quotientAndRemainder(dividingBy: outH)
        shoal_max_pool_blocks_plane(
          px + plane * inH * inW * width, inH, inW, py + plane * outH * outW * width, outW, g.kernel[1], g.kernel[2],
          g.strides[1], g.strides[2], g.padBegin[1], g.padBegin[2], oh, oh + 1)
      }
    }
  }
}
