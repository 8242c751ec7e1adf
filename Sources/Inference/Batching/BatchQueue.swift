/// The queue of one model's requests and the decision of what to run next: which requests form
/// a batch, or how long to wait for more. A pure state machine; `DynamicBatcher` runs it.
///
/// Requests are taken by priority (lower first), then in arrival order. A batch is the first
/// request and the later ones of its priority whose inputs match it except in dimension 0, up to
/// the policy's rows; a request with more rows than that runs alone. Priorities never share a
/// batch: an online call queued behind a job's rows runs in a batch of online calls only, as
/// small and quick as they make it, not in one the job's rows fill. A batch is sent when it is full, when it
/// reaches the largest preferred size, or when its first request has waited the policy's delay.
struct BatchQueue<Payload> {
  /// One waiting request.
  struct Entry {
    var id: UInt64
    /// Rows along dimension 0 (1 for a model that is never batched).
    var rows: Int
    /// What must match for two requests to share an execution.
    var key: BatchKey
    /// Lower runs first: online calls are 0, jobs higher.
    var priority: Int
    var enqueuedAt: ContinuousClock.Instant
    var deadline: ContinuousClock.Instant?
    var payload: Payload
  }

  /// What to do now.
  enum Decision {
    /// Run these requests as one execution.
    case run([Entry])
    /// Nothing can be sent before this instant (unless another request arrives).
    case wait(until: ContinuousClock.Instant)
    /// The queue is empty.
    case empty
  }

  let policy: BatchingPolicy
  /// False for a model whose dimension 0 is fixed: every request runs alone.
  let batchable: Bool
  private(set) var entries: [Entry] = []

  init(policy: BatchingPolicy, batchable: Bool) {
    self.policy = policy
    self.batchable = batchable && policy.maxBatchSize > 1
  }

  var count: Int { entries.count }

  /// Adds a request; false when the queue is full (the policy's max_queue_size).
  mutating func enqueue(_ entry: Entry) -> Bool {
    guard policy.maxQueueSize == 0 || entries.count < policy.maxQueueSize else { return false }
    let position = entries.lastIndex { $0.priority <= entry.priority }.map { $0 + 1 } ?? 0
    entries.insert(entry, at: position)
    return true
  }

  /// Takes a request out (cancelled, or its deadline passed); nil when it is no longer queued.
  mutating func remove(id: UInt64) -> Entry? {
    guard let index = entries.firstIndex(where: { $0.id == id }) else { return nil }
    return entries.remove(at: index)
  }

  /// The soonest deadline of a waiting request.
  var earliestDeadline: ContinuousClock.Instant? { entries.compactMap(\.deadline).min() }

  /// Takes out every request whose deadline has passed.
  mutating func removeExpired(now: ContinuousClock.Instant) -> [Entry] {
    guard entries.contains(where: { $0.deadline.map { $0 <= now } ?? false }) else { return [] }
    var expired: [Entry] = []
    entries.removeAll { entry in
      guard let deadline = entry.deadline, deadline <= now else { return false }
      expired.append(entry)
      return true
    }
    return expired
  }

  /// The next execution, taken out of the queue, or how long to wait for one.
  mutating func next(now: ContinuousClock.Instant) -> Decision {
    guard let first = entries.first else { return .empty }
    guard batchable, first.rows < policy.maxBatchSize else { return .run([entries.removeFirst()]) }
    var chosen = [0]
    var rows = first.rows
    var full = false
    for index in entries.indices.dropFirst()
    where entries[index].key == first.key && entries[index].priority == first.priority {
      guard rows + entries[index].rows <= policy.maxBatchSize else {
        full = true
        break
      }
      chosen.append(index)
      rows += entries[index].rows
      if rows == policy.maxBatchSize {
        full = true
        break
      }
    }
    let largestPreferred = policy.preferredBatchSizes.max() ?? Int.max
    let due = first.enqueuedAt + .microseconds(policy.maxQueueDelayMicroseconds)
    guard full || rows >= largestPreferred || now >= due else { return .wait(until: due) }
    if !full, !policy.preferredBatchSizes.isEmpty {
      // Cut to the largest preferred size the requests fill exactly, if any.
      var total = 0
      var cut: Int?
      for (position, index) in chosen.enumerated() {
        total += entries[index].rows
        if policy.preferredBatchSizes.contains(total) { cut = position + 1 }
      }
      if let cut { chosen = Array(chosen.prefix(cut)) }
    }
    let batch = chosen.map { entries[$0] }
    for index in chosen.reversed() { entries.remove(at: index) }
    return .run(batch)
  }
}

/// The element types and dimensions after the first of a request's inputs: requests with equal
/// keys can be stacked along dimension 0.
struct BatchKey: Hashable, Sendable {
  var inputs: [Input]

  struct Input: Hashable, Sendable {
    var name: String
    var dataType: Int32
    var rowShape: [Int]
  }
}
