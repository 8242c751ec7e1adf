import CLibPQ

#if canImport(Glibc)
  import Glibc
#endif

/// One libpq connection whose `search_path` is the service's schema, with a cache of prepared
/// statements. Parameters go in text format (bytes in binary); results come back in text format
/// and are typed by their column's type OID.
final class PostgresConnection: DatabaseDriver {
  let dialect = SQLDialect.postgres
  private var connection: OpaquePointer?
  private var statements: [String: String] = [:]
  private let location: String

  /// Statements sent in one pipeline before its results are read (keeps both sides' socket
  /// buffers from filling up).
  private static let pipelineDepth = 256
  /// A transaction's BEGIN waits to go with its first statement, in the same round trip.
  private var beginPending = false
  private static let beginSQL = "BEGIN ISOLATION LEVEL SERIALIZABLE"

  init(conninfo: String, schema: String) throws(StoreError) {
    location = StoreURL.redacted(conninfo)
    connection = PQconnectdb(conninfo)
    guard let connection, PQstatus(connection) == CONNECTION_OK else {
      let message = connection.map { String(cString: PQerrorMessage($0)) } ?? "out of memory"
      PQfinish(connection)
      self.connection = nil
      throw StoreError(.unavailable, "cannot connect to PostgreSQL at \(location)", cause: trimmed(message))
    }
    do {
      try executeScript("SET client_min_messages TO warning; CREATE SCHEMA IF NOT EXISTS \"\(schema)\"")
    } catch  where error.code == .alreadyExists {
      // Another connection created the schema at the same moment.
    }
    try executeScript("SET search_path TO \"\(schema)\"")
  }

  var isBroken: Bool { connection == nil || PQstatus(connection) != CONNECTION_OK }

  /// An idle connection has nothing to read (Shoal uses no LISTEN): if its socket is readable,
  /// the server has spoken since, which here is its goodbye before closing (a shutdown, a
  /// restart, an administrator's kill). Checked with a poll, without a round trip.
  func isUsable() -> Bool {
    guard let connection, !isBroken else { return false }
    var descriptor = pollfd(fd: PQsocket(connection), events: Int16(POLLIN), revents: 0)
    return poll(&descriptor, 1, 0) == 0
  }

  func close() {
    PQfinish(connection)
    connection = nil
  }

  deinit { close() }

  // MARK: Statements

  func execute(_ sql: String, _ parameters: [SQLValue]) throws(StoreError) -> Int {
    let result = try run(sql, parameters)
    defer { PQclear(result) }
    return Int(String(cString: PQcmdTuples(result))) ?? 0
  }

  func query(_ sql: String, _ parameters: [SQLValue]) throws(StoreError) -> [SQLRow] {
    let result = try run(sql, parameters)
    defer { PQclear(result) }
    let columnCount = PQnfields(result)
    let columns = (0..<columnCount).map { String(cString: PQfname(result, $0)) }
    let types = (0..<columnCount).map { PQftype(result, $0) }
    return (0..<PQntuples(result)).map { row in
      SQLRow(
        columns: columns,
        values: (0..<columnCount).map { column in
          guard PQgetisnull(result, row, column) == 0 else { return .null }
          return PostgresConnection.value(
            PQgetvalue(result, row, column), length: Int(PQgetlength(result, row, column)), type: types[Int(column)])
        })
    }
  }

  func executeBatch(_ sql: String, _ rows: [[SQLValue]]) throws(StoreError) {
    guard !rows.isEmpty else { return }
    let name = try prepare(sql)
    guard PQenterPipelineMode(connection) == 1 else { throw connectionError("cannot enter pipeline mode") }
    defer { PQexitPipelineMode(connection) }
    if takeBegin() {
      guard PQsendQueryParams(connection, Self.beginSQL, 0, nil, nil, nil, nil, 0) == 1 else {
        throw connectionError("cannot send BEGIN")
      }
    }
    var start = 0
    while start < rows.count {
      let end = min(start + PostgresConnection.pipelineDepth, rows.count)
      for row in rows[start..<end] {
        let sent = PostgresConnection.withParameters(row) { values, lengths, formats in
          PQsendQueryPrepared(connection, name, Int32(row.count), values, lengths, formats, 0)
        }
        guard sent == 1 else { throw connectionError("cannot send a batched statement") }
      }
      guard PQpipelineSync(connection) == 1 else { throw connectionError("cannot end the pipeline") }
      var firstError: StoreError?
      // One result (then a NULL) per statement, then the sync marker.
      while true {
        guard let result = PQgetResult(connection) else { continue }
        let status = PQresultStatus(result)
        if status == PGRES_PIPELINE_SYNC {
          PQclear(result)
          break
        }
        if status == PGRES_FATAL_ERROR, firstError == nil { firstError = error(result, sql) }
        PQclear(result)
        if isBroken { throw firstError ?? connectionError("the connection broke during a batch") }
      }
      if let firstError { throw firstError }
      start = end
    }
  }

