public import ShoalModel

/// How images become a model's input tensor: the size, channel order, mean and standard
/// deviation a model version declares, and the layout its input's shape implies.
public struct ImageTensorFormat: Sendable, Equatable {
  /// Channels first (`[N, C, H, W]`) or last (`[N, H, W, C]`).
  public enum Layout: Sendable, Equatable {
    case nchw, nhwc
  }

  public var layout: Layout
  /// 1 (gray) or 3.
  public var channels: Int
  /// The size images are resized to; nil keeps each image's own (they must then agree).
  public var width: Int?
  public var height: Int?
  /// "RGB" or "BGR".
  public var channelOrder: String
  /// Per channel, in the tensor's channel order, on the 0–1 scale: value = (sample / 255 − mean) / std.
  public var mean: [Float]
  public var std: [Float]
  public var filter: ResizeFilter

  /// The format for a rank-4 input of `shape` (-1 or 0 for a free dimension): NCHW when
  /// dimension 1 is 1 or 3, NHWC when the last is; free height and width take `tileSize` when it
  /// is positive.
  ///
  /// - Throws: `ImageError` when the shape is not an image's.
  public init(
    shape: [Int], tileSize: Int, channelOrder: String, mean: [Float], std: [Float], filter: ResizeFilter = .bilinear
  ) throws(ImageError) {
    guard shape.count == 4 else { throw ImageError("an image input has rank 4, this one has shape \(shape)") }
    let (layout, channels, height, width): (Layout, Int, Int, Int)
    if [1, 3].contains(shape[1]) {
      (layout, channels, height, width) = (.nchw, shape[1], shape[2], shape[3])
    } else if [1, 3].contains(shape[3]) {
      (layout, channels, height, width) = (.nhwc, shape[3], shape[1], shape[2])
    } else {
      throw ImageError("an image input has 1 or 3 channels first or last; this one has shape \(shape)")
    }
    self.layout = layout
    self.channels = channels
    self.height = height > 0 ? height : (tileSize > 0 ? tileSize : nil)
    self.width = width > 0 ? width : (tileSize > 0 ? tileSize : nil)
    self.channelOrder = channelOrder.uppercased() == "BGR" ? "BGR" : "RGB"
    guard mean.isEmpty || mean.count == channels, std.isEmpty || std.count == channels else {
      throw ImageError("the version's mean and std need \(channels) values each (or none)")
    }
    guard std.allSatisfy({ $0 != 0 }) else { throw ImageError("the version's std has a zero") }
    self.mean = mean.isEmpty ? Array(repeating: 0, count: channels) : mean
    self.std = std.isEmpty ? Array(repeating: 1, count: channels) : std
    self.filter = filter
  }

  /// The images as one FLOAT tensor of `images.count` rows.
  ///
  /// - Throws: `ImageError` when the format keeps each image's size and the sizes differ.
  public func tensor(_ images: [Image]) throws(ImageError) -> Tensor {
    precondition(!images.isEmpty, "no images")
    let height = self.height ?? images[0].height
    let width = self.width ?? images[0].width
    var values = [Float](repeating: 0, count: images.count * channels * height * width)
    let plane = height * width
    // Each channel's 256 values, computed as (sample / 255 − mean) / std, then looked up.
    let tables = (0..<channels).map { channel in
      (0..<256).map { (Float($0) / 255 - mean[channel]) / std[channel] }
    }
    let reversed = channelOrder == "BGR" && channels == 3
    for (index, original) in images.enumerated() {
      var image = channels == 3 ? original.rgb() : original.gray()
      if image.width != width || image.height != height {
        guard self.width != nil, self.height != nil else {
          throw ImageError("image \(index) is \(image.width)×\(image.height), the first \(width)×\(height)")
        }
        image = image.resized(width: width, height: height, filter: filter)
      }
      let base = index * channels * plane
      image.pixels.withUnsafeBufferPointer { source in
        values.withUnsafeMutableBufferPointer { target in
          for channel in 0..<channels {
            // BGR takes the samples in reverse order.
            let sourceChannel = reversed ? 2 - channel : channel
            tables[channel].withUnsafeBufferPointer { table in
              if layout == .nchw {
                let out = target.baseAddress! + base + channel * plane
                for pixel in 0..<plane { out[pixel] = table[Int(source[pixel * channels + sourceChannel])] }
              } else {
                let out = target.baseAddress! + base + channel
                for pixel in 0..<plane {
                  out[pixel * channels] = table[Int(source[pixel * channels + sourceChannel])]
                }
              }
            }
          }
        }
      }
    }
    let shape =
      layout == .nchw ? [images.count, channels, height, width] : [images.count, height, width, channels]
    return Tensor(shape: shape, elements: values)
  }
}

extension ImageTensorFormat {
  /// The format of a model input `spec` (its free dimensions taking `tileSize`), with a
  /// version's preprocessing.
  public init(
    input spec: Model.ValueSpec, tileSize: Int, channelOrder: String, mean: [Float], std: [Float],
    filter: ResizeFilter = .bilinear
  ) throws(ImageError) {
    let shape = (spec.dimensions ?? []).map { dimension -> Int in
      if case .fixed(let size) = dimension { return size }
      return -1
    }
    try self.init(shape: shape, tileSize: tileSize, channelOrder: channelOrder, mean: mean, std: std, filter: filter)
  }

  /// The tensor of encoded images (PNG or JPEG), each decoded first.
  ///
  /// - Throws: `ImageError` naming the first image that does not decode by its index, with the
  ///   decoder's reason.
  public func tensor(encoded files: [ArraySlice<UInt8>]) throws(ImageError) -> Tensor {
    var images: [Image] = []
    for (index, file) in files.enumerated() {
      do throws(ImageError) {
        images.append(try Image(decoding: Array(file)))
      } catch {
        throw ImageError("image \(index): \(error.message)")
      }
    }
    return try tensor(images)
  }
}
