import Foundation
import NIOPosix
import Synchronization

/// A service's database: SQLite (one file, WAL) or PostgreSQL (one schema), behind one API.
///
/// Work is handed to `read` or `transaction` as a closure that runs on one of the database's own
/// threads with a pooled connection, so blocking SQLite and libpq calls do not run on an event
/// loop or the cooperative pool (the one exception: `GroupCommit` writes a request that finds it
/// idle on SQLite on the caller's thread, `onCallingThread`). A transaction commits when its
/// closure returns and rolls back when it throws, so a failure never leaves a partial write.
public final class Database: Sendable {
  /// Pool settings.
  public struct Config: Sendable {
    /// Connections and threads (each thread holds at most one connection).
    public var connections: Int
    /// How long SQLite waits for another writer's lock before failing with UNAVAILABLE.
    public var busyTimeout: Duration
    /// How often a transaction that conflicted with a concurrent one (PostgreSQL) runs again.
    public var conflictRetries: Int

    /// 4 connections, a 5 s busy timeout, 20 conflict retries.
    public static var defaults: Config { Config(connections: 4, busyTimeout: .seconds(5), conflictRetries: 20) }
  }

  /// Which SQL the database speaks.
  public let dialect: SQLDialect
  /// Where the database is, without any password.
  public let location: String
  private let threads: NIOThreadPool
  private let idle: Mutex<[DriverBox?]>
  private let closed = Atomic(false)
  private let conflictRetries: Int
  private let openDriver: @Sendable () throws(StoreError) -> any DatabaseDriver

  private init(
    dialect: SQLDialect, location: String, config: Config,
    open: @escaping @Sendable () throws(StoreError) -> any DatabaseDriver
  ) {
    self.dialect = dialect
    self.location = location
    let count = max(1, config.connections)
    threads = NIOThreadPool(numberOfThreads: count)
    threads.start()
    idle = Mutex(Array(repeating: nil, count: count))
    conflictRetries = config.conflictRetries
    openDriver = open
  }

  /// Opens (creating if needed) the database `url` names for `service`: the SQLite file
  /// `<dataDirectory>/<service>.sqlite` for `.sqlite(nil)`, or schema `service` in PostgreSQL.
  /// One connection is opened at once, so a bad URL fails here.
  public static func open(
    _ url: StoreURL, service: String, dataDirectory: String, config: Config = .defaults
  ) async throws(StoreError) -> Database {
    let database: Database
    switch url {
    case .sqlite(let path):
      let file = path ?? "\(dataDirectory)/\(service).sqlite"
      let busy = config.busyTimeout
      database = Database(dialect: .sqlite, location: "sqlite:\(file)", config: config) { () throws(StoreError) in
        try SQLiteConnection(path: file, busyTimeout: busy)
      }
    case .postgres(let conninfo):
      let schema = try StoreURL.schema(for: service)
      database = Database(
        dialect: .postgres, location: StoreURL.redacted(conninfo) + " schema \(schema)", config: config
      ) { () throws(StoreError) in
        try PostgresConnection(conninfo: conninfo, schema: schema)
      }
    }
    do {
      try await database.read { _ in }
    } catch {
      await database.close()
      throw error as? StoreError ?? StoreError(.unavailable, "cannot open \(database.location)", cause: "\(error)")
    }
    return database
  }

  /// Runs `body` with a connection, outside any transaction (each statement commits on its own).
  @discardableResult
  public func read<T: Sendable>(_ body: @escaping @Sendable (any SQLConnection) throws -> T) async throws -> T {
    try await withDriver { driver in try body(driver) }
  }

  /// Runs `body` in a transaction: committed when it returns, rolled back when it throws.
  ///
  /// Transactions are serializable on both back ends. When PostgreSQL reports a conflict with a
  /// concurrent transaction, `body` runs again (up to `Config.conflictRetries` times), so it must
  /// not have effects outside the connection.
  @discardableResult
  public func transaction<T: Sendable>(_ body: @escaping @Sendable (any SQLConnection) throws -> T) async throws -> T {
    var attempt = 0
    while true {
      do {
        return try await withDriver { driver in try Session.once(driver, body) }
      } catch let error as StoreError where error.code == .conflict && attempt < conflictRetries {
        attempt += 1
        try await Task.sleep(for: Session.backoff(attempt))
      }
    }
  }

  /// A connection lent to work that runs on a database thread (`detached`).
  struct Session {
    let driver: any DatabaseDriver
    let conflictRetries: Int

    /// `transaction`'s contract, run on this thread (a conflict's pause blocks it).
    func transaction<T>(_ body: (any SQLConnection) throws -> T) throws -> T {
      var attempt = 0
      while true {
        do {
          return try Self.once(driver, body)
        } catch let error as StoreError where error.code == .conflict && attempt < conflictRetries {
          attempt += 1
          let pause = Self.backoff(attempt).components
          usleep(UInt32(pause.seconds * 1_000_000 + pause.attoseconds / 1_000_000_000_000))
        }
      }
    }

