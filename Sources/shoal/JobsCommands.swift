import ArgumentParser
import Foundation
import ShoalProto
import ShoalRPC

/// `shoal jobs …`: predictions over an area of interest, run by the inference service into a
/// prediction set of the feedback service.
struct JobsCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "jobs", abstract: "AOI jobs: a model over every tile of an area, into a prediction set.",
    subcommands: [Start.self, Watch.self, Cancel.self, List.self, Preview.self])

  struct Start: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Predict every tile of an area with a model and show the progress.",
      discussion: """
        The area is a saved one (--aoi), a box (--bbox W,S,E,N) or a GeoJSON file of polygons \
        (--geojson). The tiles come from an imagery source (`shoal imagery add`), the predictions go \
        to a new prediction set (`shoal feedback tiles SET`). Exits 1 when the job fails or is cancelled.
        """)
    @Argument(help: "The model reference (name@alias, name/version or name).") var model: String
    @Option(help: "The imagery source's name.") var imagery: String
    @Option(help: "A saved area of interest's name.") var aoi: String?
    @Option(help: "The area as west,south,east,north.") var bbox: String?
    @Option(help: "A GeoJSON file of the area's polygons.") var geojson: String?
    @Option(help: "The tiles' zoom.") var zoom: Int32
    @Flag(help: "Stitch the four children of each tile one zoom up into one input (ML Enabler's supertiles).")
    var supertile = false
    @Option(help: "Drop detections (and probabilities of a one-class mask) below this score (default 0.5).")
    var threshold: Double?
    @Option(help: "The IoU above which a detection is suppressed by a better one of its class (default 0.5).")
    var iou: Double?
    @Option(help: "Tiles in flight at once (default 32).") var concurrency: Int32 = 0
    @Flag(help: "Print the job's id and return at once.") var detach = false
    @OptionGroup var mesh: MeshOptions
    @Flag(help: "Print JSON (the job as it ends, or with --detach as it starts).") var json = false

    func run() async throws {
      var request = InferenceV1.StartJobRequest()
      request.model = model
      request.imagery = imagery
      request.zoom = zoom
      request.supertile = supertile
      request.concurrency = concurrency
      if let threshold { request.threshold = .scoreThreshold(threshold) }
      if let iou { request.iou = .iouThreshold(iou) }
      switch (aoi, bbox, geojson) {
      case (let name?, nil, nil): request.area = .areaName(name)
      case (nil, let box?, nil): request.area = .bbox(try boundingBoxOption(box))
      case (nil, nil, let path?): request.area = .geojson(try textFile(path))
      default: throw ValidationError("give the area with one of --aoi, --bbox and --geojson")
      }
      let json = json
      let detach = detach
      let ended = try await withInference(mesh, command: "jobs start") { client -> InferenceV1.Job in
        let job = try await client.startJob(request)
        if detach { return job }
        if !json { emit("job \(job.jobId): \(job.tilesTotal) tiles into set \(job.setId)") }
        return try await JobsCommand.follow(job.jobId, client: client)
      }
      if json { emitJSON(ended) } else if detach { emit(ended.jobId) } else { JobsCommand.report(ended) }
      if !detach, ended.state != .succeeded { throw ExitCode(1) }
    }
  }

  struct Watch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Show a job's progress until it ends (exits 1 when it fails or is cancelled).")
    @Argument(help: "The job's id.") var job: String
    @OptionGroup var mesh: MeshOptions
    @Flag(help: "Print JSON (the job as it ends).") var json = false

    func run() async throws {
      let id = job
      let ended = try await withInference(mesh, command: "jobs watch") { try await JobsCommand.follow(id, client: $0) }
      if json { emitJSON(ended) } else { JobsCommand.report(ended) }
      if ended.state != .succeeded { throw ExitCode(1) }
    }
  }

  struct Cancel: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Stop a job: what it wrote stays in its set, which is marked CANCELLED.")
    @Argument(help: "The job's id.") var job: String
    @OptionGroup var mesh: MeshOptions
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
      var request = InferenceV1.CancelJobRequest()
      request.jobId = job
      let cancelled = try await withInference(mesh, command: "jobs cancel") { try await $0.cancelJob(request) }
      if json { return emitJSON(cancelled) }
      JobsCommand.report(cancelled)
    }
  }

  struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List jobs, newest first.")
    @Option(help: "Only jobs in this state: queued, running, succeeded, failed or cancelled.") var state: String?
    @Option(help: "At most this many.") var limit: Int32 = 100
    @OptionGroup var mesh: MeshOptions
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
      var request = InferenceV1.ListJobsRequest()
      request.pageSize = limit
      if let state {
        let states: [String: InferenceV1.JobState] = [
          "queued": .queued, "running": .running, "succeeded": .succeeded, "failed": .jobFailed,
          "cancelled": .cancelled,
        ]
        guard let chosen = states[state.lowercased()] else {
          throw ValidationError("--state: '\(state)' is not queued, running, succeeded, failed or cancelled")
        }
        request.state = chosen
      }
      let response = try await withInference(mesh, command: "jobs list") { try await $0.listJobs(request) }
      if json { return emitJSON(response) }
      var table = TextTable("JOB", "STATE", "MODEL", "IMAGERY", "ZOOM", "TILES", "FAILED", "SET", "CREATED")
      for job in response.jobs {
        table.add(
          job.jobId, JobsCommand.stateName(job.state), "\(job.model) v\(job.modelVersion)", job.imagery,
          "\(job.zoom)\(job.supertile ? " (super)" : "")", "\(job.tilesDone)/\(job.tilesTotal)", "\(job.tilesFailed)",
          job.setId, formatTime(job.createdAtMs))
      }
      emit(table.rendered)
    }
  }

  static func stateName(_ state: InferenceV1.JobState) -> String {
    switch state {
    case .queued: "QUEUED"
    case .running: "RUNNING"
    case .succeeded: "SUCCEEDED"
    case .jobFailed: "FAILED"
    case .cancelled: "CANCELLED"
    default: "UNKNOWN"
    }
  }

  /// Follows a job's progress with a progress bar until it ends.
  static func follow(_ id: String, client: InferenceV1.Inference.Client) async throws -> InferenceV1.Job {
    var request = InferenceV1.WatchJobRequest()
    request.jobId = id
    let last = try await client.watchJob(request) { jobs -> InferenceV1.Job? in
      var last: InferenceV1.Job?
      var bar: ProgressLine?
      for try await job in jobs {
        if bar == nil { bar = ProgressLine(label: "job \(job.jobId)", total: Int(job.tilesTotal), unit: "tiles") }
        bar?.update(Int(job.tilesDone + job.tilesFailed))
        last = job
      }
      bar?.finish()
      return last
    }
    guard let last else { throw RPCError(.unavailable, "the watch of job \(id) ended without an answer") }
    return last
  }

  /// One job as a paragraph.
  static func report(_ job: InferenceV1.Job) {
    var lines = [
      "job \(job.jobId) \(stateName(job.state)): \(job.tilesDone) of \(job.tilesTotal) tiles written, "
        + "\(job.tilesFailed) failed; set \(job.setId)"
    ]
    if !job.message.isEmpty { lines.append("  \(job.message)") }
    for failure in job.failures.prefix(5) {
      lines.append("  \(failure.tileId): \(failure.status > 0 ? "HTTP \(failure.status): " : "")\(failure.message)")
    }
    if job.failures.count > 5 { lines.append("  … and \(job.tilesFailed - 5) more failures") }
    emit(lines.joined(separator: "\n"))
  }
}
