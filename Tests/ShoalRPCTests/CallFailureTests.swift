import Bench
import ShoalProto
import ShoalRPC
import ShoalTestSupport
import Testing

/// Deadlines, cancellation, limits, errors, metadata and shutdown, end to end.
struct CallFailureTests {
  private func slowRoutes(_ cancelled: Probe<Bool>, started: Probe<Int> = Probe(0)) -> (inout ServiceRouter) -> Void {
    { router in
      router.unary(TestMethods.slow) { request, _ in
        started.update { $0 += 1 }
        do {
          try await Task.sleep(for: .milliseconds(Int(request.responseSize)))
        } catch {
          cancelled.value = true
          throw error
        }
        return BenchV1.BenchResponse()
      }
    }
  }

  @Test func clientDeadlineEndsTheCallAndCancelsTheHandler() async throws {
    let cancelled = Probe(false)
    let started = Probe(0)
    try await TestServer.withServer(routes: slowRoutes(cancelled, started: started)) { _, address in
      let client = RPCClient(address: address)
      // Two seconds, so that the call reaches its handler before the deadline on a loaded
      // machine (at 100 ms it once did not, and there was no handler to cancel).
      await #expect {
        try await client.unary(
          TestMethods.slow, TestServer.request(responseSize: 60_000), options: CallOptions(timeout: .seconds(2)))
      } throws: { ($0 as? RPCError)?.code == .deadlineExceeded }
      #expect(started.value == 1, "the call should have reached its handler")
      #expect(await eventually { cancelled.value }, "the server's handler should have been cancelled")
      await client.close()
    }
  }

  @Test func serverEnforcesTheDeadlineItWasSent() async throws {
    let cancelled = Probe(false)
    try await TestServer.withServer(routes: slowRoutes(cancelled)) { _, address in
      guard case .unix(let path) = address else { return }
      let socket = try RawSocket(unixPath: path)
      var header = RpcV1.CallHeader()
      header.method = TestMethods.slow.descriptor.path
      header.timeoutUs = 100_000
      var request = BenchV1.BenchRequest()
      request.responseSize = 10_000
      socket.send(
        WireFrames.hello() + WireFrames.frame(.call, stream: 1, WireFrames.bytes(header))
          + WireFrames.frame(.message, flags: .endStream, stream: 1, WireFrames.bytes(request)))
      let (bytes, _) = socket.read { WireFrames.statuses(in: WireFrames.parse($0))[1] != nil }
      #expect(WireFrames.statuses(in: WireFrames.parse(bytes))[1]?.code == .deadlineExceeded)
      #expect(await eventually { cancelled.value })
    }
  }

  @Test func deadlinesPropagateToCallsAHandlerMakes() async throws {
    let seen = Probe<Duration?>(nil)
    let relayClient = Probe<RPCClient?>(nil)
    try await TestServer.withServer(routes: { router in
      router.unary(TestMethods.slow) { _, context in
        seen.value = context.deadline.map { $0 - .now }
        return BenchV1.BenchResponse()
      }
      router.unary(TestMethods.relay) { request, _ in
        try await relayClient.value!.unary(TestMethods.slow, request)
      }
    }) { _, address in
      relayClient.value = RPCClient(address: address)
      let client = RPCClient(address: address)
      // A long deadline: under the full suite's load, the two hops once took more than 20 s.
      _ = try await client.unary(TestMethods.relay, TestServer.request(), options: CallOptions(timeout: .seconds(120)))
      let remaining = try #require(seen.value, "the inner call should carry a deadline")
      #expect(remaining > .zero && remaining <= .seconds(120))
      await client.close()
      await relayClient.value!.close()
    }
  }

  @Test func cancellingTheCallerCancelsTheServerHandler() async throws {
    let cancelled = Probe(false)
    let started = Probe(0)
    try await TestServer.withServer(routes: slowRoutes(cancelled, started: started)) { _, address in
      let client = RPCClient(address: address)
      // The handler sleeps for 10 minutes, so that only the cancel can end it: with 10 s, a cancel
      // delayed by the full suite's load once arrived after the handler had finished.
      let call = Task { try await client.unary(TestMethods.slow, TestServer.request(responseSize: 600_000)) }
      // Cancelled only once its handler runs: a call cancelled before that never starts its
      // handler (a busy machine can take longer than any fixed sleep to get there).
      #expect(await eventually(within: .seconds(60)) { started.value == 1 })
      call.cancel()
      await #expect {
        try await call.value
      } throws: { ($0 as? RPCError)?.code == .cancelled }
      // The handler hears of it once the server reads the CANCEL frame (on a busy machine, seconds).
      #expect(await eventually(within: .seconds(60)) { cancelled.value })
      // The connection is still good.
      let echoed = try await client.unary(BenchV1.Bench.echo, TestServer.request())
      #expect(echoed.payload == Array("hello".utf8))
      await client.close()
    }
  }

  @Test func oversizeResponsesAreRefusedWithResourceExhausted() async throws {
    try await TestServer.withServer { _, address in
      let client = RPCClient(address: address)
      await #expect {
        try await client.unary(BenchV1.Bench.echo, TestServer.request(responseSize: 5 << 20))
      } throws: { error in
        guard let error = error as? RPCError else { return false }
        return error.code == .resourceExhausted && error.message.contains("limit")
      }
      await #expect {
        try await client.unary(BenchV1.Bench.echo, TestServer.request([UInt8](repeating: 1, count: 5 << 20)))
      } throws: { ($0 as? RPCError)?.code == .resourceExhausted }
      let large = try await client.unary(BenchV1.Bench.echo, TestServer.request(responseSize: 3 << 20))
      #expect(large.payload.count == 3 << 20)
      await client.close()
    }
  }

  @Test func unknownMethodsAndHandlerErrorsMapToStatusCodes() async throws {
    try await TestServer.withServer(routes: { router in
      struct Oops: Error, CustomStringConvertible { var description: String { "disk on fire" } }
      router.unary(TestMethods.fail) { _, _ in throw Oops() }
      router.unary(TestMethods.failWithStatus) { _, _ in
        throw RPCError(.notFound, "model 'roads' has no version 7", trailers: [("retry-hint", "none")])
      }
    }) { _, address in
      let client = RPCClient(address: address)
      await #expect {
        try await client.unary(TestMethods.unary("Missing"), TestServer.request())
      } throws: {
        ($0 as? RPCError)?.code == .unimplemented
          && ($0 as? RPCError)?.message.contains("/shoal.test.v1.Test/Missing") == true
      }
      await #expect {
        try await client.unary(TestMethods.fail, TestServer.request())
      } throws: { ($0 as? RPCError)?.code == .unknown && ($0 as? RPCError)?.message == "disk on fire" }
      await #expect {
        try await client.unary(TestMethods.failWithStatus, TestServer.request())
      } throws: { error in
        guard let error = error as? RPCError else { return false }
        return error.code == .notFound && error.message == "model 'roads' has no version 7"
          && error.trailers["retry-hint"] == "none"
      }
      await client.close()
    }
  }

  @Test func metadataReachesHandlersAndInterceptorsCanRefuseCalls() async throws {
    struct RequireToken: ServerInterceptor {
      func intercept(_ context: ServerContext, next: @Sendable () async throws -> Void) async throws {
        guard context.metadata["authorization"] == "Bearer good" || context.method.service != "shoal.test.v1.Test"
        else {
          throw RPCError(.unauthenticated, "a valid bearer token is required")
        }
        try await next()
      }
    }
    try await TestServer.withServer(
      interceptors: [RequireToken()],
      routes: { router in
        router.unary(TestMethods.metadata) { _, context in
          var response = BenchV1.BenchResponse()
          response.payload = Array((context.metadata["x-tile"] ?? "").utf8)
          return response
        }
      }
    ) { _, address in
      let client = RPCClient(address: address)
      let options = CallOptions(metadata: [("authorization", "Bearer good"), ("x-tile", "12/2048/1361")])
      let echoed = try await client.unary(TestMethods.metadata, TestServer.request(), options: options)
      #expect(echoed.payload == Array("12/2048/1361".utf8))
      await #expect {
        try await client.unary(TestMethods.metadata, TestServer.request())
      } throws: { ($0 as? RPCError)?.code == .unauthenticated }
      await client.close()
    }
  }

  @Test func compressionCanBeTurnedOffOnEitherSide() async throws {
    var quiet = RPCServer.Config.defaults
    quiet.connection.compression.enabled = false
    try await TestServer.withServer(config: quiet) { _, address in
      let client = RPCClient(address: address)
      let response = try await client.unary(BenchV1.Bench.echo, TestServer.request(responseSize: 65536))
      #expect(response.payload.count == 65536)
      await client.close()
    }
    try await TestServer.withServer { _, address in
      var config = RPCClient.Config.defaults
      config.connection.compression.enabled = false
      let client = RPCClient(address: address, config: config)
      let response = try await client.unary(BenchV1.Bench.echo, TestServer.request(responseSize: 65536))
      #expect(response.payload.count == 65536)
      await client.close()
    }
  }

  @Test func compressiblePayloadsTakeFewerBytesOnTheWire() async throws {
    try await TestServer.withServer { _, address in
      guard case .unix(let path) = address else { return }
      func responseFrame(acceptZstd: Bool) throws -> Frame? {
        var hello = RpcV1.Hello()
        hello.protocolVersion = 1
        hello.acceptEncodings = acceptZstd ? ["zstd"] : []
        hello.maxFrameSize = 4 << 20
        hello.initialWindow = 1 << 20
        var request = BenchV1.BenchRequest()
        request.responseSize = 65536
        let socket = try RawSocket(unixPath: path)
        socket.send(
          WireFrames.frame(.hello, stream: 0, WireFrames.bytes(hello)) + WireFrames.call(1)
            + WireFrames.frame(.message, flags: .endStream, stream: 1, WireFrames.bytes(request)))
        let (bytes, _) = socket.read { WireFrames.statuses(in: WireFrames.parse($0))[1] != nil }
        return WireFrames.parse(bytes).first { $0.type == .message }
      }
      let plain = try #require(try responseFrame(acceptZstd: false))
      let compressed = try #require(try responseFrame(acceptZstd: true))
      #expect(!plain.flags.contains(.compressed) && plain.payload.readableBytes > 65536)
      #expect(compressed.flags.contains(.compressed))
      #expect(compressed.payload.readableBytes * 4 <= plain.payload.readableBytes)
    }
  }

  @Test func shutdownWaitsForCallsInFlightThenEndsTheRestWithUnavailable() async throws {
    var config = RPCServer.Config.defaults
    // Long enough that the quick call (0.1 s) finishes on a machine the other suites keep busy.
    config.shutdownGrace = .seconds(5)
    let started = Probe(0)
    try await TestServer.withServer(config: config, routes: slowRoutes(Probe(false), started: started)) {
      server, address in
      let client = RPCClient(address: address)
      _ = try await client.unary(BenchV1.Bench.echo, TestServer.request())
      let quick = Task { try await client.unary(TestMethods.slow, TestServer.request(responseSize: 100)) }
      let stuck = Task { try await client.unary(TestMethods.slow, TestServer.request(responseSize: 20_000)) }
      #expect(await eventually { started.value == 2 })
      await server.shutdown()
      _ = try await quick.value
      await #expect {
        try await stuck.value
      } throws: { ($0 as? RPCError)?.code == .unavailable }
      await #expect {
        try await client.unary(BenchV1.Bench.echo, TestServer.request(), options: CallOptions(retries: .none))
      } throws: { ($0 as? RPCError)?.code == .unavailable }
      await client.close()
    }
  }

  @Test func clientInterceptorsAddMetadataAndSeeEveryCall() async throws {
    struct AddToken: ClientInterceptor {
      let seen: Probe<[String]>
      func intercept<Result: Sendable>(
        _ method: MethodDescriptor, options: CallOptions, next: @Sendable (CallOptions) async throws -> Result
      ) async throws -> Result {
        var options = options
        options.metadata.add("authorization", "Bearer good")
        seen.update { $0.append(method.name) }
        return try await next(options)
      }
    }
    try await TestServer.withServer(routes: { router in
      router.unary(TestMethods.metadata) { _, context in
        var response = BenchV1.BenchResponse()
        response.payload = Array((context.metadata["authorization"] ?? "").utf8)
        return response
      }
    }) { _, address in
      let seen = Probe<[String]>([])
      var config = RPCClient.Config.defaults
      config.interceptors = [AddToken(seen: seen)]
      let client = RPCClient(address: address, config: config)
      let response = try await client.unary(TestMethods.metadata, TestServer.request())
      #expect(response.payload == Array("Bearer good".utf8))
      let count = try await client.serverStreaming(BenchV1.Bench.download, TestServer.request(count: 2)) { responses in
        try await responses.reduce(0) { count, _ in count + 1 }
      }
      #expect(count == 2)
      #expect(seen.value == ["Metadata", "Download"])
      await client.close()
    }
  }

  @Test func aCallCanAcceptLessThanTheConnectionLimit() async throws {
    try await TestServer.withServer { _, address in
      let client = RPCClient(address: address)
      let small = CallOptions(maxResponseSize: 1000)
      await #expect {
        try await client.unary(BenchV1.Bench.echo, TestServer.request(responseSize: 5000), options: small)
      } throws: { ($0 as? RPCError)?.code == .resourceExhausted }
      let fits = try await client.unary(BenchV1.Bench.echo, TestServer.request(responseSize: 500), options: small)
      #expect(fits.payload.count == 500)
      await client.close()
    }
  }

  @Test func trailersTravelWithOKAndWithErrors() async throws {
    let withTrailers = TestMethods.unary("WithTrailers")
    try await TestServer.withServer(routes: { router in
      router.unary(withTrailers) { request, context in
        context.trailers.add("x-model-version", "7")
        context.trailers.add("x-checksum-bin", binary: [1, 2, 3])
        if request.responseSize > 0 { throw RPCError(.failedPrecondition, "model not ready") }
        return BenchV1.BenchResponse()
      }
      router.serverStreaming(TestMethods.streamWithTrailers) { _, writer, context in
        try await writer.send(BenchV1.BenchResponse())
        context.trailers.add("x-count", "1")
      }
    }) { _, address in
      let client = RPCClient(address: address)
      let (_, trailers) = try await client.unaryWithTrailers(withTrailers, TestServer.request())
      #expect(trailers["x-model-version"] == "7")
      #expect(trailers.contains { $0.key == "x-checksum-bin" && $0.value == .binary([1, 2, 3]) })
      await #expect {
        try await client.unary(withTrailers, TestServer.request(responseSize: 1))
      } throws: { ($0 as? RPCError)?.trailers["x-model-version"] == "7" }
      let streamed = try await client.serverStreaming(TestMethods.streamWithTrailers, TestServer.request()) {
        responses in
        for try await _ in responses {}
        return try await responses.trailers
      }
      #expect(streamed["x-count"] == "1")
      await client.close()
    }
  }

  @Test func aSlowReaderOfOneStreamDoesNotStallTheOthers() async throws {
    try await TestServer.withServer { _, address in
      let client = RPCClient(address: address)
      let reader = Task {
        try await client.serverStreaming(BenchV1.Bench.download, TestServer.request(responseSize: 1 << 20, count: 32)) {
          responses in
          var iterator = responses.makeAsyncIterator()
          _ = try await iterator.next()
          try await Task.sleep(for: .seconds(30))
        }
      }
      // While that stream is stuck at its window, unary calls on the same connection go through.
      for _ in 0..<50 {
        let response = try await client.unary(BenchV1.Bench.echo, TestServer.request(responseSize: 10_000))
        #expect(response.payload.count == 10_000)
      }
      reader.cancel()
      _ = await reader.result
      await client.close()
    }
  }
}
