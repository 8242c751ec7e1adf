extension Tensor {
  /// A tensor of `shape` holding a copy of `bytes`: the elements little-endian in row-major order.
  ///
  /// - Precondition: `bytes.count` is the product of `shape` times the element size.
  public init(dataType: DataType, shape: [Int], copying bytes: UnsafeRawBufferPointer) {
    precondition(bytes.count == shape.elementCount * dataType.byteSize, "\(bytes.count) bytes do not fill \(shape)")
    self.init(uninitialized: shape, dataType: dataType)
    if let source = bytes.baseAddress, !bytes.isEmpty {
      buffer.pointer.copyMemory(from: source, byteCount: bytes.count)
    }
  }

  /// The tensors stacked along dimension 0: a batch of their rows, in order.
  ///
  /// - Precondition: every part has rank ≥ 1, the same element type and the same dimensions after
  ///   the first.
  public static func concatenatingRows(_ parts: [Tensor]) -> Tensor {
    precondition(!parts.isEmpty, "no tensors to concatenate")
    if parts.count == 1 { return parts[0] }
    let first = parts[0]
    precondition(first.rank >= 1, "a scalar has no rows")
    let rowShape = Array(first.shape.dropFirst())
    for part in parts {
      precondition(
        part.dataType == first.dataType && Array(part.shape.dropFirst()) == rowShape,
        "cannot stack \(part) on \(first)")
    }
    let rows = parts.reduce(0) { $0 + $1.shape[0] }
    let result = Tensor(uninitialized: [rows] + rowShape, dataType: first.dataType)
    var offset = 0
    for part in parts where part.byteCount > 0 {
      (result.buffer.pointer + offset).copyMemory(from: part.buffer.pointer, byteCount: part.byteCount)
      offset += part.byteCount
    }
    return result
  }

  /// Rows `range` of dimension 0: a view sharing this tensor's elements where they start on the
  /// 64-byte alignment every tensor keeps, a copy where they do not.
  ///
  /// - Precondition: rank ≥ 1 and `range` lies within dimension 0.
  public func rows(_ range: Range<Int>) -> Tensor {
    precondition(rank >= 1 && range.lowerBound >= 0 && range.upperBound <= shape[0], "rows \(range) of \(self)")
    if range == 0..<shape[0] { return self }
    let rowBytes = shape.dropFirst().reduce(1, *) * dataType.byteSize
    let start = buffer.pointer + range.lowerBound * rowBytes
    let shape = [range.count] + shape.dropFirst()
    guard Int(bitPattern: start) % TensorBuffer.alignment == 0 else {
      return Tensor(
        dataType: dataType, shape: shape, copying: UnsafeRawBufferPointer(start: start, count: range.count * rowBytes))
    }
    let view = TensorBuffer(viewing: start, byteCount: range.count * rowBytes, owner: buffer)
    return Tensor(dataType: dataType, shape: shape, buffer: view)
  }
}
