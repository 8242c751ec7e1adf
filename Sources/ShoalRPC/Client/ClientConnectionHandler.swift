import NIOCore
import ShoalProto

/// One client connection on its event loop: opens streams, writes requests, and delivers
/// responses and statuses to the calls waiting on them; answers PINGs, sends keepalive PINGs,
/// and stops taking calls after GOAWAY.
final class ClientConnectionHandler: ChannelInboundHandler {
  typealias InboundIn = ByteBuffer
  typealias OutboundOut = ByteBuffer

  final class Stream: FlowControlledStream {
    var machine: StreamStateMachine
    /// Responses of a streaming call; nil for unary calls.
    let inbound: InboundMessageQueue?
    /// Completes with the response of a unary call (nil for a streaming call) and the trailers
    /// of the status, or fails with the status.
    let done: EventLoopPromise<CallOutcome>
    var unaryResponse: ByteBuffer?
    var deadlineTimer: Scheduled<Void>?
    var writeWaiters: [EventLoopPromise<Void>] = []

    init(machine: StreamStateMachine, inbound: InboundMessageQueue?, done: EventLoopPromise<CallOutcome>) {
      self.machine = machine
      self.inbound = inbound
      self.done = done
    }
  }

  private let config: ConnectionConfig
  private let address: RPCAddress
  /// Writes messages into frames; RPCClient uses it for the request written together with CALL.
  let codec: MessageCodec
  private var decoder: FrameDecoder
  private var received = ByteBuffer()
  private var peerInitialWindow = 64 << 10
  private var streams: [UInt32: Stream] = [:]
  private var nextStreamID: UInt32 = 1
  private(set) var goingAway = false
  private(set) var closed: Bool {
    get { writer?.isClosed ?? false }
    set { writer.isClosed = newValue }
  }
  /// Why this side closed the connection, for the errors of later calls.
  private var closeReason: String?
  // Set in handlerAdded, before NIO delivers any event that reads it.
  // swift-format-ignore: NeverUseImplicitlyUnwrappedOptionals
  private var context: ChannelHandlerContext!
  // swift-format-ignore: NeverUseImplicitlyUnwrappedOptionals
  private var writer: FrameWriter!
  private var keepalive: KeepaliveState?
  private var keepaliveTimer: RepeatedTask?
  /// Bytes written to and read from the socket, frame headers included.
  var bytesSent: Int { writer.bytesWritten }
  private(set) var bytesReceived = 0
  /// Completes when the server's HELLO has arrived.
  let ready: EventLoopPromise<Void>

  init(config: ConnectionConfig, address: RPCAddress, ready: EventLoopPromise<Void>) {
    self.config = config
    self.address = address
    codec = MessageCodec(config: config)
    decoder = FrameDecoder(maxMessageSize: config.maxMessageSize, maxFrameSize: config.maxFrameSize)
    self.ready = ready
  }

  private var loopBound: NIOLoopBound<ClientConnectionHandler> { NIOLoopBound(self, eventLoop: context.eventLoop) }

  // MARK: Channel events

  func handlerAdded(context: ChannelHandlerContext) {
    self.context = context
    writer = FrameWriter(context: context)
  }

