public import ShoalProto

/// How requests to one model are grouped into executions: Triton's dynamic batcher's knobs.
public struct BatchingPolicy: Sendable, Hashable {
  /// Rows in one execution; 1 turns batching off.
  public var maxBatchSize: Int
  /// How long the oldest request waits for more while no full or preferred batch can form.
  /// 0 sends what is queued as soon as an instance is free: batches then form only under load,
  /// and a lone request waits for nothing.
  public var maxQueueDelayMicroseconds: Int64
  /// A batch is sent as soon as the largest of these is reached.
  public var preferredBatchSizes: [Int]
  /// Requests waiting at most; 0 is unbounded.
  public var maxQueueSize: Int
  /// Executions of the model in flight at once.
  public var instances: Int

  /// Batches of up to 8 rows formed from what is queued, no delay, 4,096 requests queued at most,
  /// one execution at a time (the model core spreads each over every core).
  public static var defaults: BatchingPolicy {
    BatchingPolicy(
      maxBatchSize: 8, maxQueueDelayMicroseconds: 0, preferredBatchSizes: [], maxQueueSize: 4096, instances: 1)
  }

  /// A policy with every knob given.
  public init(
    maxBatchSize: Int, maxQueueDelayMicroseconds: Int64, preferredBatchSizes: [Int], maxQueueSize: Int, instances: Int
  ) {
    self.maxBatchSize = maxBatchSize
    self.maxQueueDelayMicroseconds = maxQueueDelayMicroseconds
    self.preferredBatchSizes = preferredBatchSizes
    self.maxQueueSize = maxQueueSize
    self.instances = instances
  }

  /// This policy with the knobs `config` sets.
  public func overridden(by config: InferenceV1.BatchingConfig?) -> BatchingPolicy {
    guard let config else { return self }
    var policy = self
    if case .maxBatchSize(let value) = config.maxBatch { policy.maxBatchSize = Int(value) }
    if case .maxQueueDelayUs(let value) = config.maxDelay { policy.maxQueueDelayMicroseconds = value }
    if !config.preferredBatchSizes.isEmpty { policy.preferredBatchSizes = config.preferredBatchSizes.map { Int($0) } }
    if case .maxQueueSize(let value) = config.maxQueue { policy.maxQueueSize = Int(value) }
    if case .instances(let value) = config.maxInstances { policy.instances = Int(value) }
    return policy
  }

  /// What is wrong with the policy, naming the knob; nil when it is usable.
  public var problem: String? {
    if !(1...65_536).contains(maxBatchSize) { return "max_batch_size must be 1–65536 (1 turns batching off)" }
    if !(0...60_000_000).contains(maxQueueDelayMicroseconds) { return "max_queue_delay_us must be 0–60000000" }
    if let bad = preferredBatchSizes.first(where: { !(1...maxBatchSize).contains($0) }) {
      return "preferred_batch_sizes: \(bad) is outside 1–max_batch_size (\(maxBatchSize))"
    }
    if maxQueueSize < 0 { return "max_queue_size must be ≥ 0 (0 is unbounded)" }
    if !(1...64).contains(instances) { return "instances must be 1–64" }
    return nil
  }

  /// The policy as LoadedModel reports it, every knob set.
  public var config: InferenceV1.BatchingConfig {
    var config = InferenceV1.BatchingConfig()
    config.maxBatch = .maxBatchSize(Int32(maxBatchSize))
    config.maxDelay = .maxQueueDelayUs(maxQueueDelayMicroseconds)
    config.preferredBatchSizes = preferredBatchSizes.map { Int32($0) }
    config.maxQueue = .maxQueueSize(Int32(maxQueueSize))
    config.maxInstances = .instances(Int32(instances))
    return config
  }
}
