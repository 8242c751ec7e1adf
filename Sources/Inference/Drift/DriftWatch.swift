import Foundation
public import ShoalImagery
public import ShoalMetrics
public import ShoalModel
public import ShoalProto
import Synchronization

/// Drift for every served version with a training reference: each call's inputs and outputs are
/// counted, and a feature whose PSI passes the threshold raises an alert once (until it falls
/// back): a log line, the gauge `shoal_drift_psi`, and a POST to the webhook.
public final class DriftWatch: Sendable {
  public let threshold: Double
  public let minimumRows: Int
  private let webhook: String?
  private let webhooks: FileDownloader
  private let metrics: MetricsRegistry
  private let log: @Sendable (String) -> Void
  /// By `key vN`; nil when the version has no reference (or an unreadable one).
  private let monitors = Mutex<[String: DriftMonitor?]>([:])

  public init(
    threshold: Double = 0.2, minimumRows: Int = 100, webhook: String? = nil,
    webhooks: FileDownloader = FileDownloader(),
    metrics: MetricsRegistry, log: @escaping @Sendable (String) -> Void
  ) {
    self.threshold = threshold
    self.minimumRows = minimumRows
    self.webhook = webhook
    self.webhooks = webhooks
    self.metrics = metrics
    self.log = log
  }

  func monitor(for served: ServedVersion) -> DriftMonitor? {
    let id = "\(served.key) v\(served.version.version)"
    if let known = monitors.withLock({ $0[id] }) { return known }
    var monitor: DriftMonitor?
    if let text = served.version.tags[DriftReference.tag] {
      do {
        let reference = try JSONDecoder().decode(DriftReference.self, from: Data(text.utf8))
        monitor = DriftMonitor(reference: reference, threshold: threshold, minimumRows: minimumRows)
      } catch {
        log("\(id): its \(DriftReference.tag) tag cannot be read (\(error)); no drift is measured")
      }
    }
    return monitors.withLock { monitors in
      if let known = monitors[id] { return known }
      monitors[id] = monitor
      return monitor
    }
  }

  /// Counts one answered call.
  func observe(_ served: ServedVersion, inputs: [String: Tensor], outputs: [String: Tensor]) {
    guard let monitor = monitor(for: served), let first = served.model.outputs.first?.name else { return }
    let raised = monitor.observe(inputs: inputs, outputs: outputs, firstOutput: first)
    let labels = ["model": served.qualifiedName, "version": "\(served.version.version)"]
    for feature in monitor.report().features {
      var tagged = labels
      tagged["feature"] = feature.name
      metrics.gauge(
        "shoal_drift_psi", help: "Population stability index against the training reference", labels: tagged
      )
      .set(feature.psi)
    }
    for feature in raised {
      let message = String(
        format: "%@ v%lld: drift in %@: PSI %.3f passes %.2f (mean %.4g, trained %.4g, over %d values)",
        served.qualifiedName, served.version.version, feature.name, feature.psi, threshold, feature.observedMean,
        feature.expectedMean, feature.observed)
      log(message)
      guard let webhook else { continue }
      let body: [String: Any] = [
        "text": "Shoal: \(message)", "model": served.qualifiedName, "version": served.version.version,
        "feature": feature.name, "psi": feature.psi, "threshold": threshold,
      ]
      let data = (try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])) ?? Data()
      let webhooks = webhooks
      let log = log
      Task {
        let (result, attempts) = await webhooks.post(webhook, body: data, headers: ["Content-Type: application/json"])
        if case .failure(let failure) = result {
          log("drift webhook failed after \(attempts) attempts: \(failure.message)")
        }
      }
    }
  }

  func report(_ served: ServedVersion) -> InferenceV1.DriftReport {
    var report = InferenceV1.DriftReport()
    report.model = served.qualifiedName
    report.version = served.version.version
    report.threshold = threshold
    report.minimumRows = Int64(minimumRows)
    guard let monitor = monitor(for: served) else { return report }
    report.hasReference = true
    let (rows, features) = monitor.report()
    report.rows = Int64(rows)
    report.features = features.map { feature in
      var message = InferenceV1.DriftFeature()
      message.name = feature.name
      message.psi = feature.psi
      message.observed = Int64(feature.observed)
      message.expectedMean = feature.expectedMean
      message.observedMean = feature.observedMean
      message.alert = feature.alert
      return message
    }
    return report
  }
}