  func channelActive(context: ChannelHandlerContext) {
    var hello = RpcV1.Hello()
    hello.protocolVersion = 1
    hello.acceptEncodings = config.compression.enabled ? ["zstd"] : []
    hello.maxFrameSize = UInt32(config.maxMessageSize)
    hello.initialWindow = UInt32(config.initialWindow)
    hello.peerName = config.peerName
    writer.append(.hello, stream: 0, hello)
    writer.flush()
    if let interval = config.keepalive.interval?.timeAmount {
      keepalive = KeepaliveState(interval: interval, timeout: config.keepalive.timeout.timeAmount, now: .now())
      let loop = loopBound
      keepaliveTimer = context.eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
        loop.value.keepaliveTick()
      }
    }
    context.fireChannelActive()
  }

  func channelInactive(context: ChannelHandlerContext) {
    closed = true
    keepaliveTimer?.cancel()
    ready.fail(
      RPCError(.unavailable, closeReason ?? "the connection to \(address) closed before the server said HELLO"))
    for id in Array(streams.keys) {
      finish(id, .failure(RPCError(.unavailable, "the connection to \(address) closed")))
    }
    context.fireChannelInactive()
  }

  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    if closeReason == nil, case .tls = address {
      closeReason = TransportSecurity.explain(error, address: address)
    }
    context.close(promise: nil)
  }

  func channelWritabilityChanged(context: ChannelHandlerContext) {
    if context.channel.isWritable { wakeWriters() }
    context.fireChannelWritabilityChanged()
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    var bytes = unwrapInboundIn(data)
    bytesReceived += bytes.readableBytes
    if received.readableBytes == 0 {
      received = bytes
    } else {
      received.writeBuffer(&bytes)
    }
    keepalive?.didRead(at: .now())
    writer.readBurstStarted()
    do {
      while !closed, let decoded = try decoder.next(from: &received) {
        switch decoded {
        case .frame(let frame): try handle(frame)
        case .oversizedMessage(let stream, let size):
          cancel(
            stream,
            RPCError(
              .resourceExhausted,
              "response of \(size) bytes exceeds the client's limit of \(config.maxMessageSize) bytes"))
        }
      }
    } catch {
      protocolError("\(error)")
    }
    received.discardReadBytes()
  }

  func channelReadComplete(context: ChannelHandlerContext) {
    writer.readBurstEnded()
  }

  private func handle(_ frame: Frame) throws {
    switch frame.type {
    case .hello:
      let hello = try frame.payload.decodeMessage(as: RpcV1.Hello.self)
      guard hello.protocolVersion == 1 else {
        throw RPCError(.unavailable, "the server at \(address) speaks protocol version \(hello.protocolVersion), not 1")
      }
      codec.peerAcceptsZstd = hello.acceptEncodings.contains("zstd")
      if hello.maxFrameSize > 0 { codec.maxSendSize = Int(hello.maxFrameSize) }
      peerInitialWindow = Int(hello.initialWindow)
      ready.succeed()
    case .message:
      guard let stream = streams[frame.stream] else { return }
      do {
        let payload = try codec.payload(of: frame)
        try stream.machine.receiveMessage(
          size: frame.payload.readableBytes, endStream: frame.flags.contains(.endStream))
        if let inbound = stream.inbound {
          inbound.append(payload)
        } else if stream.unaryResponse == nil {
          stream.unaryResponse = payload
        } else {
          throw RPCError(.internal, "the server sent a second response to a unary call")
        }
      } catch {
        cancel(frame.stream, RPCError(from: error))
      }
    case .status:
      guard streams[frame.stream] != nil else { return }
      // OK without trailers is an empty payload: the common case needs no decoding.
      let status =
        frame.payload.readableBytes == 0 ? RpcV1.Status() : try frame.payload.decodeMessage(as: RpcV1.Status.self)
      let trailers = status.trailers.isEmpty ? Metadata() : (try? Metadata(entries: status.trailers)) ?? []
      if status.code == .ok {
        finish(frame.stream, .success(()), trailers: trailers)
      } else {
        finish(frame.stream, .failure(RPCError(status.code, status.message, trailers: trailers)))
      }
    case .cancel:
      finish(frame.stream, .failure(RPCError(.cancelled, "the server cancelled the call")))
    case .window:
      guard let stream = streams[frame.stream] else { return }
      try? stream.machine.receiveWindowUpdate(frame.payload.getInteger(at: frame.payload.readerIndex)!)
      wakeWriters(stream)
    case .ping:
      writer.append(Frame(type: .pong, stream: 0, payload: frame.payload))
    case .pong:
      break
    case .goAway:
      let goAway = try frame.payload.decodeMessage(as: RpcV1.GoAway.self)
      goingAway = true
      for id in streams.keys where id > goAway.lastStreamId {
        finish(
          id, .failure(RPCError(.unavailable, "the server is going away (\(goAway.reason)) and did not take this call"))
        )
      }
      if streams.isEmpty { close() }
    case .call:
      throw RPCError(.internal, "the server sent CALL")
    }
  }

  // MARK: Calls (on the event loop)

  /// Opens a stream: writes CALL and, for a unary call, the request with END_STREAM.
  func open(
    path: String, metadata: Metadata, timeout: Duration?, streaming: Bool,
    firstMessage: (inout ByteBuffer, UInt32) throws(RPCError) -> Void
  ) throws(RPCError) -> (id: UInt32, stream: Stream) {
    guard !closed else {
      throw RPCError(.unavailable, "the connection to \(address) is closed\(closeReason.map { ": \($0)" } ?? "")")
    }
    guard !goingAway else { throw RPCError(.unavailable, "the server at \(address) is going away") }
    guard nextStreamID < UInt32.max else {
      // Stream ids must increase: this connection is used up; close it once idle so the client reconnects.
      goingAway = true
      if streams.isEmpty { close() }
      throw RPCError(.unavailable, "the connection to \(address) has used all its stream ids; retry")
    }
    let id = nextStreamID
    nextStreamID += 1
    var header = RpcV1.CallHeader()
    header.method = path
    header.metadata = metadata.entries
    if let timeout {
      header.timeoutUs = UInt64(
        max(1, timeout.components.seconds * 1_000_000 + timeout.components.attoseconds / 1_000_000_000_000))
    }
    let start = writer.buffer.writerIndex
    writer.append(.call, stream: id, header)
    let before = writer.buffer.readableBytes
    do {
      try firstMessage(&writer.buffer, id)
    } catch {
      writer.buffer.moveWriterIndex(to: start)
      throw error
    }
    let written = writer.buffer.readableBytes - before

    var machine = StreamStateMachine(
      role: .client, initialSendWindow: peerInitialWindow, initialReceiveWindow: config.initialWindow)
    try? machine.sendCall()
    if written > 0 {
      try? machine.sendMessage(size: written - Frame.headerSize, endStream: true)
    }
    let loop = loopBound
    let inbound =
      streaming
      ? InboundMessageQueue { size in
        if loop.eventLoop.inEventLoop {
          loop.value.consumed(size, stream: id)
        } else {
          loop.eventLoop.execute { loop.value.consumed(size, stream: id) }
        }
      } : nil
    let stream = Stream(machine: machine, inbound: inbound, done: context.eventLoop.makePromise())
    streams[id] = stream
    if let timeout {
      let nanos = timeout.components.seconds * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000
      stream.deadlineTimer = context.eventLoop.scheduleTask(in: .nanoseconds(nanos)) {
        loop.value.cancel(id, RPCError(.deadlineExceeded, "no answer from \(path) within \(timeout)"))
      }
    }
    writer.scheduleFlush()
    return (id, stream)
  }

  /// Sends one request on a streaming call; the future completes when more may be sent.
  func send<M: ProtoMessage>(_ message: M, stream id: UInt32, endStream: Bool) -> EventLoopFuture<Void> {
    guard let stream = streams[id] else {
      return context.eventLoop.makeFailedFuture(RPCError(.cancelled, "the call has ended", cause: CallEnded()))
    }
    do {
      let before = writer.buffer.readableBytes
      try codec.writeMessage(message, stream: id, endStream: endStream, to: &writer.buffer)
      try stream.machine.sendMessage(
        size: writer.buffer.readableBytes - before - Frame.headerSize, endStream: endStream)
      writer.scheduleFlush()
    } catch {
      return context.eventLoop.makeFailedFuture(RPCError(from: error))
    }
    if stream.machine.canSend && context.channel.isWritable || endStream {
      return context.eventLoop.makeSucceededVoidFuture()
    }
    let promise = context.eventLoop.makePromise(of: Void.self)
    stream.writeWaiters.append(promise)
    return promise.futureResult
  }

  /// Half-closes a streaming call: no more requests.
  func closeSend(stream id: UInt32) {
    guard let stream = streams[id], (try? stream.machine.sendMessage(size: 0, endStream: true)) != nil else { return }
    writer.append(Frame(type: .message, flags: .endStream, stream: id))
  }

  /// Abandons a call: CANCEL to the server, `error` to the caller.
  func cancel(_ id: UInt32, _ error: RPCError) {
    guard let stream = streams[id] else { return }
    if stream.machine.cancel() { writer.append(Frame(type: .cancel, stream: id)) }
    finish(id, .failure(error))
  }

  private func finish(_ id: UInt32, _ result: Result<Void, RPCError>, trailers: Metadata = []) {
    guard let stream = streams.removeValue(forKey: id) else { return }
    stream.deadlineTimer?.cancel()
    for waiter in stream.writeWaiters { waiter.fail(RPCError(.cancelled, "the call has ended")) }
    switch result {
    case .success:
      if let inbound = stream.inbound {
        inbound.finish(.success(()))
        stream.done.succeed(CallOutcome(response: nil, trailers: trailers))
      } else if let response = stream.unaryResponse {
        stream.done.succeed(CallOutcome(response: response, trailers: trailers))
      } else {
        stream.done.fail(RPCError(.internal, "the server ended a unary call with OK but no response"))
      }
    case .failure(let error):
      stream.inbound?.finish(.failure(error))
      stream.done.fail(error)
    }
    if goingAway && streams.isEmpty { close() }
  }

  private func consumed(_ size: Int, stream id: UInt32) {
    guard let stream = streams[id], let credit = stream.machine.consumed(size: size) else { return }
    writer.appendWindow(stream: id, credit: credit)
  }

  private func wakeWriters(_ only: Stream? = nil) {
    guard context.channel.isWritable else { return }
    for stream in only.map({ [$0] }) ?? Array(streams.values) { stream.wakeWritersIfOpen() }
  }

  // MARK: Connection

  private func keepaliveTick() {
    guard !closed, var state = keepalive else { return }
    let action = state.tick(at: .now())
    keepalive = state
    switch action {
    case .none: break
    case .sendPing:
      writer.appendPing()
    case .timedOut:
      let reason = "\(address) did not answer a keepalive ping within \(config.keepalive.timeout)"
      for id in Array(streams.keys) { finish(id, .failure(RPCError(.unavailable, reason))) }
      closeReason = reason
      close()
    }
  }

  private func protocolError(_ reason: String) {
    var goAway = RpcV1.GoAway()
    goAway.code = .goawayProtocolError
    goAway.reason = reason
    writer.append(.goAway, stream: 0, goAway)
    for id in Array(streams.keys) {
      finish(id, .failure(RPCError(.internal, "protocol error from \(address): \(reason)")))
    }
    close()
  }

  /// Closes the connection (calls in flight fail with UNAVAILABLE).
  func close() {
    guard !closed else { return }
    writer.flush()
    closed = true
    context.close(promise: nil)
  }

  // MARK: Writing
}

/// How a call ended successfully: the response of a unary call and the status's trailers.
struct CallOutcome: Sendable {
  var response: ByteBuffer?
  var trailers: Metadata
}

/// Marks a send that failed because the call had already ended: the call's own status (often
/// the server's refusal) says why, and the client reports that instead.
struct CallEnded: Error {}
