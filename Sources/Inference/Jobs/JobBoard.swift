import Foundation
import ShoalGeo
import ShoalImage
public import ShoalImagery
import ShoalModel
import ShoalProto
public import ShoalRPC
import ShoalService
import ShoalServiceStubs
import Synchronization

/// The inference service's AOI jobs: started, watched, cancelled and listed here, run as tasks,
/// recorded in the job store, and resumed after a restart on the tiles the set does not hold yet.
public actor JobBoard {
  /// What limits a job.
  public struct Limits: Sendable {
    /// The most tiles an area may cover.
    public var maxTiles = 100_000
    /// Tiles in flight by default.
    public var concurrency = 32
    /// The priority of a job's rows in a model's batcher (online Predict calls have 0 and go first).
    public var priority = 10
    /// Tiles per PutPredictions batch, and the longest a finished tile waits to be written.
    public var batchTiles = 64
    public var batchDelay: Duration = .seconds(1)

    public init() {}
  }

  private let host: ModelHost
  private let feedback: FeedbackV1.Feedback.Client
  private let fetcher: TileFetcher
  private let store: JobStore
  private let limits: Limits
  private let log: @Sendable (String) -> Void
  private var tasks: [String: Task<Void, Never>] = [:]
  private var live: [String: InferenceV1.Job] = [:]
  private var cancelling: Set<String> = []
  private let hub = EventHub<String, InferenceV1.Job>()
  /// Every job's decoding, on 2 threads of nice 10. On a machine the model's threads keep busy,
  /// the decoding then runs in the moments they leave (waiting for each other between
  /// operators) instead of taking a core from one of them, which would make the other wait for
  /// it: decoded on Swift's task pool, a MobileNet-v2 job reached 0.62× the model's in-process
  /// throughput on 2 cores, 0.77× so.
  private let decoders = WorkerThreads<Void>(count: 2, name: "shoal-job-decode") {
    // On Linux each thread has its own nice value, and 0 names the calling one.
    _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 10)
  }

  /// Jobs predicting with `host`'s models on tiles `fetcher` fetches from `feedback`'s imagery
  /// sources, into `feedback`'s sets, recorded in `store`.
  public init(
    host: ModelHost, feedback: any RPCChannel, fetcher: TileFetcher, store: JobStore, limits: Limits = Limits(),
    log: @escaping @Sendable (String) -> Void
  ) {
    self.host = host
    self.feedback = FeedbackV1.Feedback.Client(feedback)
    self.fetcher = fetcher
    self.store = store
    self.limits = limits
    self.log = log
  }

  /// Every call to feedback: without a deadline, a mesh with no feedback service would wait forever.
  static let feedbackCall = CallOptions(timeout: .seconds(30))

  static func nowMs() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded()) }

  // MARK: Starting

  /// Checks `request`, creates the job's set in feedback and starts the job.
  ///
  /// - Throws: INVALID_ARGUMENT naming a bad field (an area over the tile limit with its count),
  ///   FAILED_PRECONDITION for a model whose task or outputs a job cannot use (naming them), and
  ///   what the registry and feedback answer (NOT_FOUND for an unknown model, source or area).
  func start(_ request: InferenceV1.StartJobRequest, as identity: ModelHost.Identity) async throws -> InferenceV1.Job {
    let organization = try CallerOrganization.owner(named: request.organization, of: "jobs")
    let zoom = Int(request.zoom)
    let lowest = request.supertile ? 1 : 0
    guard (lowest...Tile.maxZoom).contains(zoom) else {
      throw RPCError(.invalidArgument, "zoom \(request.zoom) is outside \(lowest)–\(Tile.maxZoom)")
    }
    guard (0...1024).contains(request.concurrency) else {
      throw RPCError(.invalidArgument, "concurrency \(request.concurrency) is outside 0–1024 (0: the default)")
    }
    let threshold = request.threshold.map { if case .scoreThreshold(let value) = $0 { value } else { 0.5 } } ?? 0.5
    let iou = request.iou.map { if case .iouThreshold(let value) = $0 { value } else { 0.5 } } ?? 0.5
    guard (0...1).contains(threshold) else {
      throw RPCError(.invalidArgument, "score_threshold \(threshold) is outside 0–1")
    }
    guard iou > 0, iou <= 1 else { throw RPCError(.invalidArgument, "iou_threshold \(iou) is outside (0, 1]") }

    var identity = identity
    if identity.organization == nil { identity.organization = organization }
    let served = try await servedVersion(request.model, as: identity, pinned: nil)
    let plan = try JobPlan(served: served, threshold: threshold, iou: iou)
    let source = try await imagery(request.imagery, organization: organization)
    guard source.serves(zoom: zoom) else {
      throw RPCError(
        .invalidArgument, "zoom \(zoom): the source '\(source.name)' has zooms \(source.minZoom)–\(source.maxZoom)")
    }
    let (polygons, aoi) = try await area(request, organization: organization)
    let tiles = try cover(polygons, zoom: zoom)

    var set = FeedbackV1.CreateSetRequest()
    set.model = request.model
    set.modelVersion = served.version.version
    set.task = served.task
    set.classes = served.version.signature?.classes ?? []
    set.imagery = request.imagery
    set.zoom = request.zoom
    set.aoi = aoi
    set.organization = organization
    var job = InferenceV1.Job()
    job.jobId = "job-" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(16)
    set.jobId = job.jobId
    let created = try await feedback.createSet(set, options: JobBoard.feedbackCall)

    job.organization = organization
    job.model = request.model
    job.modelVersion = served.version.version
    job.imagery = request.imagery
    job.zoom = request.zoom
    job.supertile = request.supertile
    job.scoreThreshold = threshold
    job.iouThreshold = iou
    job.aoi = aoi
    job.setId = created.setId
    job.state = .running
    job.tilesTotal = Int64(tiles.count)
    job.createdBy = CallerPrincipal.name
    job.createdAtMs = Self.nowMs()
    var stored = request
    stored.organization = organization
    try await store.put(job, request: stored)
    log(
      "job \(job.jobId): \(tiles.count) tiles of \(request.imagery) at zoom \(zoom) through \(served.key) v\(served.version.version) into set \(created.setId)"
    )
    launch(job, request: stored, served: served, plan: plan, source: source, tiles: tiles, resuming: false)
    return job
  }

  /// Resumes the jobs a restart interrupted, each once its model and feedback can be reached.
  public func resumeInterrupted() async {
    let interrupted: [(job: InferenceV1.Job, request: InferenceV1.StartJobRequest)]
    do {
      interrupted = try await store.jobs(organization: nil, states: [.queued, .running])
    } catch {
      log("cannot read the jobs to resume: \(error)")
      return
    }
    for (job, request) in interrupted.reversed() {
      var job = job
      job.resumed += 1
      job.state = .queued
      live[job.jobId] = job
      let task = Task {
        var wait = Duration.milliseconds(500)
        while !Task.isCancelled {
          do {
            if try await self.resume(job, request: request) { return }
            break
          } catch let error as RPCError where error.code == .unavailable || error.code == .deadlineExceeded {
            self.log("job \(job.jobId) cannot resume yet: \(error); trying again in \(wait)")
          } catch {
            await self.fail(job, request: request, because: "it could not resume after a restart: \(error)")
            return
          }
          try? await Task.sleep(for: wait)
          wait = min(wait * 2, .seconds(30))
        }
        if self.isCancelling(job.jobId) {
          var cancelled = job
          cancelled.state = .cancelled
          cancelled.message = "cancelled before it resumed"
          cancelled.finishedAtMs = Self.nowMs()
          await self.finished(cancelled, request: request)
        }
      }
      tasks[job.jobId] = task
    }
  }

  /// Whether the job was launched (not when it was cancelled meanwhile).
  private func resume(_ job: InferenceV1.Job, request: InferenceV1.StartJobRequest) async throws -> Bool {
    let identity = ModelHost.Identity(authorization: nil, organization: job.organization)
    let served = try await servedVersion(request.model, as: identity, pinned: job.modelVersion)
    let plan = try JobPlan(served: served, threshold: job.scoreThreshold, iou: job.iouThreshold)
    let source = try await imagery(request.imagery, organization: job.organization)
    let (polygons, _) = try await area(request, organization: job.organization)
    let tiles = try cover(polygons, zoom: Int(job.zoom))
    guard !cancelling.contains(job.jobId) else { return false }
    log("job \(job.jobId): resuming (restart \(job.resumed)) with \(served.key) v\(served.version.version)")
    launch(job, request: request, served: served, plan: plan, source: source, tiles: tiles, resuming: true)
    return true
  }

  private func fail(_ job: InferenceV1.Job, request: InferenceV1.StartJobRequest, because reason: String) async {
    var job = job
    job.state = .jobFailed
    job.message = reason
    job.finishedAtMs = Self.nowMs()
    log("job \(job.jobId) failed: \(reason)")
    await finished(job, request: request)
  }

  // MARK: Watching, cancelling, listing

  /// The job as it is now, for a caller of `organization` (nil: any).
  func job(_ id: String, organization: String?) async throws -> InferenceV1.Job {
    if let job = live[id], organization == nil || job.organization == organization { return job }
    guard let (job, _) = try await store.job(id), organization == nil || job.organization == organization else {
      throw RPCError(.notFound, "job '\(id)' does not exist (see `shoal jobs list`)")
    }
    return job
  }

  /// The job now, then each change until it ends.
  func watch(
    _ id: String, organization: String?
  ) async throws -> (InferenceV1.Job, AsyncStream<InferenceV1.Job>?, UInt64) {
    let job = try await job(id, organization: organization)
    guard live[id] != nil else { return (job, nil, 0) }
    let (token, events) = hub.subscribe(id)
    return (live[id] ?? job, events, token)
  }

  nonisolated func endWatch(_ id: String, token: UInt64) { hub.unsubscribe(id, token: token) }

  /// Stops a running job; what was written stays, and the set is marked CANCELLED.
  func cancel(_ id: String, organization: String?) async throws -> InferenceV1.Job {
    let job = try await job(id, organization: organization)
    guard [.queued, .running].contains(job.state), tasks[id] != nil else { return job }
    cancelling.insert(id)
    // A job waiting to resume is one task, and the run it launches another.
    var awaited: Task<Void, Never>?
    while let task = tasks[id], task != awaited {
      task.cancel()
      await task.value
      awaited = task
    }
    return try await self.job(id, organization: organization)
  }

  func list(_ request: InferenceV1.ListJobsRequest, organization: String?) async throws -> [InferenceV1.Job] {
    guard (0...500).contains(request.pageSize) else { throw RPCError(.invalidArgument, "page_size must be 1–500") }
    let stored = try await store.jobs(
      organization: organization, states: request.state == .unspecified ? [] : [request.state],
      limit: request.pageSize == 0 ? 100 : Int(request.pageSize))
    return stored.map { live[$0.job.jobId] ?? $0.job }
  }

  /// Cancels every job's task (they resume at the next start) and waits for them.
  public func shutdown() async {
    let running = tasks.values
    for task in running { task.cancel() }
    for task in running { await task.value }
  }

  // MARK: Progress

  /// A running job's new progress: kept, sent to watchers and, with `persist`, stored.
  func progress(_ job: InferenceV1.Job, request: InferenceV1.StartJobRequest, persist: Bool) async {
    live[job.jobId] = job
    hub.publish(job, to: job.jobId)
    if persist {
      do {
        try await store.put(job, request: request)
      } catch {
        log("job \(job.jobId): cannot record progress: \(error)")
      }
    }
  }

  /// A job that ended (or stopped for a shutdown): stored, its watchers told and let go.
  func finished(_ job: InferenceV1.Job, request: InferenceV1.StartJobRequest) async {
    await progress(job, request: request, persist: true)
    live[job.jobId] = nil
    tasks[job.jobId] = nil
    cancelling.remove(job.jobId)
    hub.finish(job.jobId)
  }

  func isCancelling(_ id: String) -> Bool { cancelling.contains(id) }

  // MARK: Inputs of a job

  /// The version serving `reference` (loaded if it is not), or with `pinned`, that version: the
  /// reference's if it serves it, else the pinned version loaded by number.
  private func servedVersion(
    _ reference: String, as identity: ModelHost.Identity, pinned: Int64?
  ) async throws -> ServedVersion {
    let parsed = try ModelReference(parsing: reference).qualified(defaultOrganization: identity.defaultOrganization)
    var key = parsed.description
    if let pinned, host.serving(key)?.version.version != pinned {
      var exact = parsed
      exact.selector = .version(pinned)
      key = exact.description
    }
    if host.serving(key) == nil {
      var load = InferenceV1.LoadModelRequest()
      load.model = key
      _ = try await host.load(load, as: identity)
    }
    guard let served = host.serving(key) else {
      throw RPCError(.unavailable, "model \(key) was unloaded as the job started; start it again")
    }
    try await host.checkVisible(served, to: identity)
    return served
  }

  private func imagery(_ name: String, organization: String) async throws -> ImagerySource {
    guard !name.isEmpty else {
      throw RPCError(.invalidArgument, "imagery: name an imagery source (`shoal imagery list`)")
    }
    var request = FeedbackV1.GetImageryRequest()
    request.name = name
    request.organization = organization
    let revealed = try await feedback.revealImagery(request, options: JobBoard.feedbackCall)
    do throws(ImageryError) {
      return try ImagerySource(revealed.source ?? FeedbackV1.ImagerySource(), headers: revealed.headers)
    } catch {
      throw RPCError(.failedPrecondition, "imagery source '\(name)': \(error.message)")
    }
  }

  /// The area's polygons and its GeoJSON.
  private func area(
    _ request: InferenceV1.StartJobRequest, organization: String
  ) async throws -> ([Polygon], String) {
    let text: String
    switch request.area {
    case .bbox(let box)?:
      let bounds = BoundingBox(box)
      guard bounds.west < bounds.east, bounds.south < bounds.north, bounds.west >= -180, bounds.east <= 180,
        bounds.south >= -90, bounds.north <= 90
      else {
        throw RPCError(
          .invalidArgument,
          "bbox \(bounds.west),\(bounds.south),\(bounds.east),\(bounds.north) is not west,south,east,north")
      }
      let polygon = Polygon(bounds)
      return ([polygon], GeoJSON.featureCollection([GeoJSON.Feature(geometry: .polygon(polygon))]))
    case .geojson(let geojson)?:
      text = geojson
    case .areaName(let name)?:
      var get = FeedbackV1.GetAreaRequest()
      get.name = name
      get.organization = organization
      text = try await feedback.getArea(get, options: JobBoard.feedbackCall).geojson
    case nil:
      throw RPCError(.invalidArgument, "give the area: a bbox, a GeoJSON polygon or a saved area's name")
    }
    do throws(GeoError) {
      return (try GeoJSON.areaPolygons(text), text)
    } catch {
      throw RPCError(.invalidArgument, "geojson: \(error.message)")
    }
  }

  /// The tiles covering `polygons`, refused past the limit before anything is fetched.
  private func cover(_ polygons: [Polygon], zoom: Int) throws(RPCError) -> [Tile] {
    let bounds = Geometry.multiPolygon(polygons).bounds
    let northWest = Tile.tileCoordinates(bounds.west, bounds.north, zoom: zoom)
    let southEast = Tile.tileCoordinates(bounds.east, bounds.south, zoom: zoom)
    let boxTiles =
      (southEast.x.rounded(.up) - northWest.x.rounded(.down)) * (southEast.y.rounded(.up) - northWest.y.rounded(.down))
    // A cover is at most its bounding box's tiles; far past the limit, that count is the answer.
    guard boxTiles <= Double(limits.maxTiles) * 16 else {
      throw RPCError(
        .invalidArgument,
        "the area covers up to \(Int(boxTiles)) tiles at zoom \(zoom) (its bounding box); a job takes at most \(limits.maxTiles)"
      )
    }
    let tiles: [Tile]
    do throws(GeoError) {
      tiles = try TileCover.tiles(covering: polygons, zoom: zoom)
    } catch {
      throw RPCError(.invalidArgument, "area: \(error.message)")
    }
    guard tiles.count <= limits.maxTiles else {
      throw RPCError(
        .invalidArgument, "the area covers \(tiles.count) tiles at zoom \(zoom); a job takes at most \(limits.maxTiles)"
      )
    }
    guard !tiles.isEmpty else { throw RPCError(.invalidArgument, "the area covers no tile at zoom \(zoom)") }
    return tiles
  }

  private func launch(
    _ job: InferenceV1.Job, request: InferenceV1.StartJobRequest, served: ServedVersion, plan: JobPlan,
    source: ImagerySource, tiles: [Tile], resuming: Bool
  ) {
    live[job.jobId] = job
    let run = JobRun(
      board: self, feedback: feedback, fetcher: fetcher, served: served, plan: plan, source: source, tiles: tiles,
      request: request, limits: limits, decoders: decoders, log: log)
    let task = Task { await run.run(job, resuming: resuming) }
    tasks[job.jobId] = task
  }
}
