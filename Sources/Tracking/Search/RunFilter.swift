/// A parsed SearchRuns filter: comparisons on `metrics.`, `params.`, `tags.`, `attributes.` and
/// `datasets.` (a run matches when one of its dataset inputs does),
/// combined with AND (which binds tighter), OR and parentheses. The same grammar filters
/// experiments (ListExperiments), on `name`, `creation_time`, `last_update_time` (bare or after
/// `attributes.`) and `tags.`.
///
/// ```
/// filter     := or
/// or         := and ("OR" and)*
/// and        := primary ("AND" primary)*
/// primary    := "(" or ")" | comparison
/// comparison := entity op value | entity ["NOT"] "IN" "(" value ("," value)* ")"
/// entity     := ("metrics" | "params" | "tags" | "attributes" | "datasets") "." key   (singular forms too)
/// key        := name characters, or a `backquoted` or "double-quoted" name
/// op         := "=" | "!=" | "<" | "<=" | ">" | ">=" | "LIKE" | "ILIKE"
/// value      := number | 'single-quoted string'
/// ```
public indirect enum RunFilter: Sendable, Equatable {
  /// Both sides hold.
  case and(RunFilter, RunFilter)
  /// Either side holds.
  case or(RunFilter, RunFilter)
  /// One comparison.
  case comparison(Comparison)

  /// What a comparison looks at.
  public enum Entity: Sendable, Equatable {
    case metric(String)
    case param(String)
    case tag(String)
    case attribute(Attribute)
    case dataset(DatasetField)
    case experiment(ExperimentAttribute)
  }

  /// The experiment attributes an experiments filter can name.
  public enum ExperimentAttribute: String, Sendable, Equatable, CaseIterable {
    case name
    case creationTime = "creation_time"
    case lastUpdateTime = "last_update_time"
  }

  /// The fields of a dataset input a filter can name.
  public enum DatasetField: String, Sendable, Equatable, CaseIterable {
    case name, digest, context
  }

  /// The run attributes a filter can name.
  public enum Attribute: String, Sendable, Equatable, CaseIterable {
    case runID = "run_id"
    case runName = "run_name"
    case status
    case user
    case startTime = "start_time"
    case endTime = "end_time"

    var isNumeric: Bool { self == .startTime || self == .endTime }
  }

  /// A comparison operator.
  public enum Operator: String, Sendable, Equatable {
    case equal = "="
    case notEqual = "!="
    case less = "<"
    case lessOrEqual = "<="
    case greater = ">"
    case greaterOrEqual = ">="
    case like = "LIKE"
    case ilike = "ILIKE"
    case `in` = "IN"
    case notIn = "NOT IN"
  }

  /// A literal.
  public enum Value: Sendable, Equatable {
    case number(Double)
    case string(String)
  }

  /// `entity op value(s)`.
  public struct Comparison: Sendable, Equatable {
    public var entity: Entity
    public var op: Operator
    public var values: [Value]
  }
}

/// Why a filter or order_by could not be read, with the 1-based character position.
public struct RunFilterError: Error, Sendable, Equatable, CustomStringConvertible {
  /// Where in the text (1-based); 0 when the text reads well but means something impossible
  /// (a number compared with a param, LIKE on a metric).
  public var position: Int
  /// What was wrong.
  public var message: String

  /// "at position N: message", or the message alone.
  public var description: String { position > 0 ? "at position \(position): \(message)" : message }
}
