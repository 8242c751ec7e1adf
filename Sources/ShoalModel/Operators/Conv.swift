import CModelKernels

/// Conv: im2col and one `sgemm` per image and group (1×1 convolutions go straight to `sgemm`),
/// grouped and depthwise included; bias and a fused activation are applied to the result.
struct ConvKernel: Kernel {
  var window: WindowGeometry.Attributes
  var group: Int
  var activation: UnaryKernel.Function? = nil
  /// The shape of the constant 3×3 weights transformed at load for `winogradConvolution`,
  /// [36 or 16 matrices, features, channels]; nil when the convolution does not run as Winograd's.
  var winogradShape: [Int]? = nil
  /// Those weights, where `winogradPanels` are not (without AVX-512, for OpenBLAS).
  var winograd: Tensor? = nil
  /// Constant weights packed at load for `panelConvolution`, [features rounded up to 32, depth].
  var panels: Tensor? = nil
  /// The transformed weights' matrices packed the same way, [36 or 16, features rounded up to
  /// 32, channels] (AVX-512).
  var winogradPanels: Tensor? = nil
  /// An Add fused in at load (a residual connection): the output is the activation of
  /// conv + bias + input 3, summed while each part's outputs are still in cache. When input 3
  /// does not have the convolution's shape (broadcasting), this Add's kernel adds it afterwards.
  var residual: BinaryKernel? = nil

  func geometry(_ x: ValueType, _ w: ValueType) throws(ModelError) -> WindowGeometry {
    guard x.rank >= 3, w.rank == x.rank else {
      throw ModelError(
        .invalidInput, "X \(x.shape) and W \(w.shape) must be [N, C, spatial…] and [M, C/group, kernel…]")
    }
    let kernel = Array(w.shape.dropFirst(2))
    if let declared = window.kernelShape, declared != kernel {
      throw ModelError(.invalidModel, "kernel_shape \(declared) differs from W's \(kernel)")
    }
    return try WindowGeometry(input: Array(x.shape.dropFirst(2)), kernel: kernel, attributes: window)
  }

  func plan(_ inputs: [ValueType?]) throws(ModelError) -> KernelPlan {
    let x = try inputs.required(0, "X")
    let w = try inputs.required(1, "W")
    try requireType(x, [.float32], "X")
    try requireType(w, [.float32], "W")
    let geometry = try geometry(x, w)
    let (channels, features) = (x.shape[1], w.shape[0])
    guard group > 0, channels % group == 0, features % group == 0, w.shape[1] == channels / group else {
      throw ModelError(
        .invalidInput, "X has \(channels) channels; W \(w.shape) with group \(group) expects \(w.shape[1] * group)")
    }
    let depthwise = group > 1 && channels == group
    let columns: Int
    if depthwise {
      columns = 0
    } else if usesWinograd(geometry, channels: channels) {
      columns = winogradScratch(geometry, batch: x.shape[0], channels: channels, features: features)
    } else if usesPanels(geometry) {
      columns = panelScratch(geometry, channels: channels)
    } else if implicitUnfold(geometry, channels: channels) != nil {
      columns = 0
    } else {
      columns = geometry.isPointwise ? 0 : (channels / group) * geometry.kernelSize * geometry.outputSize
    }
    let plan = try convolutionPlan(x, features: features, geometry, bias: inputs.optional(2), columns: columns)
    guard let residual else { return plan }
    let r = try inputs.required(3, "the residual")
    if r.dataType == .float32 && r.shape == plan.outputs[0].shape { return plan }
    return KernelPlan(outputs: try residual.plan([plan.outputs[0], r]).outputs, scratchBytes: plan.scratchBytes)
  }

