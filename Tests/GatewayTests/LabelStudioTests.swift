import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import ShoalMetrics
import ShoalProto
import ShoalRPC
import Testing

@testable import Gateway

/// The Label Studio backend's reading of labelling configs and annotations, its results in Label
/// Studio's shape, and the requests it refuses before calling the mesh.
struct LabelStudioTests {
  private static let detection = """
    <?xml version="1.0"?>
    <View>
      <!-- <Choices name="ignored" toName="image"/> -->
      <Header value="Boxes &amp; more"/>
      <Image name="img" value="$photo" zoom="true"/>
      <RectangleLabels name="boxes" toName="img">
        <Label value="car" background="red"/>
        <Label value='tree &lt;tall&gt;'/>
      </RectangleLabels>
      <Choices name="weather" toName="img" choice="single"><Choice value="sunny"/></Choices>
    </View>
    """

  @Test func aConfigGivesItsControlsLabelsAndImageFields() throws {
    let config = try LabelConfig(xml: Self.detection)
    #expect(config.controls.map(\.kind) == [.rectanglelabels, .choices])
    #expect(config.controls[0].labels == ["car", "tree <tall>"] && config.controls[0].dataKey == "photo")
    #expect(config.controls[1].labels == ["sunny"] && config.controls[1].toName == "img")
    #expect(LabelConfig.label(for: "CAR", in: config.controls[0]) == "car")
    #expect(LabelConfig.label(for: "bus", in: config.controls[0]) == nil)
  }

  @Test func badConfigsAreRefusedNamingWhatIsWrong() {
    let cases: [(String, String)] = [
      ("<View><Image name='i' value='$i'/></View>", "no Choices, RectangleLabels or PolygonLabels"),
      ("<View><Choices name='c' toName='nosuch'/></View>", "'nosuch', which is not an <Image>"),
      ("<View><Choices toName='i'/><Image name='i' value='$i'/></View>", "needs name and toName"),
      ("<View><Image name='i' value=$i/></View>", "the value must be quoted"),
      ("<View><!-- never closed", "'-->' is missing"),
      ("<View><Image name='i'", "is not closed"),
    ]
    for (xml, message) in cases {
      #expect(throws: GatewayError.self, "\(xml)") { try LabelConfig(xml: xml) }
      do {
        _ = try LabelConfig(xml: xml)
      } catch {
        #expect(error.message.contains(message), "\(xml): \(error.message)")
      }
    }
  }

  private static func object(
    _ name: String, _ box: (Double, Double, Double, Double), score: Double
  )
    -> InferenceV1.ImageObject
  {
    var object = InferenceV1.ImageObject()
    object.className = name
    object.score = score
    var topLeft = InferenceV1.ImagePoint()
    (topLeft.x, topLeft.y) = (box.0, box.1)
    var bottomRight = InferenceV1.ImagePoint()
    (bottomRight.x, bottomRight.y) = (box.2, box.3)
    (object.topLeft, object.bottomRight) = (topLeft, bottomRight)
    return object
  }

  private static func json(_ value: JSONValue) throws -> [String: Any] {
    try JSONSerialization.jsonObject(with: Data(value.serialized().utf8)) as! [String: Any]
  }

  @Test func boxesBecomeRectanglesInPercentAndUnknownClassesAreLeftOut() throws {
    var answer = InferenceV1.AnnotateResponse()
    (answer.width, answer.height) = (640, 480)
    answer.objects = [
      Self.object("Car", (0.1, 0.25, 0.5, 0.75), score: 0.9), Self.object("bus", (0, 0, 1, 1), score: 0.8),
      Self.object("car", (0.5, 0.5, 0.7, 0.6), score: 0.5),
    ]
    let control = try LabelConfig(xml: Self.detection).controls[0]
    let prediction = try Self.json(LabelStudioResults.prediction(answer, control: control, modelVersion: "org/m/2"))
    let results = prediction["result"] as! [[String: Any]]
    #expect(results.count == 2 && prediction["model_version"] as? String == "org/m/2")
    #expect(abs((prediction["score"] as! Double) - 0.7) < 1e-9)
    let value = results[0]["value"] as! [String: Any]
    #expect(value["rectanglelabels"] as? [String] == ["car"])
    for (key, expected) in [("x", 10.0), ("y", 25.0), ("width", 40.0), ("height", 50.0)] {
      #expect(abs((value[key] as! Double) - expected) < 1e-9, "\(key)")
    }
    #expect(results[0]["from_name"] as? String == "boxes" && results[0]["to_name"] as? String == "img")
    #expect(results[0]["original_width"] as? Int == 640)
  }

