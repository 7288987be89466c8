import Metainfo
import PeerBase
import Storage
import Testing

@testable import PeerKit

@Suite("PeerNode")
struct PeerNodeTests {
    @Test("the first torrent lives on the loop that incoming connections are registered on, so a one-torrent node never hops loops; more torrents spread over the loops")
    func loops() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let (root, _) = try makeSample(in: dir)
        let node = PeerNode(bindHost: "127.0.0.1", loops: 3)
        _ = try await node.listen(port: 0)
        var engines: [TorrentEngine] = []
        for version in [TorrentVersion.v1, .v2, .hybrid] {
            let t = try create(root) { $0.version = version }.metainfo
            engines.append(node.add(metainfo: t, storage: MemoryStorage(metainfo: t),
                have: Bitfield(count: t.pieceCount), configuration: .init()))
        }
        #expect(engines[0].eventLoop === node.incomingLoop)
        #expect(Set(engines.map { ObjectIdentifier($0.eventLoop) }).count == 3)
        await node.shutdown()
    }
}
