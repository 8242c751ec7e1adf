/// Operators that move elements without arithmetic: Transpose, Concat, Split, Slice, Gather, Pad,
/// Tile, Expand, Cast, Where.
struct DataMovementKernel: Kernel {
  enum Kind: Sendable {
    case transpose(perm: [Int]?)
    case concat(axis: Int)
    case split(axis: Int, sizes: [Int]?, outputs: Int)
    case slice(legacy: (starts: [Int], ends: [Int], axes: [Int]?)?)
    case gather(axis: Int)
    case pad(mode: String, legacy: (pads: [Int], value: Float)?)
    case tile
    case expand
    case cast(to: DataType)
    case `where`
  }

  var kind: Kind

  func plan(_ inputs: [ValueType?]) throws(ModelError) -> KernelPlan {
    let x = try inputs.required(0, "input")
    switch kind {
    case .transpose(let perm):
      let order = try permutation(perm, rank: x.rank)
      return single(x.dataType, order.map { x.shape[$0] })
    case .concat(let axis):
      let parts = inputs.compactMap { $0 }
      let a = try normalisedAxis(axis, rank: x.rank)
      var shape = x.shape
      shape[a] = 0
      for (index, part) in parts.enumerated() {
        guard part.rank == x.rank, part.dataType == x.dataType,
          part.shape.enumerated().allSatisfy({ $0.offset == a || $0.element == x.shape[$0.offset] })
        else {
          throw ModelError(.invalidInput, "input \(index) \(part.shape) does not fit \(x.shape) along axis \(axis)")
        }
        shape[a] += part.shape[a]
      }
      return single(x.dataType, shape)
    case .split(let axis, let sizes, let count):
      let a = try normalisedAxis(axis, rank: x.rank)
      let parts = try splitSizes(x.shape[a], sizes: inputs.integers(sizes, orInput: 1, "split"), count: count)
      return KernelPlan(
        outputs: parts.map { size in
          var shape = x.shape
          shape[a] = size
          return ValueType(dataType: x.dataType, shape: shape)
        })
    case .slice(let legacy):
      let region = try sliceRegion(x.shape, inputs, legacy)
      return single(x.dataType, region.shape)
    case .gather(let axis):
      let indices = try inputs.required(1, "indices")
      try requireType(indices, [.int64, .int32], "indices")
      let a = try normalisedAxis(axis, rank: x.rank)
      return single(x.dataType, Array(x.shape.prefix(a)) + indices.shape + x.shape.suffix(from: a + 1))
    case .pad(let mode, let legacy):
      let pads = try padAmounts(x, inputs, legacy)
      guard mode == "constant" || x.shape.elementCount > 0 else {
        throw ModelError(.invalidInput, "cannot \(mode)-pad an empty tensor")
      }
      let shape = x.shape.indices.map { x.shape[$0] + pads[$0] + pads[$0 + x.rank] }
      guard shape.allSatisfy({ $0 >= 0 }) else {
        throw ModelError(.invalidInput, "pads \(pads) remove more than \(x.shape) holds")
      }
      return single(x.dataType, shape)
    case .tile:
      guard let repeats = try inputs.constantIntegers(1, "repeats"), repeats.count == x.rank,
        repeats.allSatisfy({ $0 >= 0 })
      else {
        throw ModelError(.invalidInput, "repeats must give one non-negative count per axis of \(x.shape)")
      }
      return single(x.dataType, zip(x.shape, repeats).map(*))
    case .expand:
      guard let shape = try inputs.constantIntegers(1, "shape") else {
        throw ModelError(.invalidModel, "shape is required")
      }
      return single(x.dataType, try Broadcast.shape([x.shape, shape]))
    case .cast(let type):
      return single(type, x.shape)
    case .where:
      try requireType(x, [.bool], "condition")
      let a = try inputs.required(1, "X")
      let b = try inputs.required(2, "Y")
      guard a.dataType == b.dataType else { throw ModelError(.invalidInput, "X is \(a.dataType), Y is \(b.dataType)") }
      return single(a.dataType, try Broadcast.shape([x.shape, a.shape, b.shape]))
    }
  }

  private func single(_ type: DataType, _ shape: [Int]) -> KernelPlan {
    KernelPlan(outputs: [ValueType(dataType: type, shape: shape)])
  }

  private func permutation(_ perm: [Int]?, rank: Int) throws(ModelError) -> [Int] {
    let order = perm ?? Array((0..<rank).reversed())
    guard order.sorted() == Array(0..<rank) else {
      throw ModelError(.invalidInput, "perm \(order) is not a permutation of \(rank) axes")
    }
    return order
  }

