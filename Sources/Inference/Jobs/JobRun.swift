import Foundation
import ShoalGeo
import ShoalImage
import ShoalImagery
import ShoalModel
import ShoalProto
import ShoalRPC
import ShoalServiceStubs

/// One run of a job (its start, or its resumption after a restart): the tiles fetched and
/// decoded concurrently, predicted through the model's batcher at a priority below online calls,
/// post-processed, and written to the set in batches as they finish.
struct JobRun: Sendable {
  let board: JobBoard
  let feedback: FeedbackV1.Feedback.Client
  let fetcher: TileFetcher
  let served: ServedVersion
  let plan: JobPlan
  let source: ImagerySource
  let tiles: [Tile]
  let request: InferenceV1.StartJobRequest
  let limits: JobBoard.Limits
  let decoders: WorkerThreads<Void>
  let log: @Sendable (String) -> Void

  /// What goes through the model at once: a tile, or a supertile's parent and its children in
  /// the area.
  struct Unit: Sendable {
    var tile: Tile
    var children: [Tile]
  }

  struct Failure: Error, Sendable {
    var tile: Tile
    var status: Int
    var message: String
  }

  struct Outcome: Sendable {
    var predictions: [TilePrediction] = []
    var failures: [Failure] = []
    var cancelled = false
  }

  func run(_ start: InferenceV1.Job, resuming: Bool) async {
    var job = start
    job.state = .running
    var todo = tiles
    if resuming {
      do {
        let stored = try await storedTiles(job.setId)
        todo = tiles.filter { !stored.contains($0) }
        job.tilesDone = Int64(stored.count)
        job.tilesFailed = 0
        job.failures = []
      } catch {
        await end(job, state: .jobFailed, message: "cannot read the set's tiles to resume: \(error)")
        return
      }
    }
    await board.progress(job, request: request, persist: true)

    let tileSize = source.tileSize
    var results = JobResults(zoom: Int(job.zoom), tileSize: tileSize)
    let units = Self.units(todo, supertile: request.supertile)
    let started = ContinuousClock.now
    let countedAtStart = job.tilesDone
    var sequence = 0
    var lastWrite = ContinuousClock.now
    var problem: String?

    func note(_ outcome: Outcome) {
      for prediction in outcome.predictions { results.add(prediction, named: plan.className) }
      for failure in outcome.failures {
        job.tilesFailed += 1
        if job.failures.count < 20 {
          var reported = InferenceV1.JobTileFailure()
          reported.tileId = failure.tile.description
          reported.status = Int32(failure.status)
          reported.message = failure.message
          job.failures.append(reported)
        }
      }
    }
    func rate() {
      let seconds = max(
        1e-3,
        Double((ContinuousClock.now - started).components.seconds) + Double(
          (ContinuousClock.now - started).components.attoseconds) / 1e18)
      let counted = Double(job.tilesDone + job.tilesFailed - countedAtStart) + Double(results.heldCount)
      job.tilesPerSecond = counted / seconds
      let remaining = Double(job.tilesTotal - job.tilesDone - job.tilesFailed) - Double(results.heldCount)
      job.etaMs = job.tilesPerSecond > 0 ? Int64((max(0, remaining) / job.tilesPerSecond * 1000).rounded()) : 0
    }

    let organization = job.organization
    await withTaskGroup(of: Outcome.self) { group in
      var next = units.makeIterator()
      var running = 0
      let concurrency = request.concurrency > 0 ? Int(request.concurrency) : limits.concurrency
      while running < concurrency, let unit = next.next() {
        group.addTask { await self.process(unit, tileSize: tileSize, organization: organization) }
        running += 1
      }
      while let outcome = await group.next() {
        running -= 1
        if !outcome.cancelled { note(outcome) }
        if Task.isCancelled || problem != nil {
          group.cancelAll()
          continue
        }
        if results.ready.count >= limits.batchTiles || ContinuousClock.now - lastWrite >= limits.batchDelay {
          let ready = results.takeReady()
          do {
            try await write(ready, job: job, sequence: &sequence)
            job.tilesDone += Int64(ready.count)
          } catch {
            problem = "cannot write to set \(job.setId): \(error)"
          }
          lastWrite = .now
          rate()
          await board.progress(job, request: request, persist: true)
        }
        if let unit = next.next() {
          group.addTask { await self.process(unit, tileSize: tileSize, organization: organization) }
          running += 1
        }
      }
    }

    // The rest is written even when the job was cancelled: a task of its own, not cancelled.
    let shutdown = Task.isCancelled
    let finished = job
    let last = Task { [results, sequence, problem] in
      var job = finished
      var results = results
      var sequence = sequence
      var problem = problem
      let rest = results.takeReady() + results.finish()
      do {
        for start in stride(from: 0, to: rest.count, by: 500) {
          let batch = Array(rest[start..<min(rest.count, start + 500)])
          try await write(batch, job: job, sequence: &sequence)
          job.tilesDone += Int64(batch.count)
        }
      } catch {
        problem = problem ?? "cannot write to set \(job.setId): \(error)"
      }
      job.tilesPerSecond = 0
      job.etaMs = 0
      if await board.isCancelling(job.jobId) {
        await end(job, state: .cancelled, message: "cancelled after \(job.tilesDone) of \(job.tilesTotal) tiles")
      } else if let problem {
        await end(job, state: .jobFailed, message: problem)
      } else if shutdown {
        // The service is stopping: the job stays RUNNING and resumes at the next start.
        log("job \(job.jobId): stopped with the service after \(job.tilesDone) of \(job.tilesTotal) tiles")
        await board.finished(job, request: request)
      } else if job.tilesDone == 0, job.tilesFailed > 0 {
        let reasons = job.failures.prefix(3).map { "\($0.tileId): \($0.message)" }.joined(separator: "; ")
        await end(job, state: .jobFailed, message: "every tile failed (\(job.tilesFailed)); first: \(reasons)")
      } else {
        await end(job, state: .succeeded, message: "")
      }
    }
    await last.value
  }

