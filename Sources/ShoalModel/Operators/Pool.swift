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
    if x.dataType == .float32 {
      pool(
        geometry, x.pointer(as: Float.self), outputs[0].mutablePointer(as: Float.self), planes: x.shape[0] * x.shape[1])
    } else {
      pool(
        geometry, x.pointer(as: Double.self), outputs[0].mutablePointer(as: Double.self),
        planes: x.shape[0] * x.shape[1])
    }
  }

  private func pool<T: BinaryFloatingPoint>(
    _ g: WindowGeometry, _ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, planes: Int
  ) {
    let (inD, inH, inW) = (g.input[0], g.input[1], g.input[2])
    var out = y
    for plane in 0..<planes {
      let image = x + plane * g.inputSize
      for od in 0..<g.output[0] {
        let d0 = od * g.strides[0] - g.padBegin[0]
        for oh in 0..<g.output[1] {
          let h0 = oh * g.strides[1] - g.padBegin[1]
          for ow in 0..<g.output[2] {
            let w0 = ow * g.strides[2] - g.padBegin[2]
            var best = -T.infinity
            var sum: T = 0
            var inside = 0
            for kd in 0..<g.kernel[0] {
              let id = d0 + kd * g.dilations[0]
              guard id >= 0, id < inD else { continue }
              for kh in 0..<g.kernel[1] {
                let ih = h0 + kh * g.dilations[1]
                guard ih >= 0, ih < inH else { continue }
                let line = image + (id * inH + ih) * inW
                for kw in 0..<g.kernel[2] {
                  let iw = w0 + kw * g.dilations[2]
                  guard iw >= 0, iw < inW else { continue }
                  let value = line[iw]
                  if value > best || value.isNaN { best = value }
                  sum += value
                  inside += 1
                }
              }
            }
            switch kind {
            case .max: out.pointee = best
            case .average:
              var count = inside
              if countIncludePad {
                // Padding counts, the overhang of ceil mode beyond the padding does not.
                count = 1
                for axis in 0..<3 {
                  let start = [d0, h0, w0][axis]
                  let low = -g.padBegin[axis]
                  let high = g.input[axis] + g.padEnd[axis]
                  var positions = 0
                  for k in 0..<g.kernel[axis] {
                    let position = start + k * g.dilations[axis]
                    if position >= low && position < high { positions += 1 }
                  }
                  count *= positions
                }
              }
              out.pointee = count > 0 ? sum / T(count) : 0
            }
            out += 1
          }
        }
      }
    }
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
