import Foundation
import ShoalMesh
import ShoalTestSupport
import Testing

struct MeshFileTests {
  private func parse(_ json: String) throws(MeshFileError) -> MeshFile {
    try MeshFile(json: Data(json.utf8), file: "test.json")
  }

  @Test func theRepositoryMeshFilesParseAndTheBuiltInOneIsLocalJSON() throws {
    let root = TestEnvironment.repositoryRoot
    let local = try MeshFile(contentsOf: "\(root)/mesh/local.json")
    #expect(local == (try parse(MeshFile.builtIn)))
    #expect(local.registry.listen == ["unix:registry.sock"])
    #expect(local.services.map(\.name).first == "registry")
    let tcp = try MeshFile(contentsOf: "\(root)/mesh/tcp.json")
    #expect(tcp.store.hasPrefix("postgres://"))
    // The services on this host register through the registry's Unix socket; other hosts reach it
    // over TCP with an admin token of organisation `local`.
    #expect(tcp.registry.listen == ["unix:registry.sock", "tcp://127.0.0.1:7400"])
    #expect(tcp.services.dropFirst().allSatisfy { $0.listen[0].hasPrefix("tcp://127.0.0.1:") })
    // Host A of a mesh over several hosts: its services on the host's own address, in mutual TLS.
    let hostA = try MeshFile(contentsOf: "\(root)/mesh/host-a.json")
    #expect(hostA.registry.listen == ["unix:registry.sock", "tls://10.0.0.1:7400"])
    #expect(hostA.services.map(\.name) == ["registry", "tracking", "feedback", "gateway"])
    #expect(
      hostA.securityArguments == [
        "--tls-ca", "tls/ca.pem", "--tls-cert", "tls/host-a.pem", "--tls-key", "tls/host-a-key.pem",
        "--tls-client-certs", "require",
      ])
  }

  @Test func theTLSSectionAndTheTokenCacheBecomeServeArguments() throws {
    let mesh = try parse(
      #"""
      {"tls": {"ca": "/etc/shoal/ca.pem", "plaintext_tokens": true}, "token_cache_seconds": 5,
       "services": [{"name": "registry", "listen": ["unix:r.sock", "tls://0.0.0.0:7400"]}]}
      """#)
    #expect(
      mesh.securityArguments == [
        "--tls-ca", "/etc/shoal/ca.pem", "--tls-client-certs", "none", "--plaintext-tokens", "--token-cache", "5.0",
      ])
    #expect(try parse(#"{"services": [{"name": "registry"}]}"#).securityArguments.isEmpty)
  }

  @Test func defaultsFillWhatIsLeftOut() throws {
    let mesh = try parse(#"{"services": [{"name": "registry"}, {"name": "bench", "enabled": false}]}"#)
    #expect(mesh.store == "sqlite" && mesh.leaseTTLSeconds == 10)
    #expect(mesh.services[0].listen == ["unix:registry.sock"])
    #expect(mesh.services[1].enabled == false)
  }

  @Test func inferenceModelsBatchingAndMetricsBecomeServeArguments() throws {
    let mesh = try parse(
      #"""
      {"services": [{"name": "registry", "metrics": "off"}, {"name": "inference", "metrics": "127.0.0.1:9464",
        "batching": {"max_batch_size": 8, "max_queue_delay_us": 2000, "preferred_batch_sizes": [4, 8]},
        "cache_size": 1048576,
        "models": ["roads@production", {"model": "ships/3", "instances": 2}]}]}
      """#)
    #expect(mesh.services[0].serveArguments == ["--metrics", "off"])
    #expect(
      mesh.services[1].serveArguments == [
        "--metrics", "127.0.0.1:9464", "--batching",
        "max_batch_size=8,max_queue_delay_us=2000,preferred_batch_sizes=4/8",
        "--cache-size", "1048576", "--load", "roads@production", "--load", "ships/3,instances=2",
      ])
  }

  @Test(arguments: [
    (#"{"services": [{"name": "registry"}], "servces": 1}"#, "key 'servces' is not known"),
    (
      #"{"services": [{"name": "registry"}, {"name": "inference", "batching": {"max_batch": 8}}]}"#,
      "key 'services[1].batching.max_batch' is not known"
    ),
    (
      #"{"services": [{"name": "registry"}, {"name": "inference", "models": [{"instances": 2}]}]}"#,
      "key 'services[1].models[0].model' is missing"
    ),
    (
      #"{"services": [{"name": "registry"}, {"name": "inference", "models": [{"model": "a", "instances": "2"}]}]}"#,
      "key 'services[1].models[0].instances' must be a whole number"
    ),
    (
      #"{"services": [{"name": "registry"}, {"name": "bench", "listen": "unix:b.sock"}]}"#,
      "key 'services[1].listen' must be an array"
    ),
    (
      #"{"services": [{"name": "registry", "listen": ["http://x"]}]}"#,
      "key 'services[0].listen[0]' 'http://x' is not an address"
    ),
    (#"{"services": [{"name": "bench"}]}"#, "key 'services' must list an enabled \"registry\""),
    (
      #"{"services": [{"name": "registry"}, {"name": "registry"}]}"#,
      "key 'services[1].name' 'registry' is listed twice"
    ),
    (#"{"services": [{"name": "registry", "listen": []}]}"#, "key 'services[0].listen' must hold at least one address"),
    (#"{"services": [{"listen": ["unix:x"]}]}"#, "key 'services[0].name' is missing"),
    (#"{"lease_ttl_seconds": "ten", "services": []}"#, "key 'lease_ttl_seconds' must be a number"),
    (#"{"services": [{"name": "registry"}]"#, "is not valid JSON"),
    (
      #"{"tls": {"certificate": "c.pem"}, "services": [{"name": "registry"}]}"#,
      "key 'tls.key' is missing; give both certificate and key"
    ),
    (
      #"{"tls": {"ca": "ca.pem", "client_certificates": "always"}, "services": [{"name": "registry"}]}"#,
      "key 'tls.client_certificates' is 'always'; use none, optional or require"
    ),
    (
      #"{"tls": {"client_certificates": "require"}, "services": [{"name": "registry"}]}"#,
      "key 'tls.ca' is missing; client certificates are checked against it"
    ),
    (#"{"tls": {"cert": "c.pem"}, "services": [{"name": "registry"}]}"#, "key 'tls.cert' is not known"),
    (#"{"token_cache_seconds": -1, "services": [{"name": "registry"}]}"#, "key 'token_cache_seconds' must be between"),
    (#"[1]"#, "must be a JSON object"),
  ])
  func malformedMeshFilesNameTheKey(_ json: String, _ expected: String) {
    do {
      _ = try parse(json)
      Issue.record("accepted \(json)")
    } catch {
      #expect(error.description.contains(expected), "\(error.description)")
      #expect(error.description.hasPrefix("mesh file test.json"))
    }
  }
}
