import PeerBase
import PeerWire
import Metainfo
import Testing

@testable import Swarm


private func bits(_ count: Int, _ set: [Int]) -> Bitfield {
    var b = Bitfield(count: count)
    for i in set { b[i] = true }
    return b
}

@Suite("Piece picker")
struct PiecePickerTests {
    let block = PieceMap.blockSize

    @Test("the rarest piece is picked first")
    func rarestFirst() {
        var p = PiecePicker(map: PieceMap(totalLength: Int64(4) * Int64(2 * self.block), pieceLength: 2 * self.block))
        p.peerJoined(has: bits(4, [0, 1, 2, 3]))
        p.peerJoined(has: bits(4, [0, 1, 3]))
        p.peerJoined(has: bits(4, [0, 3]))
        var rng = SeededGenerator(seed: 1)
        let r = p.pick(for: 1, has: Bitfield.full(4), count: 2, using: &rng)
        #expect(r.map(\.piece) == [2, 2])  // availability 1
        #expect(r.map(\.offset) == [0, UInt32(self.block)])
    }

    @Test("ties are broken at random, reproducibly from the seed")
    func ties() {
        var seen = Set<UInt32>()
        for seed in 0..<40 {
            var p = PiecePicker(map: PieceMap(totalLength: Int64(8) * Int64(self.block), pieceLength: self.block))
            var rng = SeededGenerator(seed: UInt64(seed))
            let first = p.pick(for: 1, has: Bitfield.full(8), count: 1, using: &rng)[0].piece
            seen.insert(first)
            var p2 = PiecePicker(map: PieceMap(totalLength: Int64(8) * Int64(self.block), pieceLength: self.block))
            var rng2 = SeededGenerator(seed: UInt64(seed))
            #expect(p2.pick(for: 1, has: Bitfield.full(8), count: 1, using: &rng2)[0].piece == first)
        }
        #expect(seen.count >= 5, "ties should spread over the pieces, saw \(seen.sorted())")
    }

    @Test("a peer finishes the piece it started before starting another")
    func affinity() {
        var p = PiecePicker(map: PieceMap(totalLength: Int64(3) * Int64(4 * self.block), pieceLength: 4 * self.block))
        var rng = SeededGenerator(seed: 3)
        let a = p.pick(for: 1, has: Bitfield.full(3), count: 2, using: &rng)
        let b = p.pick(for: 1, has: Bitfield.full(3), count: 2, using: &rng)
        #expect(Set(a.map(\.piece)).count == 1 && b.allSatisfy { $0.piece == a[0].piece })
        // Another peer gets a different piece.
        let c = p.pick(for: 2, has: Bitfield.full(3), count: 1, using: &rng)
        #expect(c[0].piece != a[0].piece)
    }

    @Test("a piece of higher priority (a stream's deadline) goes before the piece a peer started")
    func deadlineBeforeAffinity() {
        var p = PiecePicker(map: PieceMap(totalLength: Int64(4) * Int64(4 * self.block), pieceLength: 4 * self.block))
        var rng = SeededGenerator(seed: 5)
        let started = p.pick(for: 1, has: Bitfield.full(4), count: 2, using: &rng)[0].piece
        let deadline = (0..<4).first { UInt32($0) != started }!
        p.setPriority(255, pieces: deadline..<deadline + 1)
        let next = p.pick(for: 1, has: Bitfield.full(4), count: 6, using: &rng)
        // All four blocks of the deadline piece first, then the rest of the started one.
        #expect(next.prefix(4).allSatisfy { Int($0.piece) == deadline })
        #expect(next.dropFirst(4).allSatisfy { $0.piece == started })
    }

    @Test("priority 0 is never picked; higher priority first; sequential goes in order")
    func priorities() {
        var p = PiecePicker(map: PieceMap(totalLength: Int64(6) * Int64(self.block), pieceLength: self.block))
        p.setPriority(0, pieces: 0..<2)
        p.setPriority(7, pieces: 4..<5)
        var rng = SeededGenerator(seed: 5)
        #expect(p.pick(for: 1, has: Bitfield.full(6), count: 1, using: &rng).map(\.piece) == [4])
        let rest = p.pick(for: 1, has: Bitfield.full(6), count: 10, using: &rng).map(\.piece)
        #expect(Set(rest) == [2, 3, 5])
        #expect(p.remaining == 4)
        var s = PiecePicker(map: PieceMap(totalLength: Int64(5) * Int64(self.block), pieceLength: self.block))
        s.sequential = true
        #expect(s.pick(for: 1, has: Bitfield.full(5), count: 5, using: &rng).map(\.piece) == [0, 1, 2, 3, 4])
    }

