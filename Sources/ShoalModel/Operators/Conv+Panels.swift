import CModelKernels

/// Convolutions with few output positions (ResNet's last two stages: 14×14 and 7×7) on an AVX-512
/// kernel that keeps 32 features, not a row of positions, in each pair of vector registers.
///
/// A GEMM that vectorises along a row of output positions wastes lanes when a row is short: 49
/// positions fill four 16-wide vectors, a quarter of them idle, and OpenBLAS packs the whole
/// weight matrix again on every call for those 49 columns. Here the weights are packed once at
/// load into panels of 32 features ([depth][32]); per run the unfolded input is packed into
/// tiles of 12 positions ([depth][12]), and each (panel, tile) pair sums over the whole depth in
/// 24 registers, writing its outputs once with the bias and a fused ReLU applied.
///
/// Convolutions with more positions use the same packed weights in `unfoldAndMultiply`, through
/// `shoal_gemm_rows` (8 features × 32 positions per tile, vectorised along the positions). CPUs
/// with AVX2 and FMA but no AVX-512 (AMD's before Zen 4, many laptops) get the packed weights
/// too, for `shoal_gemm_rows_avx2` (6 features × 16 positions per tile), which writes ReLU and
/// Clip as it stores; the panel kernel and packing from the image stay AVX-512's.
extension ConvKernel {
  /// The most output positions (per image) for which the panel kernel runs instead of OpenBLAS.
  static let panelMaximumPositions = 256

  /// Whether this convolution runs on the panel kernel (`panels` packed at load, AVX-512).
  func usesPanels(_ g: WindowGeometry) -> Bool {
    panels != nil && group == 1 && g.outputSize <= Self.panelMaximumPositions && shoal_kernels_have_avx512() != 0
  }

  /// Scratch floats: the packed tiles, and the unfolded input they are packed from (unless
  /// they are packed straight from the image).
  func panelScratch(_ g: WindowGeometry, channels: Int) -> Int {
    let depth = channels * g.kernelSize
    return depth * g.outputSize * (g.isPointwise || implicitUnfold(g, channels: channels) != nil ? 1 : 2)
  }

  /// Constant weights [features, channels, kernel…] packed into panels of 32 features for
  /// `shoal_gemm_panels` (AVX-512) and `shoal_gemm_rows` (AVX-512, or AVX2 and FMA); nil when the
  /// CPU has neither (or `SHOAL_KERNELS` is `portable`).
  static func panelWeights(_ w: Tensor) -> Tensor? {
    guard shoal_kernels_have_avx512() != 0 || shoal_kernels_have_avx2() != 0, w.dataType == .float32, w.rank >= 3
    else { return nil }
    let features = w.shape[0]
    let depth = w.count / max(1, features)
    let rows = (features + Int(SHOAL_PANEL_ROWS) - 1) / Int(SHOAL_PANEL_ROWS) * Int(SHOAL_PANEL_ROWS)
    let packed = Tensor(uninitialized: [rows, depth], dataType: .float32)
    shoal_pack_panels(w.pointer(as: Float.self), features, depth, packed.mutablePointer(as: Float.self))
    return packed
  }

  /// The buffer `shoal_gemm_rows` packs a block of 32 columns of B into: depth · 32 floats,
  /// 64-byte aligned; the caller deallocates it.
  static func rowPack(depth: Int) -> UnsafeMutablePointer<Float> {
    UnsafeMutableRawPointer.allocate(byteCount: depth * 32 * MemoryLayout<Float>.size, alignment: 64).bindMemory(
      to: Float.self, capacity: depth * 32)
  }

