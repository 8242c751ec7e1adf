import Foundation
import ShoalGeo
import ShoalImage
import ShoalImagery
public import ShoalProto
public import ShoalRPC
import ShoalService
import ShoalServiceStubs
import ShoalStore
import Synchronization

/// Labelled training sets: the images of an export's tiles with their labels, as one blob,
/// recorded in tracking as a dataset input of a run.
extension FeedbackService {
  public func buildTrainingSet(
    _ request: FeedbackV1.BuildTrainingSetRequest, responses: RPCResponseWriter<FeedbackV1.TrainingSetProgress>,
    context: ServerContext
  ) async throws {
    guard let blobs else { throw RPCError(.failedPrecondition, "this feedback service keeps no blobs") }
    let set = try await store.set(request.setId, visibleTo: CallerOrganization.current)
    if set.items {
      throw RPCError(
        .failedPrecondition,
        "set \(set.setId) holds items, not map tiles; their labels are the audio classifier's (shoal audio label)")
    }
    let classes = try Self.exportedClasses(request.classes, of: set)
    guard !set.imagery.isEmpty else {
      throw RPCError(
        .failedPrecondition, "prediction set \(set.setId) names no imagery source to fetch its tiles' images from")
    }
    let stored = try await store.imagery(set.imagery, organization: set.organization)
    let source = try Self.imagerySource(stored.source, headers: stored.headers)
    let options = Self.forwarded(context)
    if !request.runId.isEmpty { try await checkRun(request.runId, organization: set.organization, options: options) }

    let images = try await imageContext(of: set)
    var selected: [SelectedTile] = []
    _ = try await forEachSelected(in: set, filter: request.filter, classes: classes, threshold: request.threshold) {
      selected.append($0)
    }
    guard !selected.isEmpty else { throw Self.nothingToExport(set, request.filter) }

    let writer = try await blobs.makeWriter()
    do {
      let labeller = TrainingLabels(classes: classes, images: images, task: set.task)
      let built = try await fetchAndWrite(
        selected, source: source, owner: set.organization, labeller: labeller, writer: writer, responses: responses)
      guard built.tiles > 0 else {
        throw RPCError(
          .failedPrecondition,
          "no image of the \(selected.count) tiles could be fetched from '\(source.name)' (each failure was reported)")
      }
      let (digest, size) = try await writer.commit()
      var trainingSet = FeedbackV1.TrainingSet()
      trainingSet.setId = set.setId
      trainingSet.name = request.name.isEmpty ? "feedback-set-\(set.setId)" : request.name
      trainingSet.digest = digest.reference
      trainingSet.sizeBytes = size
      trainingSet.tiles = built.tiles
      trainingSet.skipped = built.skipped
      trainingSet.task = set.task
      trainingSet.classes = classes
      trainingSet.runId = request.runId
      trainingSet.createdBy = CallerPrincipal.name
      trainingSet.createdAtMs = Int64((Date().timeIntervalSince1970 * 1000).rounded())
      trainingSet = try await store.addTrainingSet(trainingSet, organization: set.organization)
      if !request.runId.isEmpty {
        var input = TrackingV1.DatasetInput()
        input.name = trainingSet.name
        input.digest = digest.hex
        input.source = "shoal-feedback:sets/\(set.setId)/training-sets/\(trainingSet.trainingSetId)"
        input.context = "training"
        var log = TrackingV1.LogInputsRequest()
        log.runId = request.runId
        log.datasets = [input]
        _ = try await tracking!.logInputs(log, options: options)
      }
      var last = FeedbackV1.TrainingSetProgress()
      last.total = Int64(selected.count)
      last.done = Int64(selected.count)
      last.failed = built.skipped
      last.trainingSet = trainingSet
      try await responses.send(last)
    } catch {
      await writer.abort()
      throw error
    }
  }

  public func listTrainingSets(
    _ request: FeedbackV1.ListTrainingSetsRequest, context: ServerContext
  ) async throws -> FeedbackV1.ListTrainingSetsResponse {
    var setID: Int64?
    if !request.setId.isEmpty {
      setID = Int64(try await store.set(request.setId, visibleTo: CallerOrganization.current).setId)
    }
    var response = FeedbackV1.ListTrainingSetsResponse()
    response.trainingSets = try await store.trainingSets(setID: setID, visibleTo: CallerOrganization.current)
    return response
  }

  public func downloadTrainingSet(
    _ request: FeedbackV1.DownloadTrainingSetRequest, responses: RPCResponseWriter<FeedbackV1.ExportChunk>,
    context: ServerContext
  ) async throws {
    guard let blobs else { throw RPCError(.failedPrecondition, "this feedback service keeps no blobs") }
    let trainingSet = try await store.trainingSet(request.trainingSetId, visibleTo: CallerOrganization.current)
    let reader = try await blobs.openReader(try BlobDigest(reference: trainingSet.digest))
    while let bytes = try await reader.next() {
      var chunk = FeedbackV1.ExportChunk()
      chunk.data = bytes
      try await responses.send(chunk)
    }
  }

  /// The caller's token, passed on to the services this one calls for them.
  static func forwarded(_ context: ServerContext) -> CallOptions {
    var options = CallOptions(timeout: .seconds(30))
    if let authorization = context.metadata["authorization"] {
      options.metadata.add("authorization", authorization)
    }
    return options
  }