  private func splitSizes(_ length: Int, sizes: [Int]?, count: Int) throws(ModelError) -> [Int] {
    if let sizes {
      guard sizes.count == count, sizes.reduce(0, +) == length, sizes.allSatisfy({ $0 >= 0 }) else {
        throw ModelError(.invalidInput, "split \(sizes) does not divide \(length) elements into \(count) outputs")
      }
      return sizes
    }
    let part = (length + count - 1) / count
    return (0..<count).map { max(0, min(part, length - $0 * part)) }
  }

  /// The region a Slice reads: start per axis, step per axis and the output shape.
  private func sliceRegion(
    _ shape: [Int], _ inputs: [ValueType?], _ legacy: (starts: [Int], ends: [Int], axes: [Int]?)?
  ) throws(ModelError) -> (start: [Int], step: [Int], shape: [Int]) {
    var starts: [Int] = []
    var ends: [Int] = []
    var axes: [Int]? = nil
    var steps: [Int]? = nil
    if let legacy {
      (starts, ends, axes) = legacy
    } else {
      starts = try inputs.constantIntegers(1, "starts") ?? []
      ends = try inputs.constantIntegers(2, "ends") ?? []
      axes = try inputs.constantIntegers(3, "axes")
      steps = try inputs.constantIntegers(4, "steps")
    }
    let chosen = axes ?? Array(0..<starts.count)
    guard starts.count == ends.count, chosen.count == starts.count, steps == nil || steps!.count == starts.count else {
      throw ModelError(
        .invalidInput, "starts \(starts), ends \(ends), axes and steps must have one entry per sliced axis")
    }
    var start = [Int](repeating: 0, count: shape.count)
    var step = [Int](repeating: 1, count: shape.count)
    var out = shape
    for (index, rawAxis) in chosen.enumerated() {
      let axis = try normalisedAxis(rawAxis, rank: shape.count)
      let size = shape[axis]
      let stride = steps?[index] ?? 1
      guard stride != 0 else { throw ModelError(.invalidInput, "steps must not be 0") }
      var from = starts[index] < 0 ? starts[index] + size : starts[index]
      var to = ends[index] < 0 ? ends[index] + size : ends[index]
      if stride > 0 {
        from = min(max(from, 0), size)
        to = min(max(to, 0), size)
        out[axis] = max(0, (to - from + stride - 1) / stride)
      } else {
        from = min(max(from, -1), size - 1)
        to = min(max(to, -1), size - 1)
        out[axis] = max(0, (from - to - stride - 1) / -stride)
      }
      start[axis] = from
      step[axis] = stride
    }
    return (start, step, out)
  }

  private func padAmounts(
    _ x: ValueType, _ inputs: [ValueType?], _ legacy: (pads: [Int], value: Float)?
  ) throws(ModelError) -> [Int] {
    if let legacy {
      guard legacy.pads.count == 2 * x.rank else {
        throw ModelError(.invalidInput, "pads \(legacy.pads) must have \(2 * x.rank) entries")
      }
      return legacy.pads
    }
    guard let given = try inputs.constantIntegers(1, "pads") else {
      throw ModelError(.invalidModel, "pads are required")
    }
    guard let axes = try inputs.constantIntegers(3, "axes") else {
      guard given.count == 2 * x.rank else {
        throw ModelError(.invalidInput, "pads \(given) must have \(2 * x.rank) entries")
      }
      return given
    }
    var pads = [Int](repeating: 0, count: 2 * x.rank)
    guard given.count == 2 * axes.count else {
      throw ModelError(.invalidInput, "pads \(given) must have two entries per axis in \(axes)")
    }
    for (index, rawAxis) in axes.enumerated() {
      let axis = try normalisedAxis(rawAxis, rank: x.rank)
      pads[axis] = given[index]
      pads[axis + x.rank] = given[index + axes.count]
    }
    return pads
  }

