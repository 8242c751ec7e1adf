import CSQLite

/// One SQLite connection in WAL mode with a cache of prepared statements. Used by one thread at
/// a time (opened with SQLITE_OPEN_NOMUTEX).
final class SQLiteConnection: DatabaseDriver {
  let dialect = SQLDialect.sqlite
  private let path: String
  private var handle: OpaquePointer?
  private var statements: [String: OpaquePointer] = [:]
  private(set) var isBroken = false

  init(path: String, busyTimeout: Duration) throws(StoreError) {
    self.path = path
    let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
    let status = sqlite3_open_v2(path, &handle, flags, nil)
    guard status == SQLITE_OK else {
      let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
      sqlite3_close_v2(handle)
      handle = nil
      throw StoreError(.unavailable, "cannot open the SQLite database \(path)", cause: message)
    }
    sqlite3_busy_timeout(handle, Int32(clamping: busyTimeout.components.seconds * 1000))
    sqlite3_extended_result_codes(handle, 1)
    // LIKE is case-sensitive, as in PostgreSQL (ILIKE-style matching is written with lower()).
    // Up to 32 MiB of page cache per connection (SQLite's default is 2 MiB, which a table of a
    // million indexed rows outgrows: every index insert then reads pages back from the file), and
    // reads through a 256 MiB map of the file instead of a pread per page.
    try executeScript(
      """
      PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; PRAGMA case_sensitive_like=ON;
      PRAGMA cache_size=-32768; PRAGMA mmap_size=268435456;
      """)
  }

  func close() {
    for statement in statements.values { sqlite3_finalize(statement) }
    statements = [:]
    sqlite3_close_v2(handle)
    handle = nil
  }

  deinit { close() }

  // MARK: Statements

  func execute(_ sql: String, _ parameters: [SQLValue]) throws(StoreError) -> Int {
    let statement = try prepared(sql)
    defer { sqlite3_reset(statement) }
    try bind(parameters, to: statement, sql: sql)
    while true {
      let status = sqlite3_step(statement)
      if status == SQLITE_DONE { break }
      if status != SQLITE_ROW { throw error(status, sql) }
    }
    return Int(sqlite3_changes(handle))
  }

  func query(_ sql: String, _ parameters: [SQLValue]) throws(StoreError) -> [SQLRow] {
    let statement = try prepared(sql)
    defer { sqlite3_reset(statement) }
    try bind(parameters, to: statement, sql: sql)
    let count = sqlite3_column_count(statement)
    let columns = (0..<count).map { String(cString: sqlite3_column_name(statement, $0)) }
    var rows: [SQLRow] = []
    while true {
      let status = sqlite3_step(statement)
      if status == SQLITE_DONE { break }
      guard status == SQLITE_ROW else { throw error(status, sql) }
      rows.append(SQLRow(columns: columns, values: (0..<count).map { column(statement, $0) }))
    }
    return rows
  }

  func executeBatch(_ sql: String, _ rows: [[SQLValue]]) throws(StoreError) {
    for row in rows { _ = try execute(sql, row) }
  }

  func executeScript(_ sql: String) throws(StoreError) {
    var message: UnsafeMutablePointer<CChar>?
    let status = sqlite3_exec(handle, sql, nil, nil, &message)
    defer { sqlite3_free(message) }
    guard status == SQLITE_OK else { throw error(status, sql) }
  }

  // MARK: Transactions

  func begin() throws(StoreError) { try executeScript("BEGIN IMMEDIATE") }
  func commit() throws(StoreError) { try executeScript("COMMIT") }
  func rollback() {
    if sqlite3_get_autocommit(handle) == 0 { _ = try? executeScript("ROLLBACK") }
  }

  // MARK: Helpers

  private func prepared(_ sql: String) throws(StoreError) -> OpaquePointer {
    if let statement = statements[sql] { return statement }
    var statement: OpaquePointer?
    let status = sqlite3_prepare_v3(
      handle, SQLiteConnection.numberedPlaceholders(sql), -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil)
    guard status == SQLITE_OK, let statement else { throw error(status, sql) }
    statements[sql] = statement
    return statement
  }

