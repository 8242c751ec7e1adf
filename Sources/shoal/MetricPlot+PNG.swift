import CCairo

extension MetricPlot {
  struct DrawingError: Error, CustomStringConvertible {
    var description: String
  }

  /// Draws the plot with cairo (text in the system's sans-serif font) and writes it as a PNG.
  func writePNG(to path: String) throws {
    let surface = cairo_image_surface_create(CAIRO_FORMAT_RGB24, Int32(width), Int32(height))
    defer { cairo_surface_destroy(surface) }
    let context = cairo_create(surface)
    defer { cairo_destroy(context) }
    cairo_set_source_rgb(context, 1, 1, 1)
    cairo_paint(context)
    cairo_select_font_face(context, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL)
    for mark in marks {
      switch mark {
      case .line(let from, let to, let colour, let width):
        Self.setColour(context, colour)
        cairo_set_line_width(context, width)
        cairo_move_to(context, from.0, from.1)
        cairo_line_to(context, to.0, to.1)
        cairo_stroke(context)
      case .polyline(let points, let colour, _):
        Self.setColour(context, colour)
        cairo_set_line_width(context, 2)
        cairo_set_line_join(context, CAIRO_LINE_JOIN_ROUND)
        cairo_move_to(context, points[0].0, points[0].1)
        for point in points.dropFirst() { cairo_line_to(context, point.0, point.1) }
        if points.count == 1 { cairo_line_to(context, points[0].0 + 0.5, points[0].1) }
        cairo_stroke(context)
      case .frame(let x, let y, let width, let height):
        Self.setColour(context, "#333333")
        cairo_set_line_width(context, 1)
        cairo_rectangle(context, x, y, width, height)
        cairo_stroke(context)
      case .text(let text, let at, let anchor, let size, let vertical):
        Self.setColour(context, "#000000")
        cairo_set_font_size(context, size)
        var extents = cairo_text_extents_t()
        cairo_text_extents(context, text, &extents)
        let shift = anchor == .middle ? extents.x_advance / 2 : (anchor == .end ? extents.x_advance : 0)
        cairo_save(context)
        cairo_translate(context, at.0, at.1)
        if vertical { cairo_rotate(context, -Double.pi / 2) }
        cairo_move_to(context, -shift, 0)
        cairo_show_text(context, text)
        cairo_restore(context)
      }
    }
    cairo_surface_flush(surface)
    let status = cairo_surface_write_to_png(surface, path)
    guard status == CAIRO_STATUS_SUCCESS else {
      throw DrawingError(description: "cannot write \(path): \(String(cString: cairo_status_to_string(status)))")
    }
  }

  /// Sets the source colour from `#rrggbb`.
  private static func setColour(_ context: OpaquePointer?, _ hex: String) {
    let value = UInt32(hex.dropFirst(), radix: 16) ?? 0
    cairo_set_source_rgb(
      context, Double((value >> 16) & 0xFF) / 255, Double((value >> 8) & 0xFF) / 255, Double(value & 0xFF) / 255)
  }
}
