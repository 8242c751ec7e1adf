public import HTTPTypes
public import ShoalRPC

/// A failure the gateway answers with: an HTTP status, MLflow's error code and a message that
/// says what was wrong. Each API family renders it in its own shape (`ErrorShape`).
public struct GatewayError: Error, CustomStringConvertible, Sendable {
  /// The response's status.
  public var status: HTTPResponse.Status
  /// MLflow's `error_code` (`INVALID_PARAMETER_VALUE`, `RESOURCE_DOES_NOT_EXIST`, …).
  public var code: String
  /// What was wrong, for people.
  public var message: String

  /// A failure with `status`, `code` and `message`.
  public init(_ status: HTTPResponse.Status, _ code: String, _ message: String) {
    self.status = status
    self.code = code
    self.message = message
  }

  public var description: String { "\(status.code) \(code): \(message)" }

  /// 400 INVALID_PARAMETER_VALUE: a caller's mistake in a field or a parameter.
  public static func invalid(_ message: String) -> GatewayError {
    GatewayError(.badRequest, "INVALID_PARAMETER_VALUE", message)
  }

  /// 400 BAD_REQUEST: a body that is not what the endpoint reads.
  public static func badRequest(_ message: String) -> GatewayError {
    GatewayError(.badRequest, "BAD_REQUEST", message)
  }

  /// 404 RESOURCE_DOES_NOT_EXIST.
  public static func notFound(_ message: String) -> GatewayError {
    GatewayError(.notFound, "RESOURCE_DOES_NOT_EXIST", message)
  }

  /// 404 ENDPOINT_NOT_FOUND: no route for the method and path.
  public static func noEndpoint(_ method: HTTPRequest.Method, _ path: String) -> GatewayError {
    GatewayError(.notFound, "ENDPOINT_NOT_FOUND", "no endpoint \(method) \(path)")
  }

  /// The answer to a failed call into the mesh, with the status MLflow gives the same failure.
  /// A caller's mistake is never a 5xx: clients retry those for minutes.
  public init(_ error: RPCError) {
    switch error.code {
    case .invalidArgument, .outOfRange:
      self.init(.badRequest, "INVALID_PARAMETER_VALUE", error.message)
    case .failedPrecondition:
      self.init(.badRequest, "INVALID_STATE", error.message)
    case .alreadyExists:
      self.init(.badRequest, "RESOURCE_ALREADY_EXISTS", error.message)
    case .notFound:
      self.init(.notFound, "RESOURCE_DOES_NOT_EXIST", error.message)
    case .unauthenticated:
      self.init(.unauthorized, "UNAUTHENTICATED", error.message)
    case .permissionDenied:
      self.init(.forbidden, "PERMISSION_DENIED", error.message)
    case .resourceExhausted:
      self.init(.tooManyRequests, "REQUEST_LIMIT_EXCEEDED", error.message)
    case .unavailable, .deadlineExceeded, .cancelled:
      self.init(.serviceUnavailable, "TEMPORARILY_UNAVAILABLE", error.message)
    case .unimplemented:
      self.init(.notImplemented, "NOT_IMPLEMENTED", error.message)
    default:
      self.init(.internalServerError, "INTERNAL_ERROR", error.message)
    }
  }
}
