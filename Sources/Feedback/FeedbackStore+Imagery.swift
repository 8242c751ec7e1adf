import Foundation
public import ShoalProto
import ShoalRPC
import ShoalStore

/// Named imagery sources and areas of interest, per organisation. A source's headers are kept
/// apart from what is returned, and only `imagerySecrets` reads them.
extension FeedbackStore {
  /// Keeps `source` (its `organization` set) with its `headers`; `replace` overwrites one of the
  /// same name.
  ///
  /// - Throws: ALREADY_EXISTS when the name is taken and `replace` is false.
  public func putImagery(
    _ source: FeedbackV1.ImagerySource, headers: [String: String], replace: Bool
  ) async throws -> FeedbackV1.ImagerySource {
    try await put(
      table: "imagery_sources", what: "imagery source", organization: source.organization, name: source.name,
      replace: replace,
      values: [
        .text(source.jsonString()), .text(try Self.json(headers)), .text(source.createdBy),
        .integer(source.createdAtMs),
      ],
      columns: "spec, headers, created_by, created_at_ms")
    return try await imagery(source.name, organization: source.organization).source
  }

  /// The source `name` of `organization` and its headers.
  ///
  /// - Throws: NOT_FOUND naming it.
  public func imagery(
    _ name: String, organization: String
  ) async throws -> (source: FeedbackV1.ImagerySource, headers: [String: String]) {
    let row = try await database.read { connection in
      try connection.queryFirst(
        "SELECT * FROM imagery_sources WHERE organization = $1 AND name = $2", .text(organization), .text(name))
    }
    guard let row else { throw RPCError(.notFound, "imagery source '\(name)' not found") }
    return try Self.imagery(row)
  }

  /// Every source of `organization`, by name.
  public func imagerySources(organization: String) async throws -> [FeedbackV1.ImagerySource] {
    let rows = try await database.read { connection in
      try connection.query(
        "SELECT * FROM imagery_sources WHERE organization = $1 ORDER BY name", .text(organization))
    }
    return try rows.map { try Self.imagery($0).source }
  }

  /// Deletes the source `name` of `organization`; true if there was one.
  public func removeImagery(_ name: String, organization: String) async throws -> Bool {
    try await database.transaction { connection in
      try connection.execute(
        "DELETE FROM imagery_sources WHERE organization = $1 AND name = $2", .text(organization), .text(name)) > 0
    }
  }

  /// Keeps the area `area` (its `organization` set).
  ///
  /// - Throws: ALREADY_EXISTS when the name is taken and `replace` is false.
  public func putArea(_ area: FeedbackV1.Area, replace: Bool) async throws -> FeedbackV1.Area {
    try await put(
      table: "areas", what: "area", organization: area.organization, name: area.name, replace: replace,
      values: [.text(area.geojson), .text(area.description), .text(area.createdBy), .integer(area.createdAtMs)],
      columns: "geojson, description, created_by, created_at_ms")
    return try await self.area(area.name, organization: area.organization)
  }

  /// The area `name` of `organization` (its bbox left for the caller to fill).
  ///
  /// - Throws: NOT_FOUND naming it.
  public func area(_ name: String, organization: String) async throws -> FeedbackV1.Area {
    let row = try await database.read { connection in
      try connection.queryFirst(
        "SELECT * FROM areas WHERE organization = $1 AND name = $2", .text(organization), .text(name))
    }
    guard let row else { throw RPCError(.notFound, "area '\(name)' not found") }
    return try Self.area(row)
  }

  /// Every area of `organization`, by name.
  public func areas(organization: String) async throws -> [FeedbackV1.Area] {
    let rows = try await database.read { connection in
      try connection.query("SELECT * FROM areas WHERE organization = $1 ORDER BY name", .text(organization))
    }
    return try rows.map(Self.area)
  }

  private func put(
    table: String, what: String, organization: String, name: String, replace: Bool, values: [SQLValue],
    columns: String
  ) async throws {
    let names = columns.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
    let placeholders = (3..<(3 + values.count)).map { "$\($0)" }.joined(separator: ", ")
    let conflict =
      replace
      ? "DO UPDATE SET " + names.map { "\($0) = excluded.\($0)" }.joined(separator: ", ")
      : "DO NOTHING"
    let stored = try await database.transaction { connection in
      try connection.execute(
        """
        INSERT INTO \(table) (organization, name, \(columns)) VALUES ($1, $2, \(placeholders))
        ON CONFLICT (organization, name) \(conflict)
        """, [.text(organization), .text(name)] + values)
    }
    guard stored > 0 else {
      throw RPCError(.alreadyExists, "\(what) '\(name)' already exists (replace it to change it)")
    }
  }

  static func imagery(_ row: SQLRow) throws -> (source: FeedbackV1.ImagerySource, headers: [String: String]) {
    var source = try FeedbackV1.ImagerySource(jsonString: try row.string("spec"))
    source.organization = try row.string("organization")
    source.name = try row.string("name")
    source.createdBy = try row.string("created_by")
    source.createdAtMs = try row.int("created_at_ms")
    let headers =
      try JSONSerialization.jsonObject(with: Data(try row.string("headers").utf8)) as? [String: String] ?? [:]
    source.headerNames = headers.keys.sorted()
    return (source, headers)
  }

  static func area(_ row: SQLRow) throws -> FeedbackV1.Area {
    var area = FeedbackV1.Area()
    area.organization = try row.string("organization")
    area.name = try row.string("name")
    area.geojson = try row.string("geojson")
    area.description = try row.string("description")
    area.createdBy = try row.string("created_by")
    area.createdAtMs = try row.int("created_at_ms")
    return area
  }
}
