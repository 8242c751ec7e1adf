public import ShoalMetrics
import ShoalProto
public import ShoalRPC
import Synchronization

/// Counts every call a server handles by method and status code, and times it:
/// `shoal_rpc_requests_total{method,code}` and `shoal_rpc_request_seconds{method}`. Put it first,
/// so that calls refused by later interceptors are counted too.
public final class RPCMetricsInterceptor: ServerInterceptor, Sendable {
  private let registry: MetricsRegistry
  private let series = Mutex<[String: (histogram: Histogram, counts: [Int32: Counter])]>([:])

  /// An interceptor recording into `registry`.
  public init(registry: MetricsRegistry) { self.registry = registry }

  public func intercept(_ context: ServerContext, next: @Sendable () async throws -> Void) async throws {
    let started = ContinuousClock.now
    let method = "\(context.method.service)/\(context.method.name)"
    do {
      try await next()
      record(method, code: .ok, since: started)
    } catch {
      record(method, code: RPCError(from: error).code, since: started)
      throw error
    }
  }

  private func record(_ method: String, code: RpcV1.StatusCode, since started: ContinuousClock.Instant) {
    let elapsed = ContinuousClock.now - started
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    let (histogram, counter) = series.withLock { series in
      if series[method] == nil {
        series[method] = (
          registry.histogram(
            "shoal_rpc_request_seconds", help: "Time a call took in the server.", labels: ["method": method]),
          [:]
        )
      }
      let code = code.rawValue
      if series[method]!.counts[code] == nil {
        series[method]!.counts[code] = registry.counter(
          "shoal_rpc_requests_total", help: "Calls by method and status code.",
          labels: ["method": method, "code": RpcV1.StatusCode(rawValue: code).protoName ?? "\(code)"])
      }
      return (series[method]!.histogram, series[method]!.counts[code]!)
    }
    histogram.observe(seconds)
    counter.increment()
  }
}
