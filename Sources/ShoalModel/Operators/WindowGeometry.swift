/// The sliding-window arithmetic Conv, ConvTranspose and the pools share, for 1–3 spatial axes.
/// Every geometry is widened to three axes (leading axes of size 1) so one loop nest serves all.
struct WindowGeometry: Sendable {
  var input: [Int]
  var kernel: [Int]
  var strides: [Int]
  var dilations: [Int]
  var padBegin: [Int]
  var padEnd: [Int]
  var output: [Int]

  /// The attributes a windowed operator shares; nil where the node leaves them out.
  struct Attributes: Sendable {
    var autoPad = "NOTSET"
    var kernelShape: [Int]? = nil
    var strides: [Int]? = nil
    var dilations: [Int]? = nil
    var pads: [Int]? = nil
    var ceilMode = false

    init(_ attributes: NodeAttributes, pooling: Bool) throws(ModelError) {
      autoPad = try attributes.string(
        "auto_pad", default: "NOTSET", oneOf: ["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"])
      kernelShape = attributes.ints("kernel_shape")
      strides = attributes.ints("strides")
      dilations = attributes.ints("dilations")
      pads = attributes.ints("pads")
      if pooling { ceilMode = attributes.int("ceil_mode", default: 0) != 0 }
      if pooling && kernelShape == nil { throw ModelError(.invalidModel, "kernel_shape is required") }
    }
  }

  /// The geometry of a forward window (Conv, pools) over `input` spatial sizes.
  init(input: [Int], kernel: [Int], attributes: Attributes) throws(ModelError) {
    let rank = input.count
    (self.input, self.kernel, output) = (input, kernel, [])
    (strides, dilations, padBegin, padEnd) = try Self.steps(attributes, rank: rank, kernel: kernel)
    for axis in 0..<rank {
      let extent = (kernel[axis] - 1) * dilations[axis] + 1
      switch attributes.autoPad {
      case "SAME_UPPER", "SAME_LOWER":
        let out = (input[axis] + strides[axis] - 1) / strides[axis]
        let total = max(0, (out - 1) * strides[axis] + extent - input[axis])
        let small = total / 2
        padBegin[axis] = attributes.autoPad == "SAME_UPPER" ? small : total - small
        padEnd[axis] = total - padBegin[axis]
        output.append(out)
      case "VALID":
        padBegin[axis] = 0
        padEnd[axis] = 0
        output.append(max(0, (input[axis] - extent) / strides[axis] + 1))
      default:
        let span = input[axis] + padBegin[axis] + padEnd[axis] - extent
        guard span >= 0 else {
          throw ModelError(.invalidInput, "spatial size \(input[axis]) is smaller than the kernel's extent \(extent)")
        }
        var out = (attributes.ceilMode ? (span + strides[axis] - 1) / strides[axis] : span / strides[axis]) + 1
        // A window must start inside the input or its leading padding (PyTorch's rule).
        if attributes.ceilMode, (out - 1) * strides[axis] >= input[axis] + padBegin[axis] { out -= 1 }
        output.append(out)
      }
    }
    widen()
  }

  /// The geometry of a transposed convolution producing `output` from `input`.
  init(
    transposedInput input: [Int], kernel: [Int], attributes: Attributes, outputPadding: [Int]?, outputShape: [Int]?
  ) throws(ModelError) {
    let rank = input.count
    (self.input, self.kernel, output) = (input, kernel, [])
    (strides, dilations, padBegin, padEnd) = try Self.steps(attributes, rank: rank, kernel: kernel)
    let extra = outputPadding ?? [Int](repeating: 0, count: rank)
    guard extra.count == rank else {
      throw ModelError(.invalidModel, "output_padding \(extra) does not fit \(rank) spatial axes")
    }
    for axis in 0..<rank {
      let full = strides[axis] * (input[axis] - 1) + extra[axis] + (kernel[axis] - 1) * dilations[axis] + 1
      var target: Int? = outputShape.map { $0[$0.count - rank + axis] }
      if target == nil, attributes.autoPad.hasPrefix("SAME") { target = input[axis] * strides[axis] }
      if let target {
        let total = full - target
        let half = total / 2
        padBegin[axis] = attributes.autoPad == "SAME_UPPER" ? half : total - half
        padEnd[axis] = total - padBegin[axis]
        output.append(target)
      } else {
        output.append(full - padBegin[axis] - padEnd[axis])
      }
      guard output[axis] > 0 else {
        throw ModelError(.invalidInput, "the output would be empty along spatial axis \(axis)")
      }
    }
    widen()
  }

