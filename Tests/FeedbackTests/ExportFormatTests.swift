import Feedback
import Foundation
import ShoalGeo
import ShoalProto
import ShoalRPC
import ShoalStore
import ShoalTestSupport
import Testing

/// COCO and Label Studio exports of a detection set, read back by pycocotools (COCO, loadRes and
/// COCOeval over them) and checked as Label Studio reads tasks.
struct ExportFormatTests {
  static let readBack = #"""
    import json, sys
    import numpy as np
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    gt = COCO(sys.argv[1])
    dt = gt.loadRes(sys.argv[2])
    out = {"images": len(gt.getImgIds()), "gt": len(gt.getAnnIds()), "dt": len(dt.getAnnIds()),
           "categories": [c["name"] for c in gt.loadCats(gt.getCatIds())]}
    # The annotation with a hole is an RLE mask: the hole is empty, the ring around it is not.
    holed = [a for a in gt.loadAnns(gt.getAnnIds()) if isinstance(a["segmentation"], dict)]
    out["holed"] = len(holed)
    if holed:
        mask = gt.annToMask(holed[0])
        x, y, w, h = holed[0]["bbox"]
        out["hole"] = int(mask[int(y + h / 2), int(x + w / 2)])
        out["ring"] = int(mask[int(y + 2), int(x + w / 2)])
        out["area_matches"] = abs(int(mask.sum()) - holed[0]["area"]) <= 1
    # (COCOeval turns every segmentation into RLE in place, so it runs last.)
    for kind in ("bbox", "segm"):
        evaluation = COCOeval(gt, dt, kind)
        evaluation.evaluate(); evaluation.accumulate(); evaluation.summarize()
        out[kind] = float(evaluation.stats[0])
    tasks = json.load(open(sys.argv[3]))
    kinds = set()
    for task in tasks:
        assert task["data"]["image"] and task["predictions"][0]["model_version"] == "buildings@production v7", task
        for result in task["predictions"][0]["result"]:
            kinds.add(result["type"])
            value = result["value"]
            assert result["to_name"] == "image" and result["from_name"] == "label", result
            for key in ("x", "y", "width", "height"):
                assert 0 <= value[key] <= 100, result
            assert value["rectanglelabels"][0] in ("building", "car"), result
    out["tasks"] = len(tasks)
    out["kinds"] = sorted(kinds)
    print("RESULT " + json.dumps(out))
    """#

  /// A square of `side` pixels at pixel `x, y` of `tile` (256 px), as lon/lat rings; with a hole
  /// of half its side in the middle when `holed`.
  static func square(_ tile: Tile, _ x: Double, _ y: Double, _ side: Double, holed: Bool = false) -> String {
    func ring(_ x: Double, _ y: Double, _ side: Double, clockwise: Bool) -> String {
      var corners = [(x, y + side), (x + side, y + side), (x + side, y), (x, y)]
      if clockwise { corners.reverse() }
      corners.append(corners[0])
      return "["
        + corners.map { corner in
          let point = tile.lonLat(pixelX: corner.0, pixelY: corner.1, size: 256)
          return "[\(point.longitude), \(point.latitude)]"
        }.joined(separator: ", ") + "]"
    }
    var rings = [ring(x, y, side, clockwise: false)]
    if holed { rings.append(ring(x + side / 4, y + side / 4, side / 2, clockwise: true)) }
    return #"{"type": "Polygon", "coordinates": [\#(rings.joined(separator: ", "))]}"#
  }

  @Test(arguments: Backend.available)
  func cocoAndLabelStudioReadBack(_ backend: Backend) async throws {
    Backend.expectPostgresWhenRequired()
    try await withFeedback(backend) { client, _ in
      var create = FeedbackV1.CreateSetRequest()
      create.model = "buildings@production"
      create.modelVersion = 7
      create.task = .detection
      create.zoom = 18
      create.classes = classLabels("building", "car")
      let set = try await client.createSet(create)
      let origin = try Tile(containing: 13.4, 52.5, zoom: 18)
      let tiles = try (0..<3).map { try Tile(z: 18, x: origin.x + $0, y: origin.y) }
      func feature(_ geometry: String, _ className: String, _ score: Double) -> FeedbackV1.Feature {
        var feature = FeedbackV1.Feature()
        feature.geometry = geometry
        feature.className = className
        feature.score = score
        return feature
      }
      _ = try await client.putPredictions { sender in
        var request = FeedbackV1.PutPredictionsRequest()
        request.setId = set.setId
        request.requestId = "batch-0"
        request.tiles = [
          [
            feature(Self.square(tiles[0], 20, 20, 80, holed: true), "building", 0.9),
            feature(Self.square(tiles[0], 150, 150, 40), "car", 0.6),
          ],
          [feature(Self.square(tiles[1], 10, 10, 60), "building", 0.8)],
          [feature(Self.square(tiles[2], 100, 40, 50), "car", 0.7)],
        ].enumerated().map { index, features in
          var tile = FeedbackV1.PredictedTile()
          (tile.z, tile.x, tile.y) = (18, Int64(tiles[index].x), Int64(tiles[index].y))
          tile.features = features
          return tile
        }
        try await sender.send(request)
      }
      var query = FeedbackV1.QueryTilesRequest()
      query.setId = set.setId
      let stored = try await client.queryTiles(query).tiles
      let byTile = Dictionary(uniqueKeysWithValues: stored.map { ($0.tileId, $0.features) })
      // Reviewers: the holed building is right, the car beside it is not (it is a building, one
      // says: its mark for its own class decides); tile 1 was not looked at; tile 2's cars are
      // right, said of the tile as a whole.
      var tag = FeedbackV1.SetValidityRequest()
      tag.setId = set.setId
      func change(
        feature: String? = nil, tile: String? = nil, _ className: String, _ validity: FeedbackV1.Validity
      )
        -> FeedbackV1.ValidityChange
      {
        var change = FeedbackV1.ValidityChange()
        if let feature { change.target = .featureId(feature) }
        if let tile { change.target = .tileId(tile) }
        change.className = className
        change.validity = validity
        return change
      }
      let first = try #require(byTile[tiles[0].description])
      tag.changes = [
        change(feature: first[0].featureId, "building", .valid), change(feature: first[1].featureId, "car", .invalid),
        change(feature: first[1].featureId, "building", .valid),
        change(tile: tiles[2].description, "car", .valid),
      ]
      _ = try await client.setValidity(tag)

      let directory = try TemporaryDirectory()
      for (format, filter, name) in [
        (FeedbackV1.ExportFormat.coco, FeedbackV1.ExportFilter.validated, "gt.json"),
        (.cocoResults, .validated, "results.json"), (.labelStudio, .allTiles, "tasks.json"),
      ] {
        var export = FeedbackV1.ExportRequest()
        export.setId = set.setId
        export.format = format
        export.filter = filter
        let bytes = try await client.export(export) { chunks in
          var bytes: [UInt8] = []
          for try await chunk in chunks { bytes += chunk.data }
          return bytes
        }
        try Data(bytes).write(to: URL(fileURLWithPath: directory.path(name)))
      }
      let read = try await Subprocess.run(
        try TestEnvironment.python(),
        ["-c", Self.readBack, directory.path("gt.json"), directory.path("results.json"), directory.path("tasks.json")])
      #expect(read.status == 0, "\(read.stderrText)")
      let line = try #require(read.stdoutText.split(separator: "\n").first { $0.hasPrefix("RESULT ") })
      let out = try #require(try JSONSerialization.jsonObject(with: Data(line.dropFirst(7).utf8)) as? [String: Any])
      // Two validated tiles; their ground truth is the holed building and tile 2's car; the results
      // are the three predictions on those tiles.
      #expect(out["images"] as? Int == 2)
      #expect(out["gt"] as? Int == 2)
      #expect(out["dt"] as? Int == 3)
      #expect(out["categories"] as? [String] == ["building", "car"])
      // Every ground-truth object was predicted, with the one false car scored lowest: AP is 1.
      #expect(abs((out["bbox"] as? Double ?? 0) - 1) < 1e-9, "\(out)")
      #expect(abs((out["segm"] as? Double ?? 0) - 1) < 1e-9, "\(out)")
      #expect(out["holed"] as? Int == 1 && out["hole"] as? Int == 0 && out["ring"] as? Int == 1, "\(out)")
      #expect(out["area_matches"] as? Bool == true)
      #expect(out["tasks"] as? Int == 3 && out["kinds"] as? [String] == ["rectanglelabels"])
    }
  }
}
