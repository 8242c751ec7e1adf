import CModelKernels

/// Winograd's minimal filtering F(2×2, 3×3) for 3×3 convolutions with stride 1 (the bulk of
/// ResNet's and VGG's work): each 2×2 block of outputs takes 16 multiplications per channel
/// pair instead of 36, and those multiplications are 16 GEMMs, so OpenBLAS still does the work.
///
/// With `d` a 4×4 input tile and `g` a 3×3 filter, the 2×2 output tile is
/// `Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A` (Lavin and Gray, "Fast Algorithms for Convolutional Neural
/// Networks", 2015). `G g Gᵀ` is computed once at load (`winogradWeights`); per run, the input
/// tiles are transformed, the 16 element positions multiplied as GEMMs over all channels and
/// tiles, and the products transformed back.
extension ConvKernel {
  /// The fewest input channels and features for which the transforms pay for themselves.
  static let winogradMinimumChannels = 16

  /// Whether this convolution runs as F(2×2, 3×3) on `g` with `channels` input channels.
  func usesWinograd(_ g: WindowGeometry, channels: Int) -> Bool {
    guard let winograd, group == 1, channels >= Self.winogradMinimumChannels else { return false }
    return winograd.shape[2] == channels && g.input[0] == 1 && g.kernel == [1, 3, 3] && g.strides == [1, 1, 1]
      && g.dilations == [1, 1, 1]
  }

  /// The 2×2 output tiles of one image: rows and columns.
  static func winogradTiles(_ g: WindowGeometry) -> (rows: Int, columns: Int) {
    ((g.output[1] + 1) / 2, (g.output[2] + 1) / 2)
  }

  /// Whether the 16 GEMMs, with `tiles` columns each, run on the panel kernel.
  func winogradUsesPanels(tiles: Int) -> Bool {
    winogradPanels != nil && tiles <= Self.panelMaximumPositions
  }

  /// Scratch floats: the transformed inputs and the GEMMs' products, 16 matrices each, and on
  /// the panel kernel the transformed inputs packed into its tiles.
  func winogradScratch(_ g: WindowGeometry, batch: Int, channels: Int, features: Int) -> Int {
    let (rows, columns) = Self.winogradTiles(g)
    let tiles = batch * rows * columns
    return 16 * (channels + features + (winogradUsesPanels(tiles: tiles) ? channels : 0)) * tiles
  }

  /// The 16 matrices of `winogradWeights` packed into panels for `shoal_gemm_panels`, one after
  /// the other; nil when the CPU has no AVX-512.
  static func winogradPanelWeights(_ u: Tensor) -> Tensor? {
    guard shoal_kernels_have_avx512() != 0 else { return nil }
    let (features, channels) = (u.shape[1], u.shape[2])
    let rows = (features + Int(SHOAL_PANEL_ROWS) - 1) / Int(SHOAL_PANEL_ROWS) * Int(SHOAL_PANEL_ROWS)
    let packed = Tensor(uninitialized: [16, rows, channels], dataType: .float32)
    for matrix in 0..<16 {
      shoal_pack_panels(
        u.pointer(as: Float.self) + matrix * features * channels, features, channels,
        packed.mutablePointer(as: Float.self) + matrix * rows * channels)
    }
    return packed
  }

  /// `G g Gᵀ` for every filter `g` of `w` [features, channels, 3, 3], as 16 matrices
  /// [features × channels], one per element of the 4×4 result; nil for other weights.
  static func winogradWeights(_ w: Tensor) -> Tensor? {
    guard w.dataType == .float32, w.rank == 4, w.shape[2] == 3, w.shape[3] == 3 else { return nil }
    let (features, channels) = (w.shape[0], w.shape[1])
    let filters = w.pointer(as: Float.self)
    let stride = features * channels
    var u = [Float](repeating: 0, count: 16 * stride)
    u.withUnsafeMutableBufferPointer { u in
      for filter in 0..<stride {
        let g = filters + filter * 9
        // G g (4×3): each column [a, b, c] becomes [a, (a + b + c) / 2, (a − b + c) / 2, c];
        // then (G g) Gᵀ (4×4): the same on each row.
        var t: (Float, Float, Float, Float, Float, Float, Float, Float, Float, Float, Float, Float) =
          (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &t) { bytes in
          let t = bytes.bindMemory(to: Float.self)
          for j in 0..<3 {
            let (a, b, c) = (g[j], g[3 + j], g[6 + j])
            (t[j], t[3 + j], t[6 + j], t[9 + j]) = (a, (a + b + c) / 2, (a - b + c) / 2, c)
          }
          for i in 0..<4 {
            let (a, b, c) = (t[i * 3], t[i * 3 + 1], t[i * 3 + 2])
            let row = i * 4 * stride + filter
            u[row] = a
            u[row + stride] = (a + b + c) / 2
            u[row + 2 * stride] = (a - b + c) / 2
            u[row + 3 * stride] = c
          }
        }
      }
    }
    return Tensor(shape: [16, features, channels], elements: u)
  }