  /// Strides, dilations (both 1 by default) and pads (0), checked against `rank` spatial axes.
  private static func steps(
    _ attributes: Attributes, rank: Int, kernel: [Int]
  ) throws(ModelError) -> (strides: [Int], dilations: [Int], padBegin: [Int], padEnd: [Int]) {
    guard (1...3).contains(rank), kernel.count == rank else {
      throw ModelError(.unsupported, "\(rank) spatial axes with a kernel of \(kernel.count); 1 to 3 are supported")
    }
    let strides = attributes.strides ?? [Int](repeating: 1, count: rank)
    let dilations = attributes.dilations ?? [Int](repeating: 1, count: rank)
    let pads = attributes.pads ?? [Int](repeating: 0, count: 2 * rank)
    guard strides.count == rank, dilations.count == rank, pads.count == 2 * rank,
      strides.allSatisfy({ $0 > 0 }), dilations.allSatisfy({ $0 > 0 }), pads.allSatisfy({ $0 >= 0 })
    else {
      throw ModelError(
        .invalidModel, "strides \(strides), dilations \(dilations) or pads \(pads) do not fit \(rank) spatial axes")
    }
    return (strides, dilations, Array(pads[0..<rank]), Array(pads[rank...]))
  }

  /// Leading axes of size 1 up to three spatial axes.
  private mutating func widen() {
    let missing = 3 - input.count
    guard missing > 0 else { return }
    let ones = [Int](repeating: 1, count: missing)
    let zeros = [Int](repeating: 0, count: missing)
    input = ones + input
    kernel = ones + kernel
    strides = ones + strides
    dilations = ones + dilations
    padBegin = zeros + padBegin
    padEnd = zeros + padEnd
    output = ones + output
  }

  var inputSize: Int { input.elementCount }
  var outputSize: Int { output.elementCount }
  var kernelSize: Int { kernel.elementCount }

  /// Whether a convolution with this geometry is a plain matrix product (1×1, stride 1, no pad).
  var isPointwise: Bool {
    kernel.allSatisfy { $0 == 1 } && strides.allSatisfy { $0 == 1 } && padBegin.allSatisfy { $0 == 0 }
      && padEnd.allSatisfy { $0 == 0 }
  }

