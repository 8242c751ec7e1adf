import Synchronization

/// The inputs' names, element types and shapes: a model gets one execution plan per key.
struct PlanKey: Hashable, Sendable {
  struct Input: Hashable, Sendable {
    var name: String
    var dataType: DataType
    var shape: [Int]
    /// The elements of a small integer input, for models planned per input value.
    var values: [Int]? = nil
  }
  var inputs: [Input]
}

/// How a model runs for one set of input shapes: the steps in order, where every value lives, and
/// how large the arena is in which intermediate values share memory once they are no longer read.
final class ExecutionPlan: Sendable {
  enum Storage: Sendable {
    case input(String)
    case constant(Tensor)
    /// Inside the arena at this byte offset.
    case arena(Int)
    /// A buffer of its own: a graph output.
    case fresh
    /// The elements of another value, seen with this value's shape.
    case alias(Int)
  }

  struct Slot: Sendable {
    var storage: Storage
    var dataType: DataType
    var shape: [Int]
  }

  struct Step: Sendable {
    var kernel: any Kernel
    var inputs: [Int?]
    var outputs: [Int]
    var aliases: Bool
    var label: String
    var opType: String
    var flops: Int
  }

  let slots: [Slot?]
  let steps: [Step]
  let arenaBytes: Int
  let scratchBytes: Int
  let outputs: [(id: Int, name: String)]
  /// Arenas of finished runs, reused by the next ones.
  let spareArenas = Mutex<[TensorBuffer]>([])

  /// Plans `graph` for inputs of the types in `inputs` (by value id). Nodes whose inputs are all
  /// known are computed here, once, and become constants of the plan.
  init(graph: Graph, inputs: [Int: ValueType]) throws(ModelError) {
    var types = [ValueType?](repeating: nil, count: graph.valueNames.count)
    var slots = [Slot?](repeating: nil, count: graph.valueNames.count)
    for (id, tensor) in graph.constants {
      types[id] = ValueType(tensor)
      slots[id] = Slot(storage: .constant(tensor), dataType: tensor.dataType, shape: tensor.shape)
    }
    for (id, type) in inputs {
      types[id] = type
      slots[id] = Slot(storage: .input(graph.valueNames[id]), dataType: type.dataType, shape: type.shape)
    }
    var steps: [Step] = []
    var scratchNeeds: [Int] = []
    for node in graph.nodes {
      let nodeInputs = node.inputs.map { $0.flatMap { types[$0] } }
      let plan: KernelPlan
      do throws(ModelError) {
        plan = try node.kernel.plan(nodeInputs)
      } catch {
        throw error.prefixed(node.label)
      }
      guard plan.outputs.count >= node.outputs.count else {
        throw ModelError(
          .invalidModel, "\(node.label) names \(node.outputs.count) outputs; the operator has \(plan.outputs.count)")
      }
      let known = nodeInputs.allSatisfy { $0 == nil || $0?.value != nil }
      var outputs = Array(plan.outputs.prefix(node.outputs.count))
      if plan.aliasesInput, let value = nodeInputs[0]?.value {
        outputs[0].value = value.reshaped(outputs[0].shape)
      } else if known && !plan.outputs.allSatisfy({ $0.value != nil }) {
        let tensors = plan.outputs.map { Tensor(uninitialized: $0.shape, dataType: $0.dataType) }
        let scratch = plan.scratchBytes > 0 ? TensorBuffer(byteCount: plan.scratchBytes) : nil
        do throws(ModelError) {
          try node.kernel.run(nodeInputs.map { $0?.value }, tensors, scratch: scratch?.pointer)
        } catch {
          throw error.prefixed(node.label)
        }
        for index in outputs.indices { outputs[index].value = tensors[index] }
      }
      for (index, output) in node.outputs.enumerated() {
        types[output] = outputs[index]
        if let value = outputs[index].value {
          slots[output] = Slot(storage: .constant(value), dataType: value.dataType, shape: value.shape)
        }
      }
      if outputs.allSatisfy({ $0.value != nil }) { continue }
      steps.append(
        Step(
          kernel: node.kernel, inputs: node.inputs, outputs: node.outputs, aliases: plan.aliasesInput,
          label: node.label,
          opType: node.opType, flops: node.kernel.flops(nodeInputs, plan.outputs)))
      scratchNeeds.append(plan.scratchBytes)
    }

    // Storage: graph outputs get buffers of their own, aliases share their source's, the rest
    // share the arena, each value's bytes reused once its last reader has run.
    let graphOutputs = Set(graph.outputs.map(\.id))
    var root: [Int: Int] = [:]
    var lastUse: [Int: Int] = [:]
    for (index, step) in steps.enumerated() {
      for (position, output) in step.outputs.enumerated() {
        let type = types[output]!
        if step.aliases && position == 0, let source = step.inputs[0] {
          slots[output] = Slot(storage: .alias(source), dataType: type.dataType, shape: type.shape)
          root[output] = root[source] ?? source
        } else {
          slots[output] = Slot(
            storage: graphOutputs.contains(output) ? .fresh : .arena(-1), dataType: type.dataType, shape: type.shape)
          root[output] = output
          lastUse[output] = index
        }
      }
      for input in step.inputs.compactMap({ $0 }) {
        if let source = root[input] { lastUse[source] = index }
      }
    }
    // A graph output that views an intermediate (a Reshape at the end) keeps that memory to the end
    // of the run, where the output is copied out.
    for output in graphOutputs {
      if let source = root[output], source != output { lastUse[source] = steps.count }
    }
    var allocator = ArenaAllocator()
    for (index, step) in steps.enumerated() {
      for output in step.outputs {
        guard case .arena = slots[output]!.storage else { continue }
        let offset = allocator.allocate(types[output]!.shape.elementCount * types[output]!.dataType.byteSize)
        slots[output]!.storage = .arena(offset)
      }
      for (value, last) in lastUse where last == index {
        if case .arena(let offset) = slots[value]!.storage { allocator.free(offset) }
      }
    }
    self.slots = slots
    self.steps = steps
    arenaBytes = allocator.highWater.roundedUp(to: TensorBuffer.alignment)
    scratchBytes = scratchNeeds.max() ?? 0
    outputs = graph.outputs
  }
}
