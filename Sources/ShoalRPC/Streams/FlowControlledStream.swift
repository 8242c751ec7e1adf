import NIOCore

/// The event-loop side of a stream that sends: its state machine and the senders waiting for
/// flow-control credit or socket space.
protocol FlowControlledStream: AnyObject {
  var machine: StreamStateMachine { get }
  var writeWaiters: [EventLoopPromise<Void>] { get set }
}

extension FlowControlledStream {
  /// Lets waiting senders go on, if the stream's window is open again.
  func wakeWritersIfOpen() {
    guard machine.canSend, !writeWaiters.isEmpty else { return }
    let waiters = writeWaiters
    writeWaiters = []
    for waiter in waiters { waiter.succeed() }
  }
}
