import Testing

@testable import Inference

struct BatchQueueTests {
  typealias Queue = BatchQueue<Int>
  let start = ContinuousClock.now

  func entry(
    _ id: UInt64, rows: Int = 1, shape: [Int] = [4], priority: Int = 0, at offset: Duration = .zero
  )
    -> Queue.Entry
  {
    Queue.Entry(
      id: id, rows: rows, key: BatchKey(inputs: [.init(name: "x", dataType: 1, rowShape: shape)]), priority: priority,
      enqueuedAt: start + offset, deadline: nil, payload: Int(id))
  }

  func policy(max: Int = 8, delayUs: Int64 = 0, preferred: [Int] = [], queue: Int = 0) -> BatchingPolicy {
    BatchingPolicy(
      maxBatchSize: max, maxQueueDelayMicroseconds: delayUs, preferredBatchSizes: preferred, maxQueueSize: queue,
      instances: 1)
  }

  func ids(_ decision: Queue.Decision) -> [UInt64]? {
    if case .run(let batch) = decision { return batch.map(\.id) }
    return nil
  }

  @Test func withoutDelayWhatIsQueuedRunsAtOnce() {
    var queue = Queue(policy: policy(), batchable: true)
    for id in 0..<3 {
      let added = queue.enqueue(entry(UInt64(id)))
      #expect(added)
    }
    #expect(ids(queue.next(now: start)) == [0, 1, 2])
    guard case .empty = queue.next(now: start) else { Issue.record("the queue should be empty"); return }
  }

  @Test func aFullBatchGoesBeforeTheDelayAndTheRestWaits() {
    var queue = Queue(policy: policy(max: 4, delayUs: 2000), batchable: true)
    for id in 0..<6 { _ = queue.enqueue(entry(UInt64(id))) }
    #expect(ids(queue.next(now: start)) == [0, 1, 2, 3])
    guard case .wait(let until) = queue.next(now: start) else { Issue.record("expected a wait"); return }
    #expect(until == start + .microseconds(2000))
    #expect(ids(queue.next(now: start + .microseconds(2000))) == [4, 5])
  }

  @Test func rowsCountAndAnOversizedRequestRunsAlone() {
    var queue = Queue(policy: policy(max: 4), batchable: true)
    _ = queue.enqueue(entry(0, rows: 3))
    _ = queue.enqueue(entry(1, rows: 2))
    _ = queue.enqueue(entry(2, rows: 1))
    _ = queue.enqueue(entry(3, rows: 9))
    #expect(ids(queue.next(now: start)) == [0])
    #expect(ids(queue.next(now: start)) == [1, 2])
    #expect(ids(queue.next(now: start)) == [3])
  }

  @Test func onlyMatchingShapesShareABatch() {
    var queue = Queue(policy: policy(), batchable: true)
    _ = queue.enqueue(entry(0, shape: [4]))
    _ = queue.enqueue(entry(1, shape: [5]))
    _ = queue.enqueue(entry(2, shape: [4]))
    #expect(ids(queue.next(now: start)) == [0, 2])
    #expect(ids(queue.next(now: start)) == [1])
  }

  @Test func preferredSizesSendEarlyAndCut() {
    var queue = Queue(policy: policy(max: 8, delayUs: 5000, preferred: [2, 4]), batchable: true)
    _ = queue.enqueue(entry(0))
    guard case .wait = queue.next(now: start) else { Issue.record("one request waits"); return }
    for id in 1..<5 { _ = queue.enqueue(entry(UInt64(id))) }
    // Five queued: the largest preferred size is reached, so four go now.
    #expect(ids(queue.next(now: start)) == [0, 1, 2, 3])
    _ = queue.enqueue(entry(5))
    _ = queue.enqueue(entry(6))
    // Cut short by the delay: three queued, cut to the preferred two.
    #expect(ids(queue.next(now: start + .seconds(1))) == [4, 5])
  }

  @Test func aModelWithFixedRowsNeverBatchesAndPriorityComesFirst() {
    var queue = Queue(policy: policy(), batchable: false)
    _ = queue.enqueue(entry(0, priority: 1))
    _ = queue.enqueue(entry(1, priority: 1))
    _ = queue.enqueue(entry(2, priority: 0))
    #expect(ids(queue.next(now: start)) == [2])
    #expect(ids(queue.next(now: start)) == [0])
    #expect(ids(queue.next(now: start)) == [1])
  }

  /// An online call (priority 0) behind a job's rows (10) runs first, in a batch of its own.
  @Test func prioritiesNeverShareABatch() {
    var queue = Queue(policy: policy(max: 4), batchable: true)
    for id in 0..<6 { _ = queue.enqueue(entry(UInt64(id), priority: 10)) }
    _ = queue.enqueue(entry(6, priority: 0))
    _ = queue.enqueue(entry(7, priority: 0))
    #expect(ids(queue.next(now: start + .seconds(1))) == [6, 7])
    #expect(ids(queue.next(now: start + .seconds(1))) == [0, 1, 2, 3])
  }

  @Test func theQueueLimitExpiryAndRemoval() {
    var queue = Queue(policy: policy(queue: 2), batchable: true)
    var expiring = entry(0)
    expiring.deadline = start + .milliseconds(1)
    let added = [queue.enqueue(expiring), queue.enqueue(entry(1)), queue.enqueue(entry(2))]
    #expect(added == [true, true, false])
    #expect(queue.removeExpired(now: start).isEmpty)
    #expect(queue.removeExpired(now: start + .milliseconds(1)).map(\.id) == [0])
    #expect(queue.remove(id: 1)?.id == 1)
    #expect(queue.remove(id: 1) == nil)
    #expect(queue.count == 0)
  }
}
