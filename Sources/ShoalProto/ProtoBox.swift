/// Holds a message field whose type contains the message itself (directly or through other
/// messages), which a Swift struct cannot store inline. Immutable, so sharing it is safe.
public final class ProtoBox<Value: ProtoMessage>: Sendable, Hashable {
  /// The boxed value.
  public let value: Value

  /// Boxes a value.
  public init(_ value: Value) { self.value = value }

  public static func == (lhs: ProtoBox, rhs: ProtoBox) -> Bool { lhs === rhs || lhs.value == rhs.value }

  public func hash(into hasher: inout Hasher) { value.hash(into: &hasher) }
}
