import NIOCore
import ShoalProto

/// One server connection on its event loop: reads frames, opens a stream per CALL, runs the
/// method's handler in a task on the same event loop, and writes responses, statuses, flow
/// control and connection frames. Connection errors end in GOAWAY with the reason.
final class ServerConnectionHandler: ChannelInboundHandler {
  typealias InboundIn = ByteBuffer
  typealias OutboundOut = ByteBuffer

  /// The event-loop side of one stream.
  final class Stream: FlowControlledStream {
    var machine: StreamStateMachine
    let inbound: InboundMessageQueue
    var task: Task<Void, Never>?
    var deadlineTimer: Scheduled<Void>?
    var writeWaiters: [EventLoopPromise<Void>] = []

    init(machine: StreamStateMachine, inbound: InboundMessageQueue) {
      self.machine = machine
      self.inbound = inbound
    }
  }

  private let server: ServerCore
  private let config: ConnectionConfig
  private let codec: MessageCodec
  private var decoder: FrameDecoder
  private var received = ByteBuffer()
  private var helloReceived = false
  private var peerInitialWindow = 64 << 10
  private var streams: [UInt32: Stream] = [:]
  private var highestStreamID: UInt32 = 0
  private var draining = false
  private var closed: Bool {
    get { writer?.isClosed ?? false }
    set { writer.isClosed = newValue }
  }
  // Set in handlerAdded, before NIO delivers any event that reads it.
  // swift-format-ignore: NeverUseImplicitlyUnwrappedOptionals
  private var context: ChannelHandlerContext!
  // swift-format-ignore: NeverUseImplicitlyUnwrappedOptionals
  private var executor: EventLoopTaskExecutor!
  // swift-format-ignore: NeverUseImplicitlyUnwrappedOptionals
  private var writer: FrameWriter!
  private var peer = "unknown"
  /// Whether the connection is inside TLS.
  private let encrypted: Bool
  /// Why calls with a token are refused on this connection (plaintext TCP off the machine), or nil.
  private var tokenRefusal: String?
  private var keepalive: KeepaliveState?
  private var keepaliveTimer: RepeatedTask?

  init(server: ServerCore, encrypted: Bool) {
    self.server = server
    self.encrypted = encrypted
    config = server.config.connection
    codec = MessageCodec(config: config)
    decoder = FrameDecoder(maxMessageSize: config.maxMessageSize, maxFrameSize: config.maxFrameSize)
  }

  private var loopBound: NIOLoopBound<ServerConnectionHandler> { NIOLoopBound(self, eventLoop: context.eventLoop) }

  // MARK: Channel events

  func handlerAdded(context: ChannelHandlerContext) {
    self.context = context
    writer = FrameWriter(context: context)
    executor = EventLoopTaskExecutor(context.eventLoop)
    if case .unixDomainSocket = context.channel.localAddress {
      peer = "unix"
    } else if let address = context.channel.remoteAddress {
      peer = "\(address.ipAddress ?? "?"):\(address.port ?? 0)"
      let local = context.channel.localAddress?.ipAddress ?? "?"
      if !encrypted && !config.security.allowsPlaintextTokens && !RPCAddress.isLoopback(local) {
        tokenRefusal = "the call came with a token over plaintext TCP to \(local), which is not loopback"
      }
    }
    server.connectionOpened(loopBound)
  }

  func channelActive(context: ChannelHandlerContext) {
    var hello = RpcV1.Hello()
    hello.protocolVersion = 1
    hello.acceptEncodings = config.compression.enabled ? ["zstd"] : []
    hello.maxFrameSize = UInt32(config.maxMessageSize)
    hello.initialWindow = UInt32(config.initialWindow)
    hello.peerName = config.peerName
    writer.append(.hello, stream: 0, hello)
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
    for (id, _) in streams { abandon(id, RPCError(.unavailable, "the connection closed")) }
    server.connectionClosed(ObjectIdentifier(self))
    context.fireChannelInactive()
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    var bytes = unwrapInboundIn(data)
    keepalive?.didRead(at: .now())
    if received.readableBytes == 0 {
      received = bytes
    } else {
      received.writeBuffer(&bytes)
    }
    writer.readBurstStarted()
    do {
      while !closed, let decoded = try decoder.next(from: &received) {
        switch decoded {
        case .frame(let frame): try handle(frame)
        case .oversizedMessage(let stream, let size):
          fail(
            stream,
            RPCError(
              .resourceExhausted,
              "message of \(size) bytes exceeds the server's limit of \(config.maxMessageSize) bytes"))
        }
      }
    } catch let error as FrameError {
      goAway(error.code == .frameTooLarge ? .goawayFrameTooLarge : .goawayProtocolError, error.message)
    } catch let error as RPCError {
      goAway(.goawayProtocolError, error.message)
    } catch {
      goAway(.goawayInternalError, "\(error)")
    }
    received.discardReadBytes()
  }

