import Foundation
public import ShoalMetrics
import ShoalModel
public import ShoalProto
public import ShoalRPC
import ShoalService
import ShoalServiceStubs
import ShoalStore
import Synchronization

/// The models this service serves: loading from the registry through the cache, hot swaps when
/// an alias moves, unloading with draining, and the table Predict reads.
///
/// Loads and swaps of one reference never overlap. Predict reads the serving version from a
/// table under a lock, without waiting for this actor; a swap replaces the table's entry in one
/// step, and the version it replaced drains (its queued and running requests finish) before it
/// is unloaded.
public actor ModelHost {
  /// Who asks: the caller's `authorization` header (nil for a peer on the Unix socket, who acts
  /// as the mesh's administrator) and organisation (nil: every organisation).
  public struct Identity: Sendable {
    public var authorization: String?
    public var organization: String?

    /// The service itself (background loads, swaps and watches).
    public static let service = Identity(authorization: nil, organization: nil)

    public init(authorization: String?, organization: String?) {
      self.authorization = authorization
      self.organization = organization
    }

    /// The organisation a reference without one means.
    var defaultOrganization: String { organization ?? "local" }

    var options: CallOptions {
      var options = CallOptions(timeout: .seconds(30))
      if let authorization { options.metadata.add("authorization", authorization) }
      return options
    }
  }

  private struct Slot {
    var reference: ModelReference
    var policy: BatchingPolicy
    var state: InferenceV1.ModelState = .loading
    var reason = ""
    var serving: ServedVersion?
    var pendingVersion: Int64 = 0
    var loading = false
    var recheck = false
    var watch: Task<Void, Never>?
  }

  private let registry: RegistryV1.ModelRegistry.Client
  private let cache: ModelCache
  private let metrics: MetricsRegistry
  private let defaults: BatchingPolicy
  private let setHealth: @Sendable (String, Bool?) -> Void
  private let log: @Sendable (String) -> Void
  private var slots: [String: Slot] = [:]
  private var loadWaiters: [String: [CheckedContinuation<Void, Never>]] = [:]
  private var draining: [Task<Void, Never>] = []
  private let routes = Locked<[String: ServedVersion]>([:])
  /// Why a reference that serves no version yet cannot answer: loading (UNAVAILABLE, call again)
  /// or failed (FAILED_PRECONDITION), for Predict's answer instead of NOT_FOUND.
  private let notReady = Locked<[String: RPCError]>([:])
  private let visibility = Locked<[String: ContinuousClock.Instant]>([:])
  private let hub = EventHub<Int, InferenceV1.ModelStatusEvent>()

  /// A host loading models through `registry` into `cache`, with `defaults` for what a load
  /// does not configure. `setHealth` hears a reference's health (true serving, false not, nil
  /// gone); `log` gets one line per event.
  public init(
    registry: any RPCChannel, cache: ModelCache, metrics: MetricsRegistry, defaults: BatchingPolicy,
    setHealth: @escaping @Sendable (String, Bool?) -> Void, log: @escaping @Sendable (String) -> Void
  ) {
    self.registry = RegistryV1.ModelRegistry.Client(registry)
    self.cache = cache
    self.metrics = metrics
    self.defaults = defaults
    // Health answers to `local/roads@production` and, in the local organisation, `roads@production`.
    self.setHealth = { key, serving in
      setHealth(key, serving)
      if key.hasPrefix("local/") { setHealth(String(key.dropFirst(6)), serving) }
    }
    self.log = log
    let routes = self.routes
    metrics.gauge("shoal_inference_loaded_models", help: "Model references serving a version.") {
      Double(routes.withLock { $0.count })
    }
  }

  // MARK: Predict's path

  /// The version serving `key` (a qualified reference's description), without waiting.
  public nonisolated func serving(_ key: String) -> ServedVersion? {
    routes.withLock { $0[key] }
  }

  /// Why `key` serves nothing though it is being loaded or failed to; nil when it is not known.
  public nonisolated func unavailability(_ key: String) -> RPCError? {
    notReady.withLock { $0[key] }
  }

  /// Refuses a caller who could not see the version's model in the registry, exactly as the
  /// registry would (NOT_FOUND). Callers of the model's organisation and peers on the Unix
  /// socket always see it; anyone else is asked of the registry with their own token, and the
  /// answer is kept for 30 s.
  public nonisolated func checkVisible(_ served: ServedVersion, to identity: Identity) async throws(RPCError) {
    guard let organization = identity.organization, organization != served.version.organization else { return }
    let cacheKey = "\(identity.authorization ?? "")\n\(served.qualifiedName)"
    let now = ContinuousClock.now
    if let until = visibility.withLock({ $0[cacheKey] }), until > now { return }
    var request = RegistryV1.GetModelRequest()
    request.organization = served.version.organization
    request.name = served.version.model
    _ = try await registry.getModel(request, options: identity.options)
    visibility.withLock { entries in
      if entries.count >= 4096 { entries = entries.filter { $0.value > now } }
      entries[cacheKey] = now + .seconds(30)
    }
  }

  // MARK: Loading

  /// Loads `request.model` (or changes its batching) and answers once it is AVAILABLE.
  ///
  /// - Throws: what the registry answers the caller (NOT_FOUND for a model they cannot see),
  ///   INVALID_ARGUMENT for a malformed reference or configuration, FAILED_PRECONDITION or
  ///   DATA_LOSS with the reason when the file cannot be loaded (the model stays listed FAILED).
  public func load(
    _ request: InferenceV1.LoadModelRequest, as identity: Identity
  ) async throws -> InferenceV1.LoadedModel {
    let reference = try ModelReference(parsing: request.model).qualified(
      defaultOrganization: identity.defaultOrganization)
    let policy = defaults.overridden(by: request.config?.batching)
    if let problem = policy.problem { throw RPCError(.invalidArgument, "config.batching: \(problem)") }
    let key = reference.description
    let (model, version) = try await resolve(reference, as: identity)

    while slots[key]?.loading == true { await waitForLoad(key) }
    if let slot = slots[key], slot.state == .available, slot.policy == policy,
      slot.serving?.version.version == version.version
    {
      return status(of: slot)
    }
    if slots[key] == nil { slots[key] = Slot(reference: reference, policy: policy) }
    slots[key]!.policy = policy
    try await swap(key, to: version, task: model.task, as: identity)
    if reference.follows, slots[key]?.watch == nil {
      slots[key]?.watch = Task { await self.follow(key, reference: reference) }
    }
    guard let slot = slots[key] else { throw RPCError(.aborted, "model \(key) was unloaded while it loaded") }
    return status(of: slot)
  }

  /// Loads `reference` in the background, trying again while the registry cannot be reached or
  /// the model does not exist yet (the mesh file's models at start).
  public func loadAtStart(_ request: InferenceV1.LoadModelRequest) {
    if let key = try? ModelReference(parsing: request.model).qualified(defaultOrganization: "local").description {
      notReady.withLock {
        $0[key] = RPCError(.unavailable, "model \(key) is listed in the mesh file and not loaded yet; call again")
      }
    }
    draining.append(
      Task {
        var wait = Duration.milliseconds(500)
        while !Task.isCancelled {
          do {
            let loaded = try await self.load(request, as: .service)
            self.log("loaded \(loaded.reference) v\(loaded.version) from the mesh file")
            return
          } catch {
            let message = (error as? RPCError)?.description ?? "\(error)"
            self.log("cannot load \(request.model) yet: \(message); trying again in \(wait)")
            self.markStarting(request.model, because: message)
          }
          try? await Task.sleep(for: wait)
          wait = min(wait * 2, .seconds(30))
        }
      })
  }

  /// Stops serving `model`: it leaves the table at once, its queued and running requests finish,
  /// then it is unloaded.
  public func unload(_ model: String, as identity: Identity) async throws -> InferenceV1.LoadedModel {
    let reference = try ModelReference(parsing: model).qualified(defaultOrganization: identity.defaultOrganization)
    let key = reference.description
    guard var slot = slots[key], identity.organization == nil || identity.organization == reference.organization
    else { throw RPCError(.notFound, "model \(key) is not loaded here (see `shoal inference status`)") }
    slot.watch?.cancel()
    slot.watch = nil
    slot.state = .unloading
    let answer = status(of: slot)
    publish(slot)
    // Out of the tables at once: new requests are refused, and a load of the same reference
    // starts afresh while this version drains.
    slots[key] = nil
    _ = routes.withLock { $0.removeValue(forKey: key) }
    _ = notReady.withLock { $0.removeValue(forKey: key) }
    setHealth(key, nil)
    if let served = slot.serving { await retire(served) }
    var event = InferenceV1.ModelStatusEvent()
    event.model = answer
    event.removed = true
    hub.publish(event, to: 0)
    log("unloaded \(key)")
    return answer
  }

  // MARK: Status

  /// Every loaded model, or the one `model` names.
  public func statuses(_ model: String, as identity: Identity) throws(RPCError) -> [InferenceV1.LoadedModel] {
    let visible = slots.values.filter {
      identity.organization == nil || $0.reference.organization == identity.organization
    }
    guard !model.isEmpty else { return visible.map(status(of:)).sorted { $0.reference < $1.reference } }
    let key = try ModelReference(parsing: model).qualified(defaultOrganization: identity.defaultOrganization)
      .description
    guard let slot = visible.first(where: { $0.reference.description == key }) else {
      throw RPCError(.notFound, "model \(key) is not loaded here (see `shoal inference status`)")
    }
    return [status(of: slot)]
  }

  /// The current models, then every change, until the caller stops reading.
  public func watch(
    as identity: Identity
  ) -> (token: UInt64, events: AsyncStream<InferenceV1.ModelStatusEvent>, current: [InferenceV1.LoadedModel]) {
    let (token, events) = hub.subscribe(0)
    let current = (try? statuses("", as: identity)) ?? []
    return (token, events, current)
  }

  /// Ends a watch.
  public nonisolated func endWatch(_ token: UInt64) { hub.unsubscribe(0, token: token) }

  /// Stops following aliases and drains every model (at shutdown).
  public func shutdown() async {
    for task in draining { task.cancel() }
    for key in slots.keys { slots[key]?.watch?.cancel() }
    for key in Array(slots.keys) { _ = try? await unload(key, as: .service) }
    for task in draining { await task.value }
  }

  // MARK: Internals

  /// A mesh file model that could not load yet stays UNAVAILABLE, with the reason.
  private func markStarting(_ model: String, because reason: String) {
    guard let key = try? ModelReference(parsing: model).qualified(defaultOrganization: "local").description,
      routes.withLock({ $0[key] == nil })
    else { return }
    notReady.withLock {
      $0[key] = RPCError(
        .unavailable, "model \(key) is listed in the mesh file and not loaded yet (\(reason)); call again")
    }
  }

  private func status(of slot: Slot) -> InferenceV1.LoadedModel {
    var status = InferenceV1.LoadedModel()
    status.reference = slot.reference.description
    status.organization = slot.reference.organization ?? ""
    status.model = slot.reference.model
    if case .alias(let alias) = slot.reference.selector { status.alias = alias }
    status.state = slot.state
    status.reason = slot.reason
    status.pendingVersion = slot.pendingVersion
    var config = InferenceV1.ModelConfig()
    config.batching = slot.policy.config
    status.config = config
    if let served = slot.serving {
      status.version = served.version.version
      status.digest = served.digest.hex
      status.loadedAtMs = Int64(served.loadedAt.timeIntervalSince1970 * 1000)
      status.loadTimeUs = Int64(DynamicBatcher.seconds(served.loadTime) * 1e6)
      status.memoryBytes = Int64(served.model.memoryBytes)
      status.task = served.task
    }
    return status
  }

  private func publish(_ slot: Slot) {
    var event = InferenceV1.ModelStatusEvent()
    event.model = status(of: slot)
    hub.publish(event, to: 0)
  }

  private func waitForLoad(_ key: String) async {
    await withCheckedContinuation { loadWaiters[key, default: []].append($0) }
  }

  /// The model and the version `reference` means now, asked with the caller's identity.
  private func resolve(
    _ reference: ModelReference, as identity: Identity
  ) async throws(RPCError) -> (RegistryV1.Model, RegistryV1.ModelVersion) {
    var request = RegistryV1.GetVersionRequest()
    request.organization = reference.organization ?? ""
    request.model = reference.model
    switch reference.selector {
    case .alias(let alias): request.alias = alias
    case .version(let version): request.version = version
    case .latest: break
    }
    var modelRequest = RegistryV1.GetModelRequest()
    modelRequest.organization = request.organization
    modelRequest.name = request.model
    let model = try await registry.getModel(modelRequest, options: identity.options)
    let version = try await registry.getVersion(request, options: identity.options)
    guard version.status == .ready else {
      throw RPCError(.failedPrecondition, "model \(reference) v\(version.version) is not READY in the registry")
    }
    return (model, version)
  }

  /// Loads `version` for `key` and swaps it in, or records why it failed. The old version, if
  /// any, keeps serving through the load and after a failure.
  private func swap(
    _ key: String, to version: RegistryV1.ModelVersion, task: RegistryV1.ModelTask, as identity: Identity
  ) async throws {
    guard var slot = slots[key] else { return }
    slot.loading = true
    slot.pendingVersion = version.version
    if slot.serving == nil {
      slot.state = .loading
      let error = RPCError(.unavailable, "model \(key) is loading v\(version.version); call again")
      notReady.withLock { $0[key] = error }
    }
    slots[key] = slot
    publish(slot)
    if slot.serving == nil { setHealth(key, false) }
    defer {
      slots[key]?.loading = false
      for waiter in loadWaiters.removeValue(forKey: key) ?? [] { waiter.resume() }
    }
    do {
      let served = try await prepare(key, version, task: task, policy: slot.policy, as: identity)
      guard slots[key] != nil, slots[key]?.state != .unloading else {
        await retire(served)
        return
      }
      let old = slots[key]!.serving
      routes.withLock { $0[key] = served }
      _ = notReady.withLock { $0.removeValue(forKey: key) }
      slots[key]!.serving = served
      slots[key]!.state = .available
      slots[key]!.reason = ""
      slots[key]!.pendingVersion = 0
      publish(slots[key]!)
      setHealth(key, true)
      log("\(key): serving v\(version.version)" + (old.map { " (was v\($0.version.version))" } ?? ""))
      if let old, old !== served {
        draining.append(Task { await self.retire(old) })
      }
    } catch {
      let message = (error as? RPCError)?.message ?? "\(error)"
      slots[key]?.pendingVersion = 0
      slots[key]?.reason = "v\(version.version): \(message)"
      if slots[key]?.serving == nil {
        slots[key]?.state = .failed
        let failure = RPCError(.failedPrecondition, "model \(key) failed to load: v\(version.version): \(message)")
        notReady.withLock { $0[key] = failure }
      }
      if let slot = slots[key] { publish(slot) }
      log("\(key): cannot load v\(version.version): \(message)")
      throw error
    }
  }

  /// Downloads (unless cached), loads and warms up one version, with its batcher.
  private func prepare(
    _ key: String, _ version: RegistryV1.ModelVersion, task: RegistryV1.ModelTask, policy: BatchingPolicy,
    as identity: Identity
  ) async throws -> ServedVersion {
    let started = ContinuousClock.now
    let digest: BlobDigest
    do {
      digest = try BlobDigest(reference: version.artifact)
    } catch {
      throw RPCError(.dataLoss, "the registry gave v\(version.version) no file digest ('\(version.artifact)')")
    }
    var download = RegistryV1.GetVersionRequest()
    download.organization = version.organization
    download.model = version.model
    download.version = version.version
    let registry = registry
    let options = identity.options
    let request = download
    let (bytes, downloaded) = try await cache.acquire(digest) { writer in
      try await registry.downloadVersion(request, options: options) { parts in
        for try await part in parts {
          if case .chunk(let chunk) = part.part { try await writer.write(chunk) }
        }
      }
    }
    let name = "\(version.organization)/\(version.model) v\(version.version)"
    let tileSize = Int(version.signature?.preprocessing?.tileSize ?? 0)
    let model: Model
    do {
      model = try await OwnThread.run("shoal-load") { () throws -> Model in
        let model = try Model(onnx: bytes, fileName: name)
        // One run, so that the first request does not pay for planning. A model whose free
        // dimensions were guessed may refuse the guess; only a fully declared one must pass.
        if let inputs = ServedVersion.warmUpInputs(model, tileSize: tileSize) {
          do {
            _ = try model.run(inputs)
          } catch {
            let guessed = model.inputs.contains { spec in
              spec.dimensions?.dropFirst().contains { if case .fixed = $0 { false } else { true } } ?? true
            }
            if !guessed { throw error }
          }
        }
        return model
      }
    } catch {
      await cache.release(digest)
      throw RPCError(.failedPrecondition, "\(name) cannot be loaded: \(error)")
    }
    let metrics = ModelMetrics(
      registry: self.metrics, model: "\(version.organization)/\(version.model)", version: version.version)
    let batcher = DynamicBatcher(
      model: model, name: name, policy: policy, batchable: ServedVersion.batchable(model),
      observe: { metrics.record($0) })
    metrics.watch(pending: { batcher.pending }, memoryBytes: { model.memoryBytes })
    log("\(key): loaded v\(version.version) (\(bytes.count) bytes, \(downloaded ? "downloaded" : "cached"))")
    return ServedVersion(
      key: key, version: version, task: task, digest: digest, model: model, batcher: batcher, loadedAt: Date(),
      loadTime: .now - started, metrics: metrics)
  }

  /// Lets a version's requests finish, then frees it.
  private func retire(_ served: ServedVersion) async {
    await served.batcher.drain()
    await cache.release(served.digest)
    // A newer version of the same model keeps its own series.
    if routes.withLock({ $0.values.contains { $0.metrics.labels == served.metrics.labels } }) == false {
      served.metrics.remove()
    }
    await cache.evict()
  }

  /// Follows the alias (or the latest version) of `key`: on every move the new version loads in
  /// the background and is swapped in. Reconnects to the registry with backoff.
  private nonisolated func follow(_ key: String, reference: ModelReference) async {
    var request = RegistryV1.WatchModelRequest()
    request.organization = reference.organization ?? ""
    request.model = reference.model
    let seen = Locked<Int64>(0)
    var wait = Duration.milliseconds(250)
    while !Task.isCancelled, await isLoaded(key) {
      request.afterSequence = seen.withLock { $0 }
      do {
        var options = Identity.service.options
        options.timeout = nil
        try await registry.watchModel(request, options: options) { events in
          // What moved while no watch was open.
          await self.reconcile(key)
          for try await event in events {
            seen.withLock { $0 = event.sequence }
            switch (event.change, reference.selector) {
            case (.aliasMoved(let move), .alias(let alias)) where move.alias == alias: await self.reconcile(key)
            case (.versionCreated, .latest): await self.reconcile(key)
            default: break
            }
          }
        }
        wait = .milliseconds(250)
      } catch {
        if Task.isCancelled { return }
        log("\(key): the registry's watch ended (\(error)); watching again in \(wait)")
        wait = min(wait * 2, .seconds(10))
      }
      try? await Task.sleep(for: wait)
    }
  }

  private func isLoaded(_ key: String) -> Bool { slots[key] != nil }

  /// Loads what `key`'s reference means now if it is not what serves.
  private func reconcile(_ key: String) async {
    guard let slot = slots[key] else { return }
    if slot.loading {
      slots[key]?.recheck = true
      return
    }
    do {
      let (model, version) = try await resolve(slot.reference, as: .service)
      guard slots[key] != nil, slots[key]?.serving?.version.version != version.version else { return }
      try await swap(key, to: version, task: model.task, as: .service)
    } catch {
      log("\(key): the alias moved but the new version is not served: \(error)")
    }
    if slots[key]?.recheck == true {
      slots[key]?.recheck = false
      await reconcile(key)
    }
  }
}

/// A value behind a lock, shareable between tasks and threads.
final class Locked<Value: Sendable>: Sendable {
  private let mutex: Mutex<Value>

  init(_ value: Value) { mutex = Mutex(value) }

  func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
    try mutex.withLock { try body(&$0) }
  }
}
