import CModelKernels

/// MaxPool, AveragePool and their global forms over 1–3 spatial axes.
struct PoolKernel: Kernel {
  enum Kind: Sendable { case max, average }

  var kind: Kind
  var window: WindowGeometry.Attributes?
  var countIncludePad = false

  func geometry(_ x: [Int]) throws(ModelError) -> WindowGeometry {
    let spatial = Array(x.dropFirst(2))
    guard let window else {
      var global = try WindowGeometry.Attributes(NodeAttributes(opType: "GlobalPool", attributes: []), pooling: false)
      global.kernelShape = spatial
      return try WindowGeometry(input: spatial, kernel: spatial, attributes: global)
    }
    return try WindowGeometry(input: spatial, kernel: window.kernelShape!, attributes: window)
  }

  func plan(_ inputs: [ValueType?]) throws(ModelError) -> KernelPlan {
    let x = try inputs.required(0, "X")
    try requireType(x, [.float32, .float64], "X")
    guard x.rank >= 3 else { throw ModelError(.invalidInput, "X \(x.shape) must be [N, C, spatial…]") }
    let geometry = try geometry(x.shape)
    let shape = Array(x.shape.prefix(2)) + geometry.output.suffix(x.rank - 2)
    return KernelPlan(outputs: [ValueType(dataType: x.dataType, shape: shape)])
  }

  func run(_ inputs: [Tensor?], _ outputs: [Tensor], scratch: UnsafeMutableRawPointer?) throws(ModelError) {
    let x = inputs[0]!
    let geometry = try geometry(x.shape)
    let planes = x.shape[0] * x.shape[1]
    let twoDimensional = geometry.input[0] == 1 && geometry.dilations.allSatisfy { $0 == 1 }
    if x.dataType == .float32 {
      let (source, target) = (x.pointer(as: Float.self), outputs[0].mutablePointer(as: Float.self))
      if window == nil {
        poolGlobally(geometry, source, target, planes: planes)
      } else if twoDimensional {
        pool2D(geometry, source, target, planes: planes)
      } else {
        pool(geometry, source, target, planes: planes)
      }
    } else {
      let (source, target) = (x.pointer(as: Double.self), outputs[0].mutablePointer(as: Double.self))
      if twoDimensional {
        pool2D(geometry, source, target, planes: planes)
      } else {
        pool(geometry, source, target, planes: planes)
      }
    }
  }

  /// Pools over two spatial axes without dilation, an output line at a time and in two passes:
  /// the window's input rows are first combined into one line (contiguous, vectorised), then
  /// each output takes its window's columns of that line.
  private func pool2D<T: BinaryFloatingPoint>(
    _ g: WindowGeometry, _ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, planes: Int
  ) {
    let (inH, inW, outH, outW) = (g.input[1], g.input[2], g.output[1], g.output[2])
    let (kH, kW, sH, sW, pH, pW) = (g.kernel[1], g.kernel[2], g.strides[1], g.strides[2], g.padBegin[1], g.padBegin[2])
    let average = kind == .average
    // Per output column: how many window positions an average divides by along the line.
    let columnCounts = (0..<outW).map { ow -> Int in
      let start = ow * sW - pW
      let (low, high) = countIncludePad ? (-pW, inW + g.padEnd[2]) : (0, inW)
      return (0..<kW).filter { start + $0 >= low && start + $0 < high }.count
    }
    // Split by output rows, every plane in each: the operator before (a convolution, which splits
    // its output positions the same way) left each core's rows in that core's cache. An input
    // larger than the caches is split by planes instead, so that each core streams whole planes
    // (rows of every plane a core apart defeat the prefetcher: SqueezeNet's three MaxPools at
    // batch 8, the first reading 25 MB, took 3.7–4.0 ms against 2.2–3.5 so, in alternating runs
    // on a busy host).
    let byPlanes = planes * g.inputSize * MemoryLayout<T>.stride > 8 << 20
    let (count, cost) = byPlanes ? (planes, outH * outW * g.kernelSize) : (outH, planes * outW * g.kernelSize)
    Parallel.forEachRange(count, costPerItem: cost, multipleOf: 1) { part in
      let (lines, planeRange) = byPlanes ? (0..<outH, part) : (part, 0..<planes)
      // Room for the C kernel's borders and vector loads past the last window (at least 16 spare).
      let capacity = shoal_max_pool_row_floats(inW, outW, kW, sW, pW)
      let rows = UnsafeMutablePointer<T>.allocate(capacity: capacity)
      rows.initialize(repeating: 0, count: capacity)
      defer { rows.deallocate() }
      for plane in planeRange {
        let image = x + plane * g.inputSize
        if !average, T.self == Float.self {
          // Max pooling in C, 16 or 8 windows at a time (0: not this CPU or stride).
          let done = shoal_max_pool_plane(
            UnsafeRawPointer(image).assumingMemoryBound(to: Float.self), inH, inW,
            UnsafeMutableRawPointer(y + plane * g.outputSize).assumingMemoryBound(to: Float.self), lines.lowerBound,
            lines.upperBound, outW, kH, kW, sH, sW, pH, pW,
            UnsafeMutableRawPointer(rows).assumingMemoryBound(to: Float.self))
          if done != 0 { continue }
        }
        for oh in lines {
          let line = y + plane * g.outputSize + oh * outW
          let start = oh * sH - pH
          let (first, end) = (max(0, start), min(inH, start + kH))
          let divisor = countIncludePad ? min(start + kH, inH + g.padEnd[1]) - max(start, -pH) : end - first
          guard first < end else {
            line.update(repeating: average ? 0 : -T.infinity, count: outW)
            continue
          }
          rows.update(from: image + first * inW, count: inW)
          for ih in first + 1..<end { Self.combine(rows, image + ih * inW, inW, average: average) }
          Self.poolLine(rows, inW, into: line, outW, kW, sW, pW, average: average)
          if average {
            for ow in 0..<outW {
              let count = divisor * columnCounts[ow]
              line[ow] = count > 0 ? line[ow] / T(count) : 0
            }
          }
        }
      }
    }
  }