  func run(_ inputs: [Tensor?], _ outputs: [Tensor], scratch: UnsafeMutableRawPointer?) throws(ModelError) {
    let x = inputs[0]!
    let w = inputs[1]!
    let y = outputs[0]
    let geometry = try geometry(
      ValueType(dataType: x.dataType, shape: x.shape), ValueType(dataType: w.dataType, shape: w.shape))
    let (batch, channels, features) = (x.shape[0], x.shape[1], w.shape[0])
    let px = x.pointer(as: Float.self)
    let pw = w.pointer(as: Float.self)
    let py = y.mutablePointer(as: Float.self)
    let bias = inputs.count > 2 ? inputs[2]?.pointer(as: Float.self) : nil
    var residual: ResidualInput? = nil
    if let add = self.residual, let r = inputs[3] {
      let shape = [batch, features] + geometry.output.suffix(x.rank - 2)
      guard r.dataType == .float32 && r.shape == shape else {
        // Broadcasting: the convolution alone, then the Add (and the activation) as a node would.
        var plain = self
        (plain.residual, plain.activation) = (nil, nil)
        let convolved = Tensor(uninitialized: shape, dataType: .float32)
        try plain.run(Array(inputs.prefix(3)), [convolved], scratch: scratch)
        var combine = add
        combine.activation = activation
        try combine.run([convolved, r], outputs, scratch: nil)
        return
      }
      residual = ResidualInput(source: r.pointer(as: Float.self), output: py)
    }
    if group > 1 && channels == group {
      if geometry.kernel == [1, 3, 3] && geometry.dilations == [1, 1, 1] && geometry.input[0] == 1
        && geometry.strides[1] <= 2 && geometry.strides[2] <= 2
      {
        depthwise3x3(
          geometry, px, pw, py, bias, residual, planes: batch * features, perChannel: features / group)
      } else {
        depthwise(geometry, px, pw, py, bias, residual, planes: batch * features, perChannel: features / group)
      }
    } else if usesWinograd(geometry, channels: channels) {
      winogradConvolution(
        geometry, px, py, bias, residual, scratch!.assumingMemoryBound(to: Float.self), batch: batch,
        channels: channels, features: features)
    } else if usesPanels(geometry) {
      panelConvolution(
        geometry, px, py, bias, residual, scratch!.assumingMemoryBound(to: Float.self), batch: batch,
        channels: channels, features: features)
    } else {
      let columns = scratch?.assumingMemoryBound(to: Float.self)
      unfoldAndMultiply(
        geometry, px, pw, py, bias, residual, columns, batch: batch, channels: channels, features: features)
    }
  }

  /// The fused activation as the bounds a kernel clamps its outputs to as it writes them: none,
  /// ReLU and Clip; nil for the others (applied after).
  var activationBounds: (lower: Float, upper: Float)? {
    switch activation {
    case nil: (-.infinity, .infinity)
    case .relu: (0, .infinity)
    case .clip(let lower, let upper): (Float(lower), Float(upper))
    default: nil
    }
  }

  /// Applies the fused activation (if any) to `count` outputs of each of `rows` rows `stride`
  /// apart from `output` on, after a kernel that did not apply it as it wrote them.
  func activate(_ output: UnsafeMutablePointer<Float>, rows: Int, stride: Int, count: Int) {
    guard let activation else { return }
    for m in 0..<rows { UnaryKernel.apply(activation, output + m * stride, output + m * stride, count) }
  }

  /// Adds feature `feature`'s bias and the fused residual to `count` outputs and applies the
  /// fused activation, in the parallel part that computed them, while they are still in cache.
  func finish(
    _ output: UnsafeMutablePointer<Float>, count: Int, feature: Int, _ bias: UnsafePointer<Float>?,
    _ residual: ResidualInput?
  ) {
    if let bias {
      let value = bias[feature]
      for i in 0..<count { output[i] += value }
    }
    if let residual {
      let source = residual.source + (output - residual.output)
      for i in 0..<count { output[i] += source[i] }
    }
    if let activation { UnaryKernel.apply(activation, output, output, count) }
  }

