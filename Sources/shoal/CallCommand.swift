import ArgumentParser
import Foundation
import ShoalProto
import ShoalRPC

/// `shoal call ADDR METHOD [JSON]`: calls any method a server lists through reflection, with
/// messages as proto3 JSON. Streams print one JSON object per line; streaming requests are
/// read one JSON object per line from standard input.
struct CallCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "call",
    abstract: "Call a method with a JSON request; print the responses as JSON.",
    discussion: """
      METHOD is /package.Service/Method, package.Service/Method or package.Service.Method.
      Unary and server-streaming methods take the request as JSON (default {}); client- and
      bidirectional-streaming methods read one JSON request per line from standard input.
      """
  )

  @Argument(help: "The server's address, or a service name to look up in the registry.")
  var address: String

  @OptionGroup var mesh: MeshOptions

  @Argument(help: "The method to call.")
  var method: String

  @Argument(help: "The request as proto3 JSON.")
  var json: String?

  @Option(help: "Seconds to wait before giving up.")
  var timeout: Double?

  @Option(name: .customLong("metadata"), help: "Metadata key=value to send (repeatable).")
  var metadata: [String] = []

  func run() async throws {
    let client = RPCClient(address: try await mesh.address(of: address))
    defer { Task { await client.close() } }
    let descriptor = try await resolve(client)
    var options = CallOptions(timeout: timeout.map { .milliseconds(Int64($0 * 1000)) })
    for pair in metadata {
      guard let equals = pair.firstIndex(of: "=") else { throw ValidationError("metadata '\(pair)' is not key=value") }
      options.metadata.add(String(pair[..<equals]), String(pair[pair.index(after: equals)...]))
    }
    do {
      switch descriptor.kind {
      case .unary:
        let response = try await client.unary(
          descriptor, try descriptor.inputType.init(jsonString: json ?? "{}"), options: options)
        print(response.jsonString(pretty: true))
      case .serverStreaming:
        try await client.serverStreaming(
          descriptor, try descriptor.inputType.init(jsonString: json ?? "{}"), options: options
        ) {
          print($0.jsonString())
        }
      case .clientStreaming, .bidirectionalStreaming:
        var requests: [any ProtoMessage] = []
        if let json { requests.append(try descriptor.inputType.init(jsonString: json)) }
        while let line = readLine(), !line.trimmingCharacters(in: .whitespaces).isEmpty {
          requests.append(try descriptor.inputType.init(jsonString: line))
        }
        try await client.streaming(descriptor, requests: requests, options: options) { print($0.jsonString()) }
      }
    } catch let error as RPCError {
      FileHandle.standardError.write(Data("shoal call: \(error)\n".utf8))
      throw ExitCode(1)
    }
  }

  /// The method's descriptor, from the server's reflection and this binary's message types.
  private func resolve(_ client: RPCClient) async throws -> MethodDescriptor {
    var path = method.hasPrefix("/") ? String(method.dropFirst()) : method
    if !path.contains("/"), let dot = path.lastIndex(of: ".") {
      path.replaceSubrange(dot...dot, with: "/")
    }
    let parts = path.split(separator: "/")
    guard parts.count == 2 else { throw ValidationError("'\(method)' is not a method; write package.Service/Method") }
    let (serviceName, methodName) = (String(parts[0]), String(parts[1]))
    let services = try await client.unary(RpcV1.Reflection.listServices, RpcV1.ListServicesRequest()).services
    guard let service = services.first(where: { $0.name == serviceName }) else {
      throw ValidationError(
        "the server has no service '\(serviceName)'; it has: \(services.map(\.name).joined(separator: ", "))")
    }
    guard let info = service.methods.first(where: { $0.name == methodName }) else {
      throw ValidationError(
        "\(serviceName) has no method '\(methodName)'; it has: \(service.methods.map(\.name).joined(separator: ", "))")
    }
    guard let input = ProtoRegistry.messageType(named: info.inputType),
      let output = ProtoRegistry.messageType(named: info.outputType)
    else {
      throw ValidationError(
        "this shoal binary does not know \(info.inputType) or \(info.outputType); use a build from the same contract")
    }
    return MethodDescriptor(
      service: serviceName, name: methodName,
      kind: CallKind(clientStreaming: info.clientStreaming, serverStreaming: info.serverStreaming),
      idempotent: info.idempotent, inputType: input, outputType: output)
  }
}
