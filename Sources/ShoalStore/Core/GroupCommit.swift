import Synchronization

/// Small writes that arrive together are committed together: one transaction (and one WAL flush)
/// for a group of requests instead of one each, as a database's group commit does.
///
/// Requests queue. The first to find fewer than `maxConcurrentGroups` committers running starts
/// one on a database thread, and that committer stays there while requests keep coming: it takes
/// every request waiting (up to `maxGroupSize`), applies each in one transaction, commits,
/// answers them and takes the next group, so groups follow each other without a hop back to the
/// callers' threads in between. A request alone is applied as it would be in its own
/// transaction. In a group each request runs under a savepoint (unless the writer takes the whole
/// group at once), so one that fails (an unknown run, a conflicting value) is rolled back alone
/// and fails alone; a failure of the database
/// itself (unavailable, or a conflict that needs the whole transaction again) fails or reruns the
/// group. Every request's response is given only after its group committed. On SQLite a request
/// that comes alone can instead be committed on its caller's thread (`commitsIdleOnCaller`).
public final class GroupCommit<Request: Sendable, Response: Sendable>: Sendable {
  private struct Waiter {
    let request: Request
    let continuation: CheckedContinuation<Result<Response, any Error>, Never>
  }

  private struct State {
    var waiting: [Waiter] = []
    var committers = 0
  }

  private let database: Database
  private let maxGroupSize: Int
  private let maxConcurrentGroups: Int
  private let apply: @Sendable (any SQLConnection, Request) throws -> Response
  private let applyGroup: (@Sendable (any SQLConnection, [Request]) throws -> [Result<Response, any Error>])?
  private let state = Mutex(State())
  private let groupsStarted = Atomic(0)
  private let commitsIdleOnCaller: Bool

  /// How many groups have been applied (committed or not) so far.
  public var groups: Int { groupsStarted.load(ordering: .relaxed) }
  /// Requests waiting for a group.
  var waiting: Int { state.withLock { $0.waiting.count } }
  /// Committers running now.
  var inProgress: Int { state.withLock { $0.committers } }

  /// Groups of at most `maxGroupSize` requests, `maxConcurrentGroups` of them committing at a
  /// time (1 suits SQLite, which has one writer). A request alone is written by `apply` in a
  /// transaction of its own. A group is written by `applyGroup` when given: it gets every request
  /// inside the group's transaction and returns a result for each, in order, for a writer that
  /// can do a group's common work once (one query, or one pipelined batch, for all of them). It
  /// must leave nothing of a request it fails (`eachUnderSavepoint` does that a request at a
  /// time, and is what a group gets without `applyGroup`), and throw only for a failure of the
  /// whole group. With `commitsIdleOnCaller`, a request that finds no group committing and
  /// nobody waiting is committed at once on the caller's thread (for SQLite, whose local commits
  /// are shorter than a thread's wake-up; not for a database across a network round trip).
  public init(
    database: Database, maxGroupSize: Int = 64, maxConcurrentGroups: Int = 1, commitsIdleOnCaller: Bool = false,
    apply: @escaping @Sendable (any SQLConnection, Request) throws -> Response,
    applyGroup: (@Sendable (any SQLConnection, [Request]) throws -> [Result<Response, any Error>])? = nil
  ) {
    self.database = database
    self.maxGroupSize = max(1, maxGroupSize)
    self.maxConcurrentGroups = max(1, maxConcurrentGroups)
    self.apply = apply
    self.applyGroup = applyGroup
    self.commitsIdleOnCaller = commitsIdleOnCaller
  }

