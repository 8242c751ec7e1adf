import Foundation
public import ShoalProto
public import ShoalRPC
import ShoalServiceStubs
import Synchronization

/// Registers one server instance in the registry and keeps its lease alive: a KeepAlive every
/// third of the TTL; a new registration when the lease is gone (the registry restarted, or the
/// process was paused past its TTL); retries with backoff while the registry is unreachable; and a
/// Deregister when cancelled, so clients stop calling at once.
public final class LeaseKeeper: Sendable {
  /// The registration asked for.
  public let registration: RegistryV1.RegisterRequest
  private let directory: RegistryV1.Directory.Client
  private let registryAddress: RPCAddress
  private let current = Mutex<RegistryV1.Instance?>(nil)
  private let log: @Sendable (String) -> Void

  /// A keeper of `registration` in the registry `registry`; `log` receives one line per change of
  /// state (registered, lost, unreachable).
  public init(
    registration: RegistryV1.RegisterRequest, registry: RPCClient, log: @escaping @Sendable (String) -> Void
  ) {
    self.registration = registration
    directory = RegistryV1.Directory.Client(registry)
    registryAddress = registry.address
    self.log = log
  }

  /// The instance as last registered, while its lease is believed live.
  public var instance: RegistryV1.Instance? { current.withLock { $0 } }

  /// Keeps the instance registered until cancelled, then deregisters it.
  public func run() async {
    var failures = 0
    var ttl = Duration.seconds(10)
    while !Task.isCancelled {
      let lease = current.withLock { $0?.leaseId }
      do {
        if let lease {
          var request = RegistryV1.KeepAliveRequest()
          request.leaseId = lease
          let response = try await directory.keepAlive(request, options: CallOptions(timeout: ttl / 3))
          ttl = .milliseconds(response.ttlMs)
        } else {
          let response = try await directory.registerInstance(registration, options: CallOptions(timeout: .seconds(5)))
          ttl = .milliseconds(response.ttlMs)
          current.withLock { $0 = response.instance }
          log(
            "registered \(registration.service) at \(registration.address) in the registry at \(registryAddress) "
              + "(lease \(response.instance?.leaseId ?? 0), ttl \(response.ttlMs) ms)")
        }
        failures = 0
        try? await Task.sleep(for: ttl / 3)
      } catch {
        if Task.isCancelled { break }
        if error.code == .notFound {
          current.withLock { $0 = nil }
          log("lease of \(registration.service) at \(registration.address) expired; registering again")
          continue
        }
        failures += 1
        if failures == 1 {
          let refused = error.code == .unauthenticated || error.code == .permissionDenied
          log(
            refused
              ? "the registry at \(registryAddress) refused \(registration.service) at \(registration.address): "
                + "\(error.message); retrying"
              : "cannot reach the registry at \(registryAddress): \(error.message); retrying")
        }
        try? await Task.sleep(for: min(.milliseconds(100) * (1 << min(failures, 5)), ttl / 3))
      }
    }
    await deregister()
  }

  /// Ends the lease (best effort, within one second); the task calling may already be cancelled.
  private func deregister() async {
    guard
      let lease = current.withLock({ state in
        defer { state = nil }; return state?.leaseId
      })
    else { return }
    let directory = directory
    // A cancelled task's calls fail at once, so the farewell runs in a task of its own, awaited.
    await Task.detached {
      var request = RegistryV1.DeregisterRequest()
      request.leaseId = lease
      _ = try? await directory.deregister(request, options: CallOptions(timeout: .seconds(1), retries: .none))
    }.value
  }
}
