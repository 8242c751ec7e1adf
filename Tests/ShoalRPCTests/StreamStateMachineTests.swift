import ShoalRPC
import Testing

/// Every call kind as one stream machine, the rules it enforces, and flow-control credit.
struct StreamStateMachineTests {
  private func pair(window: Int = 1000) -> (client: StreamStateMachine, server: StreamStateMachine) {
    (
      StreamStateMachine(role: .client, initialSendWindow: window, initialReceiveWindow: window),
      StreamStateMachine(role: .server, initialSendWindow: window, initialReceiveWindow: window)
    )
  }

  @Test func unaryCall() throws {
    var (client, server) = pair()
    try client.sendCall()
    try server.receiveCall()
    try client.sendMessage(size: 10, endStream: true)
    try server.receiveMessage(size: 10, endStream: true)
    try server.sendMessage(size: 20, endStream: false)
    try client.receiveMessage(size: 20, endStream: false)
    try server.sendStatus()
    try client.receiveStatus()
    #expect(client.isClosed && server.isClosed)
  }

  @Test func bidirectionalStreamingInterleaves() throws {
    var (client, server) = pair()
    try client.sendCall()
    try server.receiveCall()
    for _ in 0..<5 {
      try client.sendMessage(size: 3, endStream: false)
      try server.receiveMessage(size: 3, endStream: false)
      try server.sendMessage(size: 4, endStream: false)
      try client.receiveMessage(size: 4, endStream: false)
    }
    try client.sendMessage(size: 0, endStream: true)
    try server.receiveMessage(size: 0, endStream: true)
    try server.sendMessage(size: 4, endStream: false)
    try server.sendStatus()
    #expect(server.isClosed)
  }

  @Test func messageAfterEndOfStreamIsAViolation() throws {
    var (_, server) = pair()
    try server.receiveCall()
    try server.receiveMessage(size: 1, endStream: true)
    #expect {
      try server.receiveMessage(size: 1, endStream: false)
    } throws: { ($0 as? StreamError)?.message.contains("after the peer ended its stream") == true }
  }

  @Test func framesOutOfOrderAreRefused() throws {
    var (client, server) = pair()
    #expect(throws: StreamError.self) { try server.receiveMessage(size: 1, endStream: false) }
    #expect(throws: StreamError.self) { try client.sendMessage(size: 1, endStream: false) }
    #expect(throws: StreamError.self) { try client.receiveCall() }
    #expect(throws: StreamError.self) { try server.sendCall() }
    try client.sendCall()
    #expect(throws: StreamError.self) { try client.sendCall() }
    #expect(throws: StreamError.self) { try client.sendStatus() }
    try server.receiveCall()
    #expect(throws: StreamError.self) { try server.receiveCall() }
    try server.sendStatus()
    #expect(throws: StreamError.self) { try server.sendMessage(size: 1, endStream: false) }
  }

  @Test func cancelSendsAFrameOnlyWhileOpen() throws {
    var (client, _) = pair()
    #expect(client.cancel() == false)
    var (open, _) = pair()
    try open.sendCall()
    #expect(open.cancel() == true)
    #expect(open.isClosed)
    #expect(open.cancel() == false)
  }

  @Test func sendWindowStopsTheSenderUntilCreditArrives() throws {
    var (client, server) = pair(window: 100)
    try client.sendCall()
    try server.receiveCall()
    try client.sendMessage(size: 150, endStream: false)  // one message may overdraw the window
    #expect(client.canSend == false)
    #expect(throws: StreamError.self) { try client.sendMessage(size: 1, endStream: false) }
    try server.receiveMessage(size: 150, endStream: false)
    #expect(throws: StreamError.self) { try server.receiveMessage(size: 1, endStream: false) }
    let granted = server.consumed(size: 150)
    let credit = try #require(granted)
    #expect(credit == 150)
    try client.receiveWindowUpdate(credit)
    #expect(client.sendWindow == 100)
    #expect(client.canSend)
    try server.receiveMessage(size: 10, endStream: false)
  }

  @Test func creditIsBatchedUntilHalfTheWindowIsConsumed() throws {
    var (_, server) = pair(window: 100)
    try server.receiveCall()
    try server.receiveMessage(size: 30, endStream: false)
    #expect(server.consumed(size: 30) == nil)
    try server.receiveMessage(size: 30, endStream: false)
    #expect(server.consumed(size: 30) == 60)
    #expect(server.receiveWindow == 100)
  }

  @Test func windowOverflowIsAViolation() throws {
    var (client, _) = pair()
    try client.sendCall()
    #expect(throws: StreamError.self) { try client.receiveWindowUpdate(UInt32.max) }
  }
}
