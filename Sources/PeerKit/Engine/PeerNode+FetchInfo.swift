// BEP 9 from one named peer: how an index node checks an announcer's claim, and how a searcher checks an index
// node's hit, before either is shown as verified.
import Metainfo
import NIOCore

extension PeerNode {
    /// Fetches a torrent's info dictionary from the peer at `host:port` alone, checked against `infoHash` (20 bytes
    /// v1, or 32 bytes v2); within `timeout` from the dial to the last piece.
    ///
    /// The fetch dials out and takes no incoming connection: the node may hold the same torrent (or be fetching
    /// its metadata), and those keep theirs.
    /// - Throws: `MetainfoError` for a hash of another length, the dial's error, `HTTPFetchError.timedOut`, or
    ///   `CancellationError`.
    public func fetchInfo(infoHash: [UInt8], from host: String, port: Int, timeout: Duration, listenPort: Int = 0)
        async throws -> [UInt8]
    {
        let hashes: InfoHashes
        switch infoHash.count {
        case 20: hashes = InfoHashes(v1: InfoHashV1(infoHash), v2: nil)
        case 32: hashes = InfoHashes(v1: nil, v2: InfoHashV2(infoHash))
        default: throw MetainfoError.magnet("an info-hash has 20 or 32 bytes, not \(infoHash.count)")
        }
        let fetcher = MetadataFetcher(magnet: MagnetLink(infoHashes: hashes), eventLoop: self.group.next(),
            listenPort: UInt16(clamping: listenPort))
        let result: Result<[UInt8], any Error>
        do {
            result = .success(try await PeerHTTP.withTimeout(timeout) {
                // A future does not hear of cancellation: the time-out ends the wait by ending the fetch (a dial
                // under way still runs to its own 10 s time-out).
                try await withTaskCancellationHandler {
                    try await self.connect(fetcher as any PeerHost, host: host, port: port).get()
                    return try await fetcher.infoBytes.get()
                } onCancel: {
                    fetcher.cancel()
                }
            })
        } catch {
            result = .failure(error)
        }
        try? await fetcher.stop().get()
        return try result.get()
    }
}
