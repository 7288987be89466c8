import PeerBase
import PeerWire
import Swarm
import Metainfo
import Testing

@Suite("Piece picker: whole pieces for web seeds")
struct WholePieceTests {
    let block = PieceMap.blockSize
    let seed = -1  // web seeds use negative keys, peers non-negative ones

    @Test("a claimed piece is never started by a peer, and a second claim takes another piece")
    func claim() throws {
        var p = PiecePicker(map: PieceMap(totalLength: Int64(3) * Int64(2 * self.block), pieceLength: 2 * self.block))
        var rng = SeededGenerator(seed: 5)
        let first = p.claimWholePiece(for: self.seed, using: &rng)
        let second = p.claimWholePiece(for: self.seed - 1, using: &rng)
        let (a, b) = (try #require(first), try #require(second))
        #expect(a != b)
        let picked = p.pick(for: 1, has: Bitfield.full(3), count: 2, using: &rng)
        #expect(Set(picked.map { Int($0.piece) }) == Set([0, 1, 2]).subtracting([a, b]))
        let third = p.claimWholePiece(for: self.seed - 2, using: &rng)
        #expect(third == nil, "every piece is in progress")
    }

    @Test("a delivered piece goes to verification once; a verified one is not claimed again")
    func deliver() throws {
        var p = PiecePicker(map: PieceMap(totalLength: Int64((2) - 1) * Int64(self.block) + Int64(100), pieceLength: self.block))
        var rng = SeededGenerator(seed: 1)
        let claimed = p.claimWholePiece(for: self.seed, using: &rng)
        let a = try #require(claimed)
        var results = [p.receivedWholePiece(a, from: self.seed), p.receivedWholePiece(a, from: self.seed)]
        #expect(results == [true, false], "the second delivery finds it being verified")
        p.pieceVerified(a)
        results = [p.receivedWholePiece(a, from: self.seed)]
        #expect(results == [false], "already verified")
        let next = p.claimWholePiece(for: self.seed, using: &rng)
        #expect(next == 1 - a)
        results = [p.receivedWholePiece(1 - a, from: self.seed)]
        #expect(results == [true])
        p.pieceVerified(1 - a)
        #expect(p.isComplete)
        let none = p.claimWholePiece(for: self.seed, using: &rng)
        #expect(none == nil)
    }

    @Test("a piece that failed or was given back is open to peers and web seeds again")
    func release() {
        var p = PiecePicker(map: PieceMap(totalLength: Int64(1) * Int64(2 * self.block), pieceLength: 2 * self.block))
        var rng = SeededGenerator(seed: 1)
        var claimed = p.claimWholePiece(for: self.seed, using: &rng)
        #expect(claimed == 0)
        let endgame = p.pick(for: 1, has: Bitfield.full(1), count: 4, using: &rng)
        #expect(endgame.count == 1, "end-game: an idle peer may ask for a block too, one at a time")
        p.peerLeft(self.seed, has: Bitfield(count: 1))
        let delivered = p.receivedWholePiece(0, from: self.seed)
        #expect(delivered)
        p.pieceFailed(0)
        claimed = p.claimWholePiece(for: self.seed, using: &rng)
        #expect(claimed == 0)
        p.peerLeft(self.seed, has: Bitfield(count: 1))
        let blocks = p.pick(for: 2, has: Bitfield.full(1), count: 4, using: &rng)
        #expect(blocks.count == 2)
    }
}