  func channelReadComplete(context: ChannelHandlerContext) {
    writer.readBurstEnded()
  }

  func channelWritabilityChanged(context: ChannelHandlerContext) {
    if context.channel.isWritable { wakeWriters() }
    context.fireChannelWritabilityChanged()
  }

  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    context.close(promise: nil)
  }

  // MARK: Frames

  private func handle(_ frame: Frame) throws {
    guard helloReceived else {
      guard frame.type == .hello else {
        throw RPCError(.internal, "the first frame must be HELLO, not \(frame.type)")
      }
      let hello = try frame.payload.decodeMessage(as: RpcV1.Hello.self)
      guard hello.protocolVersion == 1 else {
        throw RPCError(
          .internal, "protocol version \(hello.protocolVersion) is not supported; this server speaks version 1")
      }
      helloReceived = true
      codec.peerAcceptsZstd = hello.acceptEncodings.contains("zstd")
      if hello.maxFrameSize > 0 { codec.maxSendSize = Int(hello.maxFrameSize) }
      peerInitialWindow = Int(hello.initialWindow)
      return
    }
    switch frame.type {
    case .hello: throw RPCError(.internal, "a second HELLO")
    case .call: try open(frame)
    case .message: receiveMessage(frame)
    case .cancel: abandon(frame.stream, RPCError(.cancelled, "the client cancelled the call"))
    case .window:
      guard let stream = streams[frame.stream] else { return }
      do {
        try stream.machine.receiveWindowUpdate(frame.payload.getInteger(at: frame.payload.readerIndex)!)
        wakeWriters(stream)
      } catch { fail(frame.stream, RPCError(error.code, error.message)) }
    case .ping:
      writer.append(Frame(type: .pong, stream: 0, payload: frame.payload))
    case .pong: break
    case .goAway:
      draining = true
      closeIfDrained()
    case .status: throw RPCError(.internal, "a client sent STATUS on stream \(frame.stream)")
    }
  }

  private func open(_ frame: Frame) throws {
    let id = frame.stream
    guard id > highestStreamID else {
      throw RPCError(.internal, "stream id \(id) is not above the last one opened (\(highestStreamID))")
    }
    highestStreamID = id
    if draining {
      return writeStatus(id, RPCError(.unavailable, "the server is shutting down; retry on another connection"))
    }
    let header: RpcV1.CallHeader
    let metadata: Metadata
    do {
      header = try frame.payload.decodeMessage(as: RpcV1.CallHeader.self)
      metadata = try Metadata(entries: header.metadata)
    } catch {
      return writeStatus(id, RPCError(from: error))
    }
    if let tokenRefusal, metadata["authorization"] != nil {
      return writeStatus(id, .plaintextToken(tokenRefusal))
    }
    guard let route = server.router.route(header.method) else {
      return writeStatus(id, RPCError(.unimplemented, "method \(header.method) is not served here"))
    }
    guard streams.count < config.maxConcurrentStreams else {
      return writeStatus(
        id,
        RPCError(
          .resourceExhausted, "too many concurrent calls on this connection (limit \(config.maxConcurrentStreams))"))
    }

    var machine = StreamStateMachine(
      role: .server, initialSendWindow: peerInitialWindow, initialReceiveWindow: config.initialWindow)
    try machine.receiveCall()
    let loop = loopBound
    let inbound = InboundMessageQueue { size in
      if loop.eventLoop.inEventLoop {
        loop.value.consumed(size, stream: id)
      } else {
        loop.eventLoop.execute { loop.value.consumed(size, stream: id) }
      }
    }
    let stream = Stream(machine: machine, inbound: inbound)
    streams[id] = stream

    let timeout = Duration.microseconds(Int64(clamping: header.timeoutUs))
    let deadline: ContinuousClock.Instant? = header.timeoutUs > 0 ? ContinuousClock.now + timeout : nil
    if header.timeoutUs > 0 {
      stream.deadlineTimer = context.eventLoop.scheduleTask(in: .microseconds(Int64(clamping: header.timeoutUs))) {
        loop.value.fail(
          id, RPCError(.deadlineExceeded, "the call's deadline of \(timeout) passed before the server finished"))
      }
    }
    let callContext = ServerContext(
      method: route.descriptor, metadata: metadata, deadline: deadline, peer: peer, trailers: ResponseTrailers())
    let call = ServerCall(streamID: id, context: callContext, inbound: inbound, connection: loop)
    let interceptors = server.interceptors
    stream.task = Self.start(route, call, interceptors: interceptors, deadline: deadline, on: executor)
  }

  private static func start(
    _ route: ServiceRouter.Route, _ call: ServerCall, interceptors: [any ServerInterceptor],
    deadline: ContinuousClock.Instant?,
    on executor: EventLoopTaskExecutor
  ) -> Task<Void, Never> {
    Task(executorPreference: executor) {
      await run(route, call, interceptors: interceptors, deadline: deadline)
    }
  }

  private static func run(
    _ route: ServiceRouter.Route, _ call: ServerCall, interceptors: [any ServerInterceptor],
    deadline: ContinuousClock.Instant?
  ) async {
    do {
      try await CallScope.$deadline.withValue(deadline) {
        try await intercept(interceptors[...], call.context) { try await route.run(call) }
      }
    } catch {
      call.finish(.failure(RPCError(from: error)))
    }
  }

  private static func intercept(
    _ interceptors: ArraySlice<any ServerInterceptor>, _ context: ServerContext,
    _ handler: @escaping @Sendable () async throws -> Void
  ) async throws {
    guard let first = interceptors.first else { return try await handler() }
    try await first.intercept(context) { try await intercept(interceptors.dropFirst(), context, handler) }
  }

  private func receiveMessage(_ frame: Frame) {
    guard let stream = streams[frame.stream] else {
      if frame.stream > highestStreamID {
        writeStatus(frame.stream, RPCError(.internal, "MESSAGE on stream \(frame.stream), which was never opened"))
      }
      return
    }
    do {
      let payload = try codec.payload(of: frame)
      let endStream = frame.flags.contains(.endStream)
      try stream.machine.receiveMessage(size: frame.payload.readableBytes, endStream: endStream)
      if payload.readableBytes > 0 || !endStream { stream.inbound.append(payload) }
      if endStream { stream.inbound.finish(.success(())) }
    } catch let error as StreamError {
      fail(frame.stream, RPCError(error.code, error.message))
    } catch {
      fail(frame.stream, RPCError(from: error))
    }
  }

  fileprivate func consumed(_ size: Int, stream id: UInt32) {
    guard let stream = streams[id], let credit = stream.machine.consumed(size: size) else { return }
    writer.appendWindow(stream: id, credit: credit)
  }

  // MARK: Responses (called by ServerCall on the event loop)

  func sendMessage<M: ProtoMessage>(_ message: M, stream id: UInt32) -> EventLoopFuture<Void> {
    guard let stream = streams[id], !stream.machine.isClosed else {
      return context.eventLoop.makeFailedFuture(RPCError(.cancelled, "the call has ended"))
    }
    do {
      let before = writer.buffer.readableBytes
      try codec.writeMessage(message, stream: id, endStream: false, to: &writer.buffer)
      try stream.machine.sendMessage(size: writer.buffer.readableBytes - before - Frame.headerSize, endStream: false)
      writer.scheduleFlush()
    } catch {
      return context.eventLoop.makeFailedFuture(RPCError(from: error))
    }
    if stream.machine.canSend && context.channel.isWritable { return context.eventLoop.makeSucceededVoidFuture() }
    let promise = context.eventLoop.makePromise(of: Void.self)
    stream.writeWaiters.append(promise)
    return promise.futureResult
  }

  func finish<M: ProtoMessage>(stream id: UInt32, response: M, trailers: Metadata) {
    guard let stream = streams[id], !stream.machine.isClosed else { return }
    do {
      try codec.writeMessage(response, stream: id, endStream: false, to: &writer.buffer)
    } catch {
      return finish(stream: id, result: .failure(RPCError(from: error)), trailers: trailers)
    }
    finish(stream: id, result: .success(()), trailers: trailers)
  }

  func finish(stream id: UInt32, result: Result<Void, RPCError>, trailers: Metadata = []) {
    guard let stream = streams.removeValue(forKey: id) else { return }
    stream.deadlineTimer?.cancel()
    switch result {
    case .success:
      writeStatus(id, nil, trailers: trailers)
      stream.inbound.finish(.success(()))
    case .failure(let error):
      writeStatus(id, error, trailers: trailers)
      stream.inbound.finish(.failure(error))
    }
    for waiter in stream.writeWaiters { waiter.fail(RPCError(.cancelled, "the call has ended")) }
    closeIfDrained()
  }

  /// Ends a stream with an error status and stops its handler.
  private func fail(_ id: UInt32, _ error: RPCError) {
    guard let stream = streams[id] else {
      if id > highestStreamID { writeStatus(id, error) }
      return
    }
    stream.task?.cancel()
    finish(stream: id, result: .failure(error))
  }

  /// Forgets a stream the client cancelled (or that died with the connection): no status.
  private func abandon(_ id: UInt32, _ error: RPCError) {
    guard let stream = streams.removeValue(forKey: id) else { return }
    stream.deadlineTimer?.cancel()
    stream.task?.cancel()
    stream.inbound.finish(.failure(error))
    for waiter in stream.writeWaiters { waiter.fail(error) }
    closeIfDrained()
  }

  private func wakeWriters(_ only: Stream? = nil) {
    guard context.channel.isWritable else { return }
    for stream in only.map({ [$0] }) ?? Array(streams.values) { stream.wakeWritersIfOpen() }
  }

  private func keepaliveTick() {
    guard !closed, var state = keepalive else { return }
    let action = state.tick(at: .now())
    keepalive = state
    switch action {
    case .none: break
    case .sendPing:
      writer.appendPing()
    case .timedOut:
      goAway(.goawayKeepaliveTimeout, "no answer to a keepalive ping within \(config.keepalive.timeout)")
    }
  }

  // MARK: Shutdown

  /// Starts a graceful shutdown: GOAWAY, refuse new calls, close once the last call ends.
  func beginShutdown() {
    guard !draining, !closed else { return }
    draining = true
    var goAway = RpcV1.GoAway()
    goAway.lastStreamId = highestStreamID
    goAway.code = .goawayShuttingDown
    goAway.reason = "the server is shutting down"
    writer.append(.goAway, stream: 0, goAway)
    closeIfDrained()
  }

  /// Ends every call still running with UNAVAILABLE and closes (the grace period is over).
  func forceClose() {
    for id in Array(streams.keys) {
      fail(id, RPCError(.unavailable, "the server shut down before the call finished"))
    }
    flushAndClose()
  }

  private func closeIfDrained() {
    if draining && streams.isEmpty { flushAndClose() }
  }

  private func goAway(_ code: RpcV1.GoAwayCode, _ reason: String) {
    guard !closed else { return }
    var goAway = RpcV1.GoAway()
    goAway.lastStreamId = highestStreamID
    goAway.code = code
    goAway.reason = reason
    writer.append(.goAway, stream: 0, goAway)
    for id in Array(streams.keys) { fail(id, RPCError(.unavailable, "connection error: \(reason)")) }
    flushAndClose()
  }

  private func flushAndClose() {
    guard !closed else { return }
    writer.flush()
    closed = true
    context.close(promise: nil)
  }

  private func writeStatus(_ id: UInt32, _ error: RPCError?, trailers: Metadata = []) {
    guard error != nil || !trailers.isEmpty else {
      // OK without trailers encodes to an empty Status.
      return writer.appendEmpty(.status, stream: id)
    }
    var status = error?.status ?? RpcV1.Status()
    status.trailers = trailers.entries + status.trailers
    writer.append(.status, stream: id, status)
  }

}
