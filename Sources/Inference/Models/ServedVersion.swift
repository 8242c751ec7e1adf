public import Foundation
public import ShoalModel
public import ShoalProto
public import ShoalStore

/// One version of a model, loaded and serving: its file, the model core's model and its batcher.
public final class ServedVersion: Sendable {
  /// The canonical reference it serves (`local/roads@production`).
  public let key: String
  /// The registry's record of the version.
  public let version: RegistryV1.ModelVersion
  /// The model's task and visibility, from the registry.
  public let task: RegistryV1.ModelTask
  /// The model file's digest.
  public let digest: BlobDigest
  /// The loaded model.
  public let model: Model
  /// Its batcher.
  public let batcher: DynamicBatcher
  /// The inputs a caller gives, by name.
  public let inputs: [String: Model.ValueSpec]
  /// When it became available, and how long download, load and warm-up took.
  public let loadedAt: Date
  public let loadTime: Duration
  /// Its metrics.
  let metrics: ModelMetrics

  init(
    key: String, version: RegistryV1.ModelVersion, task: RegistryV1.ModelTask, digest: BlobDigest, model: Model,
    batcher: DynamicBatcher, loadedAt: Date, loadTime: Duration, metrics: ModelMetrics
  ) {
    self.key = key
    self.version = version
    self.task = task
    self.digest = digest
    self.model = model
    self.batcher = batcher
    self.inputs = Dictionary(uniqueKeysWithValues: model.inputs.map { ($0.name, $0) })
    self.loadedAt = loadedAt
    self.loadTime = loadTime
    self.metrics = metrics
  }

  /// `org/name`.
  public var qualifiedName: String { "\(version.organization)/\(version.model)" }

  /// Whether requests can be stacked along dimension 0: every input declares a shape whose first
  /// dimension is free.
  static func batchable(_ model: Model) -> Bool {
    model.inputs.allSatisfy { spec in
      guard let first = spec.dimensions?.first else { return false }
      if case .fixed = first { return false }
      return true
    }
  }

  /// Inputs of zeros for a warm-up run: free dimensions are 1, except the last two of a rank-4
  /// image input, which take the version's tile size. Nil when an input has no declared shape or
  /// a type the core lacks.
  static func warmUpInputs(_ model: Model, tileSize: Int) -> [String: Tensor]? {
    var inputs: [String: Tensor] = [:]
    for spec in model.inputs {
      guard let dimensions = spec.dimensions, let type = DataType(onnxCode: spec.elementType) else { return nil }
      let shape = dimensions.enumerated().map { index, dimension -> Int in
        if case .fixed(let size) = dimension { return size }
        return dimensions.count == 4 && index >= 2 && tileSize > 0 ? tileSize : 1
      }
      inputs[spec.name] = Tensor(zeros: shape, dataType: type)
    }
    return inputs
  }
}

/// Runs blocking work (the model core, file parsing) on a thread of its own, off Swift's task pool.
enum OwnThread {
  static func run<T: Sendable>(_ name: String, _ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
      let thread = Thread {
        do {
          continuation.resume(returning: try body())
        } catch {
          continuation.resume(throwing: error)
        }
      }
      thread.name = name
      thread.stackSize = 8 << 20
      thread.start()
    }
  }
}
