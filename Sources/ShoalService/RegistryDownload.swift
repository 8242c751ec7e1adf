public import ShoalProto
public import ShoalRPC
public import ShoalServiceStubs

extension RegistryV1.ModelRegistry.Client {
  /// A version and its file, as the registry sends them, by a reference (`name@alias`,
  /// `name/version` or `name`; its `org/` defaulting to `organization`).
  ///
  /// - Throws: what the registry answers (NOT_FOUND for an unknown model or version), and
  ///   UNAVAILABLE when it sends no version.
  public func versionAndFile(
    _ text: String, organization: String, options: CallOptions
  ) async throws -> (RegistryV1.ModelVersion, [UInt8]) {
    let reference = try ModelReference(parsing: text).qualified(defaultOrganization: organization)
    var get = RegistryV1.GetVersionRequest()
    get.organization = reference.organization ?? organization
    get.model = reference.model
    switch reference.selector {
    case .alias(let alias): get.alias = alias
    case .version(let number): get.version = number
    case .latest: break
    }
    let (version, file) = try await downloadVersion(get, options: options) {
      responses -> (RegistryV1.ModelVersion?, [UInt8]) in
      var version: RegistryV1.ModelVersion?
      var file: [UInt8] = []
      for try await response in responses {
        switch response.part {
        case .version(let header): version = header
        case .chunk(let chunk): file += chunk
        case nil: break
        }
      }
      return (version, file)
    }
    guard let version else { throw RPCError(.unavailable, "the registry sent no version for \(reference)") }
    return (version, file)
  }
}
