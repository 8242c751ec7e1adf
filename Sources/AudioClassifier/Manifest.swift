import Foundation

/// One clip to import: where it is, and what the dataset's source says of it.
struct ManifestEntry: Sendable, Equatable {
  /// A path on the service's host, or an http(s) URL.
  var source: String
  var label = ""
  var location = ""
  var timestamp: Int64 = 0
  /// Seconds, checked against the decoded clip; nil when not given.
  var duration: Double?

  var isURL: Bool { source.hasPrefix("http://") || source.hasPrefix("https://") }
}

/// Why a manifest could not be read, naming the line and the field.
struct ManifestError: Error, CustomStringConvertible {
  var message: String
  var description: String { message }
}

/// A manifest's entries: CSV with a header row, or JSON Lines (each line an object), with `path`
/// or `url` and optionally `label`, `location`, `timestamp` and `duration` (the Orcasound
/// endpoint's fields). Relative paths start at `base`.
enum Manifest {
  static func entries(_ text: String, base: String) throws(ManifestError) -> [ManifestEntry] {
    let lines = text.split(whereSeparator: \.isNewline).map(String.init).filter {
      !$0.trimmingCharacters(in: .whitespaces).isEmpty
    }
    guard let first = lines.first else { throw ManifestError(message: "manifest: it has no lines") }
    let rows: [[String: String]]
    if first.trimmingCharacters(in: .whitespaces).hasPrefix("{") {
      rows = try lines.enumerated().map { index, line throws(ManifestError) in
        guard let object = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] else {
          throw ManifestError(message: "manifest line \(index + 1): not a JSON object")
        }
        return object.compactMapValues { value in
          if let text = value as? String { return text }
          if let number = value as? NSNumber { return number.stringValue }
          return nil
        }
      }
    } else {
      let header = csvFields(first).map { $0.lowercased().trimmingCharacters(in: .whitespaces) }
      guard header.contains("path") || header.contains("url") else {
        throw ManifestError(
          message: "manifest: the CSV header (\(header.joined(separator: ","))) has no path or url column")
      }
      rows = try lines.dropFirst().enumerated().map { index, line throws(ManifestError) in
        let fields = csvFields(line)
        guard fields.count <= header.count else {
          throw ManifestError(
            message: "manifest line \(index + 2): \(fields.count) fields, the header has \(header.count)")
        }
        return Dictionary(uniqueKeysWithValues: zip(header, fields))
      }
    }
    return try rows.enumerated().map { index, row throws(ManifestError) in
      let line = index + (first.hasPrefix("{") ? 1 : 2)
      guard let source = (row["path"] ?? row["url"]).map({ $0.trimmingCharacters(in: .whitespaces) }),
        !source.isEmpty
      else { throw ManifestError(message: "manifest line \(line): path (or url) is missing") }
      var entry = ManifestEntry(source: source)
      if !entry.isURL && !source.hasPrefix("/") {
        guard base.hasPrefix("/") else {
          throw ManifestError(
            message: "manifest line \(line): the relative path '\(source)' needs base_directory, an absolute path")
        }
        entry.source = "\(base)/\(source)"
      }
      entry.label = row["label"]?.trimmingCharacters(in: .whitespaces) ?? ""
      entry.location = row["location"]?.trimmingCharacters(in: .whitespaces) ?? ""
      if let text = row["timestamp"], !text.isEmpty {
        guard let value = Int64(text) ?? Double(text).map({ Int64($0) }) else {
          throw ManifestError(message: "manifest line \(line): timestamp '\(text)' is not Unix seconds")
        }
        entry.timestamp = value
      }
      if let text = row["duration"], !text.isEmpty {
        guard let value = Double(text), value > 0 else {
          throw ManifestError(message: "manifest line \(line): duration '\(text)' is not a number of seconds")
        }
        entry.duration = value
      }
      return entry
    }
  }

  /// A CSV line's fields: commas separate, double quotes enclose (a doubled quote inside is one).
  static func csvFields(_ line: String) -> [String] {
    var fields: [String] = []
    var field = ""
    var quoted = false
    var characters = Array(line)[...]
    while let character = characters.popFirst() {
      if quoted {
        if character == "\"" {
          if characters.first == "\"" {
            field.append("\"")
            characters.removeFirst()
          } else {
            quoted = false
          }
        } else {
          field.append(character)
        }
      } else if character == "\"" {
        quoted = true
      } else if character == "," {
        fields.append(field)
        field = ""
      } else {
        field.append(character)
      }
    }
    fields.append(field)
    return fields
  }

  /// A name's location and Unix time, as Orcasound names clips: `{location}_{unix time}.wav`.
  static func locationAndTime(_ name: String) -> (String, Int64)? {
    let stem = (name as NSString).deletingPathExtension
    guard let underscore = stem.lastIndex(of: "_"), let time = Int64(stem[stem.index(after: underscore)...]),
      time > 1_000_000_000, time < 10_000_000_000
    else { return nil }
    return (String(stem[..<underscore]), time)
  }
}
