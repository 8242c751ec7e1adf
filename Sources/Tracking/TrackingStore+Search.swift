public import ShoalProto
import ShoalRPC
import ShoalStore

extension TrackingStore {
  /// The runs of `request.experimentIds` that match the filter, in the order asked for, one page;
  /// only runs of `organization`'s experiments when it is given.
  public func searchRuns(
    _ request: TrackingV1.SearchRunsRequest, organization: String? = nil
  ) async throws -> TrackingV1.SearchRunsResponse {
    let pageSize = try Self.pageSize(request.pageSize, default: 100, limit: 1000)
    let offset = try Self.pageToken(request.pageToken)
    var builder = RunQueryBuilder()
    var conditions = [Self.lifecycleFilter(request.view, column: "r.deleted")]
    if let organization {
      conditions.append(
        "r.experiment_id IN (SELECT id FROM experiments WHERE organization = \(builder.bind(.text(organization))))")
    }
    if !request.experimentIds.isEmpty {
      var placeholders: [String] = []
      for id in request.experimentIds {
        guard let number = Int64(id) else {
          throw RPCError(.invalidArgument, "experiment_ids: '\(id)' is not an experiment id")
        }
        placeholders.append(builder.bind(.integer(number)))
      }
      conditions.append("r.experiment_id IN (\(placeholders.joined(separator: ", ")))")
    }
    do {
      if let filter = try RunFilterParser.parse(request.filter) { conditions.append(try builder.condition(filter)) }
    } catch {
      throw RPCError(.invalidArgument, "filter: \(error)")
    }
    let ordering: String
    do {
      ordering = try builder.ordering(request.orderBy)
    } catch {
      throw RPCError(.invalidArgument, "order_by: \(error)")
    }
    let limit = builder.bind(.integer(Int64(pageSize + 1)))
    let skip = builder.bind(.integer(offset))
    let sql =
      "SELECT r.* FROM runs r WHERE \(conditions.joined(separator: " AND ")) ORDER BY \(ordering) LIMIT \(limit) OFFSET \(skip)"
    let parameters = builder.parameters
    let runs = try await database.read { connection in
      try connection.query(sql, parameters).map { try Self.run($0, connection) }
    }
    var response = TrackingV1.SearchRunsResponse()
    response.runs = Array(runs.prefix(pageSize))
    if runs.count > pageSize { response.nextPageToken = String(offset + Int64(pageSize)) }
    return response
  }
}
