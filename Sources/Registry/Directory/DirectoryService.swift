public import ShoalProto
public import ShoalRPC
public import ShoalServiceStubs

/// `shoal.registry.v1.Directory` over a `Directory`.
public struct DirectoryService: RegistryV1.Directory.ServiceProtocol {
  /// The directory served.
  public let directory: Directory

  /// A service answering from `directory`.
  public init(directory: Directory) { self.directory = directory }

  public func registerInstance(
    _ request: RegistryV1.RegisterRequest, context: ServerContext
  ) async throws -> RegistryV1.RegisterResponse {
    guard Self.isServiceName(request.service) else {
      throw RPCError(
        .invalidArgument,
        "service '\(request.service)' is not a service name (lower-case letters, digits, '-', '_', '.')")
    }
    do {
      _ = try RPCAddress(parsing: request.address)
    } catch {
      throw RPCError(.invalidArgument, "address '\(request.address)': \(error.message)")
    }
    guard ["unix:///", "tcp://", "tls://"].contains(where: request.address.hasPrefix) else {
      throw RPCError(
        .invalidArgument,
        "address '\(request.address)' must be absolute: unix:///abs/path, tcp://host:port or tls://host:port")
    }
    return try await directory.register(request)
  }

  public func keepAlive(
    _ request: RegistryV1.KeepAliveRequest, context: ServerContext
  ) async throws -> RegistryV1.KeepAliveResponse {
    guard let (ttlMs, expiresAtMs) = directory.keepAlive(leaseID: request.leaseId) else {
      throw RPCError(.notFound, "lease \(request.leaseId) has expired or never existed; register again")
    }
    var response = RegistryV1.KeepAliveResponse()
    response.leaseId = request.leaseId
    response.ttlMs = UInt32(ttlMs)
    response.expiresAtMs = expiresAtMs
    return response
  }

  public func deregister(
    _ request: RegistryV1.DeregisterRequest, context: ServerContext
  ) async throws -> RegistryV1.DeregisterResponse {
    var response = RegistryV1.DeregisterResponse()
    response.revision = try await directory.deregister(leaseID: request.leaseId)
    return response
  }

  public func resolve(
    _ request: RegistryV1.ResolveRequest, context: ServerContext
  ) async throws -> RegistryV1.ResolveResponse {
    let (instances, revision) = directory.resolve(request.service)
    var response = RegistryV1.ResolveResponse()
    response.instances = instances
    response.revision = revision
    return response
  }

  public func watch(
    _ request: RegistryV1.WatchRequest, responses: RPCResponseWriter<RegistryV1.WatchEvent>, context: ServerContext
  ) async throws {
    var after = request.afterRevision
    while !Task.isCancelled {
      let (id, initial, changes) = directory.watch(request.service, afterRevision: after)
      defer { directory.endWatch(id) }
      for event in initial {
        try await responses.send(event)
        after = max(after, event.revision)
      }
      for await event in changes {
        try await responses.send(event)
        after = event.revision
      }
      // The stream ended without our asking: the directory stopped, or this watcher fell too far
      // behind; in the second case pick up again from the last change sent (a RESET and a
      // snapshot if those changes are gone).
      if directory.isStopped { throw RPCError(.unavailable, "the registry is shutting down") }
    }
  }

  /// Lower-case letters, digits, '-', '_' and '.', 1 to 63 characters.
  static func isServiceName(_ name: String) -> Bool {
    !name.isEmpty && name.utf8.count <= 63
      && name.utf8.allSatisfy {
        (97...122).contains($0) || (48...57).contains($0) || $0 == 45 || $0 == 95 || $0 == 46
      }
  }
}
