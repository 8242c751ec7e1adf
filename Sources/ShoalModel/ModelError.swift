/// Why a model could not be loaded or run, or a tensor file read.
public struct ModelError: Error, Sendable, CustomStringConvertible {
  /// The kind of failure.
  public enum Code: Sendable, Hashable {
    /// The bytes are not a valid model or tensor file (truncated, not ONNX, a cycle, a missing value).
    case invalidModel
    /// The model uses an operator, attribute or type the model core does not implement.
    case unsupported
    /// The caller's inputs do not fit the model (a missing input, wrong rank, type or shape).
    case invalidInput
    /// A file could not be read or written.
    case io
  }

  /// The kind of failure.
  public var code: Code
  /// What was wrong, naming the node, input or file.
  public var message: String

  /// Planning needed the elements of a value that depends on an input's elements (a shape fed
  /// in as an input): the model is then planned per value of its small integer inputs.
  var needsInputValues = false

  /// A failure of kind `code`.
  public init(_ code: Code, _ message: String) {
    self.code = code
    self.message = message
  }

  /// A value's elements were needed while planning but depend on an input's elements.
  static func needsValue(_ what: String) -> ModelError {
    var error = ModelError(
      .unsupported, "\(what) must be computable from constants, input shapes and small integer inputs")
    error.needsInputValues = true
    return error
  }

  /// The same failure, its message prefixed with `context`.
  func prefixed(_ context: String) -> ModelError {
    var error = ModelError(code, "\(context): \(message)")
    error.needsInputValues = needsInputValues
    return error
  }

  public var description: String { message }
}
