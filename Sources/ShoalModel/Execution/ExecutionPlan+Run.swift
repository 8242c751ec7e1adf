extension ExecutionPlan {
  /// Runs the steps on `inputs` (by value id) and returns the graph outputs by name; `timed`,
  /// if given, hears how long each step took.
  func run(_ inputs: [Int: Tensor], timed: ((Int, Duration) -> Void)? = nil) throws(ModelError) -> [String: Tensor] {
    let arena = spareArenas.withLock { $0.popLast() } ?? TensorBuffer(byteCount: arenaBytes + scratchBytes)
    defer { spareArenas.withLock { $0.append(arena) } }
    var values = [Tensor?](repeating: nil, count: slots.count)
    for (id, slot) in slots.enumerated() {
      guard let slot else { continue }
      switch slot.storage {
      case .constant(let tensor): values[id] = tensor
      case .input: values[id] = inputs[id]
      case .arena(let offset):
        let byteCount = slot.shape.elementCount * slot.dataType.byteSize
        let view = TensorBuffer(viewing: arena.pointer + offset, byteCount: byteCount, owner: arena)
        values[id] = Tensor(dataType: slot.dataType, shape: slot.shape, buffer: view)
      case .fresh: values[id] = Tensor(uninitialized: slot.shape, dataType: slot.dataType)
      case .alias: break
      }
    }
    let scratch = scratchBytes > 0 ? arena.pointer + arenaBytes : nil
    for (index, step) in steps.enumerated() {
      let start = timed == nil ? nil : ContinuousClock.now
      defer { if let start, let timed { timed(index, ContinuousClock.now - start) } }
      if step.aliases {
        values[step.outputs[0]] = values[step.inputs[0]!]!.reshaped(slots[step.outputs[0]]!.shape)
        continue
      }
      do throws(ModelError) {
        try step.kernel.run(
          step.inputs.map { $0.map { values[$0]! } }, step.outputs.map { values[$0]! }, scratch: scratch)
      } catch {
        throw error.prefixed(step.label)
      }
    }
    var results: [String: Tensor] = [:]
    for output in outputs {
      results[output.name] = isInArena(output.id) ? values[output.id]!.copied() : values[output.id]!
    }
    return results
  }

  /// Whether the value's elements live in the arena, which the next run reuses.
  private func isInArena(_ id: Int) -> Bool {
    var current = id
    while true {
      switch slots[current]!.storage {
      case .alias(let source): current = source
      case .arena: return true
      default: return false
      }
    }
  }
}
