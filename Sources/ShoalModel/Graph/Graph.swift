import ShoalProto

/// A model's graph after loading: values numbered, constants decoded, every node with its kernel,
/// nodes in an order where each runs after the nodes it reads from.
struct Graph: Sendable {
  struct Node: Sendable {
    var name: String
    var opType: String
    /// Value ids read, nil where an optional input is left out.
    var inputs: [Int?]
    /// Value ids written; outputs the model leaves unnamed get ids of their own.
    var outputs: [Int]
    var kernel: any Kernel

    /// How errors name the node: `node 'conv1' (Conv)`.
    var label: String { name.isEmpty ? "node \(opType)" : "node '\(name)' (\(opType))" }
  }

  var valueNames: [String] = []
  var constants: [Int: Tensor] = [:]
  /// Graph inputs by name, with their declared type (those with initializers included).
  var inputs: [String: (id: Int, spec: Model.ValueSpec)] = [:]
  var outputs: [(id: Int, name: String)] = []
  var nodes: [Node] = []
  /// Initializers a caller may override by passing an input of the same name (IR 4 and later).
  var overridable: Set<Int> = []

  init(
    _ proto: Onnx.GraphProto, irVersion: Int64, opset: Int, baseDirectory: String?
  ) throws(ModelError) {
    var ids: [String: Int] = [:]
    func id(_ name: String) -> Int {
      if let id = ids[name] { return id }
      valueNames.append(name)
      ids[name] = valueNames.count - 1
      return valueNames.count - 1
    }
    for initializer in proto.initializer {
      constants[id(initializer.name)] = try Tensor(onnx: initializer, baseDirectory: baseDirectory)
    }
    for input in proto.input {
      let value = id(input.name)
      if constants[value] != nil {
        // Before IR 4 every initializer is listed as an input too, and is a constant all the same.
        guard irVersion >= 4 else { continue }
        overridable.insert(value)
      }
      inputs[input.name] = (value, Model.ValueSpec(name: input.name, elementType: 0, dimensions: nil))
    }
    for input in proto.input where inputs[input.name] != nil {
      guard case .tensorType = input.type?.value else {
        if constants[id(input.name)] != nil { continue }
        throw ModelError(.unsupported, "input '\(input.name)' is not a tensor; only tensor inputs are supported")
      }
      inputs[input.name]?.spec = Model.spec(input)
    }

    var unsupported: [String] = []
    var unsupportedOperators: [String: [String]] = [:]
    var pending: [Node] = []
    for (index, nodeProto) in proto.node.enumerated() {
      let name = nodeProto.name.isEmpty ? "#\(index)" : nodeProto.name
      let domain = nodeProto.domain == "ai.onnx" ? "" : nodeProto.domain
      let qualified = domain.isEmpty ? nodeProto.opType : "\(domain).\(nodeProto.opType)"
      let attributes = NodeAttributes(opType: nodeProto.opType, attributes: nodeProto.attribute)
      if domain.isEmpty, nodeProto.opType == "Constant" {
        guard nodeProto.output.count == 1 else {
          throw ModelError(.invalidModel, "Constant node '\(name)' must have one output")
        }
        do {
          constants[id(nodeProto.output[0])] = try Self.constant(attributes)
        } catch {
          unsupported.append("node '\(name)' (Constant): \(error.message)")
        }
        continue
      }
      guard domain.isEmpty, let builder = OperatorSet.builders[nodeProto.opType] else {
        unsupportedOperators[qualified, default: []].append(name)
        continue
      }
      let context = OperatorContext(
        attributes: attributes, opset: opset, inputCount: nodeProto.input.count, outputCount: nodeProto.output.count)
      let kernel: any Kernel
      do {
        kernel = try builder(context)
      } catch {
        unsupported.append("node '\(name)' (\(nodeProto.opType)): \((error as? ModelError)?.message ?? "\(error)")")
        continue
      }
      for attribute in attributes.unread {
        unsupported.append("node '\(name)' (\(nodeProto.opType)): attribute '\(attribute)' is not supported")
      }
      let outputs = nodeProto.output.enumerated().map { index, output in
        output.isEmpty ? id("\(name):unnamed-output-\(index)") : id(output)
      }
      pending.append(
        Node(
          name: nodeProto.name, opType: nodeProto.opType,
          inputs: nodeProto.input.map { $0.isEmpty ? nil : id($0) }, outputs: outputs, kernel: kernel))
    }
    for (operatorName, nodes) in unsupportedOperators.sorted(by: { $0.key < $1.key }) {
      let shown = nodes.prefix(3).map { "'\($0)'" }.joined(separator: ", ") + (nodes.count > 3 ? ", …" : "")
      unsupported.insert("operator \(operatorName) is not supported (\(nodes.count) node(s): \(shown))", at: 0)
    }
    guard unsupported.isEmpty else {
      throw ModelError(
        .unsupported, "the model uses what Shoal does not support:\n  " + unsupported.joined(separator: "\n  "))
    }
    for output in proto.output { outputs.append((id(output.name), output.name)) }
    nodes = try Self.sorted(
      pending, constants: Set(constants.keys), inputs: Set(inputs.values.map(\.id)), names: valueNames)
    for output in outputs where constants[output.id] == nil && inputs[output.name] == nil {
      guard nodes.contains(where: { $0.outputs.contains(output.id) }) else {
        throw ModelError(.invalidModel, "graph output '\(output.name)' is not produced by any node")
      }
    }
    try foldConstants()
    fuse()
  }

