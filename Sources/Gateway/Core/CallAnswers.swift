import ShoalProto
import ShoalRPC

/// The answer of `call`, or nil when it fails with `code`; other failures are thrown.
func answer<T>(unless code: RpcV1.StatusCode, _ call: () async throws -> T) async throws -> T? {
  do {
    return try await call()
  } catch let error as RPCError where error.code == code {
    return nil
  }
}

/// The answer of `call`; a failure that `mapping` turns into a gateway error is thrown as that.
func answer<T>(mapping: (RPCError) -> GatewayError?, _ call: () async throws -> T) async throws -> T {
  do {
    return try await call()
  } catch let error as RPCError {
    throw mapping(error) ?? error
  }
}
