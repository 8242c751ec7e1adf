/// Batches handed from a stream's reader to its writer: the reader waits while `limit` tiles are
/// queued; the writer takes every batch queued (up to a number of tiles) at once.
actor BatchHandoff {
  private let limit: Int
  private var batches: [FeedbackStore.PutBatch] = []
  private var queued = 0
  private var finished = false
  private var writerWaiting: CheckedContinuation<Void, Never>?
  private var readerWaiting: CheckedContinuation<Void, Never>?
  /// Set when the writer stopped taking batches (it failed or was cancelled).
  private(set) var failed = false

  init(limit: Int) { self.limit = limit }

  func put(_ batch: FeedbackStore.PutBatch) async {
    while queued >= limit && !failed {
      await withCheckedContinuation { readerWaiting = $0 }
    }
    batches.append(batch)
    queued += batch.tiles.count
    writerWaiting?.resume()
    writerWaiting = nil
  }

  /// No more batches will come.
  func finish() {
    finished = true
    writerWaiting?.resume()
    writerWaiting = nil
  }

  /// The batches queued, at least one and then as many as fit in `tiles`; nil once finished and
  /// drained.
  func take(upTo tiles: Int) async -> [FeedbackStore.PutBatch]? {
    while batches.isEmpty && !finished {
      await withCheckedContinuation { writerWaiting = $0 }
    }
    guard !batches.isEmpty else { return nil }
    var count = 1
    var total = batches[0].tiles.count
    while count < batches.count, total + batches[count].tiles.count <= tiles {
      total += batches[count].tiles.count
      count += 1
    }
    let taken = Array(batches.prefix(count))
    batches.removeFirst(count)
    queued -= total
    readerWaiting?.resume()
    readerWaiting = nil
    return taken
  }

  /// The writer gave up: the reader stops waiting and stops reading.
  func fail() {
    failed = true
    readerWaiting?.resume()
    readerWaiting = nil
  }
}
