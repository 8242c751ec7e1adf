import Synchronization

/// Hands events to the calls watching a topic (a model, a run) as they happen. Each watcher has a
/// bounded backlog; one that falls further behind has its stream ended, and catches up from the
/// stored events (the watch handlers do this).
public final class EventHub<Topic: Hashable & Sendable, Event: Sendable>: Sendable {
  private struct Watchers {
    var byTopic: [Topic: [UInt64: AsyncStream<Event>.Continuation]] = [:]
    var next: UInt64 = 0
  }

  private let watchers = Mutex(Watchers())

  /// An empty hub.
  public init() {}

  /// A stream of the events of `topic` published from now on; call `unsubscribe` when done.
  public func subscribe(_ topic: Topic, backlog: Int = 4096) -> (token: UInt64, events: AsyncStream<Event>) {
    let (stream, continuation) = AsyncStream.makeStream(of: Event.self, bufferingPolicy: .bufferingOldest(backlog))
    let token = watchers.withLock { watchers in
      defer { watchers.next += 1 }
      watchers.byTopic[topic, default: [:]][watchers.next] = continuation
      return watchers.next
    }
    return (token, stream)
  }

  /// Ends a subscription.
  public func unsubscribe(_ topic: Topic, token: UInt64) {
    let continuation = watchers.withLock { $0.byTopic[topic]?.removeValue(forKey: token) }
    continuation?.finish()
  }

  /// Hands `event` to every watcher of `topic`; a watcher whose backlog is full has its stream ended.
  public func publish(_ event: Event, to topic: Topic) {
    watchers.withLock { watchers in
      for (token, continuation) in watchers.byTopic[topic, default: [:]] {
        if case .dropped = continuation.yield(event) {
          watchers.byTopic[topic]?.removeValue(forKey: token)
          continuation.finish()
        }
      }
    }
  }

  /// Ends every watcher of `topic` (it has no more events).
  public func finish(_ topic: Topic) {
    let ended = watchers.withLock { $0.byTopic.removeValue(forKey: topic) }
    for continuation in (ended ?? [:]).values { continuation.finish() }
  }
}
