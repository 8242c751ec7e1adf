/// Every message type, enum and service generated into this module, by fully qualified name:
/// what generic tools (`shoal call`, reflection) use to find a type from a name on the wire.
public enum ProtoRegistry {
  private static let messagesByName: [String: any ProtoMessage.Type] = Dictionary(
    uniqueKeysWithValues: generatedMessageTypes.map { ($0.protoMessageName, $0) }
  )
  private static let servicesByName: [String: ServiceDescriptor] = Dictionary(
    uniqueKeysWithValues: generatedServices.map { ($0.fullName, $0) }
  )

  /// Every generated message type.
  public static var messageTypes: [any ProtoMessage.Type] { generatedMessageTypes }

  /// Every generated service.
  public static var services: [ServiceDescriptor] { generatedServices }

  /// The message type with a fully qualified name such as `shoal.bench.v1.BenchRequest`.
  public static func messageType(named name: String) -> (any ProtoMessage.Type)? {
    messagesByName[name]
  }

  /// The service with a fully qualified name such as `shoal.bench.v1.Bench`.
  public static func service(named name: String) -> ServiceDescriptor? {
    servicesByName[name]
  }

  /// The method for a call path such as `/shoal.bench.v1.Bench/Echo`.
  public static func method(path: String) -> MethodDescriptor? {
    let parts = path.split(separator: "/", omittingEmptySubsequences: false)
    guard parts.count == 3, parts[0].isEmpty else { return nil }
    return service(named: String(parts[1]))?.method(named: String(parts[2]))
  }
}
