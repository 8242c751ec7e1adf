/// Reads filter text into a `RunFilter`; every error names the position.
struct RunFilterParser {
  private enum Token: Equatable {
    case word(String)
    case quotedName(String)
    case string(String)
    case number(Double)
    case op(String)
    case open, close, comma
  }

  private var tokens: [(token: Token, position: Int)] = []
  private var index = 0
  private var depth = 0
  private var comparisons = 0
  private let length: Int
  /// Whether the filter is over experiments (name, times, tags) rather than runs.
  private var experiments = false

  /// Parses `text`, a filter over runs or (`experiments`) over experiments; nil for an empty (or
  /// blank) filter.
  static func parse(_ text: String, experiments: Bool = false) throws(RunFilterError) -> RunFilter? {
    var parser = try RunFilterParser(text)
    parser.experiments = experiments
    guard !parser.tokens.isEmpty else { return nil }
    let filter = try parser.parseOr()
    if parser.index < parser.tokens.count {
      throw parser.error(
        "expected AND, OR or the end of the filter, found \(parser.describe(parser.tokens[parser.index].token))")
    }
    return filter
  }

  private init(_ text: String) throws(RunFilterError) {
    let characters = Array(text)
    length = characters.count
    var position = 0
    func isNameCharacter(_ c: Character) -> Bool {
      c.isLetter || c.isNumber || c == "_" || c == "-" || c == "/" || c == ":"
    }
    while position < characters.count {
      let c = characters[position]
      let start = position + 1
      if c.isWhitespace {
        position += 1
      } else if c == "(" {
        tokens.append((.open, start))
        position += 1
      } else if c == ")" {
        tokens.append((.close, start))
        position += 1
      } else if c == "," {
        tokens.append((.comma, start))
        position += 1
      } else if c == "'" || c == "\"" || c == "`" {
        var value = ""
        position += 1
        var closed = false
        while position < characters.count {
          if characters[position] == c {
            // A doubled quote stands for itself.
            if position + 1 < characters.count, characters[position + 1] == c {
              value.append(c)
              position += 2
              continue
            }
            closed = true
            position += 1
            break
          }
          value.append(characters[position])
          position += 1
        }
        guard closed else { throw RunFilterError(position: start, message: "the quote \(c) is never closed") }
        tokens.append((c == "'" ? .string(value) : .quotedName(value), start))
      } else if "=!<>".contains(c) {
        var op = String(c)
        if position + 1 < characters.count, characters[position + 1] == "=" {
          op.append("=")
          position += 1
        }
        position += 1
        guard ["=", "!=", "<", "<=", ">", ">="].contains(op) else {
          throw RunFilterError(position: start, message: "'\(op)' is not an operator (=, !=, <, <=, >, >=)")
        }
        tokens.append((.op(op), start))
      } else if c.isNumber || c == "-" || c == "+" || c == "." {
        var text = ""
        while position < characters.count,
          characters[position].isNumber || ".eE+-".contains(characters[position])
        {
          text.append(characters[position])
          position += 1
        }
        guard let number = Double(text) else {
          throw RunFilterError(position: start, message: "'\(text)' is not a number")
        }
        tokens.append((.number(number), start))
      } else if isNameCharacter(c) || c == "." {
        var word = ""
        while position < characters.count, isNameCharacter(characters[position]) || characters[position] == "." {
          word.append(characters[position])
          position += 1
        }
        tokens.append((.word(word), start))
      } else {
        throw RunFilterError(position: start, message: "unexpected character '\(c)'")
      }
    }
  }

  // MARK: Grammar

  private mutating func parseOr() throws(RunFilterError) -> RunFilter {
    var left = try parseAnd()
    while keyword("OR") {
      index += 1
      left = .or(left, try parseAnd())
    }
    return left
  }

  private mutating func parseAnd() throws(RunFilterError) -> RunFilter {
    var left = try parsePrimary()
    while keyword("AND") {
      index += 1
      left = .and(left, try parsePrimary())
    }
    return left
  }

  /// How deep parentheses may nest, and how many comparisons a filter may hold: each is a level
  /// of recursion here and where the filter becomes SQL (a fuzzed filter of 4,000 '(' overflowed
  /// the stack).
  static let maxDepth = 64
  static let maxComparisons = 500

  private mutating func parsePrimary() throws(RunFilterError) -> RunFilter {
    if current == .open {
      depth += 1
      guard depth <= Self.maxDepth else { throw error("parentheses nest deeper than \(Self.maxDepth)") }
      defer { depth -= 1 }
      index += 1
      let inner = try parseOr()
      guard current == .close else { throw error("expected ')' to close the '(' , found \(describe(current))") }
      index += 1
      return inner
    }
    comparisons += 1
    guard comparisons <= Self.maxComparisons else {
      throw error("the filter has more than \(Self.maxComparisons) comparisons")
    }
    return .comparison(try parseComparison())
  }

  private mutating func parseComparison() throws(RunFilterError) -> RunFilter.Comparison {
    let entity = try parseEntity()
    var op: RunFilter.Operator
    switch current {
    case .op(let text)?: op = RunFilter.Operator(rawValue: text)!
    case .word(let word)? where word.uppercased() == "LIKE": op = .like
    case .word(let word)? where word.uppercased() == "ILIKE": op = .ilike
    case .word(let word)? where word.uppercased() == "IN": op = .in
    case .word(let word)? where word.uppercased() == "NOT":
      index += 1
      guard keyword("IN") else { throw error("expected IN after NOT, found \(describe(current))") }
      op = .notIn
    default:
      throw error(
        "expected a comparison operator (=, !=, <, <=, >, >=, LIKE, ILIKE, IN, NOT IN), found \(describe(current))")
    }
    index += 1
    var values: [RunFilter.Value] = []
    if op == .in || op == .notIn {
      guard current == .open else { throw error("expected '(' and a list of values after \(op.rawValue)") }
      index += 1
      repeat {
        if current == .comma { index += 1 }
        values.append(try parseValue())
      } while current == .comma
      guard current == .close else {
        throw error("expected ',' or ')' in the list of values, found \(describe(current))")
      }
      index += 1
    } else {
      values = [try parseValue()]
    }
    return RunFilter.Comparison(entity: entity, op: op, values: values)
  }

