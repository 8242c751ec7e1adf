import ShoalProto
import Testing

/// The proto3 JSON mapping: names, 64-bit integers as strings, bytes as base64, enums by name,
/// special floats, maps as objects, and strict errors.
struct JSONMappingTests {
  @Test func everyFieldKindRoundTripsThroughJSON() throws {
    let text = Samples.full.jsonString()
    #expect(try TestingV1.Sample(jsonString: text) == Samples.full)
    #expect(try TestingV1.Sample(jsonString: Samples.full.jsonString(pretty: true)) == Samples.full)
  }

  @Test func scalarsUseTheProto3Forms() throws {
    let json = Samples.scalars.jsonValue
    #expect(json["fInt64"] == .string("-9223372036854775808"))
    #expect(json["fUint64"] == .string("18446744073709551615"))
    #expect(json["fInt32"] == .number("-2147483648"))
    #expect(json["fBytes"] == .string("AAEC/4A="))
    #expect(json["fColour"] == .string("COLOUR_BLUE"))
    #expect(json["fBool"] == .bool(true))
    #expect(json["fFloat"] == .number("0.75"))
  }

  @Test func defaultsAreLeftOutButOneofMembersAreNot() {
    var sample = TestingV1.Sample()
    sample.extra = .flagged(false)
    #expect(sample.jsonString() == #"{"flagged":false}"#)
    #expect(TestingV1.Sample().jsonString() == "{}")
  }

  @Test func specialFloatsAreStrings() throws {
    var scalars = TestingV1.Scalars()
    scalars.fDouble = .infinity
    scalars.fFloat = .nan
    let json = scalars.jsonValue
    #expect(json["fDouble"] == .string("Infinity"))
    #expect(json["fFloat"] == .string("NaN"))
    let decoded = try TestingV1.Scalars(jsonString: scalars.jsonString())
    #expect(decoded.fDouble == .infinity)
    #expect(decoded.fFloat.isNaN)
  }

  @Test func parserAcceptsProtoNamesNumbersForEnumsAndQuotedNumbers() throws {
    let scalars = try TestingV1.Scalars(
      jsonString: #"{"f_int32": "12", "fInt64": 34, "f_colour": 2, "fUint32": 1e3, "fBytes": "_-8", "fDouble": "1.5"}"#
    )
    #expect(scalars.fInt32 == 12)
    #expect(scalars.fInt64 == 34)
    #expect(scalars.fColour == .green)
    #expect(scalars.fUint32 == 1000)
    #expect(scalars.fBytes == [0xFF, 0xEF])
    #expect(scalars.fDouble == 1.5)
    let renamed = try TestingV1.Sample(jsonString: #"{"aliasName": "a"}"#)
    #expect(renamed.renamedField == "a")
    #expect(try TestingV1.Sample(jsonString: #"{"renamed_field": "b"}"#).renamedField == "b")
    #expect(try TestingV1.Sample(jsonString: #"{"origin": null, "url": null}"#) == TestingV1.Sample())
  }

  @Test func mapsAreObjectsWithStringKeys() throws {
    var sample = TestingV1.Sample()
    sample.flags = [true: "t"]
    sample.pointsById = [-3: Samples.point(1, 2)]
    #expect(sample.jsonString() == #"{"pointsById":{"-3":{"x":"1","y":"2"}},"flags":{"true":"t"}}"#)
    #expect(try TestingV1.Sample(jsonString: sample.jsonString()) == sample)
  }

  @Test(arguments: [
    (#"{"nope": 1}"#, "no field named 'nope'"),
    (#"{"fInt32": 2147483648}"#, "fInt32"),
    (#"{"fInt32": 1.5}"#, "fInt32"),
    (#"{"fBool": "true"}"#, "expected true or false"),
    (#"{"fColour": "COLOUR_PURPLE"}"#, "COLOUR_PURPLE"),
    (#"{"fBytes": "***"}"#, "base64"),
    (#"{"fFloat": 1e39}"#, "finite"),
  ])
  func invalidJSONNamesTheField(text: String, fragment: String) {
    #expect {
      try TestingV1.Scalars(jsonString: text)
    } throws: { error in
      guard let error = error as? ProtoError else { return false }
      return error.code == .invalidJSON && error.message.contains(fragment)
    }
  }

  @Test func secondOneofMemberIsAnError() {
    #expect(throws: ProtoError.self) { try TestingV1.Sample(jsonString: #"{"url": "a", "offset": "1"}"#) }
  }

  @Test(arguments: [
    "", "{", #"{"a" 1}"#, "[1,]", #"{"a": tru}"#, "01", "\"\\x\"", "{} {}", String(repeating: "[", count: 200),
  ])
  func malformedJSONIsRejectedWithAnOffset(text: String) {
    #expect {
      try JSONValue(parsing: text)
    } throws: { error in
      (error as? ProtoError)?.code == .malformedJSON && (error as? ProtoError)?.message.contains("offset") == true
    }
  }

  @Test func jsonStringsEscapeAndUnescape() throws {
    let value = JSONValue.string("quote \" backslash \\ newline \n control \u{01} emoji \u{1F30A}")
    #expect(try JSONValue(parsing: value.serialized()) == value)
    #expect(try JSONValue(parsing: #""\ud83c\udf0a""#) == .string("\u{1F30A}"))
  }

  @Test func base64RoundTripsEveryLength() {
    for length in 0..<70 {
      let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 * 37 + 11) }
      #expect(Base64.decode(Base64.encode(bytes)) == bytes)
    }
    #expect(Base64.encode(Array("foobar".utf8)) == "Zm9vYmFy")
    #expect(Base64.decode("Zm9vYg") == Array("foob".utf8))
  }
}
