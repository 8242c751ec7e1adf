import ArgumentParser
import Foundation
import Inference
import NIOPosix
import ShoalClient
import ShoalModel
import ShoalProto
import ShoalRPC
import ShoalServiceStubs

/// `shoal load-inference REF`: closed-loop Predict calls on one model; ends with the key=value
/// line of `shoal load`, plus the versions that answered.
struct InferenceLoadCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "load-inference",
    abstract: "Load-test Predict on one model.",
    discussion: """
      CONCURRENCY closed loops share one connection to the inference service, each sending the same inputs \
      (--input NAME=FILE.npy, --image FILE) and waiting for the answer. Calls completed during the --warmup are not counted. \
      The last line is requests=… rps=… p50_us=… p90_us=… p99_us=… max_us=… errors=… versions=… \
      (versions: each answering version and its count, v1:120/v2:4000).
      """)

  @Argument(help: "The model reference.") var reference: String
  @Option(help: "The inference service's address, or its name in the registry.") var address = "inference"
  @Option(name: .customLong("input"), help: "An input NAME=FILE.npy (repeatable).") var inputs: [String] = []
  @Option(name: .customLong("image"), help: "A PNG or JPEG for the model's image input, or NAME=FILE (repeatable).")
  var images: [String] = []
  @Option(help: "Calls in flight (closed loops).") var concurrency = 1
  @Option(help: "Seconds to measure (after the warm-up).") var duration: Double = 10
  @Option(help: "Seconds of warm-up before measuring.") var warmup: Double = 1
  @Option(help: "Seconds each call may take.") var timeout: Double = 30
  @Flag(help: "Print the result as JSON.") var json = false
  @Flag(
    help:
      "Spread the calls over every instance the registry lists (the SDK's round-robin channel, which follows instances as they come and go); without it, one connection to one instance."
  )
  var balanced = false
  @OptionGroup var mesh: MeshOptions

  func validate() throws {
    guard !inputs.isEmpty || !images.isEmpty else {
      throw ValidationError("give at least one --input NAME=FILE.npy or --image FILE")
    }
    guard concurrency >= 1 else { throw ValidationError("--concurrency must be at least 1") }
  }

  func run() async throws {
    var request = InferenceV1.PredictRequest()
    request.model = reference
    request.inputs = try npyInputs(inputs)
    // One event loop runs the connection and the loops, as in `shoal load`.
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let executor = EventLoopTaskExecutor(group.next())
    var config = RPCClient.Config.defaults
    config.connection.maxMessageSize = InferenceService.maxMessageSize
    if let token = try mesh.location().token { config.interceptors.append(BearerTokenInterceptor(token: token)) }
    let rpc: RPCClient?
    let sdk: ShoalClient?
    let client: InferenceV1.Inference.Client
    if balanced {
      var channelConfig = BalancedChannel.Config.defaults
      channelConfig.client.connection.maxMessageSize = InferenceService.maxMessageSize
      sdk = ShoalClient(location: try mesh.location(), config: channelConfig)
      rpc = nil
      client = InferenceV1.Inference.Client(sdk!.channel(for: address))
    } else {
      sdk = nil
      rpc = RPCClient(address: try await mesh.address(of: address), config: config, group: group)
      client = InferenceV1.Inference.Client(rpc!)
    }
    do {
      request.inputs += try await imageInputs(images, model: reference, client: client)
      _ = try await client.predict(request, options: CallOptions(timeout: .seconds(60)))
    } catch let error as RPCError {
      logLine("shoal load-inference", "\(error.codeName): \(error.message)")
      await rpc?.close()
      await sdk?.close()
      throw ExitCode(1)
    } catch {
      await rpc?.close()
      await sdk?.close()
      throw error
    }
    let start = ContinuousClock.now
    let window = start + .milliseconds(Int64(warmup * 1000))
    let end = window + .milliseconds(Int64(duration * 1000))
    // Predict is idempotent: a call that meets a restarting service (UNAVAILABLE) is tried again
    // within its timeout, as long as the restart takes.
    var patient = CallOptions(timeout: .milliseconds(Int64(timeout * 1000)))
    patient.retries.maxAttempts = 40
    patient.retries.maxBackoff = .milliseconds(500)
    let options = patient
    let loopRequest = request
    let (result, versions) = await withTaskGroup(of: (LoadCommand.LoopResult, [String: Int]).self) { tasks in
      for _ in 0..<concurrency {
        tasks.addTask(executorPreference: executor) {
          var result = LoadCommand.LoopResult()
          var versions: [String: Int] = [:]
          while ContinuousClock.now < end {
            let issued = ContinuousClock.now
            do {
              let response = try await client.predict(loopRequest, options: options)
              if issued >= window { versions["v\(response.modelVersion)", default: 0] += 1 }
              result.record(issued, .success(()), window: window, end: end)
            } catch {
              result.record(issued, .failure(error), window: window, end: end)
            }
          }
          return (result, versions)
        }
      }
      var total = LoadCommand.LoopResult()
      var versions: [String: Int] = [:]
      for await (result, seen) in tasks {
        total.merge(result)
        versions.merge(seen, uniquingKeysWith: +)
      }
      return (total, versions)
    }
    await rpc?.close()
    await sdk?.close()
    try? await group.shutdownGracefully()
    let seconds = Double((end - window).components.seconds) + Double((end - window).components.attoseconds) / 1e18
    let answered = versions.sorted { $0.key.count != $1.key.count ? $0.key.count < $1.key.count : $0.key < $1.key }
      .map { "\($0.key):\($0.value)" }.joined(separator: "/")
    result.report(seconds: seconds, json: json, extra: [("versions", answered.isEmpty ? "-" : answered)])
  }
}
