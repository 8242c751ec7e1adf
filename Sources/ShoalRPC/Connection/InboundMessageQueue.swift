import NIOCore
import Synchronization

/// The messages a stream has received and not yet consumed. The event loop appends; one
/// consumer task takes them in order. Thread-safe.
final class InboundMessageQueue: Sendable {
  private struct State {
    /// The oldest message not yet consumed; kept apart so that a unary call's one request
    /// needs no array.
    var first: ByteBuffer?
    /// Later messages, oldest at `restStart`; empty whenever `first` is nil.
    var rest: [ByteBuffer] = []
    var restStart = 0
    var finished: Result<Void, RPCError>?
    var waiter: CheckedContinuation<ByteBuffer?, any Error>?

    mutating func push(_ message: ByteBuffer) {
      if first == nil { first = message } else { rest.append(message) }
    }

    enum Taken {
      case message(ByteBuffer)
      case end
      case failure(RPCError)
      case waiting
    }

    /// The next message or the end; with nothing yet, registers `waiter` (if given) for `append`
    /// or `finish` to resume.
    mutating func take(orRegister waiter: CheckedContinuation<ByteBuffer?, any Error>? = nil) -> Taken {
      if let message = pop() { return .message(message) }
      switch finished {
      case .success?: return .end
      case .failure(let error)?: return .failure(error)
      case nil:
        if let waiter { self.waiter = waiter }
        return .waiting
      }
    }

    mutating func pop() -> ByteBuffer? {
      guard let message = first else { return nil }
      if restStart < rest.count {
        first = rest[restStart]
        restStart += 1
        if restStart == rest.count {
          rest.removeAll(keepingCapacity: true)
          restStart = 0
        }
      } else {
        first = nil
      }
      return message
    }
  }

  private let state = Mutex(State())
  /// Called with each consumed message's size, to return flow-control credit.
  private let onConsumed: @Sendable (Int) -> Void

  init(onConsumed: @escaping @Sendable (Int) -> Void) {
    self.onConsumed = onConsumed
  }

  /// Adds a message (event loop).
  func append(_ message: ByteBuffer) {
    let waiter = state.withLock { state -> CheckedContinuation<ByteBuffer?, any Error>? in
      guard state.finished == nil else { return nil }
      if let waiter = state.waiter {
        state.waiter = nil
        return waiter
      }
      state.push(message)
      return nil
    }
    if let waiter {
      onConsumed(message.readableBytes)
      waiter.resume(returning: message)
    }
  }

  /// No more messages: the peer half-closed (`.success`) or the stream failed.
  func finish(_ result: Result<Void, RPCError>) {
    let waiter = state.withLock { state -> CheckedContinuation<ByteBuffer?, any Error>? in
      guard state.finished == nil else { return nil }
      state.finished = result
      defer { state.waiter = nil }
      return state.waiter
    }
    switch result {
    case .success: waiter?.resume(returning: nil)
    case .failure(let error): waiter?.resume(throwing: error)
    }
  }

  /// The next message, or nil once the peer has half-closed and everything is consumed.
  func next() async throws -> ByteBuffer? {
    let taken = state.withLock { $0.take() }
    guard case .waiting = taken else { return try deliver(taken) }
    return try await withTaskCancellationHandler {
      try await withCheckedThrowingContinuation { continuation in
        let taken = state.withLock { $0.take(orRegister: continuation) }
        if case .waiting = taken { return }
        continuation.resume(with: Result { try deliver(taken) })
      }
    } onCancel: {
      finish(.failure(RPCError(.cancelled, "the call was cancelled")))
    }
  }

  private func deliver(_ taken: State.Taken) throws -> ByteBuffer? {
    switch taken {
    case .message(let message):
      onConsumed(message.readableBytes)
      return message
    case .end, .waiting: return nil
    case .failure(let error): throw error
    }
  }
}