  /// Refuses a run that tracking does not have, or that belongs to another organisation than the
  /// set (NOT_FOUND, as tracking says it).
  private func checkRun(_ runID: String, organization: String, options: CallOptions) async throws {
    guard let tracking else {
      throw RPCError(.failedPrecondition, "run_id: this feedback service has no tracking service to record in")
    }
    var getRun = TrackingV1.GetRunRequest()
    getRun.runId = runID
    let run = try await tracking.getRun(getRun, options: options)
    var getExperiment = TrackingV1.GetExperimentRequest()
    getExperiment.experimentId = run.experimentId
    let experiment = try await tracking.getExperiment(getExperiment, options: options)
    guard experiment.organization == organization else { throw RPCError(.notFound, "run '\(runID)' not found") }
  }

  /// Fetches the tiles' images (at the fetcher's concurrency) and writes them with their labels
  /// into the tar, in the tiles' order whatever order they arrive in, the manifest last.
  private func fetchAndWrite(
    _ selected: [SelectedTile], source: ImagerySource, owner: String, labeller: TrainingLabels, writer: BlobWriter,
    responses: RPCResponseWriter<FeedbackV1.TrainingSetProgress>
  ) async throws -> (tiles: Int64, skipped: Int64) {
    let order = Dictionary(uniqueKeysWithValues: selected.enumerated().map { ($1.stored.tile, $0) })
    let state = Mutex(TrainingBuild())
    let total = Int64(selected.count)
    let writeError = Mutex<(any Error)?>(nil)
    await fetcher.fetch(selected.map(\.stored.tile), from: source, owner: owner) { result in
      let tile: Tile
      var progress = FeedbackV1.TrainingSetProgress()
      switch result {
      case .success(let fetched): tile = fetched.tile
      case .failure(let failure):
        tile = failure.tile
        var reason = FeedbackV1.TileFailure()
        reason.status = Int32(failure.status)
        reason.url = failure.url
        reason.message = failure.message
        progress.failure = reason
      }
      let ready = state.withLock { build -> [(Int, FetchedTile?)] in
        build.arrived[order[tile]!] = try? result.get()
        if case .failure = result { build.failed += 1 }
        build.done += 1
        (progress.done, progress.failed) = (build.done, build.failed)
        var ready: [(Int, FetchedTile?)] = []
        while build.next < selected.count, build.arrived.keys.contains(build.next) {
          ready.append((build.next, build.arrived.removeValue(forKey: build.next)!))
          build.next += 1
        }
        return ready
      }
      do {
        for (index, fetched) in ready {
          guard let fetched else { continue }
          let entry = try labeller.entry(selected[index], image: fetched)
          try await writer.write(entry.bytes)
          state.withLock { $0.manifest += entry.manifestLine }
        }
      } catch {
        writeError.withLock { $0 = $0 ?? error }
      }
      progress.total = total
      progress.tileId = tile.description
      try? await responses.send(progress)
    }
    try Task.checkCancellation()
    if let error = writeError.withLock({ $0 }) { throw error }
    let (manifest, failed) = state.withLock { ($0.manifest, $0.failed) }
    try await writer.write(TarWriter.entry("manifest.jsonl", manifest) + TarWriter.end)
    return (total - failed, failed)
  }
}

/// Where a training-set build is: images that arrived before their turn, the next to write.
private struct TrainingBuild {
  var arrived: [Int: FetchedTile?] = [:]
  var next = 0
  var done: Int64 = 0
  var failed: Int64 = 0
  var manifest: [UInt8] = []
}

/// A tile's files in a training set and its manifest line.
struct TrainingLabels: Sendable {
  let classes: [String]
  let images: ExportImages
  let task: RegistryV1.ModelTask

  func entry(
    _ tile: FeedbackService.SelectedTile, image: FetchedTile
  ) throws -> (bytes: [UInt8], manifestLine: [UInt8]) {
    let stored = tile.stored
    let name = "\(stored.tile.z)/\(stored.tile.x)/\(stored.tile.y)"
    let imagePath = "images/\(name).\(image.format == "jpeg" ? "jpg" : image.format)"
    var bytes = TarWriter.entry(imagePath, [UInt8](image.data))
    let said = Dictionary(tile.marks.map { ($0.className, $0.validity) }, uniquingKeysWith: { a, _ in a })
    var line: [String: Any] = [
      "tile": name, "quadkey": stored.tile.quadkey, "image": imagePath, "width": images.size, "height": images.size,
      "labels": Dictionary(uniqueKeysWithValues: classes.map { ($0, said[$0] == .valid ? 1 : 0) }),
      "validated": classes.filter { said[$0] != nil },
      "scores": stored.scores.filter { classes.contains($0.key) },
    ]
    let valid = tile.features.filter { $0.1 == .valid }.map(\.0)
    let coco = CocoWriter(classes: classes, images: images)
    let shapes = coco.shapes(stored, features: valid).filter { $0.1 != nil }
    switch task {
    case .detection:
      line["boxes"] = shapes.map { shape, _ in
        ["class": classes[shape.category - 1], "bbox": coco.box(shape)] as [String: Any]
      }
    case .segmentation:
      var mask = [UInt8](repeating: 0, count: images.size * images.size)
      for (shape, _) in shapes {
        for polygon in shape.polygons {
          for (index, inside) in CocoMasks.mask(polygon, width: images.size, height: images.size).enumerated()
          where inside {
            mask[index] = UInt8(shape.category)
          }
        }
      }
      let maskPath = "masks/\(name).png"
      bytes += TarWriter.entry(
        maskPath, try Image(width: images.size, height: images.size, channels: 1, pixels: mask).pngBytes())
      line["mask"] = maskPath
    default:
      break
    }
    let json = try JSONSerialization.data(withJSONObject: line, options: [.sortedKeys])
    return (bytes, Array(json) + [0x0A])
  }
}
