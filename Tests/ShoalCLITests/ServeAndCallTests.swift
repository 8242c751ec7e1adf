import Foundation
import ShoalTestSupport
import Testing

/// `shoal serve bench`, `shoal call`, `shoal health` and `shoal load` as separate processes
/// over real sockets.
struct ServeAndCallTests {
  private func withBenchServer(_ body: (_ unix: String, _ tcp: String) async throws -> Void) async throws {
    let shoal = try TestEnvironment.product("shoal")
    let directory = try TemporaryDirectory()
    let server = try ServerProcess(
      shoal,
      [
        "serve", "bench", "--data", directory.url.path, "--no-register", "--listen",
        "unix://\(directory.path("bench.sock"))", "--listen", "tcp://127.0.0.1:0",
      ])
    let lines = try await server.waitForLines(containing: "listening on", count: 2)
    let addresses = lines.map { String($0.split(separator: " ").last!) }
    try await body(addresses[0], addresses[1])
    #expect(try await server.stop(signal: SIGTERM) == 0, "SIGTERM should shut the server down cleanly")
  }

  @Test func healthCallAndLoadAgainstARunningServer() async throws {
    let shoal = try TestEnvironment.product("shoal")
    try await withBenchServer { unix, tcp in
      for address in [unix, tcp] {
        let health = try await Subprocess.run(shoal, ["health", address])
        #expect(health.status == 0 && health.stdoutText.contains("server: SERVING"), "\(health.stderrText)")
        let serviceHealth = try await Subprocess.run(shoal, ["health", address, "--service", "shoal.nope.v1.X"])
        #expect(serviceHealth.status != 0 && serviceHealth.stderrText.contains("NOT_FOUND"))

        let echo = try await Subprocess.run(
          shoal, ["call", address, "shoal.bench.v1.Bench/Echo", #"{"payload":"aGk="}"#])
        #expect(echo.status == 0, "\(echo.stderrText)")
        #expect(echo.stdoutText.contains(#""payload": "aGk=""#))

        let download = try await Subprocess.run(
          shoal, ["call", address, "/shoal.bench.v1.Bench/Download", #"{"responseSize":2,"responseCount":3}"#])
        #expect(download.stdoutText.split(separator: "\n").count == 3)

        let chat = try await Subprocess.run(
          shoal, ["call", address, "shoal.bench.v1.Bench.Chat"],
          stdin: Array("{\"payload\":\"YQ==\"}\n{\"payload\":\"Yg==\"}\n".utf8))
        #expect(chat.stdoutText.split(separator: "\n").count == 2)
        #expect(chat.stdoutText.contains(#""requestsSeen":"2""#))
      }

      let unknown = try await Subprocess.run(shoal, ["call", unix, "shoal.bench.v1.Bench/Nope"])
      #expect(unknown.status != 0 && unknown.stderrText.contains("has no method 'Nope'"))

      let load = try await Subprocess.run(
        shoal, ["load", unix, "--concurrency", "8", "--requests", "400", "--payload", "256"])
      #expect(load.status == 0, "\(load.stderrText)")
      let fields = Dictionary(
        uniqueKeysWithValues: load.stdoutText.split(separator: " ").compactMap { pair -> (String, String)? in
          let parts = pair.split(separator: "=")
          return parts.count == 2
            ? (String(parts[0]), String(parts[1]).trimmingCharacters(in: .whitespacesAndNewlines)) : nil
        })
      #expect(fields["requests"] == "400")
      #expect(fields["errors"] == "0")
      #expect(Set(fields.keys).isSuperset(of: ["rps", "p50_us", "p90_us", "p99_us", "max_us"]))
    }
  }

  @Test func unreachableServerIsReportedWithItsAddress() async throws {
    let shoal = try TestEnvironment.product("shoal")
    let result = try await Subprocess.run(shoal, ["health", "unix:///nonexistent/shoal.sock", "--timeout", "1"])
    #expect(result.status != 0)
    #expect(result.stderrText.contains("UNAVAILABLE") && result.stderrText.contains("/nonexistent/shoal.sock"))
  }
}
