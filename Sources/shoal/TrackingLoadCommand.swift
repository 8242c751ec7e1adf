import ArgumentParser
import Foundation
import NIOPosix
import ShoalClient
import ShoalProto
import ShoalRPC
import ShoalServiceStubs

/// `shoal load-tracking`: closed-loop ingest into the tracking service, then a count of what was
/// stored; ends with one line of key=value pairs.
struct TrackingLoadCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "load-tracking",
    abstract: "Load-test metric ingest of the tracking service and check that nothing was lost.",
    discussion: """
      CONCURRENCY closed loops, each logging to its own run over one shared connection: batches of
      --batch-size metrics (--mode batch) or one metric per call (--mode single), for --duration
      seconds. Then every run's history is read back and counted. The last line is
      mode=… concurrency=… calls=… metrics=… calls_per_s=… metrics_per_s=… errors=… errors_unavailable=… errors_other=… lost=…
      """
  )

  enum Mode: String, ExpressibleByArgument, CaseIterable {
    case batch, single
  }

  @Argument(help: "The tracking service's address, or its name in the registry.")
  var address = "tracking"

  @OptionGroup var mesh: MeshOptions

  @Option(help: "batch or single.") var mode: Mode = .batch
  @Option(help: "Calls in flight (one run each).") var concurrency = 1
  @Option(help: "Seconds to measure.") var duration: Double = 10
  @Option(help: "Metrics per call in batch mode.") var batchSize = 1000
  @Flag(
    help:
      "Send each call with a request id and send a failed one again with it (as a client that must not lose a write).")
  var retry = false

  func run() async throws {
    // One event loop runs the connection and the loops' tasks, so a call does not cross threads
    // on this side (as in `shoal load`).
    let loops = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let executor = EventLoopTaskExecutor(loops.next())
    var config = RPCClient.Config.defaults
    if let token = try mesh.location().token { config.interceptors.append(BearerTokenInterceptor(token: token)) }
    let client = TrackingV1.Tracking.Client(
      RPCClient(address: try await mesh.address(of: address), config: config, group: loops))
    var experiment = TrackingV1.CreateExperimentRequest()
    experiment.name = "load-\(UUID().uuidString.prefix(8))"
    let experimentID = try await client.createExperiment(experiment).experimentId
    var runs: [String] = []
    for index in 0..<concurrency {
      var request = TrackingV1.CreateRunRequest()
      request.experimentId = experimentID
      request.name = "loop-\(index)"
      runs.append(try await client.createRun(request).runId)
    }
    let perCall = mode == .batch ? batchSize : 1
    let start = ContinuousClock.now
    let end = start + .milliseconds(Int64(duration * 1000))
    let (sent, callCount, errorCount) = try await withThrowingTaskGroup(of: (Int, Int, Errors).self) { group in
      for run in runs {
        group.addTask(executorPreference: executor) {
          var step: Int64 = 0
          var logged = 0
          var calls = 0
          var errors = Errors()
          var pending: TrackingV1.LogBatchRequest?
          while ContinuousClock.now < end {
            // With --retry, a batch that failed is sent again with its request id, as a client that
            // must not lose a write does: if the first attempt was stored after all, tracking keeps
            // it once.
            var batch = pending ?? TrackingV1.LogBatchRequest()
            if pending == nil {
              batch.runId = run
              if retry { batch.requestId = "\(run)-\(step)" }
              batch.metrics = (0..<perCall).map { offset in
                var metric = TrackingV1.Metric()
                metric.key = "loss"
                metric.value = 1 / Double(step + Int64(offset) + 1)
                metric.step = step + Int64(offset)
                metric.timestampMs = 1
                return metric
              }
            }
            do {
              _ = try await client.logBatch(batch)
              pending = nil
              step += Int64(perCall)
              logged += perCall
              calls += 1
            } catch {
              errors.count(error)
              guard retry else { continue }
              pending = batch
              // The service may be restarting: wait a little rather than spin.
              try? await Task.sleep(for: .milliseconds(20))
            }
          }
          return (logged, calls, errors)
        }
      }
      return try await group.reduce((0, 0, Errors())) { ($0.0 + $1.0, $0.1 + $1.1, $0.2.adding($1.2)) }
    }
    let elapsed = ContinuousClock.now - start
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    var stored = 0
    for run in runs {
      var history = TrackingV1.GetMetricHistoryRequest()
      history.runIds = [run]
      history.key = "loss"
      history.pageSize = 25_000
      repeat {
        let page = try await readBack { try await client.getMetricHistory(history) }
        stored += page.series.first?.points.count ?? 0
        history.pageToken = page.nextPageToken
      } while !history.pageToken.isEmpty
    }
    await (client.rpc as? RPCClient)?.close()
    try? await loops.shutdownGracefully()
    emit(
      "mode=\(mode.rawValue) concurrency=\(concurrency) calls=\(callCount) metrics=\(sent) "
        + String(format: "calls_per_s=%.1f metrics_per_s=%.1f ", Double(callCount) / seconds, Double(sent) / seconds)
        + "errors=\(errorCount.unavailable + errorCount.other) errors_unavailable=\(errorCount.unavailable) "
        + "errors_other=\(errorCount.other) lost=\(sent - stored)")
    if let first = errorCount.first { FileHandle.standardError.write(Data("first other error: \(first)\n".utf8)) }
    if sent != stored { throw ExitCode(1) }
  }

  /// `read`, and with --retry, again while the service (or its store) is still coming back, for
  /// up to a minute: what was acknowledged must be counted, not given up on.
  private func readBack<T>(_ read: () async throws -> T) async throws -> T {
    retry ? try await whileUnavailable(upTo: .seconds(60), read) : try await read()
  }

  /// Failed calls: UNAVAILABLE (the service away, as when it restarts) and every other kind.
  struct Errors: Sendable {
    var unavailable = 0
    var other = 0
    var first: String?

    mutating func count(_ error: any Error) {
      if let error = error as? RPCError, error.code == .unavailable {
        unavailable += 1
      } else {
        other += 1
        first = first ?? "\(error)"
      }
    }

    func adding(_ more: Errors) -> Errors {
      Errors(unavailable: unavailable + more.unavailable, other: other + more.other, first: first ?? more.first)
    }
  }
}

/// `read`'s answer, asked again every 200 ms while it fails UNAVAILABLE (a service or its store
/// coming back), for up to `limit`.
func whileUnavailable<T>(upTo limit: Duration, _ read: () async throws -> T) async throws -> T {
  let end = ContinuousClock.now + limit
  while true {
    do {
      return try await read()
    } catch let error as RPCError where error.code == .unavailable && ContinuousClock.now < end {
      try await Task.sleep(for: .milliseconds(200))
    }
  }
}
