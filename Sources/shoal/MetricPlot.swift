import Foundation

/// Draws metric curves of several runs as an SVG: axes with rounded ticks, axis labels, a title,
/// one coloured line per run and a legend. Points whose value is NaN or infinite break the line.
struct MetricPlot {
  struct Series {
    var label: String
    var points: [(step: Int64, value: Double)]
  }

  var title: String
  var metric: String
  var series: [Series]
  var width = 800.0
  var height = 480.0

  private static let colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"]

  var svg: String {
    let left = 72.0
    let right = 180.0
    let top = 44.0
    let bottom = 56.0
    let finite = series.flatMap { $0.points.filter { $0.value.isFinite } }
    let steps = finite.map { Double($0.step) }
    let values = finite.map(\.value)
    let xTicks = Self.ticks(steps.min() ?? 0, steps.max() ?? 1)
    let yTicks = Self.ticks(values.min() ?? 0, values.max() ?? 1)
    let (x0, x1) = (xTicks.first!, xTicks.last!)
    let (y0, y1) = (yTicks.first!, yTicks.last!)
    let plotWidth = width - left - right
    let plotHeight = height - top - bottom
    func x(_ step: Double) -> Double { left + (step - x0) / max(x1 - x0, 1e-12) * plotWidth }
    func y(_ value: Double) -> Double { top + plotHeight - (value - y0) / max(y1 - y0, 1e-12) * plotHeight }

    var out = """
      <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" \
      viewBox="0 0 \(Int(width)) \(Int(height))" font-family="sans-serif" font-size="12">
      <rect width="100%" height="100%" fill="white"/>
      <text x="\(left + plotWidth / 2)" y="24" text-anchor="middle" font-size="16">\(Self.escaped(title))</text>

      """
    for tick in xTicks {
      out += """
        <line x1="\(x(tick))" y1="\(top)" x2="\(x(tick))" y2="\(top + plotHeight)" stroke="#e5e5e5"/>
        <text x="\(x(tick))" y="\(top + plotHeight + 18)" text-anchor="middle">\(Self.label(tick))</text>

        """
    }
    for tick in yTicks {
      out += """
        <line x1="\(left)" y1="\(y(tick))" x2="\(left + plotWidth)" y2="\(y(tick))" stroke="#e5e5e5"/>
        <text x="\(left - 8)" y="\(y(tick) + 4)" text-anchor="end">\(Self.label(tick))</text>

        """
    }
    out += """
      <rect x="\(left)" y="\(top)" width="\(plotWidth)" height="\(plotHeight)" fill="none" stroke="#333"/>
      <text x="\(left + plotWidth / 2)" y="\(height - 14)" text-anchor="middle">step</text>
      <text x="18" y="\(top + plotHeight / 2)" text-anchor="middle" \
      transform="rotate(-90 18 \(top + plotHeight / 2))">\(Self.escaped(metric))</text>

      """
    for (index, line) in series.enumerated() {
      let colour = Self.colours[index % Self.colours.count]
      // Non-finite values split the curve into pieces.
      var pieces: [[String]] = [[]]
      for point in line.points.sorted(by: { $0.step < $1.step }) {
        if point.value.isFinite {
          pieces[pieces.count - 1].append("\(x(Double(point.step))),\(y(point.value))")
        } else if !pieces[pieces.count - 1].isEmpty {
          pieces.append([])
        }
      }
      for piece in pieces where !piece.isEmpty {
        out +=
          "<polyline data-run=\"\(Self.escaped(line.label))\" fill=\"none\" stroke=\"\(colour)\" stroke-width=\"2\" points=\"\(piece.joined(separator: " "))\"/>\n"
      }
      let legendY = top + 10 + Double(index) * 20
      out += """
        <line x1="\(width - right + 16)" y1="\(legendY)" x2="\(width - right + 40)" y2="\(legendY)" stroke="\(colour)" stroke-width="3"/>
        <text x="\(width - right + 46)" y="\(legendY + 4)">\(Self.escaped(line.label))</text>

        """
    }
    return out + "</svg>\n"
  }

  /// Round tick values (1, 2 or 5 times a power of ten) covering `low…high`.
  static func ticks(_ low: Double, _ high: Double) -> [Double] {
    var (low, high) = (low, high)
    if low == high {
      low -= 1
      high += 1
    }
    let rough = (high - low) / 5
    let magnitude = pow(10, floor(log10(rough)))
    let step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= rough } ?? 10 * magnitude
    let first = floor(low / step) * step
    let last = ceil(high / step) * step
    return stride(from: first, through: last + step / 2, by: step).map { ($0 / step).rounded() * step }
  }

  static func label(_ value: Double) -> String {
    if value == value.rounded(), abs(value) < 1e9 { return String(Int64(value)) }
    return String(format: "%.4g", value)
  }

  static func escaped(_ text: String) -> String {
    text.replacing("&", with: "&amp;").replacing("<", with: "&lt;").replacing(">", with: "&gt;")
      .replacing("\"", with: "&quot;")
  }
}
