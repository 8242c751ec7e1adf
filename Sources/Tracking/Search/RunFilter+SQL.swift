import ShoalProto
import ShoalStore

/// SQL for filters and orderings over `runs r` (or, for an experiments filter, `experiments e`).
/// User input only ever becomes bound parameters; the SQL text is built from the grammar's fixed
/// pieces.
struct RunQueryBuilder {
  /// The parameters bound so far, in `$N` order.
  private(set) var parameters: [SQLValue] = []
  /// Whether the filter is over `experiments e` rather than `runs r`.
  var overExperiments = false

  /// Adds a parameter and returns its placeholder.
  mutating func bind(_ value: SQLValue) -> String {
    parameters.append(value)
    return "$\(parameters.count)"
  }

  /// The condition for `filter`.
  mutating func condition(_ filter: RunFilter) throws(RunFilterError) -> String {
    switch filter {
    case .and(let left, let right): "(\(try condition(left)) AND \(try condition(right)))"
    case .or(let left, let right): "(\(try condition(left)) OR \(try condition(right)))"
    case .comparison(let comparison): try self.comparison(comparison)
    }
  }

  private mutating func comparison(_ comparison: RunFilter.Comparison) throws(RunFilterError) -> String {
    let op = comparison.op
    switch comparison.entity {
    case .metric(let key):
      guard ![.like, .ilike, .in, .notIn].contains(op) else {
        throw RunFilterError(position: 0, message: "metrics.\(key) compares numbers: use =, !=, <, <=, > or >=")
      }
      let keyParameter = bind(.text(key))
      let value = try numericSide(comparison, name: "metrics.\(key)")
      return
        "EXISTS (SELECT 1 FROM latest_metrics m WHERE m.run_id = r.run_id AND m.key = \(keyParameter) AND m.is_nan = 0 AND m.value \(op.rawValue) \(value))"
    case .param(let key):
      let keyParameter = bind(.text(key))
      return
        "EXISTS (SELECT 1 FROM params p WHERE p.run_id = r.run_id AND p.key = \(keyParameter) AND \(try stringTest("p.value", comparison, name: "params.\(key)")))"
    case .tag(let key) where overExperiments:
      let keyParameter = bind(.text(key))
      return
        "EXISTS (SELECT 1 FROM experiment_tags t WHERE t.experiment_id = e.id AND t.key = \(keyParameter) AND \(try stringTest("t.value", comparison, name: "tags.\(key)")))"
    case .tag(let key):
      let keyParameter = bind(.text(key))
      return
        "EXISTS (SELECT 1 FROM run_tags t WHERE t.run_id = r.run_id AND t.key = \(keyParameter) AND \(try stringTest("t.value", comparison, name: "tags.\(key)")))"
    case .dataset(let field):
      return
        "EXISTS (SELECT 1 FROM run_inputs d WHERE d.run_id = r.run_id AND \(try stringTest("d.\(field.rawValue)", comparison, name: "datasets.\(field.rawValue)")))"
    case .experiment(let attribute):
      guard overExperiments else {
        throw RunFilterError(position: 0, message: "\(attribute.rawValue) is an experiment's, not a run's")
      }
      guard attribute != .name else { return try stringTest("e.name", comparison, name: "name") }
      guard ![.like, .ilike, .in, .notIn].contains(op) else {
        throw RunFilterError(position: 0, message: "\(attribute.rawValue) compares numbers")
      }
      let column = attribute == .creationTime ? "(e.created_at_ms + 0.0)" : "(e.updated_at_ms + 0.0)"
      return "\(column) \(op.rawValue) \(try numericSide(comparison, name: attribute.rawValue))"
    case .attribute(let attribute):
      switch attribute {
      case .startTime, .endTime:
        guard ![.like, .ilike, .in, .notIn].contains(op) else {
          throw RunFilterError(position: 0, message: "attributes.\(attribute.rawValue) compares numbers")
        }
        // Compared as numbers with a fraction, so that PostgreSQL reads the bound value as numeric.
        let column = attribute == .startTime ? "(r.start_time_ms + 0.0)" : "(r.end_time_ms + 0.0)"
        return "\(column) \(op.rawValue) \(try numericSide(comparison, name: "attributes.\(attribute.rawValue)"))"
      case .status:
        guard [.equal, .notEqual, .in, .notIn].contains(op) else {
          throw RunFilterError(position: 0, message: "attributes.status takes =, !=, IN or NOT IN")
        }
        var numbers: [String] = []
        for value in comparison.values {
          guard case .string(let name) = value,
            let status = TrackingV1.RunStatus.knownValues.first(where: { $0.protoName == name.uppercased() }),
            status != .unspecified
          else {
            throw RunFilterError(
              position: 1, message: "attributes.status is one of 'RUNNING', 'SCHEDULED', 'FINISHED', 'FAILED', 'KILLED'"
            )
          }
          numbers.append(bind(.integer(Int64(status.rawValue))))
        }
        return Self.compare("r.status", op, numbers)
      case .runID: return try stringTest("r.run_id", comparison, name: "attributes.run_id")
      case .runName: return try stringTest("r.name", comparison, name: "attributes.run_name")
      case .user: return try stringTest("r.user_name", comparison, name: "attributes.user")
      }
    }
  }

