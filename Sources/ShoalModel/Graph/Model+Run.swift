extension Model {
  /// Runs the model on `inputs` (by input name) and returns every graph output by name.
  ///
  /// Safe to call from many threads at once. The first run with new input shapes plans the model
  /// for them; later runs with the same shapes reuse the plan.
  ///
  /// - Throws: `.invalidInput` naming the input that is missing, unknown, or of the wrong element
  ///   type, rank or shape; errors of a node name the node.
  public func run(_ inputs: [String: Tensor]) throws(ModelError) -> [String: Tensor] {
    let (plan, byID) = try plan(for: inputs)
    return try plan.run(byID)
  }

  /// Runs the model as `run(_:)` does, timing every planned step, and returns the outputs with the
  /// time and work of each operator (fused nodes as `Conv+Relu`).
  public func profile(
    _ inputs: [String: Tensor]
  ) throws(ModelError) -> (outputs: [String: Tensor], operators: [OperatorProfile]) {
    let (outputs, steps) = try profileSteps(inputs)
    var profiles: [String: OperatorProfile] = [:]
    for step in steps {
      profiles[step.opType, default: OperatorProfile(name: step.opType)].add(seconds: step.seconds, flops: step.flops)
    }
    return (outputs, profiles.values.sorted { $0.seconds > $1.seconds })
  }

  /// Runs the model as `run(_:)` does and returns the outputs with the time and work of every
  /// planned step, in the order they ran (a fused step once, named after its first node).
  public func profileSteps(
    _ inputs: [String: Tensor]
  ) throws(ModelError) -> (
    outputs: [String: Tensor], steps: [StepProfile]
  ) {
    let (plan, byID) = try plan(for: inputs)
    var seconds = [Double](repeating: 0, count: plan.steps.count)
    let outputs = try plan.run(byID) { index, duration in
      seconds[index] += Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
    let steps = plan.steps.enumerated().map { index, step in
      StepProfile(
        node: step.label, opType: step.opType, outputShape: step.outputs.first.flatMap { plan.slots[$0]?.shape } ?? [],
        seconds: seconds[index], flops: step.flops)
    }
    return (outputs, steps)
  }

  /// Checks the inputs against the graph's declarations and returns the plan for them (made
  /// now if these shapes are new) with the inputs by value id.
  private func plan(for inputs: [String: Tensor]) throws(ModelError) -> (ExecutionPlan, [Int: Tensor]) {
    var byID: [Int: Tensor] = [:]
    var key = PlanKey(inputs: [])
    let byValue = plansByInputValue.withLock { $0 }
    for (name, tensor) in inputs.sorted(by: { $0.key < $1.key }) {
      guard let input = graph.inputs[name] else {
        let names = self.inputs.map(\.name).joined(separator: ", ")
        throw ModelError(.invalidInput, "the model has no input '\(name)' (its inputs: \(names))")
      }
      try Self.check(tensor, against: input.spec)
      byID[input.id] = tensor
      let values = byValue && Self.isSmallInteger(tensor) ? tensor.integers() : nil
      key.inputs.append(PlanKey.Input(name: name, dataType: tensor.dataType, shape: tensor.shape, values: values))
    }
    for input in self.inputs where inputs[input.name] == nil {
      throw ModelError(.invalidInput, "input '\(input.name)' is missing")
    }
    if let plan = plans.withLock({ $0[key] }) { return (plan, byID) }
    do {
      return (try makePlan(key, byID), byID)
    } catch  where error.needsInputValues && !byValue {
      plansByInputValue.withLock { $0 = true }
      plans.withLock { $0.removeAll() }
      return try plan(for: inputs)
    }
  }

  /// Integer inputs of up to 64 elements: shapes, axes, counts fed in as inputs.
  private static func isSmallInteger(_ tensor: Tensor) -> Bool {
    (tensor.dataType == .int64 || tensor.dataType == .int32) && tensor.count <= 64
  }

  private func makePlan(_ key: PlanKey, _ inputs: [Int: Tensor]) throws(ModelError) -> ExecutionPlan {
    var types: [Int: ValueType] = [:]
    for (id, tensor) in inputs {
      let known = key.inputs.contains { $0.values != nil && graph.inputs[$0.name]?.id == id }
      types[id] = ValueType(dataType: tensor.dataType, shape: tensor.shape, value: known ? tensor : nil)
    }
    let plan = try ExecutionPlan(graph: graph, inputs: types)
    plans.withLock { plans in
      if plans.count >= 64 { plans.removeAll() }
      plans[key] = plan
    }
    return plan
  }

  /// What running the model on inputs of these shapes takes: planned steps, floating-point
  /// operations per operator, arena memory. Inputs left out take their declared shape, with
  /// symbolic dimensions set to 1.
  public func summary(inputShapes: [String: [Int]] = [:]) throws(ModelError) -> PlanSummary {
    var types: [Int: ValueType] = [:]
    for input in inputs {
      guard let id = graph.inputs[input.name]?.id else { continue }
      let shape =
        inputShapes[input.name]
        ?? (input.dimensions ?? []).map { dimension -> Int in
          if case .fixed(let size) = dimension, size > 0 { return size }
          return 1
        }
      types[id] = ValueType(dataType: DataType(onnxCode: input.elementType) ?? .float32, shape: shape)
    }
    let plan = try ExecutionPlan(graph: graph, inputs: types)
    var summary = PlanSummary(steps: plan.steps.count, arenaBytes: plan.arenaBytes + plan.scratchBytes)
    for step in plan.steps { summary.flopsByOperator[step.opType, default: 0] += step.flops }
    return summary
  }

  private static func check(_ tensor: Tensor, against spec: ValueSpec) throws(ModelError) {
    if spec.elementType != 0, spec.elementType != tensor.dataType.onnxCode {
      throw ModelError(
        .invalidInput,
        "input '\(spec.name)' must be \(DataType.onnxName(spec.elementType)), not \(DataType.onnxName(tensor.dataType.onnxCode))"
      )
    }
    guard let dimensions = spec.dimensions else { return }
    let expected = "[" + dimensions.map(\.description).joined(separator: ", ") + "]"
    guard dimensions.count == tensor.rank else {
      throw ModelError(
        .invalidInput,
        "input '\(spec.name)' has rank \(tensor.rank) (shape \(tensor.shape)); the model expects \(expected)")
    }
    for (axis, dimension) in dimensions.enumerated() {
      if case .fixed(let size) = dimension, size > 0, size != tensor.shape[axis] {
        throw ModelError(
          .invalidInput,
          "input '\(spec.name)' has shape \(tensor.shape); dimension \(axis) must be \(size) (the model expects \(expected))"
        )
      }
    }
  }
}

extension Model {
  /// The bytes the model holds: its constant tensors and the working memory of the plans made so
  /// far (one arena and scratch area each). Weights a kernel re-lays at load are not counted.
  public var memoryBytes: Int {
    let constants = graph.constants.values.reduce(0) { $0 + $1.byteCount }
    let planned = plans.withLock { plans in plans.values.reduce(0) { $0 + $1.arenaBytes + $1.scratchBytes } }
    return constants + planned
  }
}
