import ShoalProto
public import ShoalRPC
public import ShoalStore

extension BlobDigest {
  /// The digest an upload's header promises: nil when the header gives none.
  ///
  /// - Throws: INVALID_ARGUMENT naming the `sha256` field unless it is empty or 64 hex digits.
  public init?(uploadHeader hex: String) throws(RPCError) {
    guard !hex.isEmpty else { return nil }
    do {
      try self.init(hex: hex)
    } catch {
      throw RPCError(.invalidArgument, "sha256: \(error.message)")
    }
  }
}

extension BlobStore {
  /// Receives the file that follows an upload's header: every remaining message must be a chunk
  /// (`chunk` returns its bytes, nil for anything else). Returns the stored blob's digest and size.
  ///
  /// - Throws: INVALID_ARGUMENT for a message that is not a chunk, RESOURCE_EXHAUSTED past `limit`,
  ///   DATA_LOSS when `expected` is given and does not match. Whatever fails (the caller's
  ///   cancellation included), nothing is stored.
  public func receive<Request>(
    rest messages: inout RPCRequestStream<Request>.AsyncIterator, limit: Int64, expected: BlobDigest?,
    chunk: (Request) -> [UInt8]?
  ) async throws -> (digest: BlobDigest, size: Int64) {
    let writer = try await makeWriter()
    do {
      while let message = try await messages.next() {
        guard let bytes = chunk(message) else {
          throw RPCError(.invalidArgument, "only chunks may follow an upload's header")
        }
        guard writer.size + Int64(bytes.count) <= limit else {
          throw RPCError(.resourceExhausted, "the file is larger than the limit of \(limit) bytes")
        }
        try await writer.write(bytes)
      }
      return try await writer.commit(expecting: expected)
    } catch let error as StoreError {
      await writer.abort()
      throw RPCError(error.code == .dataLoss ? .dataLoss : .unavailable, error.description)
    } catch {
      await writer.abort()
      throw error
    }
  }

  /// Sends `first`, then blob `digest` in chunks (`chunk` wraps each in a message), verifying the
  /// digest on the way: a file altered on disk ends the call with DATA_LOSS; a missing one too.
  public func send<Response>(
    _ digest: BlobDigest, named what: String, first: Response, chunkSize: Int = 256 << 10,
    to responses: RPCResponseWriter<Response>, chunk: ([UInt8]) -> Response
  ) async throws {
    let reader: BlobReader
    do {
      reader = try await openReader(digest, chunkSize: chunkSize)
    } catch let error as StoreError {
      throw RPCError(error.code == .notFound ? .dataLoss : .unavailable, "\(what): \(error)")
    }
    defer { reader.close() }
    try await responses.send(first)
    do {
      while let bytes = try await reader.next() { try await responses.send(chunk(bytes)) }
    } catch let error as StoreError {
      throw RPCError(error.code == .dataLoss ? .dataLoss : .unavailable, error.description)
    }
  }
}