  private mutating func numericSide(_ comparison: RunFilter.Comparison, name: String) throws(RunFilterError) -> String {
    guard comparison.values.count == 1, case .number(let number) = comparison.values[0] else {
      throw RunFilterError(position: 0, message: "\(name) compares with a number, not a string")
    }
    return bind(.real(number))
  }

  private mutating func stringTest(
    _ column: String, _ comparison: RunFilter.Comparison, name: String
  ) throws(RunFilterError) -> String {
    var placeholders: [String] = []
    for value in comparison.values {
      guard case .string(let string) = value else {
        throw RunFilterError(position: 0, message: "\(name) compares with a 'quoted string'")
      }
      placeholders.append(bind(.text(comparison.op == .ilike ? string.lowercased() : string)))
    }
    switch comparison.op {
    case .like: return "\(column) LIKE \(placeholders[0])"
    case .ilike: return "lower(\(column)) LIKE \(placeholders[0])"
    case .less, .lessOrEqual, .greater, .greaterOrEqual:
      throw RunFilterError(position: 0, message: "\(name) is text: use =, !=, LIKE, ILIKE, IN or NOT IN")
    default: return Self.compare(column, comparison.op, placeholders)
    }
  }

  private static func compare(_ column: String, _ op: RunFilter.Operator, _ placeholders: [String]) -> String {
    switch op {
    case .in: "\(column) IN (\(placeholders.joined(separator: ", ")))"
    case .notIn: "\(column) NOT IN (\(placeholders.joined(separator: ", ")))"
    default: "\(column) \(op.rawValue) \(placeholders[0])"
    }
  }

  /// ORDER BY terms for `orderBy` ("metrics.acc DESC", …), then the run id as a tie-breaker.
  /// Runs without the metric, param or tag come last either way.
  mutating func ordering(_ orderBy: [String]) throws(RunFilterError) -> String {
    var terms: [String] = []
    for (index, clause) in orderBy.enumerated() {
      let words = clause.split(separator: " ", omittingEmptySubsequences: true)
      guard (1...2).contains(words.count) else {
        throw RunFilterError(position: 0, message: "order_by[\(index)] '\(clause)' is not '<entity> [ASC|DESC]'")
      }
      var descending = false
      if words.count == 2 {
        switch words[1].uppercased() {
        case "ASC": descending = false
        case "DESC": descending = true
        default:
          throw RunFilterError(position: 0, message: "order_by[\(index)]: '\(words[1])' is not ASC or DESC")
        }
      }
      let expression: String
      switch try Self.entity(String(words[0]), clause: index) {
      case .metric(let key):
        expression =
          "(SELECT m.value FROM latest_metrics m WHERE m.run_id = r.run_id AND m.key = \(bind(.text(key))))"
      case .param(let key):
        expression = "(SELECT p.value FROM params p WHERE p.run_id = r.run_id AND p.key = \(bind(.text(key))))"
      case .tag(let key):
        expression = "(SELECT t.value FROM run_tags t WHERE t.run_id = r.run_id AND t.key = \(bind(.text(key))))"
      case .dataset(let field):
        expression = "(SELECT min(d.\(field.rawValue)) FROM run_inputs d WHERE d.run_id = r.run_id)"
      case .experiment(let attribute):
        throw RunFilterError(position: 0, message: "order_by[\(index)]: \(attribute.rawValue) is not a run's")
      case .attribute(let attribute):
        expression =
          switch attribute {
          case .runID: "r.run_id"
          case .runName: "r.name"
          case .status: "r.status"
          case .user: "r.user_name"
          case .startTime: "r.start_time_ms"
          case .endTime: "r.end_time_ms"
          }
      }
      terms.append("CASE WHEN \(expression) IS NULL THEN 1 ELSE 0 END")
      terms.append("\(expression) \(descending ? "DESC" : "ASC")")
    }
    if terms.isEmpty { terms = ["r.start_time_ms DESC"] }
    terms.append("r.run_id")
    return terms.joined(separator: ", ")
  }

  private static func entity(_ text: String, clause: Int) throws(RunFilterError) -> RunFilter.Entity {
    // An order_by entity reads like a filter's left-hand side.
    guard case .comparison(let comparison)? = try RunFilterParser.parse("\(text) = 0") else {
      throw RunFilterError(position: 0, message: "order_by[\(clause)] '\(text)' is not an entity")
    }
    return comparison.entity
  }
}