  /// Writes `request` in the next group and returns its response once that group committed.
  public func submit(_ request: Request) async throws -> Response {
    // With `commitsIdleOnCaller`, a request that finds no committer running and nobody waiting
    // takes the committer and yields once, so that the requests started in the same turn of the
    // caller's event loop (one read of a connection) queue behind it. Alone still, it is
    // committed on this thread, sparing the two thread wake-ups of a hop to a database thread and
    // back (most of a lone call's time). Otherwise it heads the next group on a database thread,
    // as it would have without the option.
    var holdsCommitter = false
    if commitsIdleOnCaller {
      holdsCommitter = state.withLock { state in
        guard state.waiting.isEmpty, state.committers < maxConcurrentGroups else { return false }
        state.committers += 1
        return true
      }
      if holdsCommitter {
        await Task.yield()
        if let result = commitAloneOnCaller(request) { return try result.get() }
      }
    }
    let result = await withCheckedContinuation { continuation in
      let starts = state.withLock { state in
        let waiter = Waiter(request: request, continuation: continuation)
        if holdsCommitter {
          state.waiting.insert(waiter, at: 0)
          return true
        }
        state.waiting.append(waiter)
        guard state.committers < maxConcurrentGroups else { return false }
        state.committers += 1
        return true
      }
      if starts { database.detached { session in self.commitWhileWaiting(session) } }
    }
    return try result.get()
  }

  /// For a request that holds the committer: commits it on the calling thread if nobody waits
  /// and a connection is idle, then hands the committer to a database thread for whoever queued
  /// meanwhile, or gives it up. Nil, with the committer still held, when it could not.
  private func commitAloneOnCaller(_ request: Request) -> Result<Response, any Error>? {
    guard state.withLock({ $0.waiting.isEmpty }) else { return nil }
    guard let committed = database.onCallingThread({ session in commitGroup([request], session)[0] }) else {
      return nil
    }
    let handOver = state.withLock { state in
      guard state.waiting.isEmpty else { return true }
      state.committers -= 1
      return false
    }
    if handOver { database.detached { session in self.commitWhileWaiting(session) } }
    return committed
  }

  /// On a database thread: commits group after group until nobody waits.
  private func commitWhileWaiting(_ session: Result<Database.Session, StoreError>) {
    while true {
      let group = state.withLock { state in
        let taken = Array(state.waiting.prefix(maxGroupSize))
        state.waiting.removeFirst(taken.count)
        if taken.isEmpty { state.committers -= 1 }
        return taken
      }
      guard !group.isEmpty else { return }
      let results = commitGroup(group.map(\.request), session)
      for (waiter, result) in zip(group, results) { waiter.continuation.resume(returning: result) }
    }
  }

  /// Counts and commits one group; a failure of the whole group (or no connection) is every
  /// request's result.
  private func commitGroup(
    _ requests: [Request], _ session: Result<Database.Session, StoreError>
  ) -> [Result<Response, any Error>] {
    groupsStarted.add(1, ordering: .relaxed)
    do {
      return try commit(requests, in: session.get())
    } catch {
      return Array(repeating: .failure(error), count: requests.count)
    }
  }

  private func commit(_ requests: [Request], in session: Database.Session) throws -> [Result<Response, any Error>] {
    let apply = apply
    if requests.count == 1 {
      // Alone: the request's failure rolls the transaction back, as in a transaction of its own.
      return [Result { try session.transaction { connection in try apply(connection, requests[0]) } }]
    }
    return try session.transaction { connection in
      try applyGroup?(connection, requests) ?? Self.eachUnderSavepoint(requests, on: connection, apply)
    }
  }

  /// Applies each request under a savepoint inside the caller's transaction: one that fails is
  /// rolled back alone and fails alone. A database failure (unavailable, or a conflict that needs
  /// the whole transaction again) is thrown for the whole group.
  public static func eachUnderSavepoint(
    _ requests: some Collection<Request>, on connection: any SQLConnection,
    _ apply: (any SQLConnection, Request) throws -> Response
  ) throws -> [Result<Response, any Error>] {
    var results: [Result<Response, any Error>] = []
    results.reserveCapacity(requests.count)
    for request in requests {
      _ = try connection.execute("SAVEPOINT group_commit")
      do {
        results.append(.success(try apply(connection, request)))
      } catch let error as StoreError where error.code == .unavailable || error.code == .conflict {
        throw error
      } catch {
        _ = try connection.execute("ROLLBACK TO SAVEPOINT group_commit")
        results.append(.failure(error))
      }
      _ = try connection.execute("RELEASE SAVEPOINT group_commit")
    }
    return results
  }
}
