import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import ShoalMetrics
import ShoalRPC
import Testing

@testable import Gateway

/// The review pages as files, and their calls refused before the mesh.
struct ReviewPagesTests {

  private static let token: HTTPFields = [.authorization: "Bearer shoal_test"]

  @Test func thePagesAreServedWithAContentSecurityPolicy() async throws {
    try await MeshlessGateway.application().test(.router) { client in
      for (path, type) in [
        ("/review", "text/html"), ("/review/map.html", "text/html"), ("/review/clips.html", "text/html"),
        ("/review/runs.html", "text/html"), ("/review/review.js", "text/javascript"),
        ("/review/review.css", "text/css"),
      ] {
        try await client.execute(uri: path, method: .get) { response in
          #expect(response.status == .ok, "\(path)")
          #expect(response.headers[.contentType]?.hasPrefix(type) == true, "\(path)")
          let policy = response.headers[HTTPField.Name("Content-Security-Policy")!] ?? ""
          #expect(policy.contains("default-src 'self'") && policy.contains("object-src 'none'"), "\(path)")
          #expect(response.headers[.setCookie] == nil)
        }
      }
      // Pages build what they show as text nodes: no HTML is assigned from data.
      try await client.execute(uri: "/review/review.js", method: .get) { response in
        #expect(!String(buffer: response.body).contains("innerHTML"))
      }
      try await client.execute(uri: "/review/nosuch.html", method: .get) { #expect($0.status == .notFound) }
    }
  }

  @Test func callsThatCannotBeAnsweredAreRefusedNamingWhy() async throws {
    try await MeshlessGateway.application().test(.router) { client in
      let cases: [(String, String, HTTPResponse.Status, String)] = [
        ("feedback/QueryTiles", "{not json", .badRequest, "shoal.feedback.v1.QueryTilesRequest"),
        ("feedback/QueryTiles", #"{"setId": "3", "nosuch": 1}"#, .badRequest, "nosuch"),
        ("feedback/DeleteEverything", "{}", .notFound, "no endpoint"),
        ("audio/Train", "{}", .notFound, "no endpoint"),
      ]
      for (method, body, status, message) in cases {
        try await client.execute(
          uri: "/review/api/\(method)", method: .post, headers: Self.token, body: ByteBuffer(string: body)
        ) { response in
          #expect(response.status == status, "\(method) \(body)")
          #expect(String(buffer: response.body).contains(message), "\(method): \(String(buffer: response.body))")
        }
      }
      try await client.execute(uri: "/review/api/imagery/fast/16/a/3", method: .get, headers: Self.token) { response in
        #expect(response.status == .badRequest)
        #expect(String(buffer: response.body).contains("z/x/y in whole numbers"))
      }
      // From off this host, the pages' calls need a token as every gateway request does.
      try await client.execute(uri: "/review/api/feedback/ListSets", method: .post, body: ByteBuffer(string: "{}")) {
        #expect($0.status == .unauthorized)
      }
    }
  }
}
