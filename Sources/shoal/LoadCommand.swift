import ArgumentParser
import Foundation
import Histogram
import NIOPosix
import ShoalProto
import ShoalRPC
import Synchronization

/// `shoal load ADDR`: closed-loop load on a Bench method; ends with one line
/// `requests=… rps=… p50_us=… p90_us=… p99_us=… max_us=… errors=…`.
struct LoadCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "load",
    abstract: "Load-test a server's Bench service.",
    discussion: """
      Runs CONCURRENCY closed loops that share one connection; each waits for its response
      before the next call. With --duration, calls completed during the --warmup are not
      counted. Latency is from issuing a call to having its whole response (HdrHistogram, 3
      significant digits). The last line is key=value pairs; --json prints a JSON object instead.
      """
  )

  enum Method: String, ExpressibleByArgument, CaseIterable {
    case echo = "Echo"
    case upload = "Upload"
    case download = "Download"
    case chat = "Chat"
  }

  @Argument(help: "The server's address, or a service name to look up in the registry.")
  var address: String

  @OptionGroup var mesh: MeshOptions

  @Option(
    help: "Echo (unary), Upload (client stream), Download (server stream) or Chat (bidirectional, one stream per loop)."
  )
  var method: Method = .echo

  @Option(help: "Calls in flight (closed loops).")
  var concurrency = 1

  @Option(help: "Seconds to measure (after the warm-up).")
  var duration: Double?

  @Option(help: "Calls to make in all (instead of --duration).")
  var requests: Int?

  @Option(help: "Seconds of warm-up before measuring, with --duration.")
  var warmup: Double = 1

  @Option(help: "Payload bytes per request (and per response).")
  var payload = 100

  @Flag(help: "Use a repeating, compressible payload instead of random bytes.")
  var compressible = false

  @Flag(help: "Send and accept no compressed messages.")
  var noCompression = false

  @Flag(help: "Print the result as JSON.")
  var json = false

  func validate() throws {
    guard (duration == nil) != (requests == nil) else {
      throw ValidationError("give exactly one of --duration and --requests")
    }
    guard concurrency >= 1 else { throw ValidationError("--concurrency must be at least 1") }
  }

  func run() async throws {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let executor = EventLoopTaskExecutor(group.next())
    var config = RPCClient.Config.defaults
    config.connection.compression.enabled = !noCompression
    let client = RPCClient(address: try await mesh.address(of: address), config: config, group: group)
    var generator = SystemRandomNumberGenerator()
    let bytes: [UInt8] =
      compressible
      ? Array(String(repeating: "shoal load test payload ", count: payload / 24 + 1).utf8.prefix(payload))
      : (0..<payload).map { _ in UInt8.random(in: 0...255, using: &generator) }
    var request = BenchV1.BenchRequest()
    request.payload = bytes
    request.responseCount = 1
    do {
      _ = try await client.unary(BenchV1.Bench.echo, request)
    } catch {
      FileHandle.standardError.write(Data("shoal load: \(error)\n".utf8))
      throw ExitCode(1)
    }
    let before = await client.wireBytes()

    let start = ContinuousClock.now
    let windowStart = duration == nil ? start : start + .milliseconds(Int64(warmup * 1000))
    let windowEnd = duration.map { windowStart + .milliseconds(Int64($0 * 1000)) }
    let budget = RequestBudget(requests)
    let method = method
    let loopRequest = request
    let results = await withTaskGroup(of: LoopResult.self) { tasks in
      for _ in 0..<concurrency {
        tasks.addTask(executorPreference: executor) {
          await Self.loop(client, method, loopRequest, budget: budget, window: windowStart, end: windowEnd)
        }
      }
      var total = LoopResult()
      for await result in tasks { total.merge(result) }
      return total
    }
    let elapsed = (windowEnd ?? ContinuousClock.now) - windowStart
    let after = await client.wireBytes()
    await client.close()
    try? await group.shutdownGracefully()
    report(
      results, seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18,
      sent: after.sent - before.sent, received: after.received - before.received)
  }

  private func report(_ result: LoopResult, seconds: Double, sent: Int, received: Int) {
    result.report(
      seconds: seconds, json: json, extra: [("sent_bytes", "\(sent)"), ("received_bytes", "\(received)")])
  }

  struct LoopResult: Sendable {
    var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
    var requests = 0
    var errors = 0
    var firstError: String?

    mutating func merge(_ other: LoopResult) {
      histogram.add(other.histogram)
      requests += other.requests
      errors += other.errors
      firstError = firstError ?? other.firstError
    }

    /// Records one call issued at `issued` that ended now, if it ended inside the window.
    mutating func record(
      _ issued: ContinuousClock.Instant, _ outcome: Result<Void, any Error>, window: ContinuousClock.Instant,
      end: ContinuousClock.Instant?
    ) {
      let done = ContinuousClock.now
      guard done >= window, end.map({ done <= $0 }) ?? true else { return }
      switch outcome {
      case .success:
        let elapsed = done - issued
        histogram.record(
          UInt64(elapsed.components.seconds) * 1_000_000_000 + UInt64(elapsed.components.attoseconds / 1_000_000_000))
        requests += 1
      case .failure(let error):
        errors += 1
        firstError = firstError ?? "\(error)"
      }
    }

    /// Prints `requests=… rps=… p50_us=… p90_us=… p99_us=… max_us=… errors=…` and `extra`, or a
    /// JSON object of the same; the first error goes to standard error.
    func report(seconds: Double, json: Bool, extra: [(String, String)]) {
      func micros(_ nanos: UInt64) -> String { String(format: "%.1f", Double(nanos) / 1000) }
      let fields: [(String, String)] =
        [
          ("requests", "\(requests)"),
          ("rps", String(format: "%.0f", seconds > 0 ? Double(requests) / seconds : 0)),
          ("p50_us", micros(histogram.valueAtPercentile(50))),
          ("p90_us", micros(histogram.valueAtPercentile(90))),
          ("p99_us", micros(histogram.valueAtPercentile(99))),
          ("max_us", micros(histogram.max)),
          ("errors", "\(errors)"),
        ] + extra
      if let firstError { FileHandle.standardError.write(Data("first error: \(firstError)\n".utf8)) }
      if json {
        print(
          "{" + fields.map { "\"\($0.0)\":\(Double($0.1) != nil ? $0.1 : "\"\($0.1)\"")" }.joined(separator: ",") + "}")
      } else {
        print(fields.map { "\($0.0)=\($0.1)" }.joined(separator: " "))
      }
    }
  }

  /// One closed loop: call, wait, record, repeat until the window ends or the budget is spent.
  private static func loop(
    _ client: RPCClient, _ method: Method, _ request: BenchV1.BenchRequest, budget: RequestBudget,
    window: ContinuousClock.Instant, end: ContinuousClock.Instant?
  ) async -> LoopResult {
    var result = LoopResult()
    func record(_ issued: ContinuousClock.Instant, _ outcome: Result<Void, any Error>) {
      result.record(issued, outcome, window: window, end: end)
    }
    func more() -> Bool { end.map { ContinuousClock.now < $0 } ?? budget.take() }

    if method == .chat {
      do {
        try await client.bidirectional(BenchV1.Bench.chat) { sender, responses in
          var iterator = responses.makeAsyncIterator()
          while more() {
            let issued = ContinuousClock.now
            try await sender.send(request)
            guard try await iterator.next() != nil else { throw RPCError(.internal, "the chat ended early") }
            record(issued, .success(()))
          }
          sender.close()
        }
      } catch {
        record(.now, .failure(error))
      }
      return result
    }
    while more() {
      let issued = ContinuousClock.now
      do {
        switch method {
        case .echo: _ = try await client.unary(BenchV1.Bench.echo, request)
        case .upload: _ = try await client.clientStreaming(BenchV1.Bench.upload) { try await $0.send(request) }
        case .download:
          try await client.serverStreaming(BenchV1.Bench.download, request) { responses in
            for try await _ in responses {}
          }
        case .chat: break
        }
        record(issued, .success(()))
      } catch {
        record(issued, .failure(error))
      }
    }
    return result
  }
}

/// The calls left to make when the run is bounded by count.
final class RequestBudget: Sendable {
  private let remaining: Mutex<Int?>

  init(_ total: Int?) { remaining = Mutex(total) }

  /// Whether another call may start (always, when the run is bounded by time).
  func take() -> Bool {
    remaining.withLock { remaining in
      guard let left = remaining else { return true }
      guard left > 0 else { return false }
      remaining = left - 1
      return true
    }
  }
}
