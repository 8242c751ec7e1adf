import NIOConcurrencyHelpers
public import ShoalProto

/// `shoal.health.v1.Health` with gRPC's semantics: Check answers the current status (NOT_FOUND
/// for an unknown service), Watch streams it and every change. The empty name is the server.
public final class HealthService: Sendable {
  /// A service's status.
  public typealias Status = HealthV1.HealthCheckResponse.ServingStatus

  private struct State {
    var statuses: [String: Status] = ["": .serving]
    var watchers: [Int: (service: String, continuation: AsyncStream<Status>.Continuation)] = [:]
    var nextWatcher = 0
  }

  private let state = NIOLockedValueBox(State())

  init() {}

  /// Sets a service's status and tells its watchers.
  public func set(_ service: String, _ status: Status) {
    let watchers = state.withLockedValue { state in
      state.statuses[service] = status
      return state.watchers.values.filter { $0.service == service }.map(\.continuation)
    }
    for watcher in watchers { watcher.yield(status) }
  }

  /// Sets every known service's status (used at shutdown).
  public func setAll(_ status: Status) {
    let services = state.withLockedValue { Array($0.statuses.keys) }
    for service in services { set(service, status) }
  }

  /// The status of a service, or nil if it is unknown.
  public func status(of service: String) -> Status? {
    state.withLockedValue { $0.statuses[service] }
  }

  func register(in router: inout ServiceRouter) {
    for service in router.serviceNames where status(of: service) == nil { set(service, .serving) }
    router.unary(HealthV1.Health.check) { request, _ in
      guard let status = self.status(of: request.service) else {
        throw RPCError(.notFound, "no service named '\(request.service)' on this server")
      }
      var response = HealthV1.HealthCheckResponse()
      response.status = status
      return response
    }
    router.serverStreaming(HealthV1.Health.watch) { request, writer, _ in
      let (stream, continuation) = AsyncStream<Status>.makeStream(bufferingPolicy: .bufferingNewest(1))
      let id = self.state.withLockedValue { state -> Int in
        defer { state.nextWatcher += 1 }
        state.watchers[state.nextWatcher] = (request.service, continuation)
        continuation.yield(state.statuses[request.service] ?? .serviceUnknown)
        return state.nextWatcher
      }
      defer { _ = self.state.withLockedValue { $0.watchers.removeValue(forKey: id) } }
      for await status in stream {
        var response = HealthV1.HealthCheckResponse()
        response.status = status
        try await writer.send(response)
      }
    }
  }
}