  /// Ends the job as `state`, the set marked COMPLETE (or CANCELLED for a job that did not succeed).
  private func end(_ job: InferenceV1.Job, state: InferenceV1.JobState, message: String) async {
    var job = job
    job.state = state
    job.message = message
    job.finishedAtMs = JobBoard.nowMs()
    var update = FeedbackV1.UpdateSetRequest()
    update.setId = job.setId
    update.status = state == .succeeded ? .complete : .cancelled
    do {
      _ = try await feedback.updateSet(update, options: JobBoard.feedbackCall)
    } catch {
      log("job \(job.jobId): cannot mark set \(job.setId) \(update.status): \(error)")
    }
    log(
      "job \(job.jobId) \(state): \(job.tilesDone) tiles written, \(job.tilesFailed) failed"
        + (message.isEmpty ? "" : "; \(message)"))
    await board.finished(job, request: request)
  }

  private func write(_ tiles: [FeedbackV1.PredictedTile], job: InferenceV1.Job, sequence: inout Int) async throws {
    guard !tiles.isEmpty else { return }
    var batch = FeedbackV1.PutPredictionsRequest()
    batch.setId = job.setId
    batch.requestId = "\(job.jobId)/\(job.resumed)/\(sequence)"
    batch.tiles = tiles
    sequence += 1
    _ = try await feedback.putPredictions(options: JobBoard.feedbackCall) { try await $0.send(batch) }
  }

  /// The tiles the set holds already (a resumed job skips them).
  private func storedTiles(_ setId: String) async throws -> Set<Tile> {
    var stored = Set<Tile>()
    var query = FeedbackV1.QueryTilesRequest()
    query.setId = setId
    query.pageSize = 10_000
    repeat {
      let page = try await feedback.queryTiles(query, options: JobBoard.feedbackCall)
      for record in page.tiles {
        if let tile = try? Tile(z: Int(record.z), x: Int(record.x), y: Int(record.y)) { stored.insert(tile) }
      }
      query.pageToken = page.nextPageToken
    } while !query.pageToken.isEmpty
    return stored
  }

