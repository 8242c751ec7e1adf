public import ShoalProto
public import ShoalRPC
public import ShoalServiceStubs

/// `shoal.bench.v1.Bench`: a service for load tests and benchmarks, one method per call kind.
public struct BenchService: BenchV1.Bench.ServiceProtocol {
  /// The service.
  public init() {}

  /// The payload of a response: the request's own, or `response_size` bytes of a repeating
  /// (compressible) pattern.
  static func payload(for request: BenchV1.BenchRequest) -> [UInt8] {
    guard request.responseSize > 0 else { return request.payload }
    return (0..<Int(request.responseSize)).map { UInt8(truncatingIfNeeded: $0 % 251) }
  }

  public func echo(_ request: BenchV1.BenchRequest, context: ServerContext) async throws -> BenchV1.BenchResponse {
    var response = BenchV1.BenchResponse()
    response.payload = Self.payload(for: request)
    response.requestsSeen = 1
    response.bytesSeen = UInt64(request.payload.count)
    return response
  }

  public func upload(
    _ requests: RPCRequestStream<BenchV1.BenchRequest>, context: ServerContext
  ) async throws -> BenchV1.BenchResponse {
    var response = BenchV1.BenchResponse()
    var last = BenchV1.BenchRequest()
    for try await request in requests {
      response.requestsSeen += 1
      response.bytesSeen += UInt64(request.payload.count)
      last = request
    }
    response.payload = last.responseSize > 0 ? Self.payload(for: last) : []
    return response
  }

  public func download(
    _ request: BenchV1.BenchRequest, responses: RPCResponseWriter<BenchV1.BenchResponse>, context: ServerContext
  ) async throws {
    var response = BenchV1.BenchResponse()
    response.payload = Self.payload(for: request)
    response.requestsSeen = 1
    for _ in 0..<max(Int(request.responseCount), 1) {
      try await responses.send(response)
    }
  }

  public func chat(
    _ requests: RPCRequestStream<BenchV1.BenchRequest>, responses: RPCResponseWriter<BenchV1.BenchResponse>,
    context: ServerContext
  ) async throws {
    var seen: UInt64 = 0
    var bytes: UInt64 = 0
    for try await request in requests {
      seen += 1
      bytes += UInt64(request.payload.count)
      var response = BenchV1.BenchResponse()
      response.payload = Self.payload(for: request)
      response.requestsSeen = seen
      response.bytesSeen = bytes
      try await responses.send(response)
    }
  }
}