  /// `line[ow]` becomes the sum, or the maximum (NaN winning), of `row` over output `ow`'s window,
  /// `row[ow · sW − pW ..< + kW]`, leaving out positions outside `0..<inW`. Windows inside the row
  /// go 8 at a time for strides 1 and 2 (a stride-2 load of 16 keeps its even lanes), the ones at
  /// the borders one at a time.
  private static func poolLine<T: BinaryFloatingPoint>(
    _ row: UnsafePointer<T>, _ inW: Int, into line: UnsafeMutablePointer<T>, _ outW: Int, _ kW: Int, _ sW: Int,
    _ pW: Int, average: Bool
  ) {
    let interiorLow = min(outW, (pW + sW - 1) / sW)
    let interiorHigh = inW - kW + pW < 0 ? interiorLow : max(interiorLow, min(outW, (inW - kW + pW) / sW + 1))
    var vectorEnd = interiorLow
    if T.self == Float.self, sW <= 2 {
      let (source, target) = (UnsafeRawPointer(row), UnsafeMutableRawPointer(line))
      let size = MemoryLayout<Float>.stride
      func load(_ index: Int) -> SIMD8<Float> {
        sW == 1
          ? source.loadUnaligned(fromByteOffset: index * size, as: SIMD8<Float>.self)
          : source.loadUnaligned(fromByteOffset: index * size, as: SIMD16<Float>.self).evenHalf
      }
      func pool(from ow: Int) {
        let base = ow * sW - pW
        var best = load(base)
        for kw in 1..<kW {
          let value = load(base + kw)
          best = average ? best + value : best.replacing(with: value, where: value .> best .| value .!= value)
        }
        target.storeBytes(of: best, toByteOffset: ow * size, as: SIMD8<Float>.self)
      }
      while vectorEnd + 8 <= interiorHigh {
        pool(from: vectorEnd)
        vectorEnd += 8
      }
      // The last few again as a block of 8 that overlaps the one before.
      if vectorEnd < interiorHigh && interiorHigh - 8 >= interiorLow {
        pool(from: interiorHigh - 8)
        vectorEnd = interiorHigh
      }
    }
    for ow in 0..<interiorLow { line[ow] = poolWindow(row, inW, start: ow * sW - pW, kW, average: average) }
    for ow in vectorEnd..<outW { line[ow] = poolWindow(row, inW, start: ow * sW - pW, kW, average: average) }
  }

  /// The sum, or the maximum (NaN winning), of `row[start ..< start + kW]` inside `0..<inW`.
  @inline(__always)
  private static func poolWindow<T: BinaryFloatingPoint>(
    _ row: UnsafePointer<T>, _ inW: Int, start: Int, _ kW: Int, average: Bool
  ) -> T {
    var best: T = average ? 0 : -T.infinity
    for kw in max(0, -start)..<max(0, min(kW, inW - start)) {
      let value = row[start + kw]
      best = average ? best + value : (value > best || value != value ? value : best)
    }
    return best
  }