  func executeScript(_ sql: String) throws(StoreError) {
    let result = PQexec(connection, takeBegin() ? "\(Self.beginSQL); \(sql)" : sql)
    defer { PQclear(result) }
    try check(result, sql)
  }

  // MARK: Transactions

  /// Serializable, like SQLite's single writer, so the same code is correct on both; a conflict
  /// fails with `.conflict` and `Database.transaction` runs the closure again. BEGIN is sent with
  /// the first statement, saving a round trip; a transaction that ran none has nothing to end.
  func begin() throws(StoreError) { beginPending = true }
  func commit() throws(StoreError) {
    guard !takeBegin() else { return }
    try executeScript("COMMIT")
  }
  func rollback() {
    beginPending = false
    guard let connection, PQtransactionStatus(connection) != PQTRANS_IDLE else { return }
    PQclear(PQexec(connection, "ROLLBACK"))
  }

  /// Whether BEGIN is still to be sent (it is about to be: the flag is cleared).
  private func takeBegin() -> Bool {
    defer { beginPending = false }
    return beginPending
  }

  // MARK: Helpers

  private func prepare(_ sql: String) throws(StoreError) -> String {
    if let name = statements[sql] { return name }
    let name = "s\(statements.count + 1)"
    let result = PQprepare(connection, name, sql, 0, nil)
    defer { PQclear(result) }
    try check(result, sql)
    statements[sql] = name
    return name
  }

  private func run(_ sql: String, _ parameters: [SQLValue]) throws(StoreError) -> OpaquePointer {
    let name = try prepare(sql)
    if takeBegin() { return try runAfterBegin(sql, name, parameters) }
    let result = PostgresConnection.withParameters(parameters) { values, lengths, formats in
      PQexecPrepared(connection, name, Int32(parameters.count), values, lengths, formats, 0)
    }
    do {
      try check(result, sql)
    } catch {
      PQclear(result)
      throw error
    }
    return result!
  }

  /// A transaction's BEGIN and its first statement in one round trip (pipeline mode); the
  /// statement's result.
  private func runAfterBegin(
    _ sql: String, _ name: String, _ parameters: [SQLValue]
  ) throws(StoreError) -> OpaquePointer {
    guard PQenterPipelineMode(connection) == 1 else { throw connectionError("cannot enter pipeline mode") }
    defer { PQexitPipelineMode(connection) }
    let sent =
      PQsendQueryParams(connection, Self.beginSQL, 0, nil, nil, nil, nil, 0) == 1
      && PostgresConnection.withParameters(parameters) { values, lengths, formats in
        PQsendQueryPrepared(connection, name, Int32(parameters.count), values, lengths, formats, 0)
      } == 1 && PQpipelineSync(connection) == 1
    guard sent else { throw connectionError("cannot send a transaction's first statement") }
    // BEGIN's result, the statement's, then the sync marker (each query's results end with a NULL).
    var results: [OpaquePointer] = []
    while true {
      guard let result = PQgetResult(connection) else {
        if isBroken {
          for result in results { PQclear(result) }
          throw connectionError("the connection broke during a statement")
        }
        continue
      }
      if PQresultStatus(result) == PGRES_PIPELINE_SYNC {
        PQclear(result)
        break
      }
      results.append(result)
    }
    guard results.count == 2 else {
      for result in results { PQclear(result) }
      throw connectionError("expected 2 results from BEGIN and a statement, got \(results.count)")
    }
    let (begun, result) = (results[0], results[1])
    defer { PQclear(begun) }
    do {
      try check(begun, Self.beginSQL)
      try check(result, sql)
    } catch {
      PQclear(result)
      throw error
    }
    return result
  }

  private func check(_ result: OpaquePointer?, _ sql: String) throws(StoreError) {
    guard let result else { throw connectionError("no result") }
    switch PQresultStatus(result) {
    case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY: return
    default: throw error(result, sql)
    }
  }

  /// The error a failed result reports, classified by SQLSTATE.
  private func error(_ result: OpaquePointer, _ sql: String) -> StoreError {
    let message = trimmed(String(cString: PQresultErrorMessage(result)))
    let state = PQresultErrorField(result, shoal_pg_diag_sqlstate()).map { String(cString: $0) } ?? ""
    let cause = "PostgreSQL \(state): \(message)"
    if isBroken || state.hasPrefix("08") || state.hasPrefix("57P") {
      return StoreError(.unavailable, "lost the connection to PostgreSQL at \(location)", cause: cause)
    }
    switch state {
    case "23505": return StoreError(.alreadyExists, "a row with this key already exists", cause: cause)
    case "40001", "40P01": return StoreError(.conflict, "a concurrent transaction conflicted; retry", cause: cause)
    case "53100": return StoreError(.unavailable, "the PostgreSQL server's disk is full", cause: cause)
    default:
      if state.hasPrefix("23") { return StoreError(.constraint, "the write breaks a constraint", cause: cause) }
      if state.hasPrefix("53") { return StoreError(.unavailable, "PostgreSQL is out of resources", cause: cause) }
      return StoreError(.internal, "SQL failed: \(sql)", cause: cause)
    }
  }

