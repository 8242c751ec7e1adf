import CGEOS

/// Polygon validity and simplification on GEOS (its C API, `libgeos_c`).
public enum GeometryCheck {
  /// Why GEOS finds `polygon` invalid ("Self-intersection[-76.2 42.1]", "Hole lies outside
  /// shell"), or nil when it is valid.
  public static func problem(in polygon: Polygon) -> String? {
    withContext { context in
      guard let geometry = make(polygon, context) else { return "the rings cannot form a polygon" }
      defer { GEOSGeom_destroy_r(context, geometry) }
      guard GEOSisValid_r(context, geometry) != 1 else { return nil }
      guard let reason = GEOSisValidReason_r(context, geometry) else { return "invalid" }
      defer { GEOSFree_r(context, reason) }
      return String(cString: reason)
    }
  }

  /// The polygon simplified with Douglas–Peucker within `tolerance` (in its own units), keeping
  /// its topology (no ring crosses another or itself); nil when nothing is left.
  public static func simplified(_ polygon: Polygon, tolerance: Double) -> Polygon? {
    withContext { context in
      guard let geometry = make(polygon, context) else { return nil }
      defer { GEOSGeom_destroy_r(context, geometry) }
      guard let simple = GEOSTopologyPreserveSimplify_r(context, geometry, tolerance) else { return nil }
      defer { GEOSGeom_destroy_r(context, simple) }
      guard GEOSGeomTypeId_r(context, simple) == Int32(GEOS_POLYGON.rawValue), GEOSisEmpty_r(context, simple) == 0
      else { return nil }
      return Self.polygon(simple, context)
    }
  }

  /// The union of `polygons`: those that overlap or share an edge become one (with the holes
  /// the union has); the rest stay as they are. Polygons GEOS cannot build are left out.
  public static func union(_ polygons: [Polygon]) -> [Polygon] {
    guard polygons.count > 1 else { return polygons }
    return withContext { context in
      var parts: [OpaquePointer?] = polygons.compactMap { make($0, context) }
      guard
        let collection = parts.withUnsafeMutableBufferPointer({ buffer in
          GEOSGeom_createCollection_r(
            context, Int32(GEOS_MULTIPOLYGON.rawValue), buffer.baseAddress, UInt32(buffer.count))
        })
      else { return polygons }
      defer { GEOSGeom_destroy_r(context, collection) }
      guard let merged = GEOSUnaryUnion_r(context, collection) else { return polygons }
      defer { GEOSGeom_destroy_r(context, merged) }
      return (0..<max(0, GEOSGetNumGeometries_r(context, merged))).compactMap { index in
        guard let part = GEOSGetGeometryN_r(context, merged, index),
          GEOSGeomTypeId_r(context, part) == Int32(GEOS_POLYGON.rawValue), GEOSisEmpty_r(context, part) == 0
        else { return nil }
        return polygon(part, context)
      }
    }
  }

  private static func polygon(_ geometry: OpaquePointer, _ context: GEOSContextHandle_t) -> Polygon? {
    guard let exterior = GEOSGetExteriorRing_r(context, geometry) else { return nil }
    var rings = [positions(exterior, context)]
    for index in 0..<max(0, GEOSGetNumInteriorRings_r(context, geometry)) {
      if let hole = GEOSGetInteriorRingN_r(context, geometry, index) { rings.append(positions(hole, context)) }
    }
    return Polygon(rings: rings)
  }

  private static func withContext<T>(_ body: (GEOSContextHandle_t) -> T) -> T {
    let context = GEOS_init_r()!
    defer { GEOS_finish_r(context) }
    return body(context)
  }

  private static func make(_ polygon: Polygon, _ context: GEOSContextHandle_t) -> OpaquePointer? {
    func ring(_ positions: [Position]) -> OpaquePointer? {
      guard let sequence = GEOSCoordSeq_create_r(context, UInt32(positions.count), 2) else { return nil }
      for (index, position) in positions.enumerated() {
        GEOSCoordSeq_setXY_r(context, sequence, UInt32(index), position.longitude, position.latitude)
      }
      return GEOSGeom_createLinearRing_r(context, sequence)
    }
    guard let shell = ring(polygon.rings[0]) else { return nil }
    var holes: [OpaquePointer?] = polygon.rings.dropFirst().compactMap(ring)
    return holes.withUnsafeMutableBufferPointer { buffer in
      GEOSGeom_createPolygon_r(context, shell, buffer.baseAddress, UInt32(buffer.count))
    }
  }

  private static func positions(_ ring: OpaquePointer, _ context: GEOSContextHandle_t) -> [Position] {
    guard let sequence = GEOSGeom_getCoordSeq_r(context, ring) else { return [] }
    var size: UInt32 = 0
    GEOSCoordSeq_getSize_r(context, sequence, &size)
    return (0..<size).map { index in
      var x = 0.0
      var y = 0.0
      GEOSCoordSeq_getXY_r(context, sequence, index, &x, &y)
      return Position(x, y)
    }
  }
}
