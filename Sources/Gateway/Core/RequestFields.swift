public import ShoalProto

/// The fields of a request, from its JSON body or its query string, read with errors that name
/// the field (`run_id: expected a string, found a number`).
///
/// MLflow's client sends GET fields in the query string and POST fields as JSON; both arrive here
/// as one object, so a handler reads them the same way.
public struct RequestFields: Sendable {
  /// The members, in order.
  public let members: [(String, JSONValue)]

  /// The fields of a JSON object body; anything else is a 400 naming what it was.
  public init(json text: String) throws(GatewayError) {
    let value: JSONValue
    do {
      value = try JSONValue(parsing: text.isEmpty ? "{}" : text)
    } catch {
      throw .badRequest("the body is not JSON: \(error.message)")
    }
    guard case .object(let members) = value else {
      throw .badRequest("the body must be a JSON object, not \(value.kindName)")
    }
    self.members = members
  }

  /// The fields of a query string (`a=1&b=x&b=y`): repeated names become arrays.
  public init(query: [(String, String)]) {
    var members: [(String, JSONValue)] = []
    for (name, value) in query {
      if let index = members.firstIndex(where: { $0.0 == name }) {
        switch members[index].1 {
        case .array(let values): members[index].1 = .array(values + [.string(value)])
        default: members[index].1 = .array([members[index].1, .string(value)])
        }
      } else {
        members.append((name, .string(value)))
      }
    }
    self.members = members
  }

  /// The fields of an object member.
  public init(members: [(String, JSONValue)]) { self.members = members }

  /// The raw value of `name`, nil when absent or null.
  public subscript(name: String) -> JSONValue? {
    guard let value = members.first(where: { $0.0 == name })?.1 else { return nil }
    if case .null = value { return nil }
    return value
  }

  /// A string field, nil when absent.
  public func optionalString(_ name: String) throws(GatewayError) -> String? {
    guard let value = self[name] else { return nil }
    switch value {
    case .string(let text): return text
    // Clients in other languages send ids as numbers.
    case .number(let text): return text
    default: throw .invalid("\(name): expected a string, found \(value.kindName)")
    }
  }

  /// A string field that must be there and not be empty.
  public func string(_ name: String) throws(GatewayError) -> String {
    guard let text = try optionalString(name), !text.isEmpty else {
      throw .invalid("missing value for required parameter '\(name)'")
    }
    return text
  }

  /// A required string inside an array element, named with its place (`metrics[3].key`).
  public func string(_ name: String, at place: String) throws(GatewayError) -> String {
    guard let value = try optionalString(name), !value.isEmpty else {
      throw .invalid("missing value for required parameter '\(place)\(name)'")
    }
    return value
  }

  /// The first of several names that is present (MLflow's `run_id` and its older `run_uuid`).
  public func string(anyOf names: [String]) throws(GatewayError) -> String {
    for name in names {
      if let text = try optionalString(name), !text.isEmpty { return text }
    }
    throw .invalid("missing value for required parameter '\(names[0])'")
  }

  /// An integer field (a number or a string holding one), nil when absent.
  public func optionalInt64(_ name: String) throws(GatewayError) -> Int64? {
    guard let value = self[name] else { return nil }
    do {
      return try Int64(_json: value, path: name)
    } catch {
      throw .invalid(error.message)
    }
  }

  /// A number field; "NaN", "Infinity" and "-Infinity" as strings too, as MLflow sends them.
  public func double(_ name: String) throws(GatewayError) -> Double {
    guard let value = self[name] else { throw .invalid("missing value for required parameter '\(name)'") }
    return try Self.double(value, name)
  }

  static func double(_ value: JSONValue, _ name: String) throws(GatewayError) -> Double {
    do {
      return try Double(_json: value, path: name)
    } catch {
      if case .string = value { throw .invalid("\(name): expected a number, found a string") }
      throw .invalid(error.message)
    }
  }

  /// A boolean field (true/false, or "true"/"false" from a query string), nil when absent.
  public func optionalBool(_ name: String) throws(GatewayError) -> Bool? {
    guard let value = self[name] else { return nil }
    switch value {
    case .bool(let flag): return flag
    case .string("true"), .string("True"): return true
    case .string("false"), .string("False"): return false
    default: throw .invalid("\(name): expected true or false, found \(value.kindName)")
    }
  }

  /// An array field (one value from a query string is an array of one), empty when absent.
  public func array(_ name: String) throws(GatewayError) -> [JSONValue] {
    guard let value = self[name] else { return [] }
    switch value {
    case .array(let values): return values
    case .string: return [value]
    default: throw .invalid("\(name): expected an array, found \(value.kindName)")
    }
  }

  /// An array of strings, empty when absent.
  public func strings(_ name: String) throws(GatewayError) -> [String] {
    var result: [String] = []
    for (index, value) in try array(name).enumerated() {
      guard case .string(let text) = value else {
        throw .invalid("\(name)[\(index)]: expected a string, found \(value.kindName)")
      }
      result.append(text)
    }
    return result
  }

  /// An array of objects, each as its own fields, empty when absent.
  public func objects(_ name: String) throws(GatewayError) -> [RequestFields] {
    var result: [RequestFields] = []
    for (index, value) in try array(name).enumerated() {
      guard case .object(let members) = value else {
        throw .invalid("\(name)[\(index)]: expected an object, found \(value.kindName)")
      }
      result.append(RequestFields(members: members))
    }
    return result
  }

  /// An object field, nil when absent.
  public func object(_ name: String) throws(GatewayError) -> RequestFields? {
    guard let value = self[name] else { return nil }
    guard case .object(let members) = value else {
      throw .invalid("\(name): expected an object, found \(value.kindName)")
    }
    return RequestFields(members: members)
  }
}
