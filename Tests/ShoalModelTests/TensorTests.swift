import Foundation
import ShoalModel
import ShoalTestSupport
import Testing

@Suite struct TensorTests {
  @Test func npyRoundTripsEveryElementType() throws {
    let tensors = [
      Tensor(shape: [2, 3], elements: [Float(1.5), -2, .nan, .infinity, 0, 7]),
      Tensor(shape: [3], elements: [1.25, -2.5, 1e300]),
      Tensor(shape: [2, 2], elements: [Int64.min, -1, 0, .max]),
      Tensor(shape: [1, 2, 1], elements: [Int32(-7), 9]),
      Tensor(shape: [2], elements: [Int8(-128), 127]),
      Tensor(shape: [3], elements: [UInt8(0), 128, 255]),
      Tensor(shape: [2], elements: [true, false]),
      Tensor(scalar: Float(3)),
      Tensor(zeros: [0, 4]),
    ]
    for tensor in tensors {
      let bytes = tensor.npyBytes()
      #expect(
        bytes.count - tensor.byteCount == 128 || bytes.count - tensor.byteCount == 64, "the data starts 64-byte aligned"
      )
      let read = try Tensor(npy: bytes)
      #expect(read.dataType == tensor.dataType)
      #expect(read.shape == tensor.shape)
      #expect(read.withUnsafeBytes { Array($0) } == tensor.withUnsafeBytes { Array($0) })
    }
  }

  @Test func npyFilesInterchangeWithNumpy() async throws {
    let directory = try TemporaryDirectory()
    let python = try TestEnvironment.python()
    // numpy writes little- and big-endian files of several types; Shoal reads them.
    let script = """
      import numpy as np, sys
      d = sys.argv[1]
      np.save(d + '/f4.npy', np.arange(12, dtype='<f4').reshape(3, 4) / 4)
      np.save(d + '/be.npy', np.arange(6, dtype='>f8').reshape(2, 3))
      np.save(d + '/i8.npy', np.array([[-3, 5]], dtype=np.int64))
      np.save(d + '/b.npy', np.array([True, False, True]))
      np.save(d + '/fortran.npy', np.asfortranarray(np.ones((2, 3), dtype=np.float32)))
      """
    let written = try await Subprocess.run(python, ["-c", script, directory.url.path])
    #expect(written.status == 0, "\(written.stderrText)")
    let f4 = try Tensor(npyFile: directory.path("f4.npy"))
    #expect(f4.shape == [3, 4])
    #expect(f4.elements(as: Float.self) == (0..<12).map { Float($0) / 4 })
    let bigEndian = try Tensor(npyFile: directory.path("be.npy"))
    #expect(bigEndian.elements(as: Double.self) == [0, 1, 2, 3, 4, 5])
    #expect(try Tensor(npyFile: directory.path("i8.npy")).elements(as: Int64.self) == [-3, 5])
    #expect(try Tensor(npyFile: directory.path("b.npy")).elements(as: Bool.self) == [true, false, true])
    let fortran = #expect(throws: ModelError.self) { try Tensor(npyFile: directory.path("fortran.npy")) }
    #expect(fortran?.code == .unsupported)

    // Shoal writes; numpy reads back the same values.
    try Tensor(shape: [2, 2], elements: [Float(0.5), -1, 2, 1e-8]).writeNpy(to: directory.path("out.npy"))
    let check = try await Subprocess.run(
      python,
      [
        "-c",
        "import numpy as np, sys; a = np.load(sys.argv[1]); assert a.dtype == np.float32 and a.shape == (2, 2), a; print(a.tolist())",
        directory.path("out.npy"),
      ])
    #expect(check.status == 0, "\(check.stderrText)")
    #expect(check.stdoutText.contains("[[0.5, -1.0], [2.0, 9.99999993922529e-09]]"))
  }

  @Test func badNpyFilesAreRefusedWithAReason() throws {
    #expect(throws: ModelError.self) { try Tensor(npy: Array("not numpy at all".utf8)) }
    var truncated = Tensor(shape: [4], elements: [Float(1), 2, 3, 4]).npyBytes()
    truncated.removeLast(3)
    let error = #expect(throws: ModelError.self) { try Tensor(npy: truncated) }
    #expect(error?.message.contains("truncated") == true)
    let header = "{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }\n"
    let complex =
      [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.utf8.count), 0] + Array(header.utf8)
      + [UInt8](repeating: 0, count: 8)
    let unsupported = #expect(throws: ModelError.self) { try Tensor(npy: complex) }
    #expect(unsupported?.code == .unsupported)
  }
}
