import CModelKernels

/// Winograd's minimal filtering for 3×3 convolutions with stride 1 (the bulk of ResNet's and
/// VGG's work), F(4×4, 3×3) or F(2×2, 3×3): each 4×4 block of outputs takes 36 multiplications
/// per channel pair instead of 144 (each 2×2 block 16 instead of 36), and those multiplications
/// are 36 (16) GEMMs, on the same kernels as the other convolutions.
///
/// With `d` an (m + 2)×(m + 2) input tile and `g` a 3×3 filter, the m×m output tile is
/// `Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A` (Lavin and Gray, "Fast Algorithms for Convolutional Neural
/// Networks", 2015). `G g Gᵀ` is computed once at load (`winogradWeights`); per run, the input
/// tiles are transformed, the element positions multiplied as GEMMs over all channels and
/// tiles, and the products transformed back.
///
/// F(4×4, 3×3)'s transforms round more: against a direct convolution in float64, its float32
/// results differ by up to about 2·10⁻⁵ of max(1, |y|) where F(2×2, 3×3)'s differ by 3·10⁻⁶
/// (random 3×3 convolutions of 24 to 256 channels). `SHOAL_WINOGRAD=2x2` keeps every
/// convolution on F(2×2, 3×3), `SHOAL_WINOGRAD=off` on im2col and GEMM.
extension ConvKernel {
  /// The fewest input channels and features for which the transforms pay for themselves.
  static let winogradMinimumChannels = 16
  /// The most weights (channels × features) that get F(4×4, 3×3): its 36 matrices take 4 times
  /// the memory of the filters (F(2×2, 3×3)'s 16, 1.8 times), and the largest layers of the
  /// usual networks run on maps too small for its 4×4 tiles (ResNet's 512 channels on 7×7).
  static let winograd4MaximumWeights = 256 * 256

  /// The side of the output tiles the weights were transformed for: 4 or 2.
  var winogradTile: Int { winogradShape![0] == 36 ? 4 : 2 }

  /// Whether this convolution runs as Winograd's on `g` with `channels` input channels.
  func usesWinograd(_ g: WindowGeometry, channels: Int) -> Bool {
    guard let shape = winogradShape, group == 1, channels >= Self.winogradMinimumChannels else { return false }
    return shape[2] == channels && g.input[0] == 1 && g.kernel == [1, 3, 3] && g.strides == [1, 1, 1]
      && g.dilations == [1, 1, 1]
  }

  /// The output tiles of one image: rows and columns.
  func winogradTiles(_ g: WindowGeometry) -> (rows: Int, columns: Int) {
    let m = winogradTile
    return ((g.output[1] + m - 1) / m, (g.output[2] + m - 1) / m)
  }

  /// The most tiles for which the GEMMs run on the panel kernel (the row kernel measured ahead
  /// with ResNet's 196 tiles of F(4×4, 3×3) on 56×56).
  static let winogradPanelMaximumTiles = 128

  /// Whether the GEMMs, with `tiles` columns each, run on the panel kernel.
  func winogradUsesPanels(tiles: Int) -> Bool {
    winogradPanels != nil && tiles <= Self.winogradPanelMaximumTiles
  }

  /// The distance in floats between consecutive matrices of `count` floats in the scratch: a
  /// multiple of 4 KiB and 17 cache lines more. The transforms read and write the same element
  /// of every matrix together; a whole number of 4 KiB apart, those elements would share a few
  /// cache sets and evict each other (on F(2×2, 3×3)'s 56×56 input transform, 299 µs against 72
  /// once apart).
  static func winogradStride(_ count: Int) -> Int {
    count + (17 * 16 - count % 1024 + 1024) % 1024
  }

  /// Scratch floats: the transformed inputs and the GEMMs' products, one matrix per element of
  /// a transformed tile each, and on the panel kernel the transformed inputs packed into its
  /// tiles; 8 more, read past the last products by F(4×4, 3×3)'s output transform.
  func winogradScratch(_ g: WindowGeometry, batch: Int, channels: Int, features: Int) -> Int {
    let (rows, columns) = winogradTiles(g)
    let tiles = batch * rows * columns
    let (inputs, products) = (Self.winogradStride(channels * tiles), Self.winogradStride(features * tiles))
    return winogradShape![0] * (inputs + products + (winogradUsesPanels(tiles: tiles) ? inputs : 0)) + 8
  }