  /// im2col and a GEMM per image and group, each core taking a range of output positions: with
  /// weights packed at load `shoal_gemm_rows` (AVX-512) or `shoal_gemm_rows_avx2`, otherwise
  /// OpenBLAS onto an output filled with bias and residual. Without AVX-512 a batch's 1×1
  /// convolutions run as one loop (`pointwiseOverTheBatch`).
  private func unfoldAndMultiply(
    _ geometry: WindowGeometry, _ px: UnsafePointer<Float>, _ pw: UnsafePointer<Float>,
    _ py: UnsafeMutablePointer<Float>, _ bias: UnsafePointer<Float>?, _ residual: ResidualInput?,
    _ columns: UnsafeMutablePointer<Float>?, batch: Int, channels: Int, features: Int
  ) {
    let (groupChannels, groupFeatures) = (channels / group, features / group)
    let depth = groupChannels * geometry.kernelSize
    let (inSize, outSize) = (geometry.inputSize, geometry.outputSize)
    let bounds = activationBounds
    if batch > 1, group == 1, geometry.isPointwise, shoal_kernels_have_avx512() == 0,
      let packedWeights = panels?.pointer(as: Float.self),
      !(outSize < 2 * Self.minimumColumnsPerPart && features >= 2 * Self.minimumColumnsPerPart)
    {
      pointwiseOverTheBatch(
        packedWeights, px, py, bias, residual, batch: batch, channels: channels, features: features, positions: outSize)
      return
    }
    for n in 0..<batch {
      for g in 0..<group {
        let image = px + (n * channels + g * groupChannels) * inSize
        let weights = pw + g * groupFeatures * depth
        let output = py + (n * features + g * groupFeatures) * outSize
        let groupBias = bias.map { $0 + g * groupFeatures }
        if outSize < 2 * Self.minimumColumnsPerPart && groupFeatures >= 2 * Self.minimumColumnsPerPart {
          // Few output positions (the late layers): unfold once, then split the features instead.
          if !geometry.isPointwise {
            geometry.im2col(image, channels: groupChannels, columns: 0..<outSize, into: columns!)
          }
          let source = geometry.isPointwise ? image : UnsafePointer(columns!)
          Parallel.forEachRange(groupFeatures, costPerItem: outSize * depth) { rows in
            let beta = Self.prefill(output, rows, 0..<outSize, outSize, groupBias, residual)
            Blas.serialGemm(
              transA: false, transB: false, m: rows.count, n: outSize, k: depth, alpha: 1,
              weights + rows.lowerBound * depth,
              lda: depth, source, ldb: outSize, beta: beta, output + rows.lowerBound * outSize, ldc: outSize)
            guard activation != nil else { return }
            for m in rows { finish(output + m * outSize, count: outSize, feature: m, nil, nil) }
          }
          continue
        }
        let packedWeights = group == 1 ? panels?.pointer(as: Float.self) : nil
        var relu = false
        if case .relu = activation { relu = true }
        if let packedWeights, var conv = implicitUnfold(geometry, channels: channels) {
          Parallel.forEachRange(outSize, costPerItem: groupFeatures * depth, multipleOf: Self.rowGranule) { part in
            let pack = Self.rowPack(depth: depth)
            defer { pack.deallocate() }
            let out = output + part.lowerBound
            shoal_conv_rows(
              packedWeights, groupFeatures, image, &conv, part.lowerBound, part.count, out, outSize, groupBias,
              residual.map { UnsafePointer($0.source + (out - $0.output)) }, relu ? 1 : 0, pack)
            if !relu { activate(out, rows: groupFeatures, stride: outSize, count: part.count) }
          }
          continue
        }
        let block = Self.blockColumns(depth: depth, features: groupFeatures, packedWeights: packedWeights != nil)
        let granule = packedWeights == nil ? 8 : Self.rowGranule
        Parallel.forEachRange(outSize, costPerItem: groupFeatures * depth, multipleOf: granule) { part in
          // With weights packed at load, 8 × 32 tiles (AVX-512) or 6 × 16 (AVX2) that write each
          // output once.
          let pack = packedWeights.map { _ in Self.rowPack(depth: depth) }
          defer { pack?.deallocate() }
          for start in stride(from: part.lowerBound, to: part.upperBound, by: block) {
            let positions = start..<min(part.upperBound, start + block)
            var (source, ldb) = (image + positions.lowerBound, outSize)
            if !geometry.isPointwise {
              // Each block is unfolded into the same part of the scratch (this core's own, inside
              // the columns its range would take), which stays in the core's cache.
              let unfolded = columns! + part.lowerBound * depth
              geometry.im2col(image, channels: groupChannels, columns: positions, into: unfolded, compact: true)
              (source, ldb) = (UnsafePointer(unfolded), positions.count)
            }
            if let packedWeights, let pack {
              let out = output + positions.lowerBound
              let more = residual.map { UnsafePointer($0.source + (out - $0.output)) }
              if shoal_kernels_have_avx512() == 0 {
                let (lower, upper) = bounds ?? (-.infinity, .infinity)
                shoal_gemm_rows_avx2(
                  packedWeights, groupFeatures, depth, source, ldb, positions.count, out, outSize, groupBias, more,
                  lower, upper, pack)
                if bounds == nil { activate(out, rows: groupFeatures, stride: outSize, count: positions.count) }
                continue
              }
              shoal_gemm_rows(
                packedWeights, groupFeatures, depth, source, ldb, positions.count, out, outSize, groupBias, more,
                relu ? 1 : 0, pack)
              if !relu { activate(out, rows: groupFeatures, stride: outSize, count: positions.count) }
              continue
            }
            let beta = Self.prefill(output, 0..<groupFeatures, positions, outSize, groupBias, residual)
            Blas.serialGemm(
              transA: false, transB: false, m: groupFeatures, n: positions.count, k: depth, alpha: 1, weights,
              lda: depth, source, ldb: ldb, beta: beta, output + positions.lowerBound, ldc: outSize)
            guard activation != nil else { continue }
            for m in 0..<groupFeatures {
              finish(output + m * outSize + positions.lowerBound, count: positions.count, feature: m, nil, nil)
            }
          }
        }
      }
    }
  }

