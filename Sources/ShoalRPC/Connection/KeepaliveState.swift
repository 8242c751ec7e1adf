import NIOCore

/// When to send a keepalive PING on an idle connection and when to give up on the peer. Pure:
/// the connection handler feeds it reads and clock ticks.
struct KeepaliveState {
  /// What the connection should do on a tick.
  enum Action: Equatable {
    case none
    /// Send a PING (the connection has been silent for the interval).
    case sendPing
    /// The PING went unanswered for the timeout: close the connection.
    case timedOut
  }

  let interval: TimeAmount
  let timeout: TimeAmount
  private var lastRead: NIODeadline
  private var pingSentAt: NIODeadline?

  init(interval: TimeAmount, timeout: TimeAmount, now: NIODeadline) {
    self.interval = interval
    self.timeout = timeout
    lastRead = now
  }

  /// Anything read from the peer proves it alive.
  mutating func didRead(at now: NIODeadline) {
    lastRead = now
    pingSentAt = nil
  }

  /// Called every `interval`.
  mutating func tick(at now: NIODeadline) -> Action {
    if let sentAt = pingSentAt {
      return now - sentAt >= timeout ? .timedOut : .none
    }
    guard now - lastRead >= interval else { return .none }
    pingSentAt = now
    return .sendPing
  }
}

extension Duration {
  /// The duration as NIO's time amount.
  var timeAmount: TimeAmount {
    .nanoseconds(components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000)
  }
}
