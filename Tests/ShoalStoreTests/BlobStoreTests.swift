import Foundation
import ShoalStore
import ShoalTestSupport
import Testing

struct BlobStoreTests {
  @Test func bytesComeBackUnderTheirSHA256() async throws {
    let directory = try TemporaryDirectory()
    let store = try BlobStore(root: directory.path("blobs"))
    let digest = try await store.put(Array("abc".utf8))
    // FIPS 180-2's test vector for "abc".
    #expect(digest.hex == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    #expect(digest.reference == "blob:sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    let value1 = try await store.read(digest)
    #expect(value1 == Array("abc".utf8))
    let value2 = try await store.size(of: digest)
    #expect(value2 == 3)
    let value3 = try await store.put(Array("abc".utf8))
    #expect(value3 == digest)
    let value4 = try await store.list()
    #expect(value4 == [digest])
    #expect(try BlobDigest(reference: digest.reference) == digest)
  }

  @Test func largeBlobsStreamInChunks() async throws {
    let directory = try TemporaryDirectory()
    let store = try BlobStore(root: directory.path("blobs"))
    var random = SplitMix64(seed: 7)
    let chunks = (0..<20).map { _ in (0..<100_003).map { _ in UInt8.random(in: 0...255, using: &random) } }
    let writer = try await store.makeWriter()
    for chunk in chunks { try await writer.write(chunk) }
    let (digest, size) = try await writer.commit()
    #expect(size == 2_000_060)
    #expect(digest == BlobDigest.of(chunks.flatMap { $0 }))
    let reader = try await store.openReader(digest, chunkSize: 65_536)
    var received: [UInt8] = []
    var pieces = 0
    while let chunk = try await reader.next() {
      received += chunk
      pieces += 1
    }
    #expect(pieces == 31)
    #expect(received == chunks.flatMap { $0 })
  }

  @Test func aBlobAlteredOnDiskFailsVerification() async throws {
    let directory = try TemporaryDirectory()
    let store = try BlobStore(root: directory.path("blobs"))
    let digest = try await store.put(Array(repeating: 1, count: 1000))
    let path = store.path(of: digest)
    chmod(path, 0o644)
    var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
    bytes[500] = 2
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    let error = await #expect(throws: StoreError.self) { try await store.read(digest) }
    #expect(error?.code == .dataLoss)
    #expect(error?.message.contains(digest.reference) == true)
  }

  @Test func unfinishedAndMismatchedWritesLeaveNothing() async throws {
    let directory = try TemporaryDirectory()
    let store = try BlobStore(root: directory.path("blobs"))
    let aborted = try await store.makeWriter()
    try await aborted.write([1, 2, 3])
    await aborted.abort()

    let mismatched = try await store.makeWriter()
    try await mismatched.write([4, 5, 6])
    let error = await #expect(throws: StoreError.self) {
      try await mismatched.commit(expecting: BlobDigest.of([9]))
    }
    #expect(error?.code == .dataLoss)

    let value5 = try await store.list()
    #expect(value5 == [])
    #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path("blobs/tmp")) == [])
  }

  @Test func missingBlobsAndMalformedDigests() async throws {
    let directory = try TemporaryDirectory()
    let store = try BlobStore(root: directory.path("blobs"))
    let missing = BlobDigest.of([42])
    let error = await #expect(throws: StoreError.self) { try await store.read(missing) }
    #expect(error?.code == .notFound)
    let value6 = try await store.size(of: missing)
    #expect(value6 == nil)
    let value7 = try await store.delete(missing)
    #expect(value7 == false)
    #expect(throws: StoreError.self) { try BlobDigest(reference: "sha1:abc") }
    #expect(throws: StoreError.self) { try BlobDigest(hex: String(repeating: "g", count: 64)) }
  }
}
