public import ShoalProto

extension ImagerySource {
  /// The contract's source with its headers, checked as every source is.
  ///
  /// - Throws: `ImageryError` naming what is wrong.
  public init(_ source: FeedbackV1.ImagerySource, headers: [String: String]) throws(ImageryError) {
    try self.init(
      name: source.name, template: try TileTemplate(source.urlTemplate, subdomains: source.subdomains),
      tileSize: Int(source.tileSize), minZoom: Int(source.minZoom), maxZoom: Int(source.maxZoom),
      format: source.format, attribution: source.attribution, headers: headers)
  }
}
