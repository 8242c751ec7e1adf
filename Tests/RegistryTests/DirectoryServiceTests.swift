import Bench
import Foundation
import Registry
import ShoalClient
import ShoalProto
import ShoalRPC
import ShoalServiceStubs
import ShoalTestSupport
import Synchronization
import Testing

/// The directory served over real Unix sockets, used through the client SDK.
struct DirectoryServiceTests {
  /// A registry (directory + expiry loop) on a temporary socket for the length of `body`.
  private func withRegistry(
    expiry: Duration = .milliseconds(50),
    _ body: (Directory, RegistryLocation, TemporaryDirectory) async throws -> Void
  ) async throws {
    let directory = try TemporaryDirectory()
    let registry = Directory(expiryInterval: expiry)
    var router = ServiceRouter()
    DirectoryService(directory: registry).register(in: &router)
    let server = RPCServer(router: router)
    let address = try await server.bind(to: .unix(path: directory.path("registry.sock")))
    let location = try RegistryLocation(registry: address.description, data: directory.url.path, environment: [:])
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { await registry.run() }
      group.addTask { try await server.run() }
      do {
        try await body(registry, location, directory)
      } catch {
        group.cancelAll()
        throw error
      }
      group.cancelAll()
    }
  }

  /// Counts the calls a server handles.
  private final class CallCounter: ServerInterceptor {
    let count = Atomic(0)
    func intercept(_ context: ServerContext, next: @Sendable () async throws -> Void) async throws {
      count.add(1, ordering: .relaxed)
      try await next()
    }
  }

  /// A bench server on a temporary socket, counting its calls.
  private func startBench(
    _ directory: TemporaryDirectory, _ name: String
  ) async throws -> (RPCServer, RPCAddress, CallCounter) {
    var router = ServiceRouter()
    BenchService().register(in: &router)
    let counter = CallCounter()
    let server = RPCServer(router: router, interceptors: [counter])
    return (server, try await server.bind(to: .unix(path: directory.path(name))), counter)
  }

  private func registration(
    _ service: String, _ address: RPCAddress, ttlMs: UInt32 = 60_000
  ) -> RegistryV1.RegisterRequest {
    var request = RegistryV1.RegisterRequest()
    request.service = service
    request.address = address.description
    request.ttlMs = ttlMs
    return request
  }

  @Test func watchersSeeChangesInOrderAndCanResume() async throws {
    try await withRegistry { _, location, _ in
      let client = ShoalClient(location: location)
      let directory = client.directory
      let first = try await directory.registerInstance(registration("bench", .unix(path: "/tmp/a.sock")))
      var request = RegistryV1.WatchRequest()
      request.service = "bench"
      let seen = try await directory.watch(request, options: CallOptions(timeout: .seconds(30))) { events in
        var seen: [RegistryV1.WatchEvent] = []
        for try await event in events {
          seen.append(event)
          if seen.count == 1 {
            _ = try await directory.registerInstance(registration("other", .unix(path: "/tmp/o.sock")))
            _ = try await directory.registerInstance(registration("bench", .unix(path: "/tmp/b.sock")))
            var deregister = RegistryV1.DeregisterRequest()
            deregister.leaseId = first.instance!.leaseId
            _ = try await directory.deregister(deregister)
          }
          if seen.count == 3 { break }
        }
        return seen
      }
      #expect(seen.map(\.kind) == [.snapshot, .put, .delete])
      #expect(seen[0].instances.map(\.address) == ["unix:///tmp/a.sock"])
      #expect(seen[1].instances[0].address == "unix:///tmp/b.sock")
      #expect(seen[2].instances[0].address == "unix:///tmp/a.sock" && seen[2].reason == "deregistered")
      #expect(seen[1].revision < seen[2].revision)

      // Resuming from the snapshot's revision replays the same two changes.
      request.afterRevision = seen[0].revision
      let replayed = try await directory.watch(request, options: CallOptions(timeout: .seconds(30))) { events in
        var replayed: [RegistryV1.WatchEvent] = []
        for try await event in events {
          replayed.append(event)
          if replayed.count == 2 { break }
        }
        return replayed
      }
      #expect(replayed == Array(seen[1...]))

      // A revision this registry never issued: RESET, then a fresh snapshot.
      request.afterRevision = 1
      let reset = try await directory.watch(request, options: CallOptions(timeout: .seconds(30))) { events in
        var reset: [RegistryV1.WatchEvent] = []
        for try await event in events {
          reset.append(event)
          if reset.count == 2 { break }
        }
        return reset
      }
      #expect(reset.map(\.kind) == [.reset, .snapshot])
      #expect(reset[1].instances.map(\.address) == ["unix:///tmp/b.sock"])
      await client.close()
    }
  }

  @Test func anInstanceWhoseLeaseIsNotKeptAliveDisappearsForWatchers() async throws {
    try await withRegistry { _, location, _ in
      let client = ShoalClient(location: location)
      let directory = client.directory
      var request = RegistryV1.WatchRequest()
      request.service = "bench"
      // Register only once the watch has its snapshot, so the expiry cannot happen unseen; the
      // call's deadline keeps a failure from hanging the suite.
      let (registered, deleted) = try await directory.watch(request, options: CallOptions(timeout: .seconds(30))) {
        events in
        var registered: RegistryV1.RegisterResponse?
        for try await event in events {
          if event.kind == .snapshot {
            registered = try await directory.registerInstance(
              registration("bench", .unix(path: "/tmp/x.sock"), ttlMs: 1000))
          }
          if event.kind == .delete { return (registered, Optional(event)) }
        }
        return (registered, RegistryV1.WatchEvent?.none)
      }
      #expect(deleted?.instances.first?.leaseId == registered?.instance?.leaseId)
      #expect(deleted?.reason == "lease expired")
      var keepAlive = RegistryV1.KeepAliveRequest()
      keepAlive.leaseId = try #require(registered?.instance?.leaseId)
      let error = await #expect(throws: RPCError.self) { try await client.directory.keepAlive(keepAlive) }
      #expect(error?.code == .notFound)
      await client.close()
    }
  }

  @Test func badRegistrationsAreRefusedNamingTheField() async throws {
    try await withRegistry { _, location, _ in
      let client = ShoalClient(location: location)
      let badName = await #expect(throws: RPCError.self) {
        try await client.directory.registerInstance(registration("Bad Name", .unix(path: "/tmp/x")))
      }
      #expect(badName?.code == .invalidArgument && badName?.message.contains("Bad Name") == true)
      var relative = registration("bench", .unix(path: "/tmp/x"))
      relative.address = "unix:relative.sock"
      let badAddress = await #expect(throws: RPCError.self) { try await client.directory.registerInstance(relative) }
      #expect(badAddress?.code == .invalidArgument && badAddress?.message.contains("absolute") == true)
      await client.close()
    }
  }

  @Test func theSDKBalancesRoundRobinAndFailsOverToLiveInstances() async throws {
    try await withRegistry { _, location, directory in
      let (serverA, addressA, countA) = try await startBench(directory, "a.sock")
      let (serverB, addressB, countB) = try await startBench(directory, "b.sock")
      let registry = RPCClient(address: location.registry)
      let keepers = [addressA, addressB].map {
        LeaseKeeper(registration: registration("bench", $0), registry: registry) { _ in }
      }
      try await withThrowingTaskGroup(of: Void.self) { group in
        for keeper in keepers { group.addTask { await keeper.run() } }
        let client = ShoalClient(location: location)
        let channel = client.channel(for: "bench")
        let bench = BenchV1.Bench.Client(channel)
        // Wait until the watch has delivered both instances (generously: CI machines are busy).
        let deadline = ContinuousClock.now + .seconds(30)
        while channel.addresses.count < 2, ContinuousClock.now < deadline {
          try await Task.sleep(for: .milliseconds(20))
        }
        #expect(Set(channel.addresses) == [addressA, addressB])

        // Round robin: ten calls, five to each server.
        for _ in 0..<10 { _ = try await bench.echo(BenchV1.BenchRequest()) }
        #expect(countA.count.load(ordering: .relaxed) == 5)
        #expect(countB.count.load(ordering: .relaxed) == 5)

        // One server goes away without deregistering (its lease is still live): every call
        // still succeeds, on the other one.
        await serverA.shutdown()
        for _ in 0..<6 { _ = try await bench.echo(BenchV1.BenchRequest()) }
        #expect(countA.count.load(ordering: .relaxed) == 5)
        #expect(countB.count.load(ordering: .relaxed) == 11)
        await client.close()
        group.cancelAll()
      }
      await serverB.shutdown()
      await registry.close()
    }
  }

  /// A server listening on a Unix socket and on TCP is one server to balance over, called through
  /// its socket on its own host and over TCP from elsewhere.
  @Test func theSDKCallsEachServerOnceThroughTheAddressItCanReach() throws {
    func instance(_ lease: Int64, _ address: String, host: String?, pid: String?) -> RegistryV1.Instance {
      var instance = RegistryV1.Instance()
      instance.leaseId = lease
      instance.address = address
      if let host { instance.metadata["host"] = host }
      if let pid { instance.metadata["pid"] = pid }
      return instance
    }
    let instances = [
      instance(1, "unix:///here/a.sock", host: "here", pid: "10"),
      instance(2, "tcp://10.0.0.1:7401", host: "here", pid: "10"),
      instance(3, "tcp://10.0.0.2:7401", host: "there", pid: "10"),
      instance(4, "unix:///there/b.sock", host: "there", pid: "10"),
      instance(5, "unix:///there/c.sock", host: "there", pid: "11"),
      instance(6, "tcp://10.0.0.3:7401", host: nil, pid: nil),
      instance(7, "tcp://10.0.0.1:7402", host: "here", pid: "12"),
    ]
    let chosen = ServiceResolver.addresses(of: instances.reversed(), localHost: "here").map(\.description)
    #expect(chosen == ["unix:///here/a.sock", "tcp://10.0.0.2:7401", "tcp://10.0.0.3:7401", "tcp://10.0.0.1:7402"])
  }

  @Test func withoutARegistryCallsFailUnavailableBeforeTheirDeadlineNamingTheAddress() async throws {
    let directory = try TemporaryDirectory()
    let location = try RegistryLocation(data: directory.url.path, environment: [:])
    #expect(location.registry == .unix(path: directory.path("registry.sock")))
    var config = BalancedChannel.Config.defaults
    config.instanceWait = .milliseconds(500)
    let client = ShoalClient(location: location, config: config)
    let bench = BenchV1.Bench.Client(client.channel(for: "bench"))
    // The call gives up after the wait for an instance, long before its deadline: UNAVAILABLE,
    // not DEADLINE_EXCEEDED.
    let error = await #expect(throws: RPCError.self) {
      try await bench.echo(BenchV1.BenchRequest(), options: CallOptions(timeout: .seconds(120)))
    }
    #expect(error?.code == .unavailable)
    #expect(error?.message.contains(directory.path("registry.sock")) == true, "\(String(describing: error))")
    await client.close()
  }

  @Test func theLocationFollowsOptionsThenEnvironmentThenTheDataDirectory() throws {
    let fromOptions = try RegistryLocation(
      registry: "tcp://127.0.0.1:7400", data: "/srv/shoal", token: "t1",
      environment: ["SHOAL_REGISTRY": "unix:///x", "SHOAL_TOKEN": "t2"])
    #expect(fromOptions.registry == .tcp(host: "127.0.0.1", port: 7400))
    #expect(fromOptions.dataDirectory == "/srv/shoal" && fromOptions.token == "t1")
    let fromEnvironment = try RegistryLocation(
      environment: ["SHOAL_REGISTRY": "unix:///x.sock", "SHOAL_DATA": "/d", "SHOAL_TOKEN": "t2"])
    #expect(fromEnvironment.registry == .unix(path: "/x.sock") && fromEnvironment.token == "t2")
    let byDefault = try RegistryLocation(environment: ["HOME": "/home/u"])
    #expect(byDefault.dataDirectory == "/home/u/.shoal")
    #expect(byDefault.registry == .unix(path: "/home/u/.shoal/registry.sock"))
    #expect(throws: RPCError.self) { try RegistryLocation(registry: "http://x", environment: [:]) }
  }
}