  func run(_ inputs: [Tensor?], _ outputs: [Tensor], scratch: UnsafeMutableRawPointer?) throws(ModelError) {
    let x = inputs[0]!
    // Slice and Pad read their amounts from their inputs as planning did.
    var types: [ValueType?] { inputs.map { $0.map { ValueType($0) } } }
    switch kind {
    case .transpose(let perm):
      let order = try permutation(perm, rank: x.rank)
      let strides = x.shape.strides
      StridedCopy.copy(x, strides: order.map { strides[$0] }, shape: outputs[0].shape, into: outputs[0])
    case .concat(let axis):
      let a = try normalisedAxis(axis, rank: x.rank)
      let outer = x.shape.prefix(a).reduce(1, *)
      let size = x.dataType.byteSize
      let rowBytes = outputs[0].shape.suffix(from: a).reduce(1, *) * size
      var (column, copies) = (0, [MemoryCopy]())
      for part in inputs.compactMap({ $0 }) {
        let partBytes = part.shape.suffix(from: a).reduce(1, *) * size
        for o in 0..<outer {
          copies.append(
            MemoryCopy(
              to: outputs[0].buffer.pointer + o * rowBytes + column, from: part.buffer.pointer + o * partBytes,
              bytes: partBytes))
        }
        column += partBytes
      }
      MemoryCopy.run(copies)
    case .split(let axis, _, _):
      let a = try normalisedAxis(axis, rank: x.rank)
      let outer = x.shape.prefix(a).reduce(1, *)
      let size = x.dataType.byteSize
      let rowBytes = x.shape.suffix(from: a).reduce(1, *) * size
      var (column, copies) = (0, [MemoryCopy]())
      for part in outputs {
        let partBytes = part.shape.suffix(from: a).reduce(1, *) * size
        for o in 0..<outer {
          copies.append(
            MemoryCopy(
              to: part.buffer.pointer + o * partBytes, from: x.buffer.pointer + o * rowBytes + column,
              bytes: partBytes))
        }
        column += partBytes
      }
      MemoryCopy.run(copies)
    case .slice(let legacy):
      let region = try sliceRegion(x.shape, types, legacy)
      let strides = x.shape.strides
      let offset = zip(region.start, strides).map { max($0, 0) * $1 }.reduce(0, +)
      StridedCopy.copy(
        x, offset: offset, strides: zip(strides, region.step).map(*), shape: region.shape, into: outputs[0])
    case .gather(let axis):
      try gather(x, inputs[1]!, axis: normalisedAxis(axis, rank: x.rank), into: outputs[0])
    case .pad(let mode, let legacy):
      try pad(
        x, pads: padAmounts(ValueType(x), types, legacy), mode: mode, value: legacy?.value,
        constant: inputs.count > 2 ? inputs[2] : nil, into: outputs[0])
    case .tile:
      tile(x, into: outputs[0])
    case .expand:
      Broadcast.expand(x, to: outputs[0])
    case .cast(let type):
      Self.cast(x, to: type, into: outputs[0])
    case .where:
      select(x, inputs[1]!, inputs[2]!, into: outputs[0])
    }
  }

  private func gather(_ x: Tensor, _ indices: Tensor, axis: Int, into out: Tensor) throws(ModelError) {
    let size = x.dataType.byteSize
    let outer = x.shape.prefix(axis).reduce(1, *)
    let length = x.shape[axis]
    let innerBytes = x.shape.suffix(from: axis + 1).reduce(1, *) * size
    let positions = indices.integers()
    var resolved = [Int]()
    resolved.reserveCapacity(positions.count)
    for index in positions {
      let position = index < 0 ? index + length : index
      guard position >= 0, position < length else {
        throw ModelError(.invalidInput, "index \(index) is out of range for axis \(axis) of size \(length)")
      }
      resolved.append(position)
    }
    var target = out.buffer.pointer
    for o in 0..<outer {
      for position in resolved {
        target.copyMemory(from: x.buffer.pointer + (o * length + position) * innerBytes, byteCount: innerBytes)
        target += innerBytes
      }
    }
  }