  private func connectionError(_ what: String) -> StoreError {
    let message = connection.map { trimmed(String(cString: PQerrorMessage($0))) } ?? ""
    return StoreError(.unavailable, "PostgreSQL at \(location): \(what)", cause: message)
  }

  /// Calls `body` with libpq's parameter arrays for `parameters`: text for numbers and strings,
  /// binary for bytes, NULL pointers for NULL.
  private static func withParameters<R>(
    _ parameters: [SQLValue],
    _ body: (UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<Int32>?, UnsafePointer<Int32>?) -> R
  ) -> R {
    var storage: [[UInt8]?] = []
    storage.reserveCapacity(parameters.count)
    var lengths: [Int32] = []
    var formats: [Int32] = []
    for parameter in parameters {
      switch parameter {
      case .null: storage.append(nil)
      case .integer(let value): storage.append(Array(String(value).utf8) + [0])
      case .real(let value): storage.append(Array(textOf(value).utf8) + [0])
      case .text(let value): storage.append(Array(value.utf8) + [0])
      case .blob(let bytes): storage.append(bytes)
      }
      if case .blob(let bytes) = parameter {
        lengths.append(Int32(bytes.count))
        formats.append(1)
      } else {
        lengths.append(0)
        formats.append(0)
      }
    }
    let pointers: [UnsafeMutableRawPointer?] = storage.map { bytes in
      bytes.map { bytes in
        let pointer = UnsafeMutableRawPointer.allocate(byteCount: max(bytes.count, 1), alignment: 1)
        bytes.withUnsafeBytes { if let base = $0.baseAddress { pointer.copyMemory(from: base, byteCount: $0.count) } }
        return pointer
      }
    }
    defer { for pointer in pointers { pointer?.deallocate() } }
    let values = pointers.map { $0.map { UnsafePointer<CChar>($0.assumingMemoryBound(to: CChar.self)) } }
    return values.withUnsafeBufferPointer { values in
      lengths.withUnsafeBufferPointer { lengths in
        formats.withUnsafeBufferPointer { formats in
          body(values.baseAddress, lengths.baseAddress, formats.baseAddress)
        }
      }
    }
  }

  /// PostgreSQL's text input for a double, NaN and infinities included.
  private static func textOf(_ value: Double) -> String {
    if value.isNaN { return "NaN" }
    if value.isInfinite { return value < 0 ? "-Infinity" : "Infinity" }
    return "\(value)"
  }

  /// A text-format result value as a `SQLValue`, by the column's type OID.
  private static func value(_ pointer: UnsafeMutablePointer<CChar>?, length: Int, type: Oid) -> SQLValue {
    guard let pointer else { return .null }
    let text = String(cString: pointer)
    switch type {
    case 20, 21, 23: return Int64(text).map { .integer($0) } ?? .text(text)  // int8, int2, int4
    case 700, 701:  // float4, float8
      switch text {
      case "NaN": return .real(.nan)
      case "Infinity": return .real(.infinity)
      case "-Infinity": return .real(-.infinity)
      default: return Double(text).map { .real($0) } ?? .text(text)
      }
    case 16: return .integer(text == "t" ? 1 : 0)  // bool
    case 17: return .blob(hexBytes(pointer, length: length))  // bytea, as \x…
    default: return .text(text)
    }
  }

  private static func hexBytes(_ pointer: UnsafeMutablePointer<CChar>, length: Int) -> [UInt8] {
    let text = UnsafeRawBufferPointer(start: pointer, count: length)
    guard length >= 2, text[0] == UInt8(ascii: "\\"), text[1] == UInt8(ascii: "x") else { return Array(text) }
    func nibble(_ c: UInt8) -> UInt8 {
      switch c {
      case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
      case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
      default: c &- UInt8(ascii: "A") &+ 10
      }
    }
    var bytes: [UInt8] = []
    bytes.reserveCapacity((length - 2) / 2)
    var index = 2
    while index + 1 < length {
      bytes.append(nibble(text[index]) << 4 | nibble(text[index + 1]))
      index += 2
    }
    return bytes
  }
}

private func trimmed(_ message: String) -> String {
  String(message.reversed().drop { $0 == "\n" || $0 == " " }.reversed())
}
