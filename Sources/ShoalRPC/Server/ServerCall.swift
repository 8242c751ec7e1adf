import NIOCore
public import ShoalProto

/// The task side of one server stream: receives requests, sends responses and ends the call,
/// each by handing work to the connection's event loop.
final class ServerCall: Sendable {
  let streamID: UInt32
  let context: ServerContext
  let inbound: InboundMessageQueue
  private let connection: NIOLoopBound<ServerConnectionHandler>

  init(
    streamID: UInt32, context: ServerContext, inbound: InboundMessageQueue,
    connection: NIOLoopBound<ServerConnectionHandler>
  ) {
    self.streamID = streamID
    self.context = context
    self.inbound = inbound
    self.connection = connection
  }

  private var eventLoop: any EventLoop { connection.eventLoop }

  /// The next request, or nil once the client has half-closed.
  func receive<M: ProtoMessage>(_ type: M.Type) async throws -> M? {
    guard let payload = try await inbound.next() else { return nil }
    return try payload.decodeMessage(as: M.self)
  }

  /// The one request of a unary or server-streaming call.
  func receiveOnly<M: ProtoMessage>(_ type: M.Type) async throws -> M {
    guard let request = try await receive(M.self) else {
      throw RPCError(.internal, "\(context.method.path) expects one request message; the client sent none")
    }
    guard try await inbound.next() == nil else {
      throw RPCError(.internal, "\(context.method.path) expects one request message; the client sent more")
    }
    return request
  }

  /// Sends one response, waiting while the stream's flow-control window or the socket is full.
  func send<M: ProtoMessage>(_ message: M) async throws {
    let streamID = streamID
    let connection = connection
    let future = eventLoop.flatSubmit {
      connection.value.sendMessage(message, stream: streamID)
    }
    try await future.get()
  }

  /// Sends the last response and OK in one step (unary and client-streaming calls).
  func finish<M: ProtoMessage>(with message: M) {
    let streamID = streamID
    let connection = connection
    let trailers = context.trailers.metadata
    eventLoop.execute { connection.value.finish(stream: streamID, response: message, trailers: trailers) }
  }

  /// Ends the call with a status.
  func finish(_ result: Result<Void, RPCError>) {
    let streamID = streamID
    let connection = connection
    let trailers = context.trailers.metadata
    eventLoop.execute { connection.value.finish(stream: streamID, result: result, trailers: trailers) }
  }
}

/// The requests of a client-streaming or bidirectional call, in order.
public struct RPCRequestStream<Message: ProtoMessage>: AsyncSequence, Sendable {
  let call: ServerCall

  public struct AsyncIterator: AsyncIteratorProtocol {
    let call: ServerCall

    public mutating func next() async throws -> Message? {
      try await call.receive(Message.self)
    }
  }

  public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(call: call) }
}

/// Sends the responses of a server-streaming or bidirectional call.
public struct RPCResponseWriter<Message: ProtoMessage>: Sendable {
  let call: ServerCall

  /// Sends one response; waits while the client is not reading (flow control).
  public func send(_ message: Message) async throws {
    try await call.send(message)
  }
}
