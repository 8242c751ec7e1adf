import Foundation
import ShoalProto
public import ShoalRPC

/// `shoal up`: runs the services of a mesh file as child processes of one `shoal` binary. The
/// registry starts first and must answer a health check before the others start; a child that
/// exits is restarted with backoff (0.5 s doubling to 30 s, reset after a minute of good health);
/// cancelling `run()` stops every child with SIGTERM (the registry last) and SIGKILL after the
/// grace period.
public final class Supervisor: Sendable {
  /// Supervisor settings.
  public struct Config: Sendable {
    /// The `shoal` binary the children run.
    public var executable: String
    /// The mesh file (for messages and the state file).
    public var meshPath: String
    /// The mesh.
    public var mesh: MeshFile
    /// The data directory (absolute).
    public var dataDirectory: String
    /// Services this build can serve; others in the mesh are skipped with a note.
    public var availableServices: Set<String>
    /// The first wait before restarting a crashed child.
    public var initialBackoff: Duration = .milliseconds(500)
    /// The longest wait before restarting a crashed child.
    public var maximumBackoff: Duration = .seconds(30)
    /// How long children get to stop after SIGTERM.
    public var stopGrace: Duration = .seconds(10)
    /// How long the registry gets to become healthy.
    public var startTimeout: Duration = .seconds(20)

    /// Settings with the default timings.
    public init(
      executable: String, meshPath: String, mesh: MeshFile, dataDirectory: String, availableServices: Set<String>
    ) {
      self.executable = executable
      self.meshPath = meshPath
      self.mesh = mesh
      self.dataDirectory = dataDirectory
      self.availableServices = availableServices
    }
  }

  private enum Event: Sendable {
    case exited(service: String, pid: Int32, status: Int32, signalled: Bool)
    case restartDue(service: String)
  }

  private struct Child {
    var process: Process?
    var startedAt: ContinuousClock.Instant
    var restarts: Int
    var backoff: Duration
    var state: String
  }

  /// The settings.
  public let config: Config
  /// The registry's address, as the children are told.
  public let registryAddress: RPCAddress
  private let log: @Sendable (String) -> Void

  /// A supervisor; `log` receives one line per event.
  ///
  /// - Throws: `RPCError.invalidArgument` when the registry's address in the mesh is malformed.
  public init(config: Config, log: @escaping @Sendable (String) -> Void) throws(RPCError) {
    self.config = config
    self.log = log
    registryAddress = try RPCAddress(parsing: config.mesh.registry.listen[0], relativeTo: config.dataDirectory)
  }

  /// The file describing the running mesh for `shoal status`.
  public static func stateFile(in dataDirectory: String) -> String { "\(dataDirectory)/up.json" }

  /// Runs the mesh until cancelled, then stops it.
  ///
  /// - Throws: `SupervisorError` when the registry does not start.
  public func run() async throws {
    let (events, continuation) = AsyncStream.makeStream(of: Event.self)
    var children: [String: Child] = [:]
    let services = config.mesh.services.filter(\.enabled)
    for service in services where !config.availableServices.contains(service.name) {
      log("skipping \(service.name): this build of shoal does not have it yet")
    }
    let runnable = services.filter { config.availableServices.contains($0.name) }
    let registry = runnable.first { $0.name == "registry" }!

    children["registry"] = try start(registry, events: continuation, restarts: 0, backoff: config.initialBackoff)
    writeState(children)
    do {
      try await waitUntilHealthy(registry: children["registry"]!.process!)
    } catch {
      await stop(&children)
      removeState()
      throw error
    }
    for service in runnable where service.name != "registry" {
      children[service.name] = try start(service, events: continuation, restarts: 0, backoff: config.initialBackoff)
    }
    writeState(children)
    log("mesh up: \(runnable.map(\.name).joined(separator: ", ")) (registry at \(registryAddress))")

    await withTaskGroup(of: Void.self) { timers in
      for await event in events {
        switch event {
        case .exited(let name, let pid, let status, let signalled):
          guard var child = children[name], child.process?.processIdentifier == pid else { continue }
          let uptime = ContinuousClock.now - child.startedAt
          if uptime > .seconds(60) { child.backoff = config.initialBackoff }
          let wait = child.backoff
          child.backoff = min(child.backoff * 2, config.maximumBackoff)
          child.process = nil
          child.state = "restarting"
          children[name] = child
          let how = signalled ? "was killed by signal \(status)" : "exited with status \(status)"
          log("\(name) (pid \(pid)) \(how); restarting in \(Self.seconds(wait)) s")
          timers.addTask {
            try? await Task.sleep(for: wait)
            continuation.yield(.restartDue(service: name))
          }
        case .restartDue(let name):
          guard var child = children[name], child.process == nil,
            let service = runnable.first(where: { $0.name == name })
          else { continue }
          do {
            child = try start(service, events: continuation, restarts: child.restarts + 1, backoff: child.backoff)
            children[name] = child
          } catch {
            log("cannot restart \(name): \(error); trying again in \(Self.seconds(child.backoff)) s")
            let wait = child.backoff
            timers.addTask {
              try? await Task.sleep(for: wait)
              continuation.yield(.restartDue(service: name))
            }
          }
        }
        writeState(children)
      }
      timers.cancelAll()
    }
    log("stopping the mesh")
    await stop(&children)
    removeState()
    continuation.finish()
  }