  /// Unfolds one image of `channels` planes into columns: row (c, kd, kh, kw), column (od, oh,
  /// ow). Only the columns in `columns` are written (rows are `outputSize` long), so cores can
  /// share the work; with `compact`, `col` holds just those columns (rows `columns.count` long),
  /// so that a core unfolding block after block reuses one small buffer that stays in its cache.
  func im2col(
    _ x: UnsafePointer<Float>, channels: Int, columns: Range<Int>, into col: UnsafeMutablePointer<Float>,
    compact: Bool = false
  ) {
    // Column c of a row is at row + c, the compact layout starting at the range's first column.
    let (first, rowLength) = compact ? (col - columns.lowerBound, columns.count) : (col, outputSize)
    if strides[2] == 2 && dilations[2] == 1 && kernel[2] > 1 {
      im2colSplittingLines(x, channels: channels, columns: columns, into: first, rowLength: rowLength)
      return
    }
    let (inD, inH, inW) = (input[0], input[1], input[2])
    var row = first
    for c in 0..<channels {
      let plane = x + c * inD * inH * inW
      for kd in 0..<kernel[0] {
        for kh in 0..<kernel[1] {
          for kw in 0..<kernel[2] {
            let shift = kw * dilations[2] - padBegin[2]
            let stride = strides[2]
            var column = columns.lowerBound
            while column < columns.upperBound {
              let (ow0, count, id, ih) = outputLine(at: column, before: columns.upperBound, kd: kd, kh: kh)
              let out = row + column
              if id < 0 || id >= inD || ih < 0 || ih >= inH {
                out.update(repeating: 0, count: count)
              } else {
                let line = plane + (id * inH + ih) * inW
                if stride == 1, ow0 + shift >= 0, ow0 + count - 1 + shift < inW {
                  out.update(from: line + ow0 + shift, count: count)
                } else {
                  // Outputs i with 0 ≤ (ow0 + i)·stride + shift < inW read the line; the rest
                  // are padding.
                  let first = ow0 * stride + shift
                  let low = min(count, first >= 0 ? 0 : (stride - 1 - first) / stride)
                  let high = max(low, min(count, first >= inW ? 0 : (inW - 1 - first) / stride + 1))
                  out.update(repeating: 0, count: low)
                  var i = low
                  if stride == 2 {
                    // 8 at a time: the even lanes of a 16-wide load that stays inside the line.
                    while i + 8 <= high && first + 2 * i + 15 < inW {
                      let pair = UnsafeRawPointer(line + first + 2 * i).loadUnaligned(as: SIMD16<Float>.self)
                      UnsafeMutableRawPointer(out + i).storeBytes(of: pair.evenHalf, as: SIMD8<Float>.self)
                      i += 8
                    }
                  }
                  var source = line + first + i * stride
                  while i < high {
                    out[i] = source.pointee
                    source += stride
                    i += 1
                  }
                  (out + high).update(repeating: 0, count: count - high)
                }
              }
              column += count
            }
            row += rowLength
          }
        }
      }
    }
  }

  /// The output line holding `column`: its first column in the range (ow0) and how many of its
  /// columns are in the range (before `end`), and the input depth and row that kernel position
  /// (kd, kh) reads for it.
  private func outputLine(at column: Int, before end: Int, kd: Int, kh: Int) -> OutputLine {
    let (outH, outW) = (output[1], output[2])
    let ow0 = column % outW
    let (oh, od) = ((column / outW) % outH, column / (outW * outH))
    let id = od * strides[0] - padBegin[0] + kd * dilations[0]
    let ih = oh * strides[1] - padBegin[1] + kh * dilations[1]
    return (ow0, min(outW - ow0, end - column), id, ih)
  }

  /// `im2col` for stride 2 along the width (a ResNet stem's 7×7, the 3×3 that opens a stage):
  /// each input line an output line reads is split once into its even and its odd columns
  /// (zeros beyond the line), and each kernel column then copies a contiguous run from one of
  /// the two, instead of every kernel column gathering every other element of the line again.
  private func im2colSplittingLines(
    _ x: UnsafePointer<Float>, channels: Int, columns: Range<Int>, into col: UnsafeMutablePointer<Float>,
    rowLength: Int
  ) {
    let (inD, inH, inW) = (input[0], input[1], input[2])
    let (outW, kW, pW) = (output[2], kernel[2], padBegin[2])
    // Output ow (from ow0) and kernel column kw read padded column 2·(ow − ow0) + kw, that is
    // evens[ow − ow0 + kw / 2] for even kw and odds[ow − ow0 + (kw − 1) / 2] for odd kw.
    let split = UnsafeMutablePointer<Float>.allocate(capacity: 2 * (outW + kW / 2))
    defer { split.deallocate() }
    var row = col
    for c in 0..<channels {
      let plane = x + c * inD * inH * inW
      for kd in 0..<kernel[0] {
        for kh in 0..<kernel[1] {
          var column = columns.lowerBound
          while column < columns.upperBound {
            let (ow0, count, id, ih) = outputLine(at: column, before: columns.upperBound, kd: kd, kh: kh)
            defer { column += count }
            guard id >= 0, id < inD, ih >= 0, ih < inH else {
              for kw in 0..<kW { (row + kw * rowLength + column).update(repeating: 0, count: count) }
              continue
            }
            let line = plane + (id * inH + ih) * inW
            let length = count + kW / 2
            let (evens, odds) = (split, split + length)
            Self.splitEvenOdd(line, inW, from: 2 * ow0 - pW, length, evens, odds)
            for kw in 0..<kW {
              let source = kw % 2 == 0 ? evens + kw / 2 : odds + (kw - 1) / 2
              (row + kw * rowLength + column).update(from: source, count: count)
            }
          }
          row += kW * rowLength
        }
      }
    }
  }