  /// The geometry from which `shoal_conv_rows` packs the unfolded input itself, for
  /// `unfoldAndMultiply`: with weights packed at load (AVX-512), one group, one or two spatial
  /// axes and a column stride of 1, or of 2 with at most 3 kernel columns. Nil otherwise (the
  /// input is unfolded first).
  ///
  /// With a column stride of 2 each kernel column costs a permutation per step of k, where
  /// `WindowGeometry.im2col` splits an input row into its even and odd columns once for all the
  /// kernel's columns: on ResNet-50's 7×7 stem the unfolding stays ahead (1.40 against 1.42–1.50
  /// ms alone), on its 3×3 and 1×1 stride-2 layers packing from the image is (1.25 against 1.44,
  /// 1.07 against 1.23 ms).
  func implicitUnfold(_ g: WindowGeometry, channels: Int) -> shoal_conv2d? {
    guard panels != nil, shoal_kernels_have_avx512() != 0, group == 1, !g.isPointwise, g.input[0] == 1,
      g.kernel[0] == 1, g.output[0] == 1,
      g.strides[2] == 1 || (g.strides[2] == 2 && g.kernel[2] <= 3)
    else { return nil }
    return shoal_conv2d(
      channels: channels, in_h: g.input[1], in_w: g.input[2], out_w: g.output[2], k_h: g.kernel[1], k_w: g.kernel[2],
      s_h: g.strides[1], s_w: g.strides[2], p_h: g.padBegin[1], p_w: g.padBegin[2], d_h: g.dilations[1],
      d_w: g.dilations[2])
  }

  func panelConvolution(
    _ g: WindowGeometry, _ px: UnsafePointer<Float>, _ py: UnsafeMutablePointer<Float>, _ bias: UnsafePointer<Float>?,
    _ residual: ResidualInput?, _ scratch: UnsafeMutablePointer<Float>, batch: Int, channels: Int, features: Int
  ) {
    let weights = panels!.pointer(as: Float.self)
    let depth = channels * g.kernelSize
    let (inSize, outSize) = (g.inputSize, g.outputSize)
    let tileColumns = Int(SHOAL_TILE_COLUMNS)
    let tiles = (outSize + tileColumns - 1) / tileColumns
    let panelCount = (features + Int(SHOAL_PANEL_ROWS) - 1) / Int(SHOAL_PANEL_ROWS)
    let packed = scratch
    let columns = scratch + depth * outSize
    let implicit = implicitUnfold(g, channels: channels)
    // The kernel adds the residual and applies a ReLU itself; other activations come after.
    var relu = false
    if case .relu = activation { relu = true }
    for n in 0..<batch {
      let image = px + n * channels * inSize
      let output = py + n * features * outSize
      Parallel.forEachRange(tiles, costPerItem: depth * tileColumns, multipleOf: 1) { range in
        if var conv = implicit {
          shoal_pack_conv_tiles(image, &conv, outSize, range.lowerBound, range.upperBound, packed)
          return
        }
        let positions = range.lowerBound * tileColumns..<min(outSize, range.upperBound * tileColumns)
        var source = image
        if !g.isPointwise {
          g.im2col(image, channels: channels, columns: positions, into: columns)
          source = UnsafePointer(columns)
        }
        shoal_pack_tiles(source, depth, outSize, outSize, range.lowerBound, range.upperBound, packed)
      }
      Parallel.forEachRange(
        panelCount * tiles, costPerItem: depth * Int(SHOAL_PANEL_ROWS) * tileColumns, multipleOf: 1
      ) { units in
        shoal_gemm_panels(
          weights, features, depth, packed, outSize, output, outSize, bias,
          residual.map { UnsafePointer($0.source + (output - $0.output)) }, relu ? 1 : 0, units.lowerBound,
          units.upperBound)
        guard let activation, !relu else { return }
        for unit in units {
          let (panel, tile) = unit.quotientAndRemainder(dividingBy: tiles)
          let start = tile * tileColumns
          let width = min(tileColumns, outSize - start)
          for m in panel * Int(SHOAL_PANEL_ROWS)..<min(features, (panel + 1) * Int(SHOAL_PANEL_ROWS)) {
            let line = output + m * outSize + start
            UnaryKernel.apply(activation, line, line, width)
          }
        }
      }
    }
  }
}
