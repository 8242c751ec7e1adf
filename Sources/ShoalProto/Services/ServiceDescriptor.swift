/// A service generated from a `.proto` file: its name and methods.
public struct ServiceDescriptor: Sendable, Hashable {
  /// The fully qualified name, e.g. `shoal.bench.v1.Bench`.
  public let fullName: String
  /// The methods in declaration order.
  public let methods: [MethodDescriptor]

  /// A service descriptor; generated code creates these.
  public init(fullName: String, methods: [MethodDescriptor]) {
    self.fullName = fullName
    self.methods = methods
  }

  /// The method with the given simple name.
  public func method(named name: String) -> MethodDescriptor? {
    methods.first { $0.name == name }
  }
}