  private func bind(_ parameters: [SQLValue], to statement: OpaquePointer, sql: String) throws(StoreError) {
    sqlite3_clear_bindings(statement)
    let expected = Int(sqlite3_bind_parameter_count(statement))
    guard parameters.count == expected else {
      throw StoreError(.internal, "statement takes \(expected) parameters, given \(parameters.count): \(sql)")
    }
    for (offset, value) in parameters.enumerated() {
      let index = Int32(offset + 1)
      let status: Int32
      switch value {
      case .null: status = sqlite3_bind_null(statement, index)
      case .integer(let value): status = sqlite3_bind_int64(statement, index, value)
      case .real(let value): status = sqlite3_bind_double(statement, index, value)
      case .text(let value): status = sqlite3_bind_text(statement, index, value, -1, shoal_sqlite_transient())
      case .blob(let bytes):
        status = bytes.withUnsafeBytes {
          sqlite3_bind_blob64(statement, index, $0.baseAddress, UInt64($0.count), shoal_sqlite_transient())
        }
      }
      guard status == SQLITE_OK else { throw error(status, sql) }
    }
  }

  private func column(_ statement: OpaquePointer, _ index: Int32) -> SQLValue {
    switch sqlite3_column_type(statement, index) {
    case SQLITE_INTEGER: return .integer(sqlite3_column_int64(statement, index))
    case SQLITE_FLOAT: return .real(sqlite3_column_double(statement, index))
    case SQLITE_TEXT: return .text(String(cString: sqlite3_column_text(statement, index)))
    case SQLITE_BLOB:
      let count = Int(sqlite3_column_bytes(statement, index))
      guard count > 0, let bytes = sqlite3_column_blob(statement, index) else { return .blob([]) }
      return .blob(Array(UnsafeRawBufferPointer(start: bytes, count: count)))
    default: return .null
    }
  }

  /// The error for `status`, classified: lock, disk and I/O trouble is UNAVAILABLE.
  private func error(_ status: Int32, _ sql: String) -> StoreError {
    let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "no connection"
    let cause = "SQLite \(status): \(message)"
    switch status & 0xff {
    case SQLITE_BUSY, SQLITE_LOCKED:
      return StoreError(.unavailable, "the database \(path) is locked by another writer", cause: cause)
    case SQLITE_FULL:
      return StoreError(.unavailable, "the disk holding \(path) is full", cause: cause)
    case SQLITE_IOERR, SQLITE_CANTOPEN, SQLITE_READONLY, SQLITE_NOTADB, SQLITE_CORRUPT:
      return StoreError(.unavailable, "the database \(path) cannot be used", cause: cause)
    case SQLITE_CONSTRAINT:
      // SQLITE_CONSTRAINT_UNIQUE and SQLITE_CONSTRAINT_PRIMARYKEY (macros Swift does not import).
      if status == SQLITE_CONSTRAINT | 8 << 8 || status == SQLITE_CONSTRAINT | 6 << 8 {
        return StoreError(.alreadyExists, "a row with this key already exists", cause: cause)
      }
      return StoreError(.constraint, "the write breaks a constraint", cause: cause)
    default:
      return StoreError(.internal, "SQL failed: \(sql)", cause: cause)
    }
  }

  /// `sql` with each `$N` placeholder outside quotes written as SQLite's `?N`.
  static func numberedPlaceholders(_ sql: String) -> String {
    var output = ""
    output.reserveCapacity(sql.utf8.count)
    var quote: Character?
    var previous: Character?
    for character in sql {
      if let open = quote {
        if character == open { quote = nil }
      } else if character == "'" || character == "\"" {
        quote = character
      }
      if quote == nil, character.isNumber, previous == "$" {
        output.removeLast()
        output.append("?")
      }
      output.append(character)
      previous = character
    }
    return output
  }
}