  /// Without AVX-512, a 1×1 convolution of a batch on `shoal_gemm_rows_avx2` as one parallel
  /// loop over every image's blocks of 32 positions: the cores are handed one loop per layer
  /// instead of one per image, and share the blocks evenly (a 14×14 image's 196 positions alone
  /// split as 112 and 84).
  private func pointwiseOverTheBatch(
    _ weights: UnsafePointer<Float>, _ px: UnsafePointer<Float>, _ py: UnsafeMutablePointer<Float>,
    _ bias: UnsafePointer<Float>?, _ residual: ResidualInput?, batch: Int, channels: Int, features: Int,
    positions: Int
  ) {
    let blocks = (positions + 31) / 32
    let bounds = activationBounds
    let (lower, upper) = bounds ?? (-.infinity, .infinity)
    Parallel.forEachRange(batch * blocks, costPerItem: features * channels * 32, multipleOf: 1) { units in
      let pack = Self.rowPack(depth: channels)
      defer { pack.deallocate() }
      for unit in units {
        let (n, block) = unit.quotientAndRemainder(dividingBy: blocks)
        let (start, count) = (block * 32, min(32, positions - block * 32))
        let out = py + n * features * positions + start
        shoal_gemm_rows_avx2(
          weights, features, channels, px + n * channels * positions + start, positions, count, out, positions, bias,
          residual.map { UnsafePointer($0.source + (out - $0.output)) }, lower, upper, pack)
        if bounds == nil { activate(out, rows: features, stride: positions, count: count) }
      }
    }
  }

  /// Fills `columns` of `rows` of the [features × outSize] output with each row's bias plus the
  /// fused residual, so that the GEMM adds onto it (beta 1) instead of first zeroing the output
  /// (beta 0, returned when there is neither).
  private static func prefill(
    _ output: UnsafeMutablePointer<Float>, _ rows: Range<Int>, _ columns: Range<Int>, _ outSize: Int,
    _ bias: UnsafePointer<Float>?, _ residual: ResidualInput?
  ) -> Double {
    if let residual {
      for m in rows {
        let line = output + m * outSize + columns.lowerBound
        let source = residual.source + (line - residual.output)
        let value = bias?[m] ?? 0
        for i in 0..<columns.count { line[i] = source[i] + value }
      }
      return 1
    }
    guard let bias else { return 0 }
    for m in rows { (output + m * outSize + columns.lowerBound).update(repeating: bias[m], count: columns.count) }
    return 1
  }

