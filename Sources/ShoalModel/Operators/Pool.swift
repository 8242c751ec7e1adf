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
      if twoDimensional {
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

  /// Pools over two spatial axes without dilation, a line at a time: for each kernel tap the
  /// whole output line is updated, so the inner loops run over contiguous memory.
  private func pool2D<T: BinaryFloatingPoint>(
    _ g: WindowGeometry, _ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, planes: Int
  ) {
    let (inH, inW, outH, outW) = (g.input[1], g.input[2], g.output[1], g.output[2])
    let (kH, kW, sH, sW, pH, pW) = (g.kernel[1], g.kernel[2], g.strides[1], g.strides[2], g.padBegin[1], g.padBegin[2])
    let average = kind == .average
    // Per kernel column: the output positions whose input position is inside the line.
    let spans = (0..<kW).map { kw -> (shift: Int, low: Int, high: Int) in
      let shift = kw - pW
      let low = shift >= 0 ? 0 : (-shift + sW - 1) / sW
      let high = min(outW, inW - 1 - shift < 0 ? 0 : (inW - 1 - shift) / sW + 1)
      return (shift, low, high)
    }
    // Per output column: how many window positions an average divides by along the line.
    let columnCounts = (0..<outW).map { ow -> Int in
      let start = ow * sW - pW
      let (low, high) = countIncludePad ? (-pW, inW + g.padEnd[2]) : (0, inW)
      return (0..<kW).filter { start + $0 >= low && start + $0 < high }.count
    }
    Parallel.forEachRange(planes, costPerItem: g.outputSize * g.kernelSize) { range in
      for plane in range {
        let image = x + plane * g.inputSize
        for oh in 0..<outH {
          let line = y + plane * g.outputSize + oh * outW
          line.update(repeating: average ? 0 : -T.infinity, count: outW)
          let start = oh * sH - pH
          var rows = 0
          for kh in 0..<kH {
            let ih = start + kh
            if countIncludePad, ih >= -pH, ih < inH + g.padEnd[1] { rows += 1 }
            guard ih >= 0, ih < inH else { continue }
            if !countIncludePad { rows += 1 }
            let source = image + ih * inW
            for (shift, low, high) in spans where low < high {
              if average {
                for ow in low..<high { line[ow] += source[ow * sW + shift] }
              } else {
                for ow in low..<high {
                  let value = source[ow * sW + shift]
                  line[ow] = value > line[ow] || value != value ? value : line[ow]
                }
              }
            }
          }
          if average {
            for ow in 0..<outW {
              let count = rows * columnCounts[ow]
              line[ow] = count > 0 ? line[ow] / T(count) : 0
            }
          }
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
