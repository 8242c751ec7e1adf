import ShoalProto
import ShoalService
import Testing

struct EventHubTests {
  @Test func aWatcherWhoseBacklogOverflowsHasItsStreamEnded() async {
    let hub = EventHub<Int64, RegistryV1.ModelEvent>()
    let (_, slow) = hub.subscribe(7, backlog: 1)
    let (fastToken, fast) = hub.subscribe(7, backlog: 10)
    let (_, other) = hub.subscribe(8, backlog: 10)
    for sequence in 1...3 {
      var event = RegistryV1.ModelEvent()
      event.sequence = Int64(sequence)
      hub.publish(event, to: 7)
    }
    // The slow watcher kept the first event, then its stream ended: it catches up from the store.
    var received: [Int64] = []
    for await event in slow { received.append(event.sequence) }
    #expect(received == [1])
    hub.unsubscribe(7, token: fastToken)
    var all: [Int64] = []
    for await event in fast { all.append(event.sequence) }
    #expect(all == [1, 2, 3])
    hub.unsubscribe(8, token: 2)
    var none = 0
    for await _ in other { none += 1 }
    #expect(none == 0)
  }
}
