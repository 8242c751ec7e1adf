import ArgumentParser
import AudioClassifier
import Bench
import Feedback
import Foundation
import Gateway
import Inference
import Pipeline
import Registry
import ShoalAudio
import ShoalClient
import ShoalImagery
import ShoalMetrics
import ShoalProto
import ShoalRPC
import ShoalService
import ShoalServiceStubs
import ShoalStore
import Synchronization
import Tracking

/// `shoal serve SERVICE`: runs one service, registers each of its addresses in the registry
/// (keeping the leases alive) and, on SIGINT or SIGTERM, deregisters and shuts down gracefully
/// (GOAWAY, drain, close).
struct ServeCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "serve",
    abstract: "Run one service.",
    discussion: "Services available in this build: \(ServeCommand.services.joined(separator: ", "))."
  )

  /// What this build can serve.
  static let services = [
    "registry", "tracking", "inference", "feedback", "audio-classifier", "pipeline", "gateway", "bench",
  ]

  @Argument(help: "The service to run.")
  var service: String

  @OptionGroup var mesh: MeshOptions

  @Option(
    name: .long,
    help: """
      An address to listen on: unix:///abs/path, unix:relative/path (inside the data directory), \
      tcp://host:port or tls://host:port (repeatable; default unix:SERVICE.sock in the data directory).
      """)
  var listen: [String] = []

  @Option(help: "Where the service keeps its data: sqlite, sqlite:PATH or postgres://user@host:port/db.")
  var store = "sqlite"

  @Option(help: "Seconds the registry keeps this server listed without hearing from it.")
  var leaseTTL: Double = 10

  @Flag(help: "Do not register in the registry.")
  var noRegister = false

  @Flag(help: .hidden)
  var exitWithParent = false

  @Option(help: "The largest message accepted, in bytes (default 4 MiB; inference 64 MiB, for batches of images).")
  var maxMessageSize: Int?

  @Flag(help: "Do not compress responses (and refuse compressed requests).")
  var noCompression = false

  @Option(
    help: """
      Where to serve GET /metrics (Prometheus' text format): HOST:PORT (port 0: one the OS chooses; \
      the address is registered with the service), or off.
      """)
  var metrics = "127.0.0.1:0"

  @Option(
    name: .customLong("load"),
    help: "inference: a model to load at start, REF[,key=value…] with batching settings (repeatable).")
  var models: [String] = []

  @Option(
    help: """
      inference: the default batching of every model, key=value pairs joined by commas: max_batch_size, \
      max_queue_delay_us, preferred_batch_sizes (4/8), max_queue_size, instances.
      """)
  var batching: String?

  @Option(
    help:
      "The most bytes kept in the service's cache: model files (inference, and a quarter more for AOI jobs' tiles), imagery tiles (feedback)."
  )
  var cacheSize: Int64 = 4 << 30

  @Option(help: "pipeline: the directory of pipeline files (*.json; default DATA/pipelines).")
  var pipelines: String?

  @Option(help: "inference: the PSI past which a feature's drift raises an alert.")
  var driftThreshold = 0.2

  @Option(help: "inference: a webhook told of drift alerts (a POST of JSON with a Slack-style text).")
  var driftWebhook: String?

  @Option(
    help: """
      gateway: where to serve HTTP (MLflow's REST API, OIP v2, the Label Studio backend, the review pages): \
      HOST:PORT, port 0 for one the OS chooses.
      """)
  var http = "127.0.0.1:5080"

  @Flag(help: "gateway: refuse requests without a token even from loopback.")
  var requireTokens = false

  @Option(
    help:
      "The CA certificate (PEM) to trust for TLS, both ways (default $SHOAL_TLS_CA; relative to the data directory).")
  var tlsCa: String?

  @Option(
    help:
      "This service's certificate (PEM), for tls:// listeners and as a client certificate (default $SHOAL_TLS_CERT).")
  var tlsCert: String?

  @Option(help: "The certificate's private key (PEM; default $SHOAL_TLS_KEY).")
  var tlsKey: String?

  @Option(help: "Whether tls:// listeners ask clients for a certificate: none, optional or require (mutual TLS).")
  var tlsClientCerts: String?

  @Flag(help: "Accept and send tokens over plaintext TCP that is not loopback (a network you trust).")
  var plaintextTokens = false

  @Flag(help: "Accept any server certificate of the CA, whatever host it names (pods, whose addresses change).")
  var tlsNoHostnameCheck = false

  @Option(help: "Seconds the registry's word on a token is trusted; revoked or expired tokens stop working within it.")
  var tokenCache: Double = 30

  /// The process's TLS settings from the flags, over the environment's; paths relative to `directory`.
  func transportSecurity(relativeTo directory: String) throws -> TransportSecurity {
    var security = TransportSecurity.fromEnvironment()
    let resolve = { (path: String) in path.hasPrefix("/") ? path : "\(directory)/\(path)" }
    if let tlsCa { security.trustRoots = resolve(tlsCa) }
    if let tlsCert { security.certificate = resolve(tlsCert) }
    if let tlsKey { security.privateKey = resolve(tlsKey) }
    if let tlsClientCerts {
      guard let choice = TransportSecurity.ClientCertificates(rawValue: tlsClientCerts) else {
        throw ValidationError("--tls-client-certs: '\(tlsClientCerts)' is not none, optional or require")
      }
      security.clientCertificates = choice
    }
    if plaintextTokens { security.allowsPlaintextTokens = true }
    if tlsNoHostnameCheck { security.verifiesHostname = false }
    guard (security.certificate == nil) == (security.privateKey == nil) else {
      throw ValidationError("--tls-cert and --tls-key go together: give both or neither")
    }
    return security
  }

  func run() async throws {
    let location = try mesh.location()
    let storeURL: StoreURL
    do {
      storeURL = try StoreURL(parsing: store)
    } catch {
      throw ValidationError("--store: \(error.message)")
    }
    try FileManager.default.createDirectory(atPath: location.dataDirectory, withIntermediateDirectories: true)
    // Before any client or server is made: they all take the process's settings.
    TransportSecurity.process = try transportSecurity(relativeTo: location.dataDirectory)
    guard tokenCache >= 0 else { throw ValidationError("--token-cache: must be 0 or more seconds") }
    let tokenTrust = Duration.milliseconds(Int64(tokenCache * 1000))
    var databases: [Database] = []

    var router = ServiceRouter()
    let metricsRegistry = MetricsRegistry()
    var interceptors: [any ServerInterceptor] = [RPCMetricsInterceptor(registry: metricsRegistry)]
    var background: [@Sendable () async -> Void] = []
    var shutdownSteps: [@Sendable () async -> Void] = []
    let health = HealthRelay()
    // Metadata known only once a helper runs (the gateway's HTTP address), awaited before registering.
    var lateMetadata: (@Sendable () async -> [String: String])?
    switch service {
    case "bench":
      BenchService().register(in: &router)
    case "registry":
      let database = try await openDatabase(storeURL, location.dataDirectory, migrations: RegistryStore.migrations)
      databases.append(database)
      let service = service
      let directory = try await Directory.open(store: DirectoryStore(database: database)) { logLine(service, $0) }
      DirectoryService(directory: directory).register(in: &router)
      let store = RegistryStore(database: database)
      let blobs = try BlobStore(root: "\(location.dataDirectory)/registry-blobs")
      ModelRegistryService(store: store, blobs: blobs).register(in: &router)
      interceptors.append(AccessInterceptor(store: store))
      background.append { await directory.run() }
    case "tracking":
      let database = try await openDatabase(storeURL, location.dataDirectory, migrations: TrackingStore.migrations)
      databases.append(database)
      let blobs = try BlobStore(root: "\(location.dataDirectory)/tracking-blobs")
      TrackingService(store: TrackingStore(database: database), blobs: blobs).register(in: &router)
      // Callers over TCP show a token that the registry vouches for.
      interceptors.append(
        RegistryAccessInterceptor(
          service: TrackingV1.Tracking.fullName, requirements: TrackingService.requirements,
          registry: RPCClient(address: location.registry), cacheFor: tokenTrust))
    case "feedback":
      let database = try await openDatabase(storeURL, location.dataDirectory, migrations: FeedbackStore.migrations)
      databases.append(database)
      let tiles = try TileCache(root: "\(location.dataDirectory)/imagery-cache", limit: cacheSize)
      let blobs = try BlobStore(root: "\(location.dataDirectory)/feedback-blobs")
      // Training sets are recorded in tracking, found through the registry.
      let mesh = ShoalClient(location: location)
      FeedbackService(
        store: FeedbackStore(database: database), fetcher: TileFetcher(cache: tiles), blobs: blobs,
        tracking: TrackingV1.Tracking.Client(mesh.channel(for: "tracking"))
      ).register(in: &router)
      shutdownSteps.append { await mesh.close() }
      interceptors.append(
        RegistryAccessInterceptor(
          service: FeedbackV1.Feedback.fullName, requirements: FeedbackService.requirements,
          registry: RPCClient(address: location.registry), cacheFor: tokenTrust))
    case "audio-classifier":
      let database = try await openDatabase(storeURL, location.dataDirectory, migrations: AudioStore.migrations)
      databases.append(database)
      AudioMemory.keepLargeBuffers()
      // Trained versions go to the registry and their runs to tracking, found through the registry.
      let mesh = ShoalClient(location: location)
      AudioClassifierService(
        store: AudioStore(database: database), blobs: try BlobStore(root: "\(location.dataDirectory)/audio-blobs"),
        registry: mesh.channel(for: "registry"), tracking: mesh.channel(for: "tracking"),
        feedback: mesh.channel(for: "feedback")
      ).register(in: &router)
      shutdownSteps.append { await mesh.close() }
      interceptors.append(
        RegistryAccessInterceptor(
          service: AudioV1.AudioClassifier.fullName, requirements: AudioClassifierService.requirements,
          registry: RPCClient(address: location.registry), cacheFor: tokenTrust))
    case "pipeline":
      // Runs train in the audio classifier, move aliases in the registry and are recorded in
      // tracking, all found through the registry.
      let mesh = ShoalClient(location: location)
      let service = service
      let pipelineService = PipelineService(
        directory: pipelines ?? "\(location.dataDirectory)/pipelines",
        runner: PipelineRunner(
          registry: mesh.channel(for: "registry"), tracking: mesh.channel(for: "tracking"),
          audio: mesh.channel(for: "audio-classifier"), feedback: mesh.channel(for: "feedback"),
          inference: mesh.channel(for: "inference")),
        log: { logLine(service, $0) })
      pipelineService.register(in: &router)
      background.append { await pipelineService.run() }
      shutdownSteps.append { await mesh.close() }
      interceptors.append(
        RegistryAccessInterceptor(
          service: PipelineV1.Pipelines.fullName, requirements: PipelineService.requirements,
          registry: RPCClient(address: location.registry), cacheFor: tokenTrust))
    case "gateway":
      let (host, port) = try Self.hostAndPort(http, option: "--http")
      // The mesh's services are found through the registry; each request's own token goes with its calls.
      var anonymous = location
      anonymous.token = nil
      let mesh = ShoalClient(location: anonymous)
      var config = Gateway.Config.defaults
      config.requireTokens = requireTokens
      config.serverVersion = ShoalVersion.current
      let gateway = Gateway(mesh: GatewayMesh(mesh), metrics: metricsRegistry, config: config)
      let (urls, announce) = AsyncStream.makeStream(of: String.self)
      let service = service
      background.append {
        do {
          try await GatewayServer.run(gateway, host: host, port: port) { url in
            emit("gateway http at \(url)")
            announce.yield(url)
            announce.finish()
          }
        } catch {
          // Without its HTTP side the gateway is of no use: stop, so that the supervisor says so.
          logLine(service, "cannot serve HTTP on \(host):\(port): \(error)")
          Foundation.exit(1)
        }
      }
      lateMetadata = {
        for await url in urls { return ["http": url] }
        return [:]
      }
      shutdownSteps.append { await mesh.close() }
    case "inference":
      let host = try makeModelHost(location, metrics: metricsRegistry, health: health)
      // AOI jobs: recorded in the service's store, tiles from feedback's imagery sources (fetched
      // here, cached apart from feedback's), predictions written to feedback's sets.
      let database = try await openDatabase(storeURL, location.dataDirectory, migrations: JobStore.migrations)
      databases.append(database)
      let tiles = try TileCache(root: "\(location.dataDirectory)/inference-tiles", limit: cacheSize / 4)
      let mesh = ShoalClient(location: location)
      let service = service
      let jobs = JobBoard(
        host: host, feedback: mesh.channel(for: "feedback"), fetcher: TileFetcher(cache: tiles),
        store: JobStore(database: database), log: { logLine(service, $0) })
      // Rollouts on aliases: promotion moves the alias in the registry.
      let rollouts = RolloutBoard(registry: RPCClient(address: location.registry), log: { logLine(service, $0) })
      let drift = DriftWatch(
        threshold: driftThreshold, webhook: driftWebhook, metrics: metricsRegistry, log: { logLine(service, $0) })
      InferenceService(host: host, jobs: jobs, rollouts: rollouts, drift: drift).register(in: &router)
      background.append { await rollouts.run(version: { host.serving($0)?.version.version }) }
      interceptors.append(
        RegistryAccessInterceptor(
          service: InferenceV1.Inference.fullName, requirements: InferenceService.requirements,
          registry: RPCClient(address: location.registry), cacheFor: tokenTrust))
      let requests = try models.map { spec in
        do {
          return try InferenceV1.LoadModelRequest(spec: spec)
        } catch {
          throw ValidationError("--load: \(error)")
        }
      }
      background.append {
        for request in requests { await host.loadAtStart(request) }
        await jobs.resumeInterrupted()
      }
      shutdownSteps.append {
        await jobs.shutdown()
        await host.shutdown()
        await mesh.close()
      }
    default:
      throw ValidationError("unknown service '\(service)'; this build serves: \(Self.services.joined(separator: ", "))")
    }

    var config = RPCServer.Config.defaults
    config.connection.maxMessageSize =
      maxMessageSize
      ?? (service == "inference" ? InferenceService.maxMessageSize : ConnectionConfig.defaults.maxMessageSize)
    config.connection.compression.enabled = !noCompression
    config.connection.peerName = "shoal-\(service)/\(ShoalVersion.current) pid \(getpid())"
    let server = RPCServer(router: router, config: config, interceptors: interceptors)
    health.attach(server.health)
    var bound: [RPCAddress] = []
    for text in listen.isEmpty ? ["unix:\(service).sock"] : listen {
      let address = try RPCAddress(parsing: text, relativeTo: location.dataDirectory)
      bound.append(try await server.bind(to: address))
    }
    for address in bound { emit("\(service) listening on \(address)") }
    let metricsServer = try await startMetrics(metricsRegistry)
    if let metricsServer { emit("\(service) metrics at \(metricsServer.url)") }

    // The registry registers in itself, through its own Unix socket if it has one (trusted there),
    // else its first address. Over TCP, registering needs an admin token of the mesh's
    // organisation (`--token` / SHOAL_TOKEN).
    let registryAddress =
      service == "registry"
      ? bound.first {
        if case .unix = $0 { return true }
        return false
      } ?? bound[0] : location.registry
    var registryConfig = RPCClient.Config.defaults
    if let token = location.token { registryConfig.interceptors.append(BearerTokenInterceptor(token: token)) }
    let registryClient = RPCClient(address: registryAddress, config: registryConfig)
    let service = service
    let leaseTTL = leaseTTL
    let noRegister = noRegister
    let metricsURL = metricsServer?.url
    let addresses = bound
    let extraMetadata = lateMetadata
    let register: @Sendable () async -> Void = {
      guard !noRegister else { return }
      var extra: [String: String] = [:]
      if let extraMetadata { extra = await extraMetadata() }
      let keepers = addresses.map { address in
        var registration = RegistryV1.RegisterRequest()
        registration.service = service
        registration.address = address.description
        registration.version = ShoalVersion.current
        registration.metadata = ["pid": "\(getpid())", "host": ProcessInfo.processInfo.hostName]
        if let metricsURL { registration.metadata["metrics"] = metricsURL }
        registration.metadata.merge(extra) { $1 }
        registration.ttlMs = UInt32((leaseTTL * 1000).rounded())
        return LeaseKeeper(registration: registration, registry: registryClient) { logLine(service, $0) }
      }
      await withTaskGroup(of: Void.self) { group in
        for keeper in keepers { group.addTask { await keeper.run() } }
      }
    }
    let helpers: [@Sendable () async -> Void] = [register] + background
    try await runUntilSignalled(server: server, helpers: helpers, shutdownSteps: shutdownSteps)
    await metricsServer?.close()
    await registryClient.close()
    for database in databases { await database.close() }
  }

  /// The service's database, migrated; an unusable store stops the service with its cause.
  private func openDatabase(_ url: StoreURL, _ dataDirectory: String, migrations: [Migration]) async throws -> Database
  {
    do {
      let database = try await Database.open(url, service: service, dataDirectory: dataDirectory)
      let applied = try await database.migrate(migrations)
      if !applied.isEmpty {
        logLine(service, "migrated \(database.location) to schema version \(applied.last!)")
      }
      return database
    } catch {
      logLine(service, "cannot use the store \(url): \(error)")
      throw ExitCode(1)
    }
  }

  /// The inference service's models: the cache in the data directory, the defaults of --batching.
  private func makeModelHost(
    _ location: RegistryLocation, metrics: MetricsRegistry, health: HealthRelay
  ) throws -> ModelHost {
    var defaults = BatchingPolicy.defaults
    if let batching {
      do {
        let pairs = try batching.split(separator: ",").map { part throws -> (key: String, value: String) in
          guard let equals = part.firstIndex(of: "=") else {
            throw ValidationError("--batching: '\(part)' is not key=value")
          }
          return (String(part[..<equals]), String(part[part.index(after: equals)...]))
        }
        defaults = defaults.overridden(by: try InferenceV1.BatchingConfig(pairs: pairs))
      } catch let error as BatchingSpecError {
        throw ValidationError("--batching: \(error)")
      }
      if let problem = defaults.problem { throw ValidationError("--batching: \(problem)") }
    }
    let blobs = try BlobStore(root: "\(location.dataDirectory)/inference-cache")
    var registryConfig = RPCClient.Config.defaults
    if let token = location.token { registryConfig.interceptors.append(BearerTokenInterceptor(token: token)) }
    let service = service
    return ModelHost(
      registry: RPCClient(address: location.registry, config: registryConfig),
      cache: ModelCache(blobs: blobs, limit: cacheSize), metrics: metrics, defaults: defaults,
      setHealth: { reference, serving in health.set(reference, serving) }, log: { logLine(service, $0) })
  }

  /// HOST and PORT of an option's `HOST:PORT`.
  static func hostAndPort(_ text: String, option: String, or alternative: String = "") throws -> (String, Int) {
    guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
      (0...65535).contains(port)
    else { throw ValidationError("\(option): '\(text)' is not HOST:PORT\(alternative)") }
    return (String(text[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]")), port)
  }

  /// The HTTP listener of GET /metrics, unless --metrics is off.
  private func startMetrics(_ registry: MetricsRegistry) async throws -> MetricsHTTPServer? {
    guard metrics != "off" else { return nil }
    let (host, port) = try Self.hostAndPort(metrics, option: "--metrics", or: " or off")
    do {
      return try await MetricsHTTPServer(registry: registry, host: host, port: port)
    } catch {
      logLine(service, "cannot serve metrics on \(metrics): \(error)")
      throw ExitCode(1)
    }
  }

  /// Serves until SIGINT, SIGTERM or (with --exit-with-parent) the parent's death; then cancels the
  /// helpers (lease keepers deregister), shuts the server down gracefully, then runs `shutdownSteps`.
  private func runUntilSignalled(
    server: RPCServer, helpers: [@Sendable () async -> Void], shutdownSteps: [@Sendable () async -> Void]
  ) async throws {
    let (stops, stop) = AsyncStream.makeStream(of: String.self)
    let sources = [SIGINT, SIGTERM].map { number -> any DispatchSourceSignal in
      Foundation.signal(number, SIG_IGN)
      let source = DispatchSource.makeSignalSource(signal: number)
      source.setEventHandler { stop.yield(number == SIGINT ? "SIGINT" : "SIGTERM") }
      source.resume()
      return source
    }
    defer { for source in sources { source.cancel() } }
    let parent = getppid()
    let watchParent = exitWithParent
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await server.run() }
      group.addTask {
        await withTaskGroup(of: Void.self) { running in
          for helper in helpers { running.addTask { await helper() } }
          if watchParent {
            running.addTask {
              // Reparented: the supervisor died without stopping us.
              while !Task.isCancelled, getppid() == parent { try? await Task.sleep(for: .milliseconds(250)) }
              if !Task.isCancelled { stop.yield("the parent process exited") }
            }
          }
          for await _ in stops { break }
          running.cancelAll()
        }
        await server.shutdown()
        for step in shutdownSteps { await step() }
      }
      try await group.waitForAll()
    }
  }
}

/// Hands a service's health changes to its server once the server exists (the service is made
/// before it).
final class HealthRelay: Sendable {
  private let target = Mutex<HealthService?>(nil)

  func attach(_ health: HealthService) { target.withLock { $0 = health } }

  /// `serving` true: SERVING, false: NOT_SERVING, nil: SERVICE_UNKNOWN.
  func set(_ name: String, _ serving: Bool?) {
    let status: HealthService.Status =
      switch serving {
      case true?: .serving
      case false?: .notServing
      case nil: .serviceUnknown
      }
    target.withLock { $0 }?.set(name, status)
  }
}
