/// Copies elements of any type from a strided view into a contiguous tensor: the one loop behind
/// Transpose, Slice and Expand.
enum StridedCopy {
  /// Fills `out` (contiguous, of `shape`) from `source` + `offset` elements, stepping `strides`
  /// elements per output axis (0 repeats, negative walks backwards).
  static func copy(_ source: Tensor, offset: Int = 0, strides: [Int], shape: [Int], into out: Tensor) {
    switch source.dataType.byteSize {
    case 8: typed(UInt64.self, source, offset, strides, shape, out)
    case 4: typed(UInt32.self, source, offset, strides, shape, out)
    case 2: typed(UInt16.self, source, offset, strides, shape, out)
    default: typed(UInt8.self, source, offset, strides, shape, out)
    }
  }

  private static func typed<T>(
    _ type: T.Type, _ source: Tensor, _ offset: Int, _ strides: [Int], _ shape: [Int], _ out: Tensor
  ) {
    guard shape.elementCount > 0 else { return }
    let from = UnsafePointer(source.buffer.pointer.assumingMemoryBound(to: T.self)) + offset
    let to = out.buffer.pointer.assumingMemoryBound(to: T.self)
    let (runShape, runStrides) = Broadcast.collapsed(shape, [strides])
    let inner = runShape.count - 1
    let count = runShape[inner]
    let step = runStrides[0][inner]
    var index = [Int](repeating: 0, count: inner)
    var position = 0
    for run in 0..<(runShape.dropLast().reduce(1, *)) {
      let target = to + run * count
      if step == 1 {
        target.update(from: from + position, count: count)
      } else {
        for i in 0..<count { target[i] = from[position + i * step] }
      }
      var axis = inner - 1
      while axis >= 0 {
        index[axis] += 1
        position += runStrides[0][axis]
        if index[axis] < runShape[axis] { break }
        position -= runStrides[0][axis] * runShape[axis]
        index[axis] = 0
        axis -= 1
      }
    }
  }
}
