import Inference
import ShoalGeo
import ShoalImage
import Testing

/// Supertiles: four children stitched in place, and detections and class maps given back to them.
struct SupertileTests {
  @Test func childrenAreStitchedInPlaceAndResultsGoBack() throws {
    let parent = try Tile(containing: 13.4, 52.5, zoom: 16)
    let supertile = Supertile(parent: parent, size: 4)
    // Each child a flat colour of its own; the south-west one is missing (black).
    var images: [Tile: Image] = [:]
    for (index, child) in supertile.children.enumerated() where index != 3 {
      images[child] = Image(
        width: 4, height: 4, channels: 3, pixels: [UInt8]((0..<16).flatMap { _ in [UInt8(50 * (index + 1)), 0, 0] }))
    }
    let stitched = try supertile.stitch(images)
    #expect(stitched.width == 8 && stitched.height == 8)
    func red(_ x: Int, _ y: Int) -> UInt8 { stitched.pixels[(y * 8 + x) * 3] }
    // North-west, north-east, south-east, and the missing south-west.
    #expect([red(0, 0), red(7, 0), red(7, 7), red(0, 7)] == [50, 100, 150, 0])
    #expect(throws: DetectionOutputError.self) {
      _ = try supertile.stitch([
        parent.children[0]: Image(width: 3, height: 3, channels: 3, pixels: [UInt8](repeating: 0, count: 27))
      ])
    }

    // A box over the two northern children goes to both, clipped, in their own pixels.
    let split = supertile.split([Detection(box: PixelBox(x0: 2, y0: 1, x1: 6, y1: 3), classIndex: 0, score: 0.8)])
    #expect(
      split[parent.children[0]] == [Detection(box: PixelBox(x0: 2, y0: 1, x1: 4, y1: 3), classIndex: 0, score: 0.8)])
    #expect(
      split[parent.children[1]] == [Detection(box: PixelBox(x0: 0, y0: 1, x1: 2, y1: 3), classIndex: 0, score: 0.8)])
    #expect(split[parent.children[2]] == [] && split[parent.children[3]] == [])
    // Put back together across the children, it is the box again (in world pixels).
    var tiles = TileDetections(zoom: 17, tileSize: 4)
    for (child, found) in split { tiles.add(found, on: child) }
    let whole = tiles.merged()
    let origin = parent.children[0]
    #expect(
      whole.map(\.box) == [PixelBox(x0: 2, y0: 1, x1: 6, y1: 3).offset(Double(origin.x * 4), Double(origin.y * 4))])

    // A class map of the stitched image, in quarters.
    let map = ClassMap(width: 4, height: 4, labels: [0, 0, 1, 1, 0, 0, 1, 1, 3, 3, 2, 2, 3, 3, 2, 2])
    let quarters = supertile.split(map)
    #expect(
      parent.children.map { quarters[$0]!.labels } == [[0, 0, 0, 0], [1, 1, 1, 1], [2, 2, 2, 2], [3, 3, 3, 3]])
  }
}
