/// numpy's multidirectional broadcasting, which ONNX's element-wise operators follow.
enum Broadcast {
  /// The shape `shapes` broadcast to.
  static func shape(_ shapes: [[Int]]) throws(ModelError) -> [Int] {
    let rank = shapes.map(\.count).max() ?? 0
    var result = [Int](repeating: 1, count: rank)
    for shape in shapes {
      for (offset, size) in shape.enumerated() {
        let axis = rank - shape.count + offset
        if result[axis] == size || size == 1 { continue }
        guard result[axis] == 1 else {
          throw ModelError(
            .invalidInput, "shapes \(shapes.map { "\($0)" }.joined(separator: " and ")) cannot be broadcast together")
        }
        result[axis] = size
      }
    }
    return result
  }

  /// Strides, in elements, that read a tensor of `shape` as if it had shape `target` (0 where
  /// the tensor repeats along an axis).
  static func strides(of shape: [Int], to target: [Int]) -> [Int] {
    let own = shape.strides
    return target.indices.map { axis in
      let offset = axis - (target.count - shape.count)
      return offset < 0 || shape[offset] == 1 ? 0 : own[offset]
    }
  }

  /// The output shape and each operand's strides with adjacent axes merged where every operand
  /// walks them as one: fewer, longer loops.
  static func collapsed(_ shape: [Int], _ operandStrides: [[Int]]) -> (shape: [Int], strides: [[Int]]) {
    guard !shape.isEmpty else { return ([1], operandStrides.map { _ in [0] }) }
    var outShape = [shape[shape.count - 1]]
    var outStrides = operandStrides.map { [$0[shape.count - 1]] }
    for axis in stride(from: shape.count - 2, through: 0, by: -1) {
      let mergeable = operandStrides.indices.allSatisfy { operand in
        operandStrides[operand][axis] == outStrides[operand][0] * outShape[0]
      }
      if mergeable {
        outShape[0] *= shape[axis]
      } else {
        outShape.insert(shape[axis], at: 0)
        for operand in operandStrides.indices { outStrides[operand].insert(operandStrides[operand][axis], at: 0) }
      }
    }
    return (outShape, outStrides)
  }

  /// Calls `body(aOffset, bOffset, outOffset, count, aStep, bStep)` for each innermost run of a
  /// binary broadcast of `a` and `b` to `out`.
  @inline(__always)
  static func forEachRun(
    _ a: [Int], _ b: [Int], _ out: [Int], _ body: (Int, Int, Int, Int, Int, Int) -> Void
  ) {
    let (shape, strides) = collapsed(out, [strides(of: a, to: out), strides(of: b, to: out)])
    let inner = shape.count - 1
    let count = shape[inner]
    let outer = shape.dropLast().reduce(1, *)
    var index = [Int](repeating: 0, count: inner)
    var aOffset = 0
    var bOffset = 0
    for run in 0..<outer {
      body(aOffset, bOffset, run * count, count, strides[0][inner], strides[1][inner])
      var axis = inner - 1
      while axis >= 0 {
        index[axis] += 1
        aOffset += strides[0][axis]
        bOffset += strides[1][axis]
        if index[axis] < shape[axis] { break }
        aOffset -= strides[0][axis] * shape[axis]
        bOffset -= strides[1][axis] * shape[axis]
        index[axis] = 0
        axis -= 1
      }
    }
  }

  /// `out[i] = op(a[i], b[i])` over the broadcast of `a` and `b`.
  @inline(__always)
  static func apply<A, B, R>(
    _ a: UnsafePointer<A>, _ aShape: [Int], _ b: UnsafePointer<B>, _ bShape: [Int],
    _ out: UnsafeMutablePointer<R>, _ outShape: [Int], _ op: (A, B) -> R
  ) {
    forEachRun(aShape, bShape, outShape) { aOffset, bOffset, outOffset, count, aStep, bStep in
      let x = a + aOffset
      let y = b + bOffset
      let z = out + outOffset
      switch (aStep, bStep) {
      case (1, 1): for i in 0..<count { z[i] = op(x[i], y[i]) }
      case (0, 1):
        let scalar = x[0]
        for i in 0..<count { z[i] = op(scalar, y[i]) }
      case (1, 0):
        let scalar = y[0]
        for i in 0..<count { z[i] = op(x[i], scalar) }
      default: for i in 0..<count { z[i] = op(x[i * aStep], y[i * bStep]) }
      }
    }
  }

  /// Copies `source` of `shape` into `out`, repeated to `outShape`.
  static func expand(_ source: Tensor, to out: Tensor) {
    let size = source.dataType.byteSize
    let from = source.buffer.pointer
    let to = out.buffer.pointer
    forEachRun(source.shape, out.shape, out.shape) { offset, _, outOffset, count, step, _ in
      if step == 1 {
        to.advanced(by: outOffset * size).copyMemory(from: from.advanced(by: offset * size), byteCount: count * size)
      } else {
        for i in 0..<count {
          to.advanced(by: (outOffset + i) * size).copyMemory(
            from: from.advanced(by: (offset + i * step) * size), byteCount: size)
        }
      }
    }
  }
}
