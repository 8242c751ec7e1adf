import ShoalProto

/// `shoal.rpc.v1.Reflection`: the services and methods a server has, for generic clients.
struct ReflectionService {
  let router: ServiceRouter

  func register(in router: inout ServiceRouter) {
    var services = self.router.services
    services[RpcV1.Reflection.fullName] = RpcV1.Reflection.descriptor.methods
    var response = RpcV1.ListServicesResponse()
    for name in services.keys.sorted() {
      var info = RpcV1.ServiceInfo()
      info.name = name
      info.methods = services[name]!.map { method in
        var methodInfo = RpcV1.MethodInfo()
        methodInfo.name = method.name
        methodInfo.inputType = method.inputType.protoMessageName
        methodInfo.outputType = method.outputType.protoMessageName
        methodInfo.clientStreaming = method.kind.clientStreams
        methodInfo.serverStreaming = method.kind.serverStreams
        methodInfo.idempotent = method.idempotent
        return methodInfo
      }
      response.services.append(info)
    }
    router.unary(RpcV1.Reflection.listServices) { [response] _, _ in response }
  }
}