  /// The output positions a core unfolds, multiplies and finishes at a time: as many as keep
  /// the unfolded columns and the outputs within about 512 KiB (in the core's L2 cache), and at
  /// least 256 for OpenBLAS (so that its packing of the weights, per call, stays a small cost);
  /// with weights packed at load, whole blocks of 32 columns for `shoal_gemm_rows`, at least one.
  static func blockColumns(depth: Int, features: Int, packedWeights: Bool = false) -> Int {
    let fitting = (1 << 17) / max(1, depth + features)
    return packedWeights ? max(32, fitting & ~31) : max(256, fitting & ~15)
  }

  /// The output positions per core on `shoal_gemm_rows` and `shoal_conv_rows` come in multiples
  /// of 16: their tiles are 32 positions wide and a last one of at most 16 costs half, so a
  /// 28×28 layer's 784 positions cost the cores 12 and 12½ tiles (400 and 384 positions), where
  /// 392 each would cost 13 and 13.
  static let rowGranule = 16

  /// Below this many output positions per core, a convolution splits its features across the
  /// cores instead (GEMM kernels lose efficiency on narrow column blocks).
  static let minimumColumnsPerPart = 64

  /// Depthwise convolution (one input channel per group) computed directly, plane by plane:
  /// for each kernel tap, a scaled input line is added to the output line.
  private func depthwise(
    _ g: WindowGeometry, _ px: UnsafePointer<Float>, _ pw: UnsafePointer<Float>, _ py: UnsafeMutablePointer<Float>,
    _ bias: UnsafePointer<Float>?, _ residual: ResidualInput?, planes: Int, perChannel: Int
  ) {
    let (inD, inH, inW) = (g.input[0], g.input[1], g.input[2])
    let (outD, outH, outW) = (g.output[0], g.output[1], g.output[2])
    let (kD, kH, kW) = (g.kernel[0], g.kernel[1], g.kernel[2])
    let (sD, sH, sW) = (g.strides[0], g.strides[1], g.strides[2])
    let (dD, dH, dW) = (g.dilations[0], g.dilations[1], g.dilations[2])
    let (pD, pH, pW) = (g.padBegin[0], g.padBegin[1], g.padBegin[2])
    let (inSize, outSize, kernelSize) = (g.inputSize, g.outputSize, g.kernelSize)
    let features = perChannel * group
    // Per kernel column: the output positions whose input position is inside the line.
    let spans = (0..<kW).map { kw -> (shift: Int, low: Int, high: Int) in
      let shift = kw * dW - pW
      let low = shift >= 0 ? 0 : (-shift + sW - 1) / sW
      let high = min(outW, inW - 1 - shift < 0 ? 0 : (inW - 1 - shift) / sW + 1)
      return (shift, low, high)
    }
    Parallel.forEachRange(planes, costPerItem: outSize * kernelSize) { range in
      for plane in range {
        // Output plane `plane` = (n, m) reads input channel (n, m / perChannel).
        let image = px + (plane / perChannel) * inSize
        let kernel = pw + (plane % features) * kernelSize
        let out = py + plane * outSize
        out.update(repeating: 0, count: outSize)
        for od in 0..<outD {
          for kd in 0..<kD {
            let id = od * sD - pD + kd * dD
            guard id >= 0, id < inD else { continue }
            for oh in 0..<outH {
              let line = out + (od * outH + oh) * outW
              for kh in 0..<kH {
                let ih = oh * sH - pH + kh * dH
                guard ih >= 0, ih < inH else { continue }
                let source = image + (id * inH + ih) * inW
                for kw in 0..<kW {
                  let weight = kernel[(kd * kH + kh) * kW + kw]
                  let (shift, low, high) = spans[kw]
                  guard low < high else { continue }
                  if sW == 1 {
                    for ow in low..<high { line[ow] += weight * source[ow + shift] }
                  } else {
                    for ow in low..<high { line[ow] += weight * source[ow * sW + shift] }
                  }
                }
              }
            }
          }
        }
        finish(out, count: outSize, feature: plane % features, bias, residual)
      }
    }
  }