    @Test("the short last piece has short last blocks")
    func shortPiece() {
        var p = PiecePicker(map: PieceMap(totalLength: Int64((2) - 1) * Int64(2 * self.block) + Int64(self.block + 100), pieceLength: 2 * self.block))
        p.setPriority(0, pieces: 0..<1)
        var rng = SeededGenerator(seed: 1)
        let r = p.pick(for: 1, has: Bitfield.full(2), count: 5, using: &rng)
        #expect(r == [BlockRef(piece: 1, offset: 0, length: UInt32(self.block)),
            BlockRef(piece: 1, offset: UInt32(self.block), length: 100)])
    }

    @Test("receipts: complete pieces, unexpected blocks, failed pieces come back")
    func receipts() {
        var p = PiecePicker(map: PieceMap(totalLength: Int64(1) * Int64(2 * self.block), pieceLength: 2 * self.block))
        var rng = SeededGenerator(seed: 1)
        let r = p.pick(for: 1, has: Bitfield.full(1), count: 2, using: &rng)
        #expect(p.received(r[0], from: 2) == .unexpected)  // not asked of peer 2
        #expect(p.received(r[0], from: 1) == .accepted(complete: false, cancel: []))
        #expect(p.received(r[0], from: 1) == .unexpected)  // twice
        #expect(p.received(BlockRef(piece: 0, offset: 5, length: 10), from: 1) == .unexpected)
        #expect(p.received(r[1], from: 1) == .accepted(complete: true, cancel: []))
        p.pieceFailed(0)
        #expect(p.pick(for: 3, has: Bitfield.full(1), count: 5, using: &rng).count == 2)
        for b in r { _ = p.received(b, from: 3) }
        p.pieceVerified(0)
        #expect(p.isComplete && p.have[0])
        #expect(p.pick(for: 3, has: Bitfield.full(1), count: 5, using: &rng).isEmpty)
    }

    @Test("a departed peer's requests and a rejected request become open again")
    func release() {
        var p = PiecePicker(map: PieceMap(totalLength: Int64(1) * Int64(3 * self.block), pieceLength: 3 * self.block))
        var rng = SeededGenerator(seed: 1)
        let r = p.pick(for: 1, has: Bitfield.full(1), count: 3, using: &rng)
        p.peerJoined(has: Bitfield.full(1))
        p.requestFailed(r[2], peer: 1)
        p.peerLeft(1, has: Bitfield.full(1))
        #expect(p.availability(of: 0) == 0)
        let again = p.pick(for: 2, has: Bitfield.full(1), count: 5, using: &rng)
        #expect(Set(again) == Set(r))
    }

    @Test("end-game asks an idle peer for one block already asked of another, the last first, and cancels the loser")
    func endgame() {
        var p = PiecePicker(map: PieceMap(totalLength: Int64(1) * Int64(2 * self.block), pieceLength: 2 * self.block))
        var rng = SeededGenerator(seed: 1)
        let first = p.pick(for: 1, has: Bitfield.full(1), count: 2, using: &rng)
        #expect(first.count == 2)
        // An idle peer gets one double: the piece's last block, which its holder would send last.
        let dup = p.pick(for: 2, has: Bitfield.full(1), count: 2, using: &rng)
        #expect(dup == [first[1]])
        #expect(p.pick(for: 2, has: Bitfield.full(1), count: 2, outstanding: 1, using: &rng).isEmpty,
            "no second double while the first is outstanding")
        #expect(p.pick(for: 3, has: Bitfield.full(1), count: 2, using: &rng) == [first[0]])
        #expect(p.pick(for: 4, has: Bitfield.full(1), count: 2, using: &rng).isEmpty, "at most two peers per block")
        #expect(p.received(first[1], from: 2) == .accepted(complete: false, cancel: [1]))
        #expect(p.received(first[1], from: 1) == .unexpected)
    }

    @Test("a simulated swarm of random peers completes every piece exactly once")
    func simulatedDownload() {
        var rng = SeededGenerator(seed: 9)
        let n = 50
        var p = PiecePicker(map: PieceMap(totalLength: Int64((n) - 1) * Int64(4 * self.block) + Int64(1000), pieceLength: 4 * self.block))
        var peers: [Int: Bitfield] = [:]
        for k in 0..<5 {
            var b = Bitfield(count: n)
            for i in 0..<n where rng.next() % 3 != 0 || k == 0 { b[i] = true }
            peers[k] = b
            p.peerJoined(has: b)
        }
        var outstanding: [(Int, BlockRef)] = []
        var verified = 0
        for _ in 0..<10_000 where !p.isComplete {
            for (k, has) in peers { outstanding += p.pick(for: k, has: has, count: 4, using: &rng).map { (k, $0) } }
            guard !outstanding.isEmpty else { break }
            let (k, b) = outstanding.remove(at: Int(rng.next() % UInt64(outstanding.count)))
            if rng.next() % 10 == 0 {
                p.requestFailed(b, peer: k)
                continue
            }
            if case .accepted(true, _) = p.received(b, from: k) {
                p.pieceVerified(Int(b.piece))
                verified += 1
            }
        }
        #expect(p.isComplete && verified == n)
    }
}
