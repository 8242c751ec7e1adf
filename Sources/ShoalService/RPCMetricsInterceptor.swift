public import ShoalMetrics
import ShoalProto
public import ShoalRPC
import Synchronization

/// Counts every call a server handles by method and status code, and times it:
/// `shoal_rpc_requests_total{method,code}` and `shoal_rpc_request_seconds{method}`. Put it first,
/// so that calls refused by later interceptors are counted too.
public final class RPCMetricsInterceptor: ServerInterceptor, Sendable {
  private let registry: MetricsRegistry
  /// By method path (`/service/name`, which the descriptor keeps: no string is made per call).
  private let series = Mutex<[String: (histogram: Histogram, counts: [Int32: Counter])]>([:])

  /// An interceptor recording into `registry`.
  public init(registry: MetricsRegistry) { self.registry = registry }

  public func intercept(_ context: ServerContext, next: @Sendable () async throws -> Void) async throws {
    let started = ContinuousClock.now
    let method = context.method
    do {
      try await next()
      record(method, code: .ok, since: started)
    } catch {
      record(method, code: RPCError(from: error).code, since: started)
      throw error
    }
  }

  private func record(_ descriptor: MethodDescriptor, code: RpcV1.StatusCode, since started: ContinuousClock.Instant) {
    let elapsed = ContinuousClock.now - started
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    let (histogram, counter) = series.withLock { series in
      // One lookup once the method and code have been seen.
      if let known = series[descriptor.path], let counter = known.counts[code.rawValue] {
        return (known.histogram, counter)
      }
      let method = String(descriptor.path.dropFirst())
      let key = descriptor.path
      if series[key] == nil {
        series[key] = (
          registry.histogram(
            "shoal_rpc_request_seconds", help: "Time a call took in the server.", labels: ["method": method]),
          [:]
        )
      }
      let code = code.rawValue
      if series[key]!.counts[code] == nil {
        series[key]!.counts[code] = registry.counter(
          "shoal_rpc_requests_total", help: "Calls by method and status code.",
          labels: ["method": method, "code": RpcV1.StatusCode(rawValue: code).protoName ?? "\(code)"])
      }
      return (series[key]!.histogram, series[key]!.counts[code]!)
    }
    histogram.observe(seconds)
    counter.increment()
  }
}