  /// Stride-1 depthwise planes narrower than this run on `shoal_depthwise3x3_flat` (with
  /// AVX-512). In MobileNet-v2 its 28×28, 14×14 and 7×7 layers took 0.018–0.046 ms there against
  /// 0.061–0.082 on rows; its 56×56 and 112×112 ones were slower (0.13 against 0.115, 0.22
  /// against 0.10), as were its stride-2 layers with gathers in place of the loads (0.54 against
  /// 0.21 ms).
  static let flatDepthwiseWidth = 32

  /// 3×3 depthwise convolution (MobileNet's), stride 1 or 2. Narrow stride-1 planes that keep
  /// their size, with AVX-512: 16 outputs of the flattened plane at a time straight from the
  /// input (`shoal_depthwise3x3_flat`, each tap's in-bounds lanes worked out once per layer), so
  /// a 14×14 or 7×7 plane fills whole vectors where its rows would leave lanes idle. Otherwise
  /// each input plane is first copied into a zero-bordered plane, so every output element sums
  /// its nine products with no bounds checks and contiguous loads. For stride 2 the copy splits
  /// each row into its even and odd columns, so that the three taps of a row are again three
  /// contiguous lines.
  private func depthwise3x3(
    _ g: WindowGeometry, _ px: UnsafePointer<Float>, _ pw: UnsafePointer<Float>, _ py: UnsafeMutablePointer<Float>,
    _ bias: UnsafePointer<Float>?, _ residual: ResidualInput?, planes: Int, perChannel: Int
  ) {
    let (inH, inW, outH, outW) = (g.input[1], g.input[2], g.output[1], g.output[2])
    let (sH, sW, pH, pW) = (g.strides[1], g.strides[2], g.padBegin[1], g.padBegin[2])
    let (inSize, outSize) = (g.inputSize, g.outputSize)
    let features = perChannel * group
    // The rows and columns the windows cover, borders included; for stride 2 a row holds its
    // even columns, then its odd ones.
    let (rows, width) = ((outH - 1) * sH + 3, (outW - 1) * sW + 3)
    let evenWidth = (width + 1) / 2
    let rowLength = sW == 1 ? width : 2 * evenWidth
    let (low, high) = (min(pW, width), min(width, pW + inW))
    // No activation, ReLU and Clip are bounds the kernel applies itself (without a residual).
    let bounds = residual == nil ? activationBounds : nil
    if shoal_kernels_have_avx512() != 0 && sH == 1 && sW == 1 && inH == outH && inW == outW
      && outW < Self.flatDepthwiseWidth
    {
      // 16 outputs at a time straight from the input plane, no bordered copy.
      let count = shoal_depthwise3x3_blocks(outH, outW)
      var blocks = [shoal_depthwise_block](repeating: shoal_depthwise_block(), count: count)
      shoal_depthwise3x3_prepare(outH, outW, pH, pW, &blocks)
      blocks.withUnsafeBufferPointer { blocks in
        Parallel.forEachRange(planes, costPerItem: outSize * 9) { range in
          for plane in range {
            let (image, out) = (px + (plane / perChannel) * inSize, py + plane * outSize)
            let w = pw + (plane % features) * 9
            let (low, high) = bounds ?? (-.infinity, .infinity)
            let value = bounds == nil ? 0 : bias?[plane % features] ?? 0
            shoal_depthwise3x3_flat(image, inW, blocks.baseAddress, count, w, value, low, high, out)
            if bounds == nil { finish(out, count: outSize, feature: plane % features, bias, residual) }
          }
        }
      }
      return
    }
    Parallel.forEachRange(planes, costPerItem: outSize * 9) { range in
      // Zeroed once: every plane writes the same interior, so the borders stay zero.
      let padded = UnsafeMutablePointer<Float>.allocate(capacity: rows * rowLength)
      defer { padded.deallocate() }
      padded.update(repeating: 0, count: rows * rowLength)
      let inputRows = max(0, pH)..<min(rows, pH + inH)
      for plane in range {
        let image = px + (plane / perChannel) * inSize
        for r in inputRows {
          let row = padded + r * rowLength
          // Padded columns low..<high hold input columns 0..<high - low.
          let source = image + (r - pH) * inW - pW
          if sW == 1 {
            for i in low..<high { row[i] = source[i] }
            continue
          }
          let odd = row + evenWidth
          let (firstEven, firstOdd) = (low + (low & 1), low | 1)
          let (evens, odds) = (max(0, (high - firstEven + 1) / 2), max(0, (high - firstOdd + 1) / 2))
          let (evenRow, evenSource) = (row + firstEven / 2, source + firstEven)
          let (oddRow, oddSource) = (odd + firstOdd / 2, source + firstOdd)
          for i in 0..<evens { evenRow[i] = evenSource[2 &* i] }
          for i in 0..<odds { oddRow[i] = oddSource[2 &* i] }
        }
        let w = pw + (plane % features) * 9
        let out = py + plane * outSize
        // A row's three taps for output ow are at ow, ow + tap1 and ow + tap2: neighbours for
        // stride 1; for stride 2 the even column, the odd one, the next even one.
        let (tap1, tap2) = sW == 1 ? (1, 2) : (evenWidth, 1)
        if let (low, high) = bounds {
          // Bias and activation applied by the kernel as it writes.
          let value = bias?[plane % features] ?? 0
          shoal_depthwise3x3_plane(padded, rowLength, sH * rowLength, tap1, tap2, w, value, low, high, out, outH, outW)
          continue
        }
        shoal_depthwise3x3_plane(
          padded, rowLength, sH * rowLength, tap1, tap2, w, 0, -.infinity, .infinity, out, outH, outW)
        finish(out, count: outSize, feature: plane % features, bias, residual)
      }
    }
  }