  /// Computes, once at load, every node whose inputs are all fixed constants (weights built by
  /// ConstantOfShape, reshaped or transposed initializers), so later steps see plain constants.
  private mutating func foldConstants() throws(ModelError) {
    var remaining: [Node] = []
    for node in nodes {
      // nil where an optional input is absent, .some(nil) where an input is not a fixed constant.
      let inputs = node.inputs.map { $0.map { fixedConstant($0) } }
      guard !node.inputs.isEmpty, !inputs.contains(where: { $0 != nil && $0! == nil }),
        !node.outputs.contains(where: { id in outputs.contains { $0.id == id } })
      else {
        remaining.append(node)
        continue
      }
      let types = inputs.map { $0.flatMap { $0.map { ValueType($0) } } }
      do throws(ModelError) {
        let plan = try node.kernel.plan(types)
        var results = plan.outputs.map { $0.value }
        if plan.aliasesInput, let source = inputs[0] ?? nil {
          results[0] = source.reshaped(plan.outputs[0].shape)
        } else if !results.allSatisfy({ $0 != nil }) {
          let tensors = plan.outputs.map { Tensor(uninitialized: $0.shape, dataType: $0.dataType) }
          let scratch = plan.scratchBytes > 0 ? TensorBuffer(byteCount: plan.scratchBytes) : nil
          try node.kernel.run(inputs.map { $0 ?? nil }, tensors, scratch: scratch?.pointer)
          results = tensors
        }
        for (index, output) in node.outputs.enumerated() { constants[output] = results[index] }
      } catch {
        throw error.prefixed(node.label)
      }
    }
    nodes = remaining
  }

  /// Kahn's algorithm: nodes in an order where every input is ready before its reader runs.
  private static func sorted(
    _ nodes: [Node], constants: Set<Int>, inputs: Set<Int>, names: [String]
  ) throws(ModelError) -> [Node] {
    var producer: [Int: Int] = [:]
    for (index, node) in nodes.enumerated() {
      for output in node.outputs {
        guard producer[output] == nil, !constants.contains(output), !inputs.contains(output) else {
          throw ModelError(.invalidModel, "\(node.label) writes '\(names[output])', which is already defined")
        }
        producer[output] = index
      }
    }
    var waiting = [Int](repeating: 0, count: nodes.count)
    var readers: [Int: [Int]] = [:]
    for (index, node) in nodes.enumerated() {
      for input in node.inputs.compactMap({ $0 }) where !constants.contains(input) && !inputs.contains(input) {
        guard let source = producer[input] else {
          throw ModelError(
            .invalidModel, "\(node.label) reads '\(names[input])', which no node, graph input or initializer provides")
        }
        waiting[index] += 1
        readers[source, default: []].append(index)
      }
    }
    var ready = nodes.indices.filter { waiting[$0] == 0 }.reversed().map { $0 }
    var order: [Node] = []
    while let next = ready.popLast() {
      order.append(nodes[next])
      for reader in readers[next] ?? [] {
        waiting[reader] -= 1
        if waiting[reader] == 0 { ready.append(reader) }
      }
    }
    guard order.count == nodes.count else {
      let stuck = nodes.indices.filter { waiting[$0] > 0 }.prefix(5).map { nodes[$0].label }
      throw ModelError(.invalidModel, "the graph has a cycle through \(stuck.joined(separator: ", "))")
    }
    return order
  }

  /// The tensor a Constant node holds, from whichever value attribute it sets.
  private static func constant(_ attributes: NodeAttributes) throws(ModelError) -> Tensor {
    if let tensor = try attributes.tensor("value") { return tensor }
    if let value = attributes.float("value_float") { return Tensor(scalar: value) }
    if let values = attributes.floats("value_floats") { return Tensor(shape: [values.count], elements: values) }
    if let value = attributes.int("value_int") { return Tensor(scalar: Int64(value)) }
    if let values = attributes.ints("value_ints") {
      return Tensor(shape: [values.count], elements: values.map { Int64($0) })
    }
    throw ModelError(
      .unsupported, "a Constant needs value, value_float(s) or value_int(s); \(attributes.unread) are not supported")
  }
}