    /// One attempt: begin, `body`, commit; rolled back when anything throws.
    static func once<T>(_ driver: any DatabaseDriver, _ body: (any SQLConnection) throws -> T) throws -> T {
      try driver.begin()
      do {
        let result = try body(driver)
        try driver.commit()
        return result
      } catch {
        driver.rollback()
        throw error
      }
    }

    /// The pause before the `attempt`th rerun of a conflicted transaction.
    static func backoff(_ attempt: Int) -> Duration { .milliseconds(Int.random(in: 1...(5 * attempt))) }
  }

  /// Runs `work` on a database thread with a connection and returns at once, for work that runs
  /// several transactions back to back without leaving the thread (`GroupCommit`). `work` gets
  /// the error instead when there is no connection (the database is closed or unreachable).
  func detached(_ work: @escaping @Sendable (Result<Session, StoreError>) -> Void) {
    guard !closed.load(ordering: .relaxed) else {
      return work(.failure(closedError(cause: nil)))
    }
    threads.submit { [self] state in
      guard case .active = state else { return work(.failure(closedError(cause: "the thread pool stopped"))) }
      let box: DriverBox
      do {
        box = try borrowDriver()
      } catch {
        return work(.failure(error as? StoreError ?? StoreError(.unavailable, "\(error)")))
      }
      defer { giveBack(box) }
      work(.success(Session(driver: box.driver, conflictRetries: conflictRetries)))
    }
  }

  /// Runs `work` at once on the calling thread with an idle connection, for a short write whose
  /// caller would otherwise only wait for a database thread to wake (`GroupCommit` on SQLite,
  /// whose one-writer commits take microseconds). Nil, with `work` not run, when every connection
  /// is lent out or the database is closed.
  func onCallingThread<T>(_ work: (Result<Session, StoreError>) -> T) -> T? {
    guard !closed.load(ordering: .relaxed), let slot = idle.withLock({ $0.popLast() }) else { return nil }
    let box: DriverBox
    do {
      box = try driver(in: slot)
    } catch {
      return work(.failure(error as? StoreError ?? StoreError(.unavailable, "\(error)")))
    }
    defer { giveBack(box) }
    return work(.success(Session(driver: box.driver, conflictRetries: conflictRetries)))
  }

  /// Closes every connection and stops the threads; later calls fail with UNAVAILABLE.
  public func close() async {
    guard !closed.exchange(true, ordering: .relaxed) else { return }
    let drivers = idle.withLock { slots in
      defer { slots = slots.map { _ in nil } }
      return slots.compactMap { $0 }
    }
    try? await threads.runIfActive { for box in drivers { box.driver.close() } }
    try? await threads.shutdownGracefully()
  }

  /// Lends a connection to `body` on a database thread; opens one if this slot has none.
  private func withDriver<T: Sendable>(_ body: @escaping @Sendable (any DatabaseDriver) throws -> T) async throws -> T {
    guard !closed.load(ordering: .relaxed) else { throw closedError(cause: nil) }
    do {
      return try await threads.runIfActive { [self] in
        let box = try borrowDriver()
        defer { giveBack(box) }
        return try body(box.driver)
      }
    } catch let error as NIOThreadPoolError.ThreadPoolInactive {
      throw closedError(cause: "\(error)")
    }
  }

  /// This thread's connection. Threads and slots are equal in number and a thread holds one slot
  /// at a time, so a slot is always free here.
  private func borrowDriver() throws -> DriverBox {
    try driver(in: idle.withLock { $0.popLast() } ?? nil)
  }

  /// The connection of a slot taken from `idle`, opened if the slot has none or the server has
  /// closed it since (a restarted PostgreSQL: the work gets a new connection, not the failure of
  /// the dead one); the slot goes back empty when opening fails.
  private func driver(in slot: DriverBox?) throws -> DriverBox {
    var slot = slot
    if let box = slot, !box.driver.isUsable() {
      box.driver.close()
      slot = nil
    }
    do {
      return try slot ?? DriverBox(try openDriver())
    } catch {
      idle.withLock { $0.append(nil) }
      throw error
    }
  }

  private func giveBack(_ box: DriverBox) {
    idle.withLock { $0.append(box.driver.isBroken ? nil : box) }
  }

  private func closedError(cause: String?) -> StoreError {
    StoreError(.unavailable, "the database \(location) is closed", cause: cause)
  }
}

/// A connection moved between the database's threads; only one thread uses it at a time.
private final class DriverBox: @unchecked Sendable {
  let driver: any DatabaseDriver
  init(_ driver: any DatabaseDriver) { self.driver = driver }
}
