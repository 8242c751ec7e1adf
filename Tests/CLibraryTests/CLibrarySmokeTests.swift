import CLibPQ
import COpenBLAS
import CProtobufC
import CSQLite
import CZstd
import Testing

/// One call into each C library, to prove it is found, linked and callable.
struct CLibrarySmokeTests {
  @Test func protobufCReportsItsVersion() {
    #expect(protobuf_c_version_number() >= 1_004_000)
  }

  @Test func zstdRoundTripsAPayload() {
    let input = [UInt8](repeating: 7, count: 10_000)
    var compressed = [UInt8](repeating: 0, count: ZSTD_compressBound(input.count))
    let compressedSize = ZSTD_compress(&compressed, compressed.count, input, input.count, 3)
    #expect(ZSTD_isError(compressedSize) == 0)
    #expect(compressedSize < 100)
    var output = [UInt8](repeating: 0, count: input.count)
    let outputSize = ZSTD_decompress(&output, output.count, compressed, compressedSize)
    #expect(outputSize == input.count)
    #expect(output == input)
  }

  @Test func libpqReportsItsVersion() {
    #expect(PQlibVersion() >= 150_000)
  }

  @Test func sqliteAnswersAQuery() throws {
    var db: OpaquePointer?
    #expect(sqlite3_open(":memory:", &db) == SQLITE_OK)
    defer { sqlite3_close(db) }
    var statement: OpaquePointer?
    #expect(sqlite3_prepare_v2(db, "SELECT 6 * 7", -1, &statement, nil) == SQLITE_OK)
    defer { sqlite3_finalize(statement) }
    #expect(sqlite3_step(statement) == SQLITE_ROW)
    #expect(sqlite3_column_int(statement, 0) == 42)
  }

  @Test func openBLASMultipliesMatrices() {
    let a: [Float] = [1, 2, 3, 4]  // 2×2, row-major
    let b: [Float] = [5, 6, 7, 8]
    var c = [Float](repeating: 0, count: 4)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 2, 2, 2, 1, a, 2, b, 2, 0, &c, 2)
    #expect(c == [19, 22, 43, 50])
  }
}