  /// The convolution of `batch` images as F(2×2, 3×3); bias and activation as in `finish`.
  func winogradConvolution(
    _ g: WindowGeometry, _ px: UnsafePointer<Float>, _ py: UnsafeMutablePointer<Float>, _ bias: UnsafePointer<Float>?,
    _ residual: ResidualInput?, _ scratch: UnsafeMutablePointer<Float>, batch: Int, channels: Int, features: Int
  ) {
    let u = winograd!.pointer(as: Float.self)
    let (tileRows, tileColumns) = Self.winogradTiles(g)
    let perImage = tileRows * tileColumns
    let tiles = batch * perImage
    let transformed = scratch
    let products = scratch + 16 * channels * tiles
    transformInputs(g, px, into: transformed, batch: batch, channels: channels)
    // The 16 GEMMs [features × channels] · [channels × tiles]: with the weights packed at load
    // (AVX-512) on the panel kernel or the row kernel, otherwise on OpenBLAS.
    if winogradUsesPanels(tiles: tiles) {
      multiplyOnPanels(transformed, into: products, tiles: tiles, channels: channels, features: features)
    } else if winogradPanels != nil {
      multiplyOnRows(transformed, into: products, tiles: tiles, channels: channels, features: features)
    } else {
      Parallel.forEachRange(16, costPerItem: features * channels * tiles) { positions in
        for position in positions {
          Blas.serialGemm(
            transA: false, transB: false, m: features, n: tiles, k: channels, alpha: 1,
            u + position * features * channels, lda: channels, transformed + position * channels * tiles, ldb: tiles,
            beta: 0, products + position * features * tiles, ldc: tiles)
        }
      }
    }
    transformOutputs(g, products, into: py, bias, residual, batch: batch, features: features)
  }

  /// The 16 GEMMs on the row kernel (more than 256 tile columns), half of the matrices on each
  /// core.
  private func multiplyOnRows(
    _ transformed: UnsafeMutablePointer<Float>, into products: UnsafeMutablePointer<Float>, tiles: Int, channels: Int,
    features: Int
  ) {
    let weights = winogradPanels!.pointer(as: Float.self)
    let panelRows = winogradPanels!.shape[1]
    Parallel.forEachRange(16, costPerItem: features * channels * tiles, multipleOf: 1) { positions in
      let pack = Self.rowPack(depth: channels)
      defer { pack.deallocate() }
      for position in positions {
        shoal_gemm_rows(
          weights + position * panelRows * channels, features, channels, transformed + position * channels * tiles,
          tiles, tiles, products + position * features * tiles, tiles, nil, nil, 0, pack)
      }
    }
  }

  /// The 16 GEMMs on the panel kernel: the transformed inputs packed into tiles of 12, then
  /// every (matrix, panel, tile) unit split across the cores.
  private func multiplyOnPanels(
    _ transformed: UnsafeMutablePointer<Float>, into products: UnsafeMutablePointer<Float>, tiles: Int, channels: Int,
    features: Int
  ) {
    let weights = winogradPanels!.pointer(as: Float.self)
    let packed = products + 16 * features * tiles
    let tileCount = (tiles + Int(SHOAL_TILE_COLUMNS) - 1) / Int(SHOAL_TILE_COLUMNS)
    let panelRows = winogradPanels!.shape[1]
    Parallel.forEachRange(16 * tileCount, costPerItem: channels * Int(SHOAL_TILE_COLUMNS), multipleOf: 1) { items in
      for item in items {
        let (matrix, tile) = item.quotientAndRemainder(dividingBy: tileCount)
        let offset = matrix * channels * tiles
        shoal_pack_tiles(transformed + offset, channels, tiles, tiles, tile, tile + 1, packed + offset)
      }
    }
    let perMatrix = panelRows / Int(SHOAL_PANEL_ROWS) * tileCount
    Parallel.forEachRange(
      16 * perMatrix, costPerItem: channels * Int(SHOAL_PANEL_ROWS) * Int(SHOAL_TILE_COLUMNS), multipleOf: 1
    ) { units in
      var unit = units.lowerBound
      while unit < units.upperBound {
        let matrix = unit / perMatrix
        let end = min(units.upperBound, (matrix + 1) * perMatrix)
        shoal_gemm_panels(
          weights + matrix * panelRows * channels, features, channels, packed + matrix * channels * tiles, tiles,
          products + matrix * features * tiles, tiles, nil, nil, 0, unit - matrix * perMatrix, end - matrix * perMatrix)
        unit = end
      }
    }
  }