  private mutating func parseEntity() throws(RunFilterError) -> RunFilter.Entity {
    if experiments { return try parseExperimentEntity() }
    guard case .word(let word)? = current else {
      throw error("expected metrics.<key>, params.<key>, tags.<key> or attributes.<name>, found \(describe(current))")
    }
    let position = tokens[index].position
    index += 1
    var prefix = word
    var key = ""
    if let dot = word.firstIndex(of: ".") {
      prefix = String(word[..<dot])
      key = String(word[word.index(after: dot)...])
    }
    if key.isEmpty, case .quotedName(let quoted)? = current, word.hasSuffix(".") {
      prefix = String(word.dropLast())
      key = quoted
      index += 1
    }
    guard !key.isEmpty else {
      throw RunFilterError(position: position, message: "'\(word)' needs a key after the dot (metrics.accuracy)")
    }
    switch prefix.lowercased() {
    case "metrics", "metric": return .metric(key)
    case "params", "param": return .param(key)
    case "tags", "tag": return .tag(key)
    case "attributes", "attribute", "attr", "run":
      guard let attribute = RunFilter.Attribute(rawValue: key) else {
        throw RunFilterError(
          position: position,
          message:
            "'\(key)' is not a run attribute (\(RunFilter.Attribute.allCases.map(\.rawValue).joined(separator: ", ")))")
      }
      return .attribute(attribute)
    case "datasets", "dataset":
      guard let field = RunFilter.DatasetField(rawValue: key) else {
        throw RunFilterError(position: position, message: "'\(key)' is not a dataset field (name, digest, context)")
      }
      return .dataset(field)
    default:
      throw RunFilterError(
        position: position, message: "'\(prefix)' is not metrics, params, tags, attributes or datasets")
    }
  }

  /// An experiments filter's entity: an attribute, bare or after `attributes.`, or `tags.<key>`.
  private mutating func parseExperimentEntity() throws(RunFilterError) -> RunFilter.Entity {
    let names = RunFilter.ExperimentAttribute.allCases.map(\.rawValue).joined(separator: ", ")
    guard case .word(let word)? = current else {
      throw error("expected \(names) or tags.<key>, found \(describe(current))")
    }
    let position = tokens[index].position
    index += 1
    if let attribute = RunFilter.ExperimentAttribute(rawValue: word.lowercased()) { return .experiment(attribute) }
    guard let dot = word.firstIndex(of: ".") else {
      throw RunFilterError(position: position, message: "'\(word)' is not \(names) or tags.<key>")
    }
    let (prefix, key) = (word[..<dot].lowercased(), String(word[word.index(after: dot)...]))
    switch prefix {
    case "tags", "tag":
      if key.isEmpty, case .quotedName(let quoted)? = current {
        index += 1
        return .tag(quoted)
      }
      guard !key.isEmpty else {
        throw RunFilterError(position: position, message: "'\(word)' needs a key after the dot (tags.team)")
      }
      return .tag(key)
    case "attributes", "attribute", "attr":
      guard let attribute = RunFilter.ExperimentAttribute(rawValue: key) else {
        throw RunFilterError(position: position, message: "'\(key)' is not an experiment attribute (\(names))")
      }
      return .experiment(attribute)
    default:
      throw RunFilterError(
        position: position,
        message: "'\(prefix)' is not tags or attributes: experiments are filtered by \(names) and tags")
    }
  }

  private mutating func parseValue() throws(RunFilterError) -> RunFilter.Value {
    switch current {
    case .number(let number)?:
      index += 1
      return .number(number)
    case .string(let string)?:
      index += 1
      return .string(string)
    default:
      throw error("expected a number or a 'quoted string', found \(describe(current))")
    }
  }

  // MARK: Helpers

  private var current: Token? { index < tokens.count ? tokens[index].token : nil }

  private func keyword(_ word: String) -> Bool {
    if case .word(let text)? = current { return text.uppercased() == word }
    return false
  }

  private func error(_ message: String) -> RunFilterError {
    RunFilterError(position: index < tokens.count ? tokens[index].position : length + 1, message: message)
  }

  private func describe(_ token: Token?) -> String {
    switch token {
    case nil: "the end of the filter"
    case .word(let word)?: "'\(word)'"
    case .quotedName(let name)?: "'\(name)'"
    case .string(let string)?: "the string '\(string)'"
    case .number(let number)?: "the number \(number)"
    case .op(let op)?: "'\(op)'"
    case .open?: "'('"
    case .close?: "')'"
    case .comma?: "','"
    }
  }
}

/// The filter language's parser alone, for tools that check filters without a store (the fuzz
/// target).
public enum RunFilterSyntax {
  /// Parses `text` as a filter over runs (or over experiments), throwing where it is wrong.
  public static func check(_ text: String, experiments: Bool = false) throws(RunFilterError) {
    _ = try RunFilterParser.parse(text, experiments: experiments)
  }
}
