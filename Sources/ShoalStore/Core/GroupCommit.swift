import Synchronization

/// Small writes that arrive together are committed together: one transaction (and one WAL flush)
/// for a group of requests instead of one each, as a database's group commit does.
///
/// The first request to find no group in progress leads: it takes every request waiting (up to
/// `maxGroupSize`), applies each in the same transaction and commits, then hands the lead to the
/// first request that arrived meanwhile. A request alone is applied as it would be in its own
/// transaction. In a group each request runs under a savepoint, so one that fails (an unknown
/// run, a conflicting value) is rolled back alone and fails alone; a failure of the database
/// itself (unavailable, or a conflict that needs the whole transaction again) fails or reruns
/// the group. Every request's response is given only after its group committed.
public final class GroupCommit<Request: Sendable, Response: Sendable>: Sendable {
  private enum Turn {
    case lead
    case finished(Result<Response, any Error>)
  }

  private struct Waiter {
    let request: Request
    let continuation: CheckedContinuation<Turn, Never>
  }

  private struct State {
    var waiting: [Waiter] = []
    var groupsInProgress = 0
  }

  private let database: Database
  private let maxGroupSize: Int
  private let maxConcurrentGroups: Int
  private let apply: @Sendable (any SQLConnection, Request) throws -> Response
  private let state = Mutex(State())
  private let groupsStarted = Atomic(0)

  /// How many groups have been applied (committed or not) so far.
  public var groups: Int { groupsStarted.load(ordering: .relaxed) }
  /// Requests waiting for a group.
  var waiting: Int { state.withLock { $0.waiting.count } }
  /// Groups being applied now.
  var inProgress: Int { state.withLock { $0.groupsInProgress } }

  /// Groups of at most `maxGroupSize` requests, `maxConcurrentGroups` of them committing at a
  /// time (1 suits SQLite, which has one writer), each request written by `apply`.
  public init(
    database: Database, maxGroupSize: Int = 64, maxConcurrentGroups: Int = 1,
    apply: @escaping @Sendable (any SQLConnection, Request) throws -> Response
  ) {
    self.database = database
    self.maxGroupSize = max(1, maxGroupSize)
    self.maxConcurrentGroups = max(1, maxConcurrentGroups)
    self.apply = apply
  }

  /// Writes `request` in the next group and returns its response once that group committed.
  public func submit(_ request: Request) async throws -> Response {
    let turn = await withCheckedContinuation { (continuation: CheckedContinuation<Turn, Never>) in
      let leads = state.withLock { state in
        guard state.groupsInProgress >= maxConcurrentGroups else {
          state.groupsInProgress += 1
          return true
        }
        state.waiting.append(Waiter(request: request, continuation: continuation))
        return false
      }
      if leads { continuation.resume(returning: .lead) }
    }
    switch turn {
    case .finished(let result): return try result.get()
    case .lead: return try await lead(with: request)
    }
  }

  /// Commits a group made of `request` and those waiting, answers them, and passes the lead on.
  private func lead(with request: Request) async throws -> Response {
    let followers = state.withLock { state in
      let taken = Array(state.waiting.prefix(maxGroupSize - 1))
      state.waiting.removeFirst(taken.count)
      return taken
    }
    let requests = [request] + followers.map(\.request)
    groupsStarted.add(1, ordering: .relaxed)
    let results: [Result<Response, any Error>]
    do {
      results = try await commit(requests)
    } catch {
      results = Array(repeating: .failure(error), count: requests.count)
    }
    for (follower, result) in zip(followers, results.dropFirst()) {
      follower.continuation.resume(returning: .finished(result))
    }
    let next = state.withLock { state -> Waiter? in
      guard !state.waiting.isEmpty else {
        state.groupsInProgress -= 1
        return nil
      }
      return state.waiting.removeFirst()
    }
    next?.continuation.resume(returning: .lead)
    return try results[0].get()
  }

  private func commit(_ requests: [Request]) async throws -> [Result<Response, any Error>] {
    let apply = apply
    if requests.count == 1 {
      // Alone: the request's failure rolls the transaction back, as in a transaction of its own.
      return [.success(try await database.transaction { connection in try apply(connection, requests[0]) })]
    }
    return try await database.transaction { connection in
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
}
