public import ShoalGeo
public import ShoalProto

extension FeedbackV1.BoundingBox {
  /// The same box as the contract's message.
  public init(_ box: BoundingBox) {
    self.init()
    (west, south, east, north) = (box.west, box.south, box.east, box.north)
  }
}

extension BoundingBox {
  /// The contract's box as ShoalGeo's.
  public init(_ box: FeedbackV1.BoundingBox) {
    self.init(west: box.west, south: box.south, east: box.east, north: box.north)
  }
}