  /// evens[i] = line[first + 2i] and odds[i] = line[first + 2i + 1] for i < length, with 0 for
  /// columns outside 0..<width.
  private static func splitEvenOdd(
    _ line: UnsafePointer<Float>, _ width: Int, from first: Int, _ length: Int, _ evens: UnsafeMutablePointer<Float>,
    _ odds: UnsafeMutablePointer<Float>
  ) {
    var i = 0
    // Pairs before the line (first + 2i + 1 < 0 for both), then the one that straddles its start.
    while i < length && first + 2 * i < 0 {
      evens[i] = 0
      odds[i] = first + 2 * i + 1 >= 0 && first + 2 * i + 1 < width ? line[first + 2 * i + 1] : 0
      i += 1
    }
    // 8 pairs at a time from 16-wide loads inside the line.
    while i + 8 <= length && first + 2 * i + 15 < width {
      let pairs = UnsafeRawPointer(line + first + 2 * i).loadUnaligned(as: SIMD16<Float>.self)
      UnsafeMutableRawPointer(evens + i).storeBytes(of: pairs.evenHalf, as: SIMD8<Float>.self)
      UnsafeMutableRawPointer(odds + i).storeBytes(of: pairs.oddHalf, as: SIMD8<Float>.self)
      i += 8
    }
    while i < length {
      let x = first + 2 * i
      evens[i] = x < width ? line[x] : 0
      odds[i] = x + 1 < width ? line[x + 1] : 0
      i += 1
    }
  }

  /// Folds columns back into `channels` planes of the output size, adding where windows overlap
  /// (the transposed convolution's scatter); `col` rows are (c, kd, kh, kw), columns the input.
  func col2im(_ col: UnsafePointer<Float>, channels: Int, into y: UnsafeMutablePointer<Float>) {
    let (inD, inH, inW) = (input[0], input[1], input[2])
    let (outD, outH, outW) = (output[0], output[1], output[2])
    var row = col
    for c in 0..<channels {
      let plane = y + c * outD * outH * outW
      for kd in 0..<kernel[0] {
        for kh in 0..<kernel[1] {
          for kw in 0..<kernel[2] {
            var source = row
            for id in 0..<inD {
              let od = id * strides[0] - padBegin[0] + kd * dilations[0]
              for ih in 0..<inH {
                let oh = ih * strides[1] - padBegin[1] + kh * dilations[1]
                if od >= 0, od < outD, oh >= 0, oh < outH {
                  let line = plane + (od * outH + oh) * outW
                  for iw in 0..<inW {
                    let ow = iw * strides[2] - padBegin[2] + kw * dilations[2]
                    if ow >= 0, ow < outW { line[ow] += source[iw] }
                  }
                }
                source += inW
              }
            }
            row += inD * inH * inW
          }
        }
      }
    }
  }
}

/// Part of an output line in a range of columns: its first column, how many columns, and the
/// input depth and row one kernel position reads for it.
private typealias OutputLine = (ow0: Int, count: Int, id: Int, ih: Int)
