public import ShoalProto

extension InferenceV1.BatchingConfig {
  /// The knobs `key=value` pairs set, as the mesh file and `shoal serve inference` give them:
  /// `max_batch_size`, `max_queue_delay_us`, `preferred_batch_sizes` (sizes joined by `/`),
  /// `max_queue_size` and `instances`.
  ///
  /// - Throws: `BatchingSpecError` naming the pair that is wrong.
  public init(pairs: [(key: String, value: String)]) throws(BatchingSpecError) {
    self.init()
    for (key, value) in pairs {
      func number() throws(BatchingSpecError) -> Int64 {
        guard let number = Int64(value) else { throw BatchingSpecError("\(key)=\(value): not a whole number") }
        return number
      }
      switch key {
      case "max_batch_size": maxBatch = .maxBatchSize(Int32(clamping: try number()))
      case "max_queue_delay_us": maxDelay = .maxQueueDelayUs(try number())
      case "max_queue_size": maxQueue = .maxQueueSize(Int32(clamping: try number()))
      case "instances": maxInstances = .instances(Int32(clamping: try number()))
      case "preferred_batch_sizes":
        preferredBatchSizes = try value.split(separator: "/").map { part throws(BatchingSpecError) in
          guard let size = Int32(part) else { throw BatchingSpecError("\(key)=\(value): give sizes like 4/8") }
          return size
        }
      default:
        throw BatchingSpecError(
          "'\(key)' is not a batching setting (max_batch_size, max_queue_delay_us, preferred_batch_sizes, "
            + "max_queue_size, instances)")
      }
    }
  }
}

extension InferenceV1.LoadModelRequest {
  /// A model to load as the mesh file and `shoal serve inference --load` give it:
  /// `REF[,key=value…]` with the batching settings of `BatchingConfig(pairs:)`.
  public init(spec: String) throws(BatchingSpecError) {
    self.init()
    let parts = spec.split(separator: ",").map(String.init)
    guard let reference = parts.first, !reference.isEmpty, !reference.contains("=") else {
      throw BatchingSpecError("'\(spec)': give a model reference first (roads@production,max_batch_size=8)")
    }
    model = reference
    let pairs = try parts.dropFirst().map { part throws(BatchingSpecError) -> (key: String, value: String) in
      guard let equals = part.firstIndex(of: "=") else { throw BatchingSpecError("'\(part)' is not key=value") }
      return (String(part[..<equals]), String(part[part.index(after: equals)...]))
    }
    if !pairs.isEmpty {
      var config = InferenceV1.ModelConfig()
      config.batching = try InferenceV1.BatchingConfig(pairs: pairs)
      self.config = config
    }
  }
}

/// A batching or model specification that cannot be read.
public struct BatchingSpecError: Error, Sendable, CustomStringConvertible {
  /// What is wrong.
  public var description: String

  init(_ description: String) { self.description = description }
}
