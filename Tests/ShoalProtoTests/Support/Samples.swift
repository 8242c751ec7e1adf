import ShoalProto

/// Messages that set every kind of field, shared by the round-trip and compatibility tests.
enum Samples {
  static var scalars: TestingV1.Scalars {
    var s = TestingV1.Scalars()
    s.fDouble = -2.5e-300
    s.fFloat = 0.75
    s.fInt32 = -2_147_483_648
    s.fInt64 = -9_223_372_036_854_775_808
    s.fUint32 = 4_294_967_295
    s.fUint64 = 18_446_744_073_709_551_615
    s.fSint32 = -123_456
    s.fSint64 = 9_223_372_036_854_775_807
    s.fFixed32 = 3_000_000_000
    s.fFixed64 = 1 << 63
    s.fSfixed32 = -7
    s.fSfixed64 = -(1 << 40)
    s.fBool = true
    s.fString = "héllo \"wörld\" \u{1F30A}\n\t"
    s.fBytes = [0, 1, 2, 0xFF, 0x80]
    s.fColour = .blue
    return s
  }

  static var repeated: TestingV1.Repeated {
    var r = TestingV1.Repeated()
    r.rDouble = [0, -1.5, 1e300]
    r.rFloat = [0.5, -3]
    r.rInt32 = [0, -1, Int32.max]
    r.rInt64 = [Int64.min, 0, 42]
    r.rUint32 = [UInt32.max, 1]
    r.rUint64 = [UInt64.max, 0]
    r.rSint32 = [-1, 1, Int32.min]
    r.rSint64 = [Int64.min, Int64.max]
    r.rFixed32 = [1, 2]
    r.rFixed64 = [3, UInt64.max]
    r.rSfixed32 = [-5, 5]
    r.rSfixed64 = [-6, 6]
    r.rBool = [true, false, true]
    r.rString = ["", "a", "ünïcode"]
    r.rBytes = [[], [1], [UInt8](repeating: 9, count: 2000)]
    r.rColour = [.red, .unspecified, .blue]
    r.rScalars = [TestingV1.Scalars(), scalars]
    return r
  }

  static func point(_ x: Int64, _ y: Int64) -> TestingV1.Sample.Point {
    var p = TestingV1.Sample.Point()
    p.x = x
    p.y = y
    return p
  }

  /// A sample with every field of every kind set, two levels of children, and a oneof member
  /// of message type.
  static var full: TestingV1.Sample {
    var s = TestingV1.Sample()
    s.name = "tile 12/2048/1361"
    s.kind = .tile
    s.origin = point(-1, 2)
    s.path = [point(0, 0), point(1 << 40, -(1 << 40))]
    s.scalars = scalars
    s.repeated = repeated
    s.counts = ["roads": 12, "buildings": -3, "": 0]
    s.pointsById = [7: point(7, 7), -1: point(0, 0)]
    s.flags = [true: "yes", false: "no"]
    s.colours = [1: .red, UInt64.max: .blue]
    s.blobs = ["a": [1, 2, 3], "empty": []]
    s.source = .location(point(5, 6))
    s.extra = .weight(0.125)
    s.renamedField = "renamed"
    var child = TestingV1.Sample()
    child.name = "child"
    child.source = .url("https://example.invalid/a.png")
    var grandchild = TestingV1.Sample()
    grandchild.source = .inlineData([])
    grandchild.extra = .flagged(false)
    child.children = [grandchild]
    s.children = [child, TestingV1.Sample()]
    return s
  }
}
