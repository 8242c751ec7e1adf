/// The time and work one operator took in a profiled run (all its nodes together).
public struct OperatorProfile: Sendable, Hashable {
  /// The operator, fused nodes as `Conv+Relu`.
  public var name: String
  /// How many planned steps ran it.
  public var steps = 0
  public var seconds = 0.0
  /// Estimated floating-point operations.
  public var flops = 0

  /// An operator that has not run yet.
  public init(name: String) { self.name = name }

  /// Achieved GFLOP/s.
  public var gigaflopsPerSecond: Double { seconds > 0 ? Double(flops) / seconds / 1e9 : 0 }

  /// Adds another profile of the same operator.
  public mutating func merge(_ other: OperatorProfile) {
    steps += other.steps
    seconds += other.seconds
    flops += other.flops
  }

  mutating func add(seconds: Double, flops: Int) {
    steps += 1
    self.seconds += seconds
    self.flops += flops
  }
}

/// The time and work of one planned step in a profiled run.
public struct StepProfile: Sendable, Hashable {
  /// The node the step runs, as errors name it (`node 'conv1' (Conv)`).
  public var node: String
  /// The operator, fused nodes as `Conv+Relu`.
  public var opType: String
  /// The shape of the step's first output.
  public var outputShape: [Int]
  /// How long the step took.
  public var seconds: Double
  /// Estimated floating-point operations.
  public var flops: Int
}
