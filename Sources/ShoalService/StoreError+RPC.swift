import ShoalProto
public import ShoalRPC
public import ShoalStore

extension RPCError {
  /// The status a store failure is reported with: a locked, full or unreachable store is
  /// UNAVAILABLE (retry later; nothing was written), the back end's message travels as the detail.
  public init(_ error: StoreError) {
    let code: RpcV1.StatusCode =
      switch error.code {
      case .unavailable: .unavailable
      case .alreadyExists: .alreadyExists
      case .constraint: .failedPrecondition
      case .conflict: .aborted
      case .dataLoss: .dataLoss
      case .notFound: .notFound
      case .invalid: .failedPrecondition
      case .internal: .internal
      }
    self.init(code, error.description)
  }
}

/// Store failures that reach a handler's boundary are reported with their status.
extension StoreError: RPCErrorConvertible {
  /// `RPCError(self)`.
  public var rpcError: RPCError { RPCError(self) }
}
