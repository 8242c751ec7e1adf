import ShoalMetrics
import ShoalRPC

/// The metrics of one served version, under the labels `model` (`org/name`) and `version`:
/// Triton's set (requests by outcome, rows, executions, queue and compute time, pending
/// requests) plus the batch sizes and the version's memory.
final class ModelMetrics: Sendable {
  let labels: [String: String]
  private let registry: MetricsRegistry
  private let success: Counter
  let rows: Counter
  let executions: Counter
  let queueTime: Histogram
  let computeTime: Histogram
  let batchSize: Histogram
  let requestTime: Histogram

  init(registry: MetricsRegistry, model: String, version: Int64) {
    self.registry = registry
    labels = ["model": model, "version": "\(version)"]
    success = registry.counter(
      "shoal_inference_requests_total", help: "Predict requests by outcome (a gRPC status code name).",
      labels: labels.merging(["outcome": "ok"]) { $1 })
    rows = registry.counter(
      "shoal_inference_rows_total", help: "Rows inferred (Triton's nv_inference_count).", labels: labels)
    executions = registry.counter(
      "shoal_inference_executions_total", help: "Model executions, one per batch (nv_inference_exec_count).",
      labels: labels)
    queueTime = registry.histogram(
      "shoal_inference_queue_seconds", help: "Time a request waited in the batcher's queue.", labels: labels)
    computeTime = registry.histogram(
      "shoal_inference_compute_seconds", help: "Time one execution took in the model core.", labels: labels)
    requestTime = registry.histogram(
      "shoal_inference_request_seconds", help: "Time from a Predict's arrival to its answer.", labels: labels)
    batchSize = registry.histogram(
      "shoal_inference_batch_size", help: "Rows in one execution.", labels: labels, buckets: Histogram.sizeBuckets)
  }

  /// Records one request's outcome.
  func record(_ outcome: Result<Void, RPCError>, seconds: Double) {
    switch outcome {
    case .success: success.increment()
    case .failure(let error):
      registry.counter(
        "shoal_inference_requests_total", help: "Predict requests by outcome (a gRPC status code name).",
        labels: labels.merging(["outcome": error.code.protoName?.lowercased() ?? "unknown"]) { $1 }
      ).increment()
    }
    requestTime.observe(seconds)
  }

  /// Records one execution of the batcher.
  func record(_ execution: DynamicBatcher.Execution) {
    executions.increment()
    rows.increment(by: UInt64(execution.rows))
    batchSize.observe(Double(execution.rows))
    computeTime.observe(execution.computeSeconds)
    for seconds in execution.queueSeconds { queueTime.observe(seconds) }
  }

  /// Gauges read at scrape time.
  func watch(pending: @escaping @Sendable () -> Int, memoryBytes: @escaping @Sendable () -> Int) {
    registry.gauge(
      "shoal_inference_pending_requests", help: "Requests queued or executing.", labels: labels
    ) { Double(pending()) }
    registry.gauge("shoal_inference_model_memory_bytes", help: "Bytes a loaded version holds.", labels: labels) {
      Double(memoryBytes())
    }
  }

  /// Forgets the version's series (it was unloaded).
  func remove() { registry.remove(matching: labels) }
}