  /// `Bᵀ d B` for every 4×4 input tile `d` (overlapping by two): element (i, j) of channel `c`'s
  /// tile `t` goes to `transformed[((i·4 + j)·channels + c)·tiles + t]`.
  private func transformInputs(
    _ g: WindowGeometry, _ px: UnsafePointer<Float>, into transformed: UnsafeMutablePointer<Float>,
    batch: Int, channels: Int
  ) {
    let (inH, inW, pH, pW) = (g.input[1], g.input[2], g.padBegin[1], g.padBegin[2])
    let (tileRows, tileColumns) = Self.winogradTiles(g)
    let perImage = tileRows * tileColumns
    let tiles = batch * perImage
    // Each plane is first copied into a zero-bordered one that holds every tile.
    let (rows, width) = (2 * tileRows + 2, 2 * tileColumns + 2)
    let (low, high) = (min(pW, width), min(width, pW + inW))
    let matrix = channels * tiles
    Parallel.forEachRange(batch * channels, costPerItem: perImage * 64) { planes in
      // Room after the last row: with fewer than 8 tiles a row, the transform reads 18 floats
      // from the start of each row.
      let padded = UnsafeMutablePointer<Float>.allocate(capacity: rows * width + 16)
      defer { padded.deallocate() }
      for plane in planes {
        let (n, c) = (plane / channels, plane % channels)
        let image = px + plane * g.inputSize
        for r in 0..<rows {
          Self.copyBordered(
            image, inH, inW, row: r - pH, columns: low..<high, shift: pW, into: padded + r * width, width)
        }
        let out = transformed + c * tiles + n * perImage
        // Bᵀ d: rows d0 − d2, d1 + d2, d2 − d1, d1 − d3; then (Bᵀ d) B: the same on each row's
        // four elements. 8 tiles at a time where the CPU has AVX2.
        for tileRow in 0..<tileRows {
          shoal_winograd_input_tiles(
            padded + 2 * tileRow * width, width, out + tileRow * tileColumns, matrix, tileColumns)
        }
      }
    }
  }

  /// `Aᵀ m A` for every tile's 4×4 products `m`: the 2×2 outputs, cut at the image's edge, then
  /// the bias and activation.
  private func transformOutputs(
    _ g: WindowGeometry, _ products: UnsafePointer<Float>, into py: UnsafeMutablePointer<Float>,
    _ bias: UnsafePointer<Float>?, _ residual: ResidualInput?, batch: Int, features: Int
  ) {
    let (outH, outW) = (g.output[1], g.output[2])
    let (tileRows, tileColumns) = Self.winogradTiles(g)
    let perImage = tileRows * tileColumns
    let tiles = batch * perImage
    let matrix = features * tiles
    Parallel.forEachRange(batch * features, costPerItem: perImage * 64) { planes in
      for plane in planes {
        let (n, k) = (plane / features, plane % features)
        let source = products + k * tiles + n * perImage
        let out = py + plane * g.outputSize
        for tileRow in 0..<tileRows {
          let oh = 2 * tileRow
          // Tiles whose four outputs are all inside the image: 8 at a time where the CPU has
          // AVX2; those cut at the right or bottom edge below.
          let whole = oh + 1 < outH ? outW / 2 : 0
          if whole > 0 {
            shoal_winograd_output_tiles(source + tileRow * tileColumns, matrix, out + oh * outW, outW, whole)
          }
          for tile in whole..<tileColumns {
            let m = source + tileRow * tileColumns + tile
            // Aᵀ m: rows m0 + m1 + m2 and m1 − m2 − m3, for each of the four columns.
            let m0 = SIMD4<Float>(m[0], m[matrix], m[2 * matrix], m[3 * matrix])
            let m1 = SIMD4<Float>(m[4 * matrix], m[5 * matrix], m[6 * matrix], m[7 * matrix])
            let m2 = SIMD4<Float>(m[8 * matrix], m[9 * matrix], m[10 * matrix], m[11 * matrix])
            let m3 = SIMD4<Float>(m[12 * matrix], m[13 * matrix], m[14 * matrix], m[15 * matrix])
            let (top, bottom) = (m0 + m1 + m2, m1 - m2 - m3)
            let ow = 2 * tile
            let line = out + oh * outW + ow
            line[0] = top[0] + top[1] + top[2]
            if ow + 1 < outW { line[1] = top[1] - top[2] - top[3] }
            if oh + 1 < outH {
              line[outW] = bottom[0] + bottom[1] + bottom[2]
              if ow + 1 < outW { line[outW + 1] = bottom[1] - bottom[2] - bottom[3] }
            }
          }
        }
        finish(out, count: g.outputSize, feature: k, bias, residual)
      }
    }
  }
}