  /// The tiles in units: one each, or with supertiles, grouped under their parents.
  static func units(_ tiles: [Tile], supertile: Bool) -> [Unit] {
    guard supertile else { return tiles.map { Unit(tile: $0, children: [$0]) } }
    var byParent: [Tile: [Tile]] = [:]
    var order: [Tile] = []
    for tile in tiles {
      guard let parent = tile.parent else { continue }
      if byParent[parent] == nil { order.append(parent) }
      byParent[parent, default: []].append(tile)
    }
    return order.map { Unit(tile: $0, children: byParent[$0]!) }
  }

  /// Fetches, decodes and predicts one unit.
  private func process(_ unit: Unit, tileSize: Int, organization: String) async -> Outcome {
    var outcome = Outcome()
    let fetched = await withTaskGroup(of: (Tile, Result<FetchedTile, Failure>).self) { group in
      for tile in unit.children {
        group.addTask {
          switch await self.fetcher.fetch(tile, from: self.source, owner: organization) {
          case .success(let fetched): return (tile, .success(fetched))
          case .failure(let failure):
            return (
              tile,
              .failure(Failure(tile: tile, status: failure.status, message: "\(failure.message) (\(failure.url))"))
            )
          }
        }
      }
      var files: [Tile: FetchedTile] = [:]
      for await (tile, result) in group {
        switch result {
        case .success(let file): files[tile] = file
        case .failure(let failure): outcome.failures.append(failure)
        }
      }
      return files
    }
    guard !fetched.isEmpty else { return outcome }
    let supertile = request.supertile ? Supertile(parent: unit.tile, size: tileSize) : nil
    // Decoding, stitching and the input tensor on the job's lower-priority threads.
    let plan = plan
    let prepared = await decoders.run { _ -> (image: Int, inputs: [String: Tensor]?, failures: [Failure]) in
      var images: [Tile: Image] = [:]
      var failures: [Failure] = []
      for (tile, file) in fetched {
        switch Self.decode(file, tileSize: tileSize) {
        case .success(let image): images[tile] = image
        case .failure(let failure): failures.append(failure)
        }
      }
      guard !images.isEmpty else { return (0, nil, failures) }
      do {
        let image = try supertile?.stitch(images) ?? images[unit.tile]!
        return (image.width, try plan.inputs(image), failures)
      } catch {
        return (
          0, nil,
          failures
            + images.keys.map { Failure(tile: $0, status: 0, message: "cannot make the model's input: \(error)") }
        )
      }
    }
    outcome.failures += prepared.failures
    guard let inputs = prepared.inputs else { return outcome }
    let wanted = Set(fetched.keys).subtracting(prepared.failures.map(\.tile))
    do {
      let outputs = try await served.batcher.submit(inputs, priority: limits.priority, deadline: nil)
      outcome.predictions = try plan.predictions(
        outputs, size: prepared.image, tileSize: tileSize, tile: unit.tile, supertile: supertile, wanted: wanted)
    } catch {
      if Task.isCancelled {
        outcome.cancelled = true
        return outcome
      }
      outcome.failures += wanted.sorted().map {
        Failure(tile: $0, status: 0, message: "\(served.qualifiedName) v\(served.version.version): \(error)")
      }
    }
    return outcome
  }

  /// One tile's image, decoded and at the source's tile size.
  private static func decode(_ fetched: FetchedTile, tileSize: Int) -> Result<Image, Failure> {
    do throws(ImageError) {
      // One channel layout for every tile, so that a supertile's children stitch.
      let image = try Image(decoding: [UInt8](fetched.data)).rgb()
      guard image.width != tileSize || image.height != tileSize else { return .success(image) }
      return .success(image.resized(width: tileSize, height: tileSize))
    } catch {
      return .failure(
        Failure(tile: fetched.tile, status: 0, message: "cannot decode the \(fetched.format): \(error.message)"))
    }
  }
}