  /// The matrices of `winogradWeights` packed into panels for `shoal_gemm_panels`, one after
  /// the other; nil when the CPU has no AVX-512.
  static func winogradPanelWeights(_ u: Tensor) -> Tensor? {
    guard shoal_kernels_have_avx512() != 0 else { return nil }
    let (matrices, features, channels) = (u.shape[0], u.shape[1], u.shape[2])
    let rows = (features + Int(SHOAL_PANEL_ROWS) - 1) / Int(SHOAL_PANEL_ROWS) * Int(SHOAL_PANEL_ROWS)
    let packed = Tensor(uninitialized: [matrices, rows, channels], dataType: .float32)
    for matrix in 0..<matrices {
      shoal_pack_panels(
        u.pointer(as: Float.self) + matrix * features * channels, features, channels,
        packed.mutablePointer(as: Float.self) + matrix * rows * channels)
    }
    return packed
  }

  /// F(2×2, 3×3)'s G (4×3), on the points 0, 1, −1 (and ∞).
  private static let g2: [[Double]] = [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]]
  /// F(4×4, 3×3)'s G (6×3), on the points 0, 1/2, −1/2, 2, −2 (and ∞): row k is
  /// [1, p, p²] / ∏ (p − q) over the other points q, for the point p of row k.
  private static let g4: [[Double]] = [
    [1, 0, 0], [-8 / 15, -4 / 15, -2 / 15], [-8 / 15, 4 / 15, -2 / 15], [1 / 30, 1 / 15, 2 / 15],
    [1 / 30, -1 / 15, 2 / 15], [0, 0, 1],
  ]

  /// `G g Gᵀ` for every filter `g` of `w` [features, channels, 3, 3], as (tile + 2)² matrices
  /// [features × channels], one per element of the result; nil for other weights. Computed in
  /// double precision and rounded once.
  static func winogradWeights(_ w: Tensor, tile: Int) -> Tensor? {
    guard w.dataType == .float32, w.rank == 4, w.shape[2] == 3, w.shape[3] == 3, tile == 2 || tile == 4 else {
      return nil
    }
    let g = tile == 4 ? g4 : g2
    let alpha = tile + 2
    let (features, channels) = (w.shape[0], w.shape[1])
    let filters = w.pointer(as: Float.self)
    let stride = features * channels
    let gs = g.flatMap { $0 }
    var u = [Float](repeating: 0, count: alpha * alpha * stride)
    u.withUnsafeMutableBufferPointer { u in
      // Row i of G f for every filter, then elements (i, j) of (G f) Gᵀ one matrix at a time:
      // written a filter at a time, the matrices (a multiple of 4 KiB apart with 256 × 256
      // weights) evicted each other from the cache, and ResNet-50 took about 0.1 s more to load.
      var left = [Double](repeating: 0, count: 3 * stride)
      for i in 0..<alpha {
        let (a, b, c) = (gs[i * 3], gs[i * 3 + 1], gs[i * 3 + 2])
        for filter in 0..<stride {
          let f = filters + filter * 9
          for k in 0..<3 {
            left[filter * 3 + k] = a * Double(f[k]) + b * Double(f[3 + k]) + c * Double(f[6 + k])
          }
        }
        for j in 0..<alpha {
          let (x, y, z) = (gs[j * 3], gs[j * 3 + 1], gs[j * 3 + 2])
          let matrix = u.baseAddress! + (i * alpha + j) * stride
          for filter in 0..<stride {
            matrix[filter] = Float(left[filter * 3] * x + left[filter * 3 + 1] * y + left[filter * 3 + 2] * z)
          }
        }
      }
    }
    return Tensor(shape: [alpha * alpha, features, channels], elements: u)
  }

  /// The convolution of `batch` images as Winograd's; bias and activation as in `finish`.
  func winogradConvolution(
    _ g: WindowGeometry, _ px: UnsafePointer<Float>, _ py: UnsafeMutablePointer<Float>, _ bias: UnsafePointer<Float>?,
    _ residual: ResidualInput?, _ scratch: UnsafeMutablePointer<Float>, batch: Int, channels: Int, features: Int
  ) {
    let (tileRows, tileColumns) = winogradTiles(g)
    let perImage = tileRows * tileColumns
    let tiles = batch * perImage
    let matrices = winogradShape![0]
    let strides = (inputs: Self.winogradStride(channels * tiles), products: Self.winogradStride(features * tiles))
    let transformed = scratch
    let products = scratch + matrices * strides.inputs
    transformInputs(g, px, into: transformed, stride: strides.inputs, batch: batch, channels: channels)
    // The GEMMs [features × channels] · [channels × tiles]: with the weights packed at load
    // (AVX-512) on the panel kernel or the row kernel, otherwise on OpenBLAS.
    if winogradUsesPanels(tiles: tiles) {
      multiplyOnPanels(transformed, into: products, strides, tiles: tiles, channels: channels, features: features)
    } else if winogradPanels != nil {
      multiplyOnRows(transformed, into: products, strides, tiles: tiles, channels: channels, features: features)
    } else {
      let u = winograd!.pointer(as: Float.self)
      Parallel.forEachRange(matrices, costPerItem: features * channels * tiles) { positions in
        for position in positions {
          Blas.serialGemm(
            transA: false, transB: false, m: features, n: tiles, k: channels, alpha: 1,
            u + position * features * channels, lda: channels, transformed + position * strides.inputs, ldb: tiles,
            beta: 0, products + position * strides.products, ldc: tiles)
        }
      }
    }
    transformOutputs(g, products, stride: strides.products, into: py, bias, residual, batch: batch, features: features)
  }

  /// The GEMMs on the row kernel (more than `winogradPanelMaximumTiles` tile columns), half of
  /// the matrices on each core.
  private func multiplyOnRows(
    _ transformed: UnsafeMutablePointer<Float>, into products: UnsafeMutablePointer<Float>,
    _ strides: (inputs: Int, products: Int), tiles: Int, channels: Int, features: Int
  ) {
    let weights = winogradPanels!.pointer(as: Float.self)
    let panelRows = winogradPanels!.shape[1]
    Parallel.forEachRange(winogradShape![0], costPerItem: features * channels * tiles, multipleOf: 1) {
      positions in
      let pack = Self.rowPack(depth: channels)
      defer { pack.deallocate() }
      for position in positions {
        shoal_gemm_rows(
          weights + position * panelRows * channels, features, channels, transformed + position * strides.inputs,
          tiles, tiles, products + position * strides.products, tiles, nil, nil, 0, pack)
      }
    }
  }

  /// The GEMMs on the panel kernel: the transformed inputs packed into tiles of 12, then
  /// every (matrix, panel, tile) unit split across the cores.
  private func multiplyOnPanels(
    _ transformed: UnsafeMutablePointer<Float>, into products: UnsafeMutablePointer<Float>,
    _ strides: (inputs: Int, products: Int), tiles: Int, channels: Int, features: Int
  ) {
    let weights = winogradPanels!.pointer(as: Float.self)
    let matrices = winogradShape![0]
    let packed = products + matrices * strides.products
    let tileCount = (tiles + Int(SHOAL_TILE_COLUMNS) - 1) / Int(SHOAL_TILE_COLUMNS)
    let panelRows = winogradPanels!.shape[1]
    Parallel.forEachRange(matrices * tileCount, costPerItem: channels * Int(SHOAL_TILE_COLUMNS), multipleOf: 1) {
      items in
      for item in items {
        let (matrix, tile) = item.quotientAndRemainder(dividingBy: tileCount)
        let offset = matrix * strides.inputs
        shoal_pack_tiles(transformed + offset, channels, tiles, tiles, tile, tile + 1, packed + offset)
      }
    }
    let perMatrix = panelRows / Int(SHOAL_PANEL_ROWS) * tileCount
    Parallel.forEachRange(
      matrices * perMatrix, costPerItem: channels * Int(SHOAL_PANEL_ROWS) * Int(SHOAL_TILE_COLUMNS), multipleOf: 1
    ) { units in
      var unit = units.lowerBound
      while unit < units.upperBound {
        let matrix = unit / perMatrix
        let end = min(units.upperBound, (matrix + 1) * perMatrix)
        shoal_gemm_panels(
          weights + matrix * panelRows * channels, features, channels, packed + matrix * strides.inputs, tiles,
          products + matrix * strides.products, tiles, nil, nil, 0, unit - matrix * perMatrix, end - matrix * perMatrix)
        unit = end
      }
    }
  }

  /// `Bᵀ d B` for every (m + 2)×(m + 2) input tile `d` (overlapping by two): element (i, j) of
  /// channel `c`'s tile `t` goes to `transformed[(i·(m + 2) + j)·matrix + c·tiles + t]`.
  private func transformInputs(
    _ g: WindowGeometry, _ px: UnsafePointer<Float>, into transformed: UnsafeMutablePointer<Float>, stride matrix: Int,
    batch: Int, channels: Int
  ) {
    let (inH, inW, pH, pW) = (g.input[1], g.input[2], g.padBegin[1], g.padBegin[2])
    let (tileRows, tileColumns) = winogradTiles(g)
    let (m, matrices) = (winogradTile, winogradShape![0])
    let perImage = tileRows * tileColumns
    let tiles = batch * perImage
    // Each plane is first copied into a zero-bordered one that holds every tile.
    let (rows, width) = (m * tileRows + 2, m * tileColumns + 2)
    let (low, high) = (min(pW, width), min(width, pW + inW))
    Parallel.forEachRange(batch * channels, costPerItem: perImage * 4 * matrices) { planes in
      // Room after the last row: the transforms read 8 tiles at a time, 18 or 36 floats from
      // the first tile's column.
      let padded = UnsafeMutablePointer<Float>.allocate(capacity: rows * width + 40)
      defer { padded.deallocate() }
      for plane in planes {
        let (n, c) = (plane / channels, plane % channels)
        let image = px + plane * g.inputSize
        for r in 0..<rows {
          Self.copyBordered(
            image, inH, inW, row: r - pH, columns: low..<high, shift: pW, into: padded + r * width, width)
        }
        let out = transformed + c * tiles + n * perImage
        // F(2×2, 3×3)'s Bᵀ d: rows d0 − d2, d1 + d2, d2 − d1, d1 − d3; then (Bᵀ d) B: the
        // same on each row's four elements. 8 tiles at a time where the CPU has AVX2.
        for tileRow in 0..<tileRows {
          let (row0, line) = (padded + m * tileRow * width, out + tileRow * tileColumns)
          if m == 4 {
            shoal_winograd4_input_tiles(row0, width, line, matrix, tileColumns)
          } else {
            shoal_winograd_input_tiles(row0, width, line, matrix, tileColumns)
          }
        }
      }
    }
  }

  /// `Aᵀ m A` for every tile's products `m`: the m×m outputs, cut at the image's edge, then the
  /// bias and activation.
  private func transformOutputs(
    _ g: WindowGeometry, _ products: UnsafePointer<Float>, stride matrix: Int, into py: UnsafeMutablePointer<Float>,
    _ bias: UnsafePointer<Float>?, _ residual: ResidualInput?, batch: Int, features: Int
  ) {
    let (outH, outW) = (g.output[1], g.output[2])
    let (tileRows, tileColumns) = winogradTiles(g)
    let (tile, matrices) = (winogradTile, winogradShape![0])
    let perImage = tileRows * tileColumns
    let tiles = batch * perImage
    Parallel.forEachRange(batch * features, costPerItem: perImage * 4 * matrices) { planes in
      for plane in planes {
        let (n, k) = (plane / features, plane % features)
        let source = products + k * tiles + n * perImage
        let out = py + plane * g.outputSize
        if tile == 4 {
          for tileRow in 0..<tileRows {
            let oh = 4 * tileRow
            shoal_winograd4_output_tiles(
              source + tileRow * tileColumns, matrix, out + oh * outW, outW, min(4, outH - oh), tileColumns)
          }
          finish(out, count: g.outputSize, feature: k, bias, residual)
          continue
        }
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
