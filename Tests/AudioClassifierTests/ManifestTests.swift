import Testing

@testable import AudioClassifier

/// Manifests as people write them: CSV with quotes, JSON Lines, Orcasound's clip names, and
/// errors that name the line and the field.
struct ManifestTests {
  @Test func csvAndJSONLines() throws {
    let csv = #"""
      path,label,location,timestamp,duration
      calls/a.wav,call,"port, townsend",1600000000,3
      "https://example.org/b.wav?key=1",,bush_point,,

      /abs/c.flac,"say ""no""",,1600000003.0,2.5
      """#
    let entries = try Manifest.entries(csv, base: "/data")
    #expect(entries.map(\.source) == ["/data/calls/a.wav", "https://example.org/b.wav?key=1", "/abs/c.flac"])
    #expect(
      entries[0]
        == ManifestEntry(
          source: "/data/calls/a.wav", label: "call", location: "port, townsend", timestamp: 1_600_000_000, duration: 3)
    )
    #expect(entries[1].isURL && entries[1].duration == nil && entries[2].label == #"say "no""#)
    #expect(entries[2].timestamp == 1_600_000_003)

    let jsonl = #"""
      {"url": "http://h/x.wav", "label": "call", "timestamp": 1600000000}
      {"path": "y.ogg", "duration": 3.0}
      """#
    let lines = try Manifest.entries(jsonl, base: "/d")
    #expect(lines.map(\.source) == ["http://h/x.wav", "/d/y.ogg"] && lines[0].timestamp == 1_600_000_000)
    #expect(lines[1].duration == 3)
  }

  @Test func errorsNameTheLineAndField() {
    func message(_ text: String, base: String = "/d") -> String {
      do {
        _ = try Manifest.entries(text, base: base)
        return ""
      } catch {
        return error.message
      }
    }
    #expect(message("file,label\na.wav,x").contains("has no path or url column"))
    #expect(message("path,label\n,x").contains("line 2: path (or url) is missing"))
    #expect(message("path,timestamp\na.wav,yesterday").contains("line 2: timestamp 'yesterday'"))
    #expect(message("path,duration\na.wav,-1").contains("line 2: duration '-1'"))
    #expect(message("path\na.wav", base: "").contains("needs base_directory"))
    #expect(message("{\"path\": \"a.wav\"}\nnot json").contains("line 2: not a JSON object"))
    #expect(message("   \n").contains("no lines"))
  }

  @Test func orcasoundNames() {
    #expect(Manifest.locationAndTime("orcasound_lab_1600000000.wav")! == ("orcasound_lab", 1_600_000_000))
    #expect(Manifest.locationAndTime("whistle_3.wav") == nil)
    #expect(Manifest.locationAndTime("noise.flac") == nil)
  }
}
