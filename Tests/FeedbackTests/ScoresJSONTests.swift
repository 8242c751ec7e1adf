import Foundation
import Testing

@testable import Feedback

/// The scores' own JSON writer and reader agree with JSONSerialization, odd class names included.
struct ScoresJSONTests {
  @Test func roundTripsAndReadsAsJSON() throws {
    let cases: [[String: Double]] = [
      [:], ["road": 0.5], ["road": 1e-05, "building": 0.999_999_999_9, "water": 0],
      ["a \"quoted\" name": 0.25, "back\\slash": 0.75, "comma, colon: brace}": 0.125, "tab\there": 1, "ünïcode": 0.3],
    ]
    for scores in cases {
      let text = ScoresJSON.encode(scores)
      #expect(ScoresJSON.decode(text) == scores, "\(text)")
      let parsed = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Double]
      #expect(parsed == scores, "\(text)")
    }
    // What an older row holds (JSONSerialization's output, spaces and all) still reads.
    #expect(ScoresJSON.decode(#"{ "b" : 0.5, "a":1 }"#) == ["a": 1, "b": 0.5])
  }
}
