/// What one run of a model takes for given input shapes, from its execution plan.
public struct PlanSummary: Sendable {
  /// The number of kernels a run executes (after fusion and constant folding).
  public var steps: Int
  /// Memory for intermediate values and scratch, in bytes.
  public var arenaBytes: Int
  /// Estimated floating-point operations per operator (fused nodes are named `Conv+Relu`).
  public var flopsByOperator: [String: Int] = [:]

  /// Estimated floating-point operations of a whole run.
  public var flops: Int { flopsByOperator.values.reduce(0, +) }
}