  /// `rows[i]` becomes the sum, or the maximum (NaN winning), of itself and `next[i]`.
  private static func combine<T: BinaryFloatingPoint>(
    _ rows: UnsafeMutablePointer<T>, _ next: UnsafePointer<T>, _ count: Int, average: Bool
  ) {
    if average {
      for i in 0..<count { rows[i] += next[i] }
      return
    }
    var i = 0
    if T.self == Float.self, count >= 8 {
      let (target, source) = (UnsafeMutableRawPointer(rows), UnsafeRawPointer(next))
      func combine(at index: Int) {
        let offset = index * MemoryLayout<Float>.stride
        let value = source.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self)
        let best = target.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self)
        target.storeBytes(
          of: best.replacing(with: value, where: value .> best .| value .!= value), toByteOffset: offset,
          as: SIMD8<Float>.self)
      }
      while i + 8 <= count {
        combine(at: i)
        i += 8
      }
      // The rest as a block of 8 overlapping the one before: taking a maximum twice changes nothing.
      if i < count {
        combine(at: count - 8)
        i = count
      }
    }
    while i < count {
      let value = next[i]
      rows[i] = value > rows[i] || value != value ? value : rows[i]
      i += 1
    }
  }

  /// Global pooling over float32 planes: one contiguous pass per plane.
  private func poolGlobally(
    _ g: WindowGeometry, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, planes: Int
  ) {
    let size = g.inputSize
    Parallel.forEachRange(planes, costPerItem: size) { range in
      for plane in range {
        let image = x + plane * size
        if kind == .average {
          var sums = SIMD8<Float>()
          var i = 0
          while i + 8 <= size {
            sums += UnsafeRawPointer(image + i).loadUnaligned(as: SIMD8<Float>.self)
            i += 8
          }
          var sum = sums.sum()
          while i < size {
            sum += image[i]
            i += 1
          }
          y[plane] = size > 0 ? sum / Float(size) : 0
        } else {
          var best = -Float.infinity
          for i in 0..<size where image[i] > best || image[i] != image[i] { best = image[i] }
          y[plane] = best
        }
      }
    }
  }

  private func pool<T: BinaryFloatingPoint>(
    _ g: WindowGeometry, _ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, planes: Int
  ) {
    let (inD, inH, inW) = (g.input[0], g.input[1], g.input[2])
    let (outD, outH, outW) = (g.output[0], g.output[1], g.output[2])
    let (kD, kH, kW) = (g.kernel[0], g.kernel[1], g.kernel[2])
    let (sD, sH, sW) = (g.strides[0], g.strides[1], g.strides[2])
    let (dD, dH, dW) = (g.dilations[0], g.dilations[1], g.dilations[2])
    let average = kind == .average
    Parallel.forEachRange(planes, costPerItem: g.outputSize * g.kernelSize) { range in
      for plane in range {
        let image = x + plane * g.inputSize
        var out = y + plane * g.outputSize
        for od in 0..<outD {
          let d0 = od * sD - g.padBegin[0]
          for oh in 0..<outH {
            let h0 = oh * sH - g.padBegin[1]
            for ow in 0..<outW {
              let w0 = ow * sW - g.padBegin[2]
              var best = -T.infinity
              var sum: T = 0
              var inside = 0
              for kd in 0..<kD {
                let id = d0 + kd * dD
                guard id >= 0, id < inD else { continue }
                for kh in 0..<kH {
                  let ih = h0 + kh * dH
                  guard ih >= 0, ih < inH else { continue }
                  let line = image + (id * inH + ih) * inW
                  for kw in 0..<kW {
                    let iw = w0 + kw * dW
                    guard iw >= 0, iw < inW else { continue }
                    let value = line[iw]
                    if value > best || value.isNaN { best = value }
                    sum += value
                    inside += 1
                  }
                }
              }
              if average {
                let count = countIncludePad ? Self.paddedCount(g, start: (d0, h0, w0)) : inside
                out.pointee = count > 0 ? sum / T(count) : 0
              } else {
                out.pointee = best
              }
              out += 1
            }
          }
        }
      }
    }
  }

  /// The window positions inside the padded input (padding counts, the overhang of ceil mode
  /// beyond the padding does not).
  private static func paddedCount(_ g: WindowGeometry, start: (Int, Int, Int)) -> Int {
    var count = 1
    for axis in 0..<3 {
      let first = axis == 0 ? start.0 : (axis == 1 ? start.1 : start.2)
      let (low, high) = (-g.padBegin[axis], g.input[axis] + g.padEnd[axis])
      var positions = 0
      for k in 0..<g.kernel[axis] {
        let position = first + k * g.dilations[axis]
        if position >= low && position < high { positions += 1 }
      }
      count *= positions
    }
    return count
  }

  func flops(_ inputs: [ValueType?], _ outputs: [ValueType]) -> Int {
    guard let x = inputs[0], let geometry = try? geometry(x.shape) else { return 0 }
    return outputs[0].shape.elementCount * geometry.kernelSize
  }

  static let builders: [String: OperatorBuilder] = [
    "MaxPool": { context in
      guard context.outputCount == 1 else {
        throw ModelError(.unsupported, "the Indices output is not supported")
      }
      _ = context.attributes.int("storage_order")
      return PoolKernel(kind: .max, window: try WindowGeometry.Attributes(context.attributes, pooling: true))
    },
    "AveragePool": { context in
      PoolKernel(
        kind: .average, window: try WindowGeometry.Attributes(context.attributes, pooling: true),
        countIncludePad: context.attributes.int("count_include_pad", default: 0) != 0)
    },
    "GlobalAveragePool": { _ in PoolKernel(kind: .average, window: nil) },
    "GlobalMaxPool": { _ in PoolKernel(kind: .max, window: nil) },
  ]
}
