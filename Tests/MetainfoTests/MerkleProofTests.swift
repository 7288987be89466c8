import PeerBase
import Testing

@testable import Metainfo

@Suite("Merkle proofs (BEP 52 hashes)")
struct MerkleProofTests {
    @Test("every run of a layer, answered with uncles, checks against the file root", arguments: [2, 3, 5, 512, 600, 1100])
    func roundTrip(pieces: Int) {
        let pieceLength = 64 * 1024
        let layer = SeededGenerator.bytes(pieces * 32, seed: UInt64(pieces))
        let root = MerkleTree.fileRoot(pieceLayer: layer, pieceLength: pieceLength)
        let width = MerkleTree.nextPowerOfTwo(pieces)
        var assembled: [UInt8] = []
        for (index, length) in MerkleProof.chunks(pieceCount: pieces) {
            let proof = MerkleProof.proofLayers(length: length, width: width)
            let answer = MerkleProof.answer(layer: layer, padHeight: 2, index: index, length: length, proofLayers: proof)
            let hashes = try! #require(answer)
            let run = MerkleProof.verify(hashes: hashes, root: root, index: index, length: length, proofLayers: proof,
                pieceCount: pieces)
            #expect(run != nil)
            assembled += run ?? []
            // One flipped bit anywhere (a hash or an uncle) fails the check.
            var bad = hashes
            bad[(bad.count - 1) * (index % 7) / 7] ^= 1
            #expect(MerkleProof.verify(hashes: bad, root: root, index: index, length: length, proofLayers: proof,
                pieceCount: pieces) == nil)
        }
        #expect(Array(assembled.prefix(layer.count)) == layer)
    }

    @Test("requests that do not fit are refused")
    func refused() {
        let layer = SeededGenerator.bytes(5 * 32, seed: 1)
        #expect(MerkleProof.answer(layer: layer, padHeight: 0, index: 0, length: 3, proofLayers: 0) == nil)  // not 2^n
        #expect(MerkleProof.answer(layer: layer, padHeight: 0, index: 2, length: 4, proofLayers: 0) == nil)  // index
        #expect(MerkleProof.answer(layer: layer, padHeight: 0, index: 0, length: 16, proofLayers: 0) == nil)  // past end
        #expect(MerkleProof.answer(layer: layer, padHeight: 0, index: 0, length: 1024, proofLayers: 0) == nil)
        #expect(MerkleProof.answer(layer: layer, padHeight: 0, index: 4, length: 2, proofLayers: 2)?.count == 4 * 32)
    }

    @Test("an answer without enough uncles to reach the root cannot be checked")
    func tooFewUncles() {
        let layer = SeededGenerator.bytes(8 * 32, seed: 2)
        let root = MerkleTree.fileRoot(pieceLayer: layer, pieceLength: 16384)
        let hashes = MerkleProof.answer(layer: layer, padHeight: 0, index: 2, length: 2, proofLayers: 1)!
        #expect(hashes.count == 3 * 32)  // one uncle of the two needed
        #expect(MerkleProof.verify(hashes: hashes, root: root, index: 2, length: 2, proofLayers: 1, pieceCount: 8) == nil)
        let full = MerkleProof.answer(layer: layer, padHeight: 0, index: 2, length: 2, proofLayers: 2)!
        #expect(MerkleProof.verify(hashes: full, root: root, index: 2, length: 2, proofLayers: 2, pieceCount: 8) != nil)
    }
}