  // MARK: Children

  private func start(
    _ service: MeshFile.Service, events: AsyncStream<Event>.Continuation, restarts: Int, backoff: Duration
  ) throws -> Child {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: config.executable)
    var arguments = [
      "serve", service.name, "--data", config.dataDirectory, "--store", service.store ?? config.mesh.store,
      "--registry", registryAddress.description, "--lease-ttl", "\(config.mesh.leaseTTLSeconds)", "--exit-with-parent",
    ]
    for address in service.listen { arguments += ["--listen", address] }
    arguments += service.serveArguments
    arguments += config.mesh.securityArguments
    // The pipeline service reads the pipelines next to the mesh file (mesh/pipelines), or in the
    // data directory for the built-in mesh.
    if service.name == "pipeline" {
      let directory =
        config.meshPath.hasPrefix("(")
        ? "\(config.dataDirectory)/pipelines"
        : URL(fileURLWithPath: config.meshPath).deletingLastPathComponent().appendingPathComponent("pipelines").path
      arguments += ["--pipelines", directory]
    }
    process.arguments = arguments
    process.currentDirectoryURL = URL(fileURLWithPath: config.dataDirectory)
    let name = service.name
    process.terminationHandler = { process in
      events.yield(
        .exited(
          service: name, pid: process.processIdentifier, status: process.terminationStatus,
          signalled: process.terminationReason == .uncaughtSignal))
    }
    try process.run()
    log("started \(name) (pid \(process.processIdentifier))")
    return Child(process: process, startedAt: .now, restarts: restarts, backoff: backoff, state: "running")
  }

  /// Polls the registry's health until SERVING, the timeout, or the registry's exit.
  private func waitUntilHealthy(registry process: Process) async throws {
    let client = RPCClient(address: registryAddress)
    let outcome = await pollHealth(client, registry: process)
    await client.close()
    if let failure = outcome { throw failure }
  }

  private func pollHealth(_ client: RPCClient, registry process: Process) async -> SupervisorError? {
    let deadline = ContinuousClock.now + config.startTimeout
    var lastError = "no answer yet"
    while ContinuousClock.now < deadline, !Task.isCancelled {
      guard process.isRunning else {
        return SupervisorError(
          "the registry exited with status \(process.terminationStatus) before becoming healthy; see its output above")
      }
      do {
        let response = try await client.unary(
          HealthV1.Health.check, HealthV1.HealthCheckRequest(),
          options: CallOptions(timeout: .seconds(1), retries: .none))
        if response.status == .serving { return nil }
        lastError = "health is \(response.status.protoName ?? "unknown")"
      } catch {
        lastError = error.message
      }
      try? await Task.sleep(for: .milliseconds(100))
    }
    return SupervisorError(
      "the registry at \(registryAddress) did not become healthy within \(Self.seconds(config.startTimeout)) s: \(lastError)"
    )
  }

  /// SIGTERM to every child but the registry, then the registry; SIGKILL after the grace period.
  private func stop(_ children: inout [String: Child]) async {
    let others = children.filter { $0.key != "registry" }.compactMap(\.value.process)
    await terminate(others)
    if let registry = children["registry"]?.process { await terminate([registry]) }
    for name in children.keys {
      children[name]?.process = nil
      children[name]?.state = "stopped"
    }
  }

  private func terminate(_ processes: [Process]) async {
    for process in processes where process.isRunning { kill(process.processIdentifier, SIGTERM) }
    let deadline = ContinuousClock.now + config.stopGrace
    while processes.contains(where: \.isRunning), ContinuousClock.now < deadline {
      try? await Task.sleep(for: .milliseconds(50))
    }
    for process in processes where process.isRunning {
      log("pid \(process.processIdentifier) did not stop within \(Self.seconds(config.stopGrace)) s; killing it")
      kill(process.processIdentifier, SIGKILL)
    }
    for process in processes { process.waitUntilExit() }
  }

  // MARK: State file

  private func writeState(_ children: [String: Child]) {
    let services = config.mesh.services.map { service -> [String: Any] in
      var entry: [String: Any] = ["name": service.name, "listen": service.listen]
      if let child = children[service.name] {
        entry["state"] = child.state
        entry["restarts"] = child.restarts
        if let pid = child.process?.processIdentifier { entry["pid"] = Int(pid) }
      } else {
        entry["state"] = !service.enabled ? "disabled" : "not in this build"
      }
      return entry
    }
    let state: [String: Any] = [
      "pid": Int(getpid()), "mesh": config.meshPath, "registry": registryAddress.description, "services": services,
    ]
    guard let data = try? JSONSerialization.data(withJSONObject: state, options: [.prettyPrinted, .sortedKeys])
    else { return }
    let path = Self.stateFile(in: config.dataDirectory)
    try? data.write(to: URL(fileURLWithPath: path), options: .atomic)
  }

  private func removeState() {
    try? FileManager.default.removeItem(atPath: Self.stateFile(in: config.dataDirectory))
  }

  private static func seconds(_ duration: Duration) -> String {
    let value = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    return value == value.rounded() ? String(Int(value)) : String(format: "%.1f", value)
  }
}

/// Why the mesh could not start.
public struct SupervisorError: Error, Sendable, CustomStringConvertible {
  /// What happened.
  public var description: String
  init(_ description: String) { self.description = description }
}
