extension Tile {
  /// Where `longitude, latitude` falls in this tile's image of `size` pixels a side: x to the
  /// east and y to the south from the north-west corner (0…size inside the tile; outside beyond).
  public func pixel(_ longitude: Double, _ latitude: Double, size: Int) -> (x: Double, y: Double) {
    let (x, y) = Tile.tileCoordinates(longitude, latitude, zoom: z)
    return ((x - Double(self.x)) * Double(size), (y - Double(self.y)) * Double(size))
  }

  /// The longitude and latitude of pixel position `x, y` in this tile's image of `size` pixels.
  public func lonLat(pixelX x: Double, pixelY y: Double, size: Int) -> (longitude: Double, latitude: Double) {
    Tile.lonLat(tileX: Double(self.x) + x / Double(size), tileY: Double(self.y) + y / Double(size), zoom: z)
  }
}
