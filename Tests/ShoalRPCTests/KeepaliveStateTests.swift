import NIOCore
import Testing

@testable import ShoalRPC

/// Keepalive decisions, without sockets or clocks.
struct KeepaliveStateTests {
  private let start = NIODeadline.uptimeNanoseconds(1_000_000_000)

  @Test func pingsOnlyAfterSilenceAndGivesUpAfterTheTimeout() {
    var state = KeepaliveState(interval: .seconds(30), timeout: .seconds(20), now: start)
    #expect(state.tick(at: start + .seconds(10)) == .none)
    state.didRead(at: start + .seconds(20))
    #expect(state.tick(at: start + .seconds(40)) == .none)
    #expect(state.tick(at: start + .seconds(50)) == .sendPing)
    #expect(state.tick(at: start + .seconds(60)) == .none)
    #expect(state.tick(at: start + .seconds(70)) == .timedOut)
  }

  @Test func anyReadAnswersAnOutstandingPing() {
    var state = KeepaliveState(interval: .seconds(1), timeout: .seconds(1), now: start)
    #expect(state.tick(at: start + .seconds(1)) == .sendPing)
    state.didRead(at: start + .milliseconds(1500))
    #expect(state.tick(at: start + .seconds(2)) == .none)
    #expect(state.tick(at: start + .seconds(3)) == .sendPing)
  }
}
