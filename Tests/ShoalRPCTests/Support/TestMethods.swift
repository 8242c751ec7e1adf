import NIOConcurrencyHelpers
import ShoalProto
import ShoalRPC

/// Methods of a made-up test service, registered next to Bench where a test needs them.
enum TestMethods {
  typealias Request = BenchV1.BenchRequest
  typealias Response = BenchV1.BenchResponse

  static func unary(_ name: String, idempotent: Bool = false) -> TypedMethod<Request, Response> {
    TypedMethod(service: "shoal.test.v1.Test", name: name, kind: .unary, idempotent: idempotent)
  }

  /// Sleeps for `request.response_size` milliseconds, noting whether it was cancelled.
  static let slow = unary("Slow")
  static let fail = unary("Fail")
  static let failWithStatus = unary("FailWithStatus")
  static let metadata = unary("Metadata")
  static let relay = unary("Relay")
  static let streamWithTrailers = TypedMethod<Request, Response>(
    service: "shoal.test.v1.Test", name: "StreamWithTrailers", kind: .serverStreaming, idempotent: false)
}

/// A value tests set from handlers and read afterwards.
final class Probe<Value: Sendable>: Sendable {
  private let box: NIOLockedValueBox<Value>
  init(_ value: Value) { box = NIOLockedValueBox(value) }
  var value: Value {
    get { box.withLockedValue { $0 } }
    set { box.withLockedValue { $0 = newValue } }
  }
  /// Changes the value atomically.
  func update(_ change: (inout Value) -> Void) { box.withLockedValue { change(&$0) } }
}

/// Waits until `condition` holds, checking every 10 ms, for at most `limit`; returns whether it held.
/// The default is generous: it only bounds how long a failing test waits, and with every suite
/// running at once on 2 cores a handler can take seconds to hear of a cancel.
func eventually(within limit: Duration = .seconds(30), _ condition: () -> Bool) async -> Bool {
  let end = ContinuousClock.now + limit
  while ContinuousClock.now < end {
    if condition() { return true }
    try? await Task.sleep(for: .milliseconds(10))
  }
  return condition()
}
