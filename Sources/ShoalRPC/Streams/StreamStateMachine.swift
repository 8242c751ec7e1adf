/// The life of one stream, from one side: which frames may be sent and received next, and the
/// per-stream flow-control windows. Pure, so that every rule is tested without sockets.
///
/// Unary, client-streaming, server-streaming and bidirectional calls are all this one machine:
/// the client opens with CALL, each side sends MESSAGE frames and half-closes with END_STREAM,
/// and the server's STATUS (or a CANCEL from either side) closes the stream.
///
/// Flow control: each side may send a MESSAGE while its send window is positive; the message's
/// size is taken from the window, which may go negative for a message larger than it. The
/// receiver returns credit in WINDOW frames as its application consumes messages. A message
/// that arrives when the receive window is already used up is a flow-control violation.
public struct StreamStateMachine: Sendable {
  /// Which end of the call this side is.
  public enum Role: Sendable, Hashable {
    case client
    case server
  }

  private enum State: Hashable {
    case idle
    case open(localClosed: Bool, remoteClosed: Bool)
    case closed
  }

  /// Which end of the call this side is.
  public let role: Role
  private var state: State = .idle
  /// Bytes this side may still send before it must wait for WINDOW credit.
  public private(set) var sendWindow: Int
  /// Bytes the peer may still send before this side has granted more.
  public private(set) var receiveWindow: Int
  private let initialReceiveWindow: Int
  private var consumedSinceUpdate = 0

  /// A stream that has not been opened yet.
  ///
  /// - Parameters:
  ///   - initialSendWindow: the window the peer granted in its HELLO.
  ///   - initialReceiveWindow: the window this side granted in its HELLO.
  public init(role: Role, initialSendWindow: Int, initialReceiveWindow: Int) {
    self.role = role
    sendWindow = initialSendWindow
    receiveWindow = initialReceiveWindow
    self.initialReceiveWindow = initialReceiveWindow
  }

  /// Whether the stream has ended (status sent or received, or cancelled).
  public var isClosed: Bool { state == .closed }

  /// Whether this side may send messages now (open, not half-closed, window positive).
  public var canSend: Bool {
    if case .open(localClosed: false, _) = state { return sendWindow > 0 }
    return false
  }

  /// The client sends CALL.
  public mutating func sendCall() throws(StreamError) {
    guard role == .client, state == .idle else { throw misuse("send CALL") }
    state = .open(localClosed: false, remoteClosed: false)
  }

  /// The server receives CALL.
  public mutating func receiveCall() throws(StreamError) {
    guard role == .server, state == .idle else { throw violation("CALL on a stream that is already open") }
    state = .open(localClosed: false, remoteClosed: false)
  }

  /// This side sends a MESSAGE of `size` bytes (0 with `endStream` for a bare half-close).
  public mutating func sendMessage(size: Int, endStream: Bool) throws(StreamError) {
    guard case .open(localClosed: false, let remoteClosed) = state else { throw misuse("send a message") }
    if size > 0 {
      guard sendWindow > 0 else {
        throw StreamError(.internal, "sent a message with no flow-control window left; wait for WINDOW credit")
      }
      sendWindow -= size
    }
    if endStream { state = .open(localClosed: true, remoteClosed: remoteClosed) }
  }

  /// This side receives a MESSAGE of `size` bytes.
  public mutating func receiveMessage(size: Int, endStream: Bool) throws(StreamError) {
    guard case .open(let localClosed, remoteClosed: false) = state else {
      throw violation(state == .idle ? "MESSAGE before CALL" : "MESSAGE after the peer ended its stream")
    }
    if size > 0 {
      guard receiveWindow > 0 else {
        throw violation("MESSAGE of \(size) bytes beyond the flow-control window")
      }
      receiveWindow -= size
    }
    if endStream { state = .open(localClosed: localClosed, remoteClosed: true) }
  }

  /// The server sends STATUS, which closes the stream.
  public mutating func sendStatus() throws(StreamError) {
    guard role == .server, case .open = state else { throw misuse("send STATUS") }
    state = .closed
  }

  /// The client receives STATUS, which closes the stream.
  public mutating func receiveStatus() throws(StreamError) {
    guard role == .client, case .open = state else { throw violation("STATUS on a stream that is not open") }
    state = .closed
  }

  /// This side abandons the stream; returns whether a CANCEL frame must go to the peer (not if
  /// the stream had already ended).
  public mutating func cancel() -> Bool {
    defer { state = .closed }
    if case .open = state { return true }
    return false
  }

  /// The peer abandoned the stream.
  public mutating func receiveCancel() {
    state = .closed
  }

  /// The peer granted `credit` more bytes.
  public mutating func receiveWindowUpdate(_ credit: UInt32) throws(StreamError) {
    let (sum, overflow) = sendWindow.addingReportingOverflow(Int(credit))
    guard !overflow, sum <= Int(Int32.max) else { throw violation("WINDOW credit overflows the window") }
    sendWindow = sum
  }

  /// The application consumed a received message of `size` bytes. Returns the credit to send in
  /// a WINDOW frame, batched until half the initial window is consumed, or nil.
  public mutating func consumed(size: Int) -> UInt32? {
    guard !isClosed else { return nil }
    consumedSinceUpdate += size
    guard consumedSinceUpdate >= max(initialReceiveWindow / 2, 1) else { return nil }
    let credit = consumedSinceUpdate
    consumedSinceUpdate = 0
    receiveWindow += credit
    return UInt32(clamping: credit)
  }

  private func misuse(_ action: String) -> StreamError {
    StreamError(.internal, "cannot \(action) on a \(role) stream that is \(stateName)")
  }

  private func violation(_ what: String) -> StreamError {
    StreamError(.internal, "protocol violation: \(what) (\(role) stream is \(stateName))")
  }

  private var stateName: String {
    switch state {
    case .idle: "idle"
    case .open(false, false): "open"
    case .open(true, false): "half-closed by this side"
    case .open(false, true): "half-closed by the peer"
    case .open(true, true): "half-closed by both sides"
    case .closed: "closed"
    }
  }
}
