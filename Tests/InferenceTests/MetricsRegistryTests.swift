import ShoalMetrics
import Testing

struct MetricsRegistryTests {
  @Test func writesPrometheusTextFormat() {
    let registry = MetricsRegistry()
    registry.counter("requests_total", help: "Requests.", labels: ["model": "a\"b", "code": "ok"]).increment(by: 3)
    registry.counter("requests_total", help: "Requests.", labels: ["code": "ok", "model": "a\"b"]).increment()
    let histogram = registry.histogram("latency_seconds", help: "Latency.", buckets: [0.1, 1])
    histogram.observe(0.05)
    histogram.observe(0.5)
    histogram.observe(5)
    registry.gauge("pending", help: "Pending.\nnow") { 2.5 }
    let text = registry.exposition()
    #expect(text.contains("# TYPE requests_total counter\nrequests_total{code=\"ok\",model=\"a\\\"b\"} 4\n"))
    #expect(text.contains("latency_seconds_bucket{le=\"0.1\"} 1\nlatency_seconds_bucket{le=\"1\"} 2\n"))
    #expect(text.contains("latency_seconds_bucket{le=\"+Inf\"} 3\nlatency_seconds_sum 5.55\nlatency_seconds_count 3\n"))
    #expect(text.contains("# HELP pending Pending.\\nnow\n# TYPE pending gauge\npending 2.5\n"))
    registry.remove(matching: ["model": "a\"b"])
    #expect(!registry.exposition().contains("requests_total"))
  }
}