  private func pad(
    _ x: Tensor, pads: [Int], mode: String, value: Float?, constant: Tensor?, into out: Tensor
  ) throws(ModelError) {
    let rank = x.rank
    let outStrides = out.shape.strides
    let inStrides = x.shape.strides
    let size = x.dataType.byteSize
    if mode == "constant" {
      // Fill with the constant, then copy the kept region of the input in.
      var fill = Tensor(zeros: [1], dataType: x.dataType)
      if let constant, constant.count > 0 {
        fill = constant
      } else if let value, value != 0 {
        fill = Self.converted(Tensor(shape: [1], elements: [value]), to: x.dataType)
      }
      for index in 0..<out.count {
        (out.buffer.pointer + index * size).copyMemory(from: fill.buffer.pointer, byteCount: size)
      }
      var kept = x.shape
      var inOffset = 0
      var outOffset = 0
      for axis in 0..<rank {
        let cutBegin = max(0, -pads[axis])
        let cutEnd = max(0, -pads[axis + rank])
        kept[axis] = x.shape[axis] - cutBegin - cutEnd
        inOffset += cutBegin * inStrides[axis]
        outOffset += max(0, pads[axis]) * outStrides[axis]
      }
      guard kept.allSatisfy({ $0 > 0 }) else { return }
      let region = Tensor(zeros: kept, dataType: x.dataType)
      StridedCopy.copy(x, offset: inOffset, strides: inStrides, shape: kept, into: region)
      // Scatter the region's rows into the output.
      let rowBytes = kept[rank - 1] * size
      let rows = kept.dropLast().reduce(1, *)
      var index = [Int](repeating: 0, count: max(rank - 1, 0))
      let rowShape = Array(kept.dropLast())
      for row in 0..<rows {
        var offset = outOffset
        for axis in 0..<(rank - 1) { offset += index[axis] * outStrides[axis] }
        (out.buffer.pointer + offset * size).copyMemory(
          from: region.buffer.pointer + row * rowBytes, byteCount: rowBytes)
        index.advance(within: rowShape)
      }
      return
    }
    // reflect, edge, wrap: each output element reads one input element.
    var index = [Int](repeating: 0, count: rank)
    for position in 0..<out.count {
      var source = 0
      for axis in 0..<rank {
        let length = x.shape[axis]
        var i = index[axis] - pads[axis]
        switch mode {
        case "edge": i = min(max(i, 0), length - 1)
        case "wrap": i = ((i % length) + length) % length
        default:
          if length == 1 {
            i = 0
          } else {
            let period = 2 * (length - 1)
            i = ((i % period) + period) % period
            if i >= length { i = period - i }
          }
        }
        source += i * inStrides[axis]
      }
      (out.buffer.pointer + position * size).copyMemory(from: x.buffer.pointer + source * size, byteCount: size)
      index.advance(within: out.shape)
    }
  }

  private func tile(_ x: Tensor, into out: Tensor) {
    let rank = x.rank
    let size = x.dataType.byteSize
    let inStrides = x.shape.strides
    var index = [Int](repeating: 0, count: rank)
    for position in 0..<out.count {
      var source = 0
      for axis in 0..<rank { source += (index[axis] % x.shape[axis]) * inStrides[axis] }
      (out.buffer.pointer + position * size).copyMemory(from: x.buffer.pointer + source * size, byteCount: size)
      index.advance(within: out.shape)
    }
  }

  private func select(_ condition: Tensor, _ a: Tensor, _ b: Tensor, into out: Tensor) {
    let size = out.dataType.byteSize
    let conditions = Tensor(zeros: out.shape, dataType: .bool)
    Broadcast.expand(condition, to: conditions)
    let first = Tensor(zeros: out.shape, dataType: out.dataType)
    Broadcast.expand(a, to: first)
    Broadcast.expand(b, to: out)
    let flags = conditions.pointer(as: Bool.self)
    for index in 0..<out.count where flags[index] {
      (out.buffer.pointer + index * size).copyMemory(from: first.buffer.pointer + index * size, byteCount: size)
    }
  }

  /// `x`'s elements converted to `type` (ONNX's Cast: floats truncate towards zero into integers).
  static func converted(_ x: Tensor, to type: DataType) -> Tensor {
    let out = Tensor(zeros: x.shape, dataType: type)
    cast(x, to: type, into: out)
    return out
  }

  static func cast(_ x: Tensor, to type: DataType, into out: Tensor) {
    if x.dataType == type {
      out.buffer.pointer.copyMemory(from: x.buffer.pointer, byteCount: x.byteCount)
      return
    }
    let values = x.doubles()
    let isIntegral = !x.dataType.isFloatingPoint
    let integers = isIntegral ? x.integers() : []
    for index in 0..<x.count {
      let value = values[index]
      switch type {
      case .float32: out.mutablePointer(as: Float.self)[index] = Float(value)
      case .float64: out.mutablePointer(as: Double.self)[index] = value
      case .int64:
        out.mutablePointer(as: Int64.self)[index] =
          isIntegral
          ? Int64(integers[index])
          : (value.isFinite ? Int64(clamping: Int(exactly: value.rounded(.towardZero)) ?? 0) : Int64.min)
      case .int32:
        out.mutablePointer(as: Int32.self)[index] =
          value.isFinite ? Int32(truncatingIfNeeded: Int(value.rounded(.towardZero))) : Int32.min
      case .int8:
        out.mutablePointer(as: Int8.self)[index] =
          value.isFinite ? Int8(truncatingIfNeeded: Int(value.rounded(.towardZero))) : 0
      case .uint8:
        out.mutablePointer(as: UInt8.self)[index] =
          value.isFinite ? UInt8(truncatingIfNeeded: Int(value.rounded(.towardZero))) : 0
      case .bool: out.mutablePointer(as: Bool.self)[index] = value != 0
      }
    }
  }

