import Foundation

/// Draws metric curves of several runs, as SVG or (with cairo) PNG: axes with rounded ticks, axis
/// labels, a title, one coloured line per run and a legend. Points whose value is NaN or infinite
/// break the line.
struct MetricPlot {
  struct Series {
    var label: String
    var points: [(step: Int64, value: Double)]
  }

  var title: String
  var metric: String
  var series: [Series]
  /// What the x axis counts.
  var xLabel = "step"
  var width = 800.0
  var height = 480.0

  private static let colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"]

  /// One thing drawn: the layout is computed once, then written as SVG or drawn with cairo.
  enum Mark {
    enum Anchor: String { case start, middle, end }
    case line(from: (Double, Double), to: (Double, Double), colour: String, width: Double)
    case polyline([(Double, Double)], colour: String, run: String)
    case frame(x: Double, y: Double, width: Double, height: Double)
    case text(String, at: (Double, Double), anchor: Anchor, size: Double, vertical: Bool)
  }

  /// The plot's marks, back to front.
  var marks: [Mark] {
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

    var marks: [Mark] = [.text(title, at: (left + plotWidth / 2, 24), anchor: .middle, size: 16, vertical: false)]
    for tick in xTicks {
      marks.append(.line(from: (x(tick), top), to: (x(tick), top + plotHeight), colour: "#e5e5e5", width: 1))
      marks.append(
        .text(Self.label(tick), at: (x(tick), top + plotHeight + 18), anchor: .middle, size: 12, vertical: false))
    }
    for tick in yTicks {
      marks.append(.line(from: (left, y(tick)), to: (left + plotWidth, y(tick)), colour: "#e5e5e5", width: 1))
      marks.append(.text(Self.label(tick), at: (left - 8, y(tick) + 4), anchor: .end, size: 12, vertical: false))
    }
    marks.append(.frame(x: left, y: top, width: plotWidth, height: plotHeight))
    marks.append(.text(xLabel, at: (left + plotWidth / 2, height - 14), anchor: .middle, size: 12, vertical: false))
    marks.append(.text(metric, at: (18, top + plotHeight / 2), anchor: .middle, size: 12, vertical: true))
    for (index, line) in series.enumerated() {
      let colour = Self.colours[index % Self.colours.count]
      // Non-finite values split the curve into pieces.
      var pieces: [[(Double, Double)]] = [[]]
      for point in line.points.sorted(by: { $0.step < $1.step }) {
        if point.value.isFinite {
          pieces[pieces.count - 1].append((x(Double(point.step)), y(point.value)))
        } else if !pieces[pieces.count - 1].isEmpty {
          pieces.append([])
        }
      }
      for piece in pieces where !piece.isEmpty { marks.append(.polyline(piece, colour: colour, run: line.label)) }
      let legendY = top + 10 + Double(index) * 20
      marks.append(
        .line(from: (width - right + 16, legendY), to: (width - right + 40, legendY), colour: colour, width: 3))
      marks.append(.text(line.label, at: (width - right + 46, legendY + 4), anchor: .start, size: 12, vertical: false))
    }
    return marks
  }

  /// The plot as an SVG document.
  var svg: String {
    var out = """
      <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" \
      viewBox="0 0 \(Int(width)) \(Int(height))" font-family="sans-serif" font-size="12">
      <rect width="100%" height="100%" fill="white"/>

      """
    for mark in marks {
      switch mark {
      case .line(let from, let to, let colour, let width):
        out += "<line x1=\"\(from.0)\" y1=\"\(from.1)\" x2=\"\(to.0)\" y2=\"\(to.1)\" stroke=\"\(colour)\""
        out += width == 1 ? "/>\n" : " stroke-width=\"\(Int(width))\"/>\n"
      case .polyline(let points, let colour, let run):
        let coordinates = points.map { "\($0.0),\($0.1)" }.joined(separator: " ")
        out +=
          "<polyline data-run=\"\(Self.escaped(run))\" fill=\"none\" stroke=\"\(colour)\" stroke-width=\"2\" points=\"\(coordinates)\"/>\n"
      case .frame(let x, let y, let width, let height):
        out += "<rect x=\"\(x)\" y=\"\(y)\" width=\"\(width)\" height=\"\(height)\" fill=\"none\" stroke=\"#333\"/>\n"
      case .text(let text, let at, let anchor, let size, let vertical):
        out += "<text x=\"\(at.0)\" y=\"\(at.1)\""
        if anchor != .start { out += " text-anchor=\"\(anchor.rawValue)\"" }
        if size != 12 { out += " font-size=\"\(Int(size))\"" }
        if vertical { out += " transform=\"rotate(-90 \(at.0) \(at.1))\"" }
        out += ">\(Self.escaped(text))</text>\n"
      }
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
