import ShoalImage
public import ShoalModel
public import ShoalProto
public import ShoalRPC

extension InferenceV1.InferTensor {
  /// Whether this is an image for `spec`: BYTES given for a rank-4 FLOAT input.
  public func isImage(for spec: Model.ValueSpec) -> Bool {
    datatype == "BYTES" && spec.elementType == DataType.float32.onnxCode && spec.dimensions?.count == 4
  }

  /// The encoded images (PNG or JPEG) of a BYTES tensor, decoded and made into the input tensor
  /// with the version's preprocessing: resized to the input's fixed height and width (or the
  /// version's tile size), in its channel order and layout, normalised by its mean and std. The
  /// `resize` parameter picks the filter (`bilinear`, the default, or `area`).
  ///
  /// - Throws: INVALID_ARGUMENT naming the input and the image: malformed BYTES contents, a
  ///   corrupt image with the decoder's reason, a preprocessing that does not fit the input.
  public func imageTensor(
    for spec: Model.ValueSpec, preprocessing: RegistryV1.Preprocessing?
  ) throws(RPCError) -> Tensor {
    let elements: [ArraySlice<UInt8>]
    do {
      elements = try Self.bytesElements(rawContents)
    } catch {
      throw RPCError(.invalidArgument, "input '\(name)': \(error.message)")
    }
    let expected = shape.reduce(1, *)
    guard !elements.isEmpty, Int64(elements.count) == expected else {
      throw RPCError(
        .invalidArgument, "input '\(name)': \(elements.count) images in raw_contents, shape \(shape) says \(expected)")
    }
    var filter = ResizeFilter.bilinear
    if case .stringParam(let value)? = parameters["resize"]?.choice {
      guard let chosen = ResizeFilter(rawValue: value) else {
        throw RPCError(.invalidArgument, "input '\(name)': resize '\(value)' is not bilinear or area")
      }
      filter = chosen
    }
    do throws(ImageError) {
      let format = try ImageTensorFormat(
        input: spec, tileSize: Int(preprocessing?.tileSize ?? 0), channelOrder: preprocessing?.channelOrder ?? "RGB",
        mean: preprocessing?.mean ?? [], std: preprocessing?.std ?? [], filter: filter)
      return try format.tensor(encoded: elements)
    } catch {
      throw RPCError(.invalidArgument, "input '\(name)': \(error.message)")
    }
  }

  /// OIP's raw BYTES contents: each element a 4-byte little-endian length, then its bytes.
  static func bytesElements(_ raw: [UInt8]) throws(ImageError) -> [ArraySlice<UInt8>] {
    var elements: [ArraySlice<UInt8>] = []
    var offset = 0
    while offset < raw.count {
      guard offset + 4 <= raw.count else { throw ImageError("BYTES contents end inside an element's length") }
      let length =
        Int(raw[offset]) | Int(raw[offset + 1]) << 8 | Int(raw[offset + 2]) << 16 | Int(raw[offset + 3]) << 24
      offset += 4
      guard length <= raw.count - offset else {
        throw ImageError("BYTES element \(elements.count) says \(length) bytes, \(raw.count - offset) remain")
      }
      elements.append(raw[offset..<(offset + length)])
      offset += length
    }
    return elements
  }

  /// A BYTES tensor of encoded files (an image each), as OIP's raw contents hold them.
  public init(name: String, files: [[UInt8]]) {
    self.init()
    self.name = name
    datatype = "BYTES"
    shape = [Int64(files.count)]
    for file in files {
      let length = UInt32(file.count)
      rawContents += [UInt8(length & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length >> 16 & 0xFF), UInt8(length >> 24)]
      rawContents += file
    }
  }
}
