import ShoalMetrics
import Synchronization

/// The gateway's requests by route, method and status, and their latency by route:
/// `shoal_gateway_requests_total{route,method,status}` and `shoal_gateway_request_seconds{route}`.
final class RequestMetrics: Sendable {
  private let registry: MetricsRegistry
  private let series = Mutex<[String: (histogram: Histogram, counts: [String: Counter])]>([:])

  init(registry: MetricsRegistry) { self.registry = registry }

  func record(route: String, method: String, status: Int, since started: ContinuousClock.Instant) {
    let elapsed = ContinuousClock.now - started
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    let key = "\(method) \(status)"
    let (histogram, counter) = series.withLock { series in
      if series[route] == nil {
        series[route] = (
          registry.histogram(
            "shoal_gateway_request_seconds", help: "Time the gateway took to answer, by route.",
            labels: ["route": route]),
          [:]
        )
      }
      if series[route]!.counts[key] == nil {
        series[route]!.counts[key] = registry.counter(
          "shoal_gateway_requests_total", help: "HTTP requests by route, method and status.",
          labels: ["route": route, "method": method, "status": "\(status)"])
      }
      return (series[route]!.histogram, series[route]!.counts[key]!)
    }
    histogram.observe(seconds)
    counter.increment()
  }
}
