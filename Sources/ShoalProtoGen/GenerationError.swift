/// Why a `.proto` file could not be mapped to Swift, naming the file, message and field.
public struct GenerationError: Error, CustomStringConvertible, Sendable {
  /// The `.proto` file, relative to the include path.
  public var file: String
  /// What could not be mapped and why.
  public var message: String

  /// An error in `file`.
  public init(file: String, _ message: String) {
    self.file = file
    self.message = message
  }

  public var description: String { file.isEmpty ? message : "\(file): \(message)" }
}