  static let builders: [String: OperatorBuilder] = [
    "Transpose": { context in DataMovementKernel(kind: .transpose(perm: context.attributes.ints("perm"))) },
    "Concat": { context in
      DataMovementKernel(kind: .concat(axis: context.attributes.int("axis", default: context.opset < 4 ? 1 : 0)))
    },
    "Split": { context in
      let sizes = context.opset < 13 ? context.attributes.ints("split") : nil
      if let count = context.attributes.int("num_outputs"), count != context.outputCount {
        throw ModelError(.invalidModel, "num_outputs \(count) differs from the \(context.outputCount) outputs named")
      }
      return DataMovementKernel(
        kind: .split(axis: context.attributes.int("axis", default: 0), sizes: sizes, outputs: context.outputCount))
    },
    "Slice": { context in
      guard context.opset < 10 else { return DataMovementKernel(kind: .slice(legacy: nil)) }
      guard let starts = context.attributes.ints("starts"), let ends = context.attributes.ints("ends") else {
        throw ModelError(.invalidModel, "starts and ends are required")
      }
      return DataMovementKernel(kind: .slice(legacy: (starts, ends, context.attributes.ints("axes"))))
    },
    "Gather": { context in DataMovementKernel(kind: .gather(axis: context.attributes.int("axis", default: 0))) },
    "Pad": { context in
      let mode = try context.attributes.string(
        "mode", default: "constant", oneOf: ["constant", "reflect", "edge", "wrap"])
      guard context.opset < 11 else { return DataMovementKernel(kind: .pad(mode: mode, legacy: nil)) }
      guard let pads = context.attributes.ints("pads") ?? context.attributes.ints("paddings") else {
        throw ModelError(.invalidModel, "pads are required")
      }
      return DataMovementKernel(kind: .pad(mode: mode, legacy: (pads, context.attributes.float("value", default: 0))))
    },
    "Tile": { _ in DataMovementKernel(kind: .tile) },
    "Expand": { _ in DataMovementKernel(kind: .expand) },
    "Where": { _ in DataMovementKernel(kind: .where) },
    "Cast": { context in
      context.attributes.ignore("saturate")
      guard let code = context.attributes.int("to"), let type = DataType(onnxCode: Int32(code)) else {
        throw ModelError(
          .unsupported, "Cast to \(DataType.onnxName(Int32(context.attributes.int("to") ?? 0))) is not supported")
      }
      return DataMovementKernel(kind: .cast(to: type))
    },
  ]
}

/// One contiguous copy of Concat's or Split's; `run` does a list of them in pieces of 64 KiB
/// split across the cores (SqueezeNet's Concats of 6 MB at batch 8 took 0.9–1.1 ms on one core,
/// onnxruntime's 0.5–0.7).
struct MemoryCopy {
  var to: UnsafeMutableRawPointer
  var from: UnsafeRawPointer
  var bytes: Int

  static let pieceBytes = 1 << 16

  static func run(_ copies: [MemoryCopy]) {
    // The pieces numbered copy after copy: `ends[i]` is the number of pieces up to copy i's end.
    var ends: [Int] = []
    ends.reserveCapacity(copies.count)
    for copy in copies { ends.append((ends.last ?? 0) + (copy.bytes + pieceBytes - 1) / pieceBytes) }
    let pieces = ends.last ?? 0
    copies.withUnsafeBufferPointer { copies in
      ends.withUnsafeBufferPointer { ends in
        Parallel.forEachRange(pieces, costPerItem: pieceBytes / 16, multipleOf: 1) { range in
          // The copy holding the range's first piece: the first whose end passes it.
          var (index, high) = (0, ends.count - 1)
          while index < high {
            let middle = (index + high) / 2
            if ends[middle] > range.lowerBound { high = middle } else { index = middle + 1 }
          }
          for piece in range {
            while ends[index] <= piece { index += 1 }
            let copy = copies[index]
            let first = piece - (index == 0 ? 0 : ends[index - 1])
            let offset = first * pieceBytes
            (copy.to + offset).copyMemory(from: copy.from + offset, byteCount: min(pieceBytes, copy.bytes - offset))
          }
        }
      }
    }
  }
}
