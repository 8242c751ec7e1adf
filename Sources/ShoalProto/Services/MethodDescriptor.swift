/// How many messages each side of a call sends.
public enum CallKind: String, Sendable, Hashable {
  /// One request, one response.
  case unary
  /// Many requests, one response.
  case clientStreaming
  /// One request, many responses.
  case serverStreaming
  /// Many each way.
  case bidirectionalStreaming

  /// The kind for a method's streaming flags.
  public init(clientStreaming: Bool, serverStreaming: Bool) {
    switch (clientStreaming, serverStreaming) {
    case (false, false): self = .unary
    case (true, false): self = .clientStreaming
    case (false, true): self = .serverStreaming
    case (true, true): self = .bidirectionalStreaming
    }
  }

  /// Whether the client sends a stream of requests.
  public var clientStreams: Bool { self == .clientStreaming || self == .bidirectionalStreaming }
  /// Whether the server sends a stream of responses.
  public var serverStreams: Bool { self == .serverStreaming || self == .bidirectionalStreaming }
}

/// One method of a service, with its message types, as generated from a `.proto` file.
public struct MethodDescriptor: Sendable, Hashable {
  /// The service's fully qualified name, e.g. `shoal.bench.v1.Bench`.
  public let service: String
  /// The method's name, e.g. `Echo`.
  public let name: String
  /// Unary, client-, server- or bidirectional streaming.
  public let kind: CallKind
  /// Whether the method may be retried without changing the outcome (`idempotency_level`
  /// `IDEMPOTENT` or `NO_SIDE_EFFECTS` in the `.proto` file).
  public let idempotent: Bool
  /// The request message type.
  public let inputType: any ProtoMessage.Type
  /// The response message type.
  public let outputType: any ProtoMessage.Type
  /// The path sent in a call's header: `/package.Service/Method` (made once: every call sends it).
  public let path: String

  /// A method descriptor; generated code creates these.
  public init(
    service: String, name: String, kind: CallKind, idempotent: Bool,
    inputType: any ProtoMessage.Type, outputType: any ProtoMessage.Type
  ) {
    self.service = service
    self.name = name
    self.kind = kind
    self.idempotent = idempotent
    self.inputType = inputType
    self.outputType = outputType
    path = "/\(service)/\(name)"
  }

  public static func == (lhs: MethodDescriptor, rhs: MethodDescriptor) -> Bool {
    lhs.service == rhs.service && lhs.name == rhs.name && lhs.kind == rhs.kind && lhs.idempotent == rhs.idempotent
      && lhs.inputType == rhs.inputType && lhs.outputType == rhs.outputType
  }

  public func hash(into hasher: inout Hasher) {
    hasher.combine(service)
    hasher.combine(name)
  }
}

/// A method with its message types known statically, for typed clients and servers.
public struct TypedMethod<Input: ProtoMessage, Output: ProtoMessage>: Sendable, Hashable {
  /// The untyped description (path, kind, idempotency).
  public let descriptor: MethodDescriptor

  /// A typed method; generated code creates these.
  public init(service: String, name: String, kind: CallKind, idempotent: Bool) {
    descriptor = MethodDescriptor(
      service: service, name: name, kind: kind, idempotent: idempotent, inputType: Input.self, outputType: Output.self
    )
  }
}
