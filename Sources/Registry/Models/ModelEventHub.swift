import ShoalProto
import Synchronization

/// Hands each model's events to the calls watching it, as they are stored.
final class ModelEventHub: Sendable {
  private struct Watchers {
    var byModel: [Int64: [UInt64: AsyncStream<RegistryV1.ModelEvent>.Continuation]] = [:]
    var next: UInt64 = 0
  }

  private let watchers = Mutex(Watchers())

  /// A stream of the events of model `id` published from now on; call `unsubscribe` when done.
  func subscribe(
    model id: Int64, backlog: Int = 4096
  ) -> (token: UInt64, events: AsyncStream<RegistryV1.ModelEvent>) {
    let (stream, continuation) = AsyncStream.makeStream(
      of: RegistryV1.ModelEvent.self, bufferingPolicy: .bufferingOldest(backlog))
    let token = watchers.withLock { watchers in
      defer { watchers.next += 1 }
      watchers.byModel[id, default: [:]][watchers.next] = continuation
      return watchers.next
    }
    return (token, stream)
  }

  func unsubscribe(model id: Int64, token: UInt64) {
    let continuation = watchers.withLock { $0.byModel[id]?.removeValue(forKey: token) }
    continuation?.finish()
  }

  /// Hands `event` to every watcher of model `id`. A watcher too far behind to take it has its
  /// stream ended; it catches up from the stored events (`ModelRegistryService.watchModel`).
  func publish(_ event: RegistryV1.ModelEvent, model id: Int64) {
    watchers.withLock { watchers in
      for (token, continuation) in watchers.byModel[id, default: [:]] {
        if case .dropped = continuation.yield(event) {
          watchers.byModel[id]?.removeValue(forKey: token)
          continuation.finish()
        }
      }
    }
  }
}