  /// Fills `row` (`width` floats) with input row `ih` of `image` [height × inW] placed at
  /// padded columns `columns` (input column = padded column − `shift`), zeros elsewhere: one
  /// row of a zero-bordered copy of the plane.
  static func copyBordered(
    _ image: UnsafePointer<Float>, _ height: Int, _ inW: Int, row ih: Int, columns: Range<Int>, shift: Int,
    into row: UnsafeMutablePointer<Float>, _ width: Int
  ) {
    guard ih >= 0, ih < height else {
      row.update(repeating: 0, count: width)
      return
    }
    row.update(repeating: 0, count: columns.lowerBound)
    (row + columns.lowerBound).update(from: image + ih * inW - shift + columns.lowerBound, count: columns.count)
    (row + columns.upperBound).update(repeating: 0, count: width - columns.upperBound)
  }

  func flops(_ inputs: [ValueType?], _ outputs: [ValueType]) -> Int {
    guard let w = inputs[1] else { return 0 }
    return 2 * outputs[0].shape.elementCount * w.shape.dropFirst().reduce(1, *)
  }

  static let builders: [String: OperatorBuilder] = [
    "Conv": { context in
      ConvKernel(
        window: try WindowGeometry.Attributes(context.attributes, pooling: false),
        group: context.attributes.int("group", default: 1))
    }
  ]
}

/// ConvTranspose: one `sgemm` (Wᵀ · X) per image and group into columns, folded back with col2im.
struct ConvTransposeKernel: Kernel {
  var window: WindowGeometry.Attributes
  var group: Int
  var outputPadding: [Int]?
  var outputShape: [Int]?

  func geometry(_ x: [Int], _ w: [Int]) throws(ModelError) -> WindowGeometry {
    guard x.count >= 3, w.count == x.count else {
      throw ModelError(.invalidInput, "X \(x) and W \(w) must be [N, C, spatial…] and [C, M/group, kernel…]")
    }
    return try WindowGeometry(
      transposedInput: Array(x.dropFirst(2)), kernel: window.kernelShape ?? Array(w.dropFirst(2)), attributes: window,
      outputPadding: outputPadding, outputShape: outputShape)
  }