  @Test func regionsBecomeOpenPolygonsAndScoresTheBestChoice() throws {
    var region = Self.object("roof", (0.1, 0.1, 0.3, 0.3), score: 0.2)
    var ring = InferenceV1.ImageRing()
    ring.points = [(0.1, 0.1), (0.3, 0.1), (0.3, 0.3), (0.1, 0.1)].map { x, y in
      var point = InferenceV1.ImagePoint()
      (point.x, point.y) = (x, y)
      return point
    }
    region.rings = [ring]
    var answer = InferenceV1.AnnotateResponse()
    answer.objects = [region]
    let polygons = try LabelConfig(
      xml: "<View><Image name='i' value='$image'/><PolygonLabels name='p' toName='i'/></View>"
    ).controls[0]
    let result =
      (try Self.json(LabelStudioResults.prediction(answer, control: polygons, modelVersion: "v"))["result"]
      as! [[String: Any]])[0]
    let points = (result["value"] as! [String: Any])["points"] as! [[Double]]
    #expect(points.count == 3 && abs(points[1][0] - 30) < 1e-9)

    var scores = InferenceV1.AnnotateResponse()
    scores.scores = [("bus", 0.7), ("sunny", 0.2)].map { name, score in
      var entry = InferenceV1.ClassScore()
      (entry.name, entry.score) = (name, Float(score))
      return entry
    }
    let choices = try LabelConfig(xml: Self.detection).controls[1]
    let chosen = try Self.json(LabelStudioResults.prediction(scores, control: choices, modelVersion: "v"))
    let value = ((chosen["result"] as! [[String: Any]])[0]["value"] as! [String: Any])
    #expect(value["choices"] as? [String] == ["sunny"])
  }

  @Test func annotationsGiveClassesAndRegionsOfTheModel() throws {
    let text = """
      {"result": [
        {"type": "rectanglelabels", "value": {"x": 10, "y": 20, "width": 30, "height": 40, "rectanglelabels": ["Car"]}},
        {"type": "polygonlabels", "value": {"points": [[0, 0], [50, 0], [50, 50]], "polygonlabels": ["tree"]}},
        {"type": "textarea", "value": {"text": ["a note"]}}
      ]}
      """
    let fields = try RequestFields(json: text)
    let said = try LabelStudioResults.annotation(try fields.objects("result"), classes: ["car", "tree"])
    #expect(said.classes == ["car", "tree"])
    #expect(said.regions[0] == .init(className: "car", minX: 0.1, minY: 0.2, maxX: 0.4, maxY: 0.6000000000000001))
    #expect(said.regions[1].maxX == 0.5)
    let predicted = LabelStudioResults.region(
      ofGeometry: LabelStudioResults.feature(Self.object("car", (0.1, 0.2, 0.4, 0.6), score: 1)).geometry,
      className: "car")
    #expect(abs((predicted?.iou(said.regions[0]) ?? 0) - 1) < 1e-9)
    #expect(throws: GatewayError.self) {
      try LabelStudioResults.annotation(try fields.objects("result"), classes: ["car"])
    }
  }

  @Test func requestsThatCannotBeAnsweredAre400BeforeTheMesh() async throws {
    let token: HTTPFields = [.authorization: "Basic \(Data("labelstudio:shoal_test".utf8).base64EncodedString())"]
    let cases: [(String, String, String)] = [
      ("setup", #"{"schema": "<View/>"}"#, "'project'"),
      ("setup", #"{"project": "x.1", "schema": "<View/>"}"#, "not a Label Studio project key"),
      ("setup", #"{"project": "3.1700000000", "schema": "<View><Image name='i' value='$i'/></View>"}"#, "no Choices"),
      ("predict", #"{"project": "3.1", "tasks": [], "label_config": "<View"}"#, "label_config"),
      ("webhook", #"{"project": {"id": 1}}"#, "'action'"),
      ("webhook", #"{"action": "ANNOTATION_CREATED", "project": {"id": 1}}"#, "no project or annotation"),
    ]
    try await MeshlessGateway.application().test(.router) { client in
      for (endpoint, body, message) in cases {
        try await client.execute(
          uri: "/label-studio/roads/\(endpoint)", method: .post, headers: token, body: ByteBuffer(string: body)
        ) { response in
          #expect(response.status == .badRequest, "\(endpoint) \(body)")
          #expect(String(buffer: response.body).contains(message), "\(endpoint): \(String(buffer: response.body))")
        }
      }
      // Other actions are acknowledged and ignored; health needs the mesh.
      try await client.execute(
        uri: "/label-studio/roads/webhook", method: .post, headers: token,
        body: ByteBuffer(string: #"{"action": "PROJECT_UPDATED", "project": {"id": 1}}"#)
      ) { #expect($0.status == .ok) }
      try await client.execute(uri: "/label-studio/roads/health", method: .get, headers: token) {
        #expect($0.status == .serviceUnavailable)
      }
    }
  }
}
