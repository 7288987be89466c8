import Metainfo
import PeerBase
import PeerWire
import Testing

@testable import Swarm

@Suite("Piece layer fetch (BEP 52)")
struct PieceLayerFetchTests {
    let pieceLength = 32 * 1024  // piece layer = base layer 1

    func file(_ pieces: Int, seed: UInt64) -> (layer: [UInt8], root: [UInt8]) {
        let layer = SeededGenerator.bytes(pieces * 32, seed: seed)
        return (layer, MerkleTree.fileRoot(pieceLayer: layer, pieceLength: self.pieceLength))
    }

    func answer(_ r: HashRequest, _ layer: [UInt8]) -> [UInt8] {
        MerkleProof.answer(layer: layer, padHeight: 1, index: Int(r.index), length: Int(r.length),
            proofLayers: Int(r.proofLayers))!
    }

    @Test("layers arrive in checked runs from several peers; a liar is caught and someone else is asked")
    func fetch() {
        let a = self.file(700, seed: 1)  // two runs of 512
        let b = self.file(3, seed: 2)  // one run of 4
        var fetch = PieceLayerFetch(needed: [(0, a.root, 700), (1, b.root, 3)], pieceLength: self.pieceLength)
        #expect(fetch.baseLayer == 1)
        let toLiar = fetch.requests(for: 1, limit: 1) { _ in true }
        #expect(toLiar.count == 1 && toLiar[0].index == 0 && toLiar[0].length == 512 && toLiar[0].baseLayer == 1)
        var lie = self.answer(toLiar[0], a.layer)
        lie[5] ^= 1
        #expect(fetch.received(toLiar[0], hashes: lie, from: 1) == .invalid)
        // The liar is not asked for that run again; an honest peer gets the rest.
        #expect(fetch.requests(for: 1, limit: 5) { $0 == 0 }.map(\.index) == [512])
        let honest = fetch.requests(for: 2, limit: 5) { _ in true }
        #expect(honest.map(\.index) == [0, 0])  // file 0's first run, file 1's only run
        fetch.rejected(honest[0], by: 2)
        guard case .layer(1, b.root, let layerB) = fetch.received(honest[1], hashes: self.answer(honest[1], b.layer), from: 2)
        else { Issue.record("file 1 not complete"); return }
        #expect(layerB == b.layer)
        fetch.peerLeft(1)  // its run of file 0 goes back to the pool
        let rest = fetch.requests(for: 3, limit: 5) { _ in true }
        #expect(rest.map(\.index) == [0, 512])
        #expect(fetch.received(rest[0], hashes: self.answer(rest[0], a.layer), from: 9) == .unexpected)
        #expect(fetch.received(rest[0], hashes: self.answer(rest[0], a.layer), from: 3) == .stored)
        guard case .layer(0, a.root, let layerA) = fetch.received(rest[1], hashes: self.answer(rest[1], a.layer), from: 3)
        else { Issue.record("file 0 not complete"); return }
        #expect(layerA == a.layer)
        #expect(fetch.isDone)
    }
}