  func plan(_ inputs: [ValueType?]) throws(ModelError) -> KernelPlan {
    let x = try inputs.required(0, "X")
    let w = try inputs.required(1, "W")
    try requireType(x, [.float32], "X")
    let geometry = try geometry(x.shape, w.shape)
    guard group > 0, x.shape[1] == w.shape[0], x.shape[1] % group == 0 else {
      throw ModelError(.invalidInput, "X has \(x.shape[1]) channels; W \(w.shape) expects \(w.shape[0])")
    }
    let features = w.shape[1] * group
    let columns = w.shape[1] * geometry.kernelSize * geometry.inputSize
    return try convolutionPlan(x, features: features, geometry, bias: inputs.optional(2), columns: columns)
  }

  func run(_ inputs: [Tensor?], _ outputs: [Tensor], scratch: UnsafeMutableRawPointer?) throws(ModelError) {
    let x = inputs[0]!
    let w = inputs[1]!
    let y = outputs[0]
    let geometry = try geometry(x.shape, w.shape)
    let (batch, channels) = (x.shape[0], x.shape[1])
    let groupChannels = channels / group
    let groupFeatures = w.shape[1]
    let features = groupFeatures * group
    let depth = groupFeatures * geometry.kernelSize
    let (inSize, outSize) = (geometry.inputSize, geometry.outputSize)
    let px = x.pointer(as: Float.self)
    let pw = w.pointer(as: Float.self)
    let py = y.mutablePointer(as: Float.self)
    let columns = scratch!.assumingMemoryBound(to: Float.self)
    py.update(repeating: 0, count: y.count)
    for n in 0..<batch {
      for g in 0..<group {
        Blas.gemm(
          transA: true, transB: false, m: depth, n: inSize, k: groupChannels, alpha: 1, pw + g * groupChannels * depth,
          lda: depth, px + (n * channels + g * groupChannels) * inSize, ldb: inSize, beta: 0, columns, ldc: inSize)
        geometry.col2im(columns, channels: groupFeatures, into: py + (n * features + g * groupFeatures) * outSize)
      }
    }
    if let b = inputs.count > 2 ? inputs[2] : nil {
      let bias = b.pointer(as: Float.self)
      for n in 0..<batch {
        for m in 0..<features {
          let plane = py + (n * features + m) * outSize
          for i in 0..<outSize { plane[i] += bias[m] }
        }
      }
    }
  }

  func flops(_ inputs: [ValueType?], _ outputs: [ValueType]) -> Int {
    guard let x = inputs[0], let w = inputs[1] else { return 0 }
    return 2 * x.shape.elementCount * w.shape.dropFirst().reduce(1, *)
  }

  static let builders: [String: OperatorBuilder] = [
    "ConvTranspose": { context in
      ConvTransposeKernel(
        window: try WindowGeometry.Attributes(context.attributes, pooling: false),
        group: context.attributes.int("group", default: 1), outputPadding: context.attributes.ints("output_padding"),
        outputShape: context.attributes.ints("output_shape"))
    }
  ]
}

/// A fused residual's elements, `source`, laid out as the convolution's output at `output`.
struct ResidualInput {
  let source: UnsafePointer<Float>
  let output: UnsafeMutablePointer<Float>
}

/// A (transposed) convolution's output, [N, features, spatial…], after checking its bias, with
/// scratch for `columns` floats.
private func convolutionPlan(
  _ x: ValueType, features: Int, _ geometry: WindowGeometry, bias: ValueType?, columns: Int
) throws(ModelError) -> KernelPlan {
  if let bias, bias.shape != [features] {
    throw ModelError(.invalidInput, "B \(bias.shape) must be [\(features)]")
  }
  let shape = [x.shape[0], features] + geometry.output.suffix(x.rank - 2)
  return KernelPlan(outputs: [ValueType(dataType: .float32, shape: shape)], scratchBytes: columns * 4)
}
