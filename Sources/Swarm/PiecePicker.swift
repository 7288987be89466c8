// Swarm: one torrent as pure logic: piece picking, choking, request scheduling, and the torrent machine.
// No I/O, no clock; randomness is injected.
import Metainfo
import PeerBase

/// Chooses which blocks to ask each peer for: rarest first with a random tie-break, whole-piece affinity
/// (a peer finishes the pieces it started), priorities with "do not download" (0), sequential mode, and
/// end-game (the last blocks are asked of several peers at once, and the others cancelled on arrival).
///
/// Pure: the engine tells it what peers have, what was requested, received, verified or lost, and asks
/// `pick` for requests to send. Peers are identified by an engine-chosen integer.
public struct PiecePicker: Sendable {
    public typealias PeerKey = Int

    /// What became of a received block.
    public enum Receipt: Equatable, Sendable {
        /// The block was wanted. `complete` means every block of its piece is in (verify it now);
        /// `cancel` lists other peers that were asked for the same block (end-game) and should get a cancel.
        case accepted(complete: Bool, cancel: [PeerKey])
        /// Not asked of this peer, already received, or for a piece we have: ignore the data.
        case unexpected
    }

    private enum BlockState: Equatable, Sendable {
        case open
        case requested([PeerKey])
        case received
    }

    private struct Partial: Sendable {
        var blocks: [BlockState]
        var owner: PeerKey?
        var received = 0
    }

    /// The torrent's piece geometry: the one source of piece and block sizes.
    public let map: PieceMap
    public let pieceCount: Int
    public private(set) var have: Bitfield
    private var availability: [UInt16]
    private var priorities: [UInt8]
    private var partials: [Int: Partial] = [:]
    /// Pick in index order (for streaming and previews) instead of rarest first.
    public var sequential = false
    /// At most this many peers are asked for the same block in end-game.
    public var endgameDuplicates = 2

    /// - Parameters:
    ///   - map: the torrent's pieces and their sizes.
    ///   - have: pieces already verified.
    public init(map: PieceMap, have: Bitfield? = nil) {
        precondition(map.pieceCount > 0)
        self.map = map
        let pieceCount = map.pieceCount
        self.pieceCount = pieceCount
        self.have = have ?? Bitfield(count: pieceCount)
        self.availability = Array(repeating: 0, count: pieceCount)
        self.priorities = Array(repeating: 1, count: pieceCount)
    }

    public func pieceSize(_ piece: Int) -> Int { self.map.pieceSize(self.map.index(piece)!) }
    public func blockCount(_ piece: Int) -> Int { self.map.blockCount(self.map.index(piece)!) }

    /// Pieces still wanted (priority above 0, not verified).
    public var remaining: Int {
        (0..<self.pieceCount).reduce(0) { $0 + (!self.have[$1] && self.priorities[$1] > 0 ? 1 : 0) }
    }
    /// Every wanted piece is verified.
    public var isComplete: Bool { self.remaining == 0 }
    public func availability(of piece: Int) -> Int { Int(self.availability[piece]) }

    // MARK: what peers have

    public mutating func peerJoined(has: Bitfield) {
        precondition(has.count == self.pieceCount)
        for i in has.setIndices { self.availability[i] &+= self.availability[i] < .max ? 1 : 0 }
    }

    public mutating func peerHave(_ piece: Int) {
        if self.availability[piece] < .max { self.availability[piece] += 1 }
    }

    /// Forgets a peer: its availability and its outstanding requests, which become open again.
    public mutating func peerLeft(_ peer: PeerKey, has: Bitfield) {
        for i in has.setIndices where self.availability[i] > 0 { self.availability[i] -= 1 }
        for piece in Array(self.partials.keys) {
            var p = self.partials[piece]!
            for b in p.blocks.indices {
                if case .requested(var who) = p.blocks[b], who.contains(peer) {
                    who.removeAll { $0 == peer }
                    p.blocks[b] = who.isEmpty ? .open : .requested(who)
                }
            }
            if p.owner == peer { p.owner = nil }
            self.partials[piece] = p
        }
    }

    // MARK: priorities

    /// 0 skips the piece; higher values are picked first (deadline streaming uses the highest).
    public mutating func setPriority(_ priority: UInt8, pieces: Range<Int>) {
        for i in pieces {
            self.elevated += (priority > 1 ? 1 : 0) - (self.priorities[i] > 1 ? 1 : 0)
            self.priorities[i] = priority
        }
    }

    /// Pieces whose priority is above normal (1): while there are none, picking skips the search for them.
    private var elevated = 0

    public func priority(of piece: Int) -> UInt8 { self.priorities[piece] }

    // MARK: picking

    /// Up to `count` block requests for `peer`, which has `has` and has `outstanding` requests of ours already.
    public mutating func pick(
        for peer: PeerKey, has: Bitfield, count: Int, outstanding: Int = 0,
        using rng: inout some RandomNumberGenerator
    ) -> [BlockRef] {
        var out: [BlockRef] = []
        // 1. Finish what this peer started, then pieces in progress that nobody owns — unless a new piece of
        //    higher priority waits (a stream's deadline): those pieces come first, the others after.
        let started = self.partials.keys.sorted().filter { has[$0] && self.priorities[$0] > 0 }
        let floor = self.elevated == 0 ? 0 : self.choose(has: has, using: &rng).map { self.priorities[$0] } ?? 0
        func finishStarted(atLeast minimum: UInt8) {
            for piece in started where self.priorities[piece] >= minimum && self.partials[piece]!.owner == peer {
                self.take(piece, for: peer, into: &out, limit: count)
            }
            for piece in started where out.count < count && self.priorities[piece] >= minimum
                && self.partials[piece]!.owner == nil
            {
                self.partials[piece]!.owner = peer
                self.take(piece, for: peer, into: &out, limit: count)
            }
        }
        // 2. Start new pieces (highest priority first).
        func startNew(atLeast minimum: UInt8) {
            while out.count < count, let piece = self.choose(has: has, using: &rng), self.priorities[piece] >= minimum {
                self.partials[piece] = Partial(blocks: Array(repeating: .open, count: self.blockCount(piece)), owner: peer)
                self.take(piece, for: peer, into: &out, limit: count)
            }
        }
        finishStarted(atLeast: floor)
        startNew(atLeast: floor)
        if floor > 1 {
            finishStarted(atLeast: 1)
            startNew(atLeast: 1)
        }
        // 3. Nothing left to start from this peer: blocks left open in pieces other peers own; and in end-game
        //    (no wanted piece is left unstarted, whoever has it) one block already asked of another, and only
        //    while the peer has nothing else outstanding. End-game is the torrent's state, not one peer's: a
        //    peer whose few pieces are all in progress elsewhere would otherwise get doubles of them all the
        //    way through (in a simulated swarm of 100, 19% of all bytes sent were such doubles). One double at
        //    a time to an idle peer, as libtorrent does: filling a whole pipeline with doubles threw away 5%
        //    of all bytes sent (blocks already in the holder's send buffer when the cancel came).
        if out.count < count && self.choose(has: has, using: &rng) == nil {
            for piece in self.partials.keys.sorted() where has[piece] && self.priorities[piece] > 0 && out.count < count {
                // Left open in a piece another peer owns.
                var p = self.partials.removeValue(forKey: piece)!
                for b in p.blocks.indices where out.count < count && p.blocks[b] == .open {
                    p.blocks[b] = .requested([peer])
                    out.append(self.block(piece, b))
                }
                self.partials[piece] = p
            }
            let endgame = !(0..<self.pieceCount).contains {
                !self.have[$0] && self.priorities[$0] > 0 && self.partials[$0] == nil
            }
            if endgame && out.isEmpty && outstanding == 0, let (piece, b) = self.duplicateCandidate(for: peer, has: has) {
                guard case .requested(var who) = self.partials[piece]!.blocks[b] else { return out }
                who.append(peer)
                self.partials[piece]!.blocks[b] = .requested(who)
                out.append(self.block(piece, b))
            }
        }
        return out
    }

    /// End-game's double: a block already asked of another peer, for a peer with nothing else to do. The last
    /// block still missing of the piece nearest completion: its holder serves a piece's blocks in order, so
    /// that block would come last, and the double has the best chance to win before the holder sends it (the
    /// loser is cancelled while still queued there, and no bytes are wasted).
    private func duplicateCandidate(for peer: PeerKey, has: Bitfield) -> (piece: Int, block: Int)? {
        var best: (piece: Int, block: Int, missing: Int)?
        for (piece, p) in self.partials where has[piece] && self.priorities[piece] > 0 {
            let missing = p.blocks.count - p.received
            guard best.map({ missing < $0.missing || (missing == $0.missing && piece < $0.piece) }) ?? true else { continue }
            for b in p.blocks.indices.reversed() {
                if case .requested(let who) = p.blocks[b], !who.contains(peer), who.count < self.endgameDuplicates {
                    best = (piece, b, missing)
                    break
                }
            }
        }
        return best.map { ($0.piece, $0.block) }
    }

    private mutating func take(_ piece: Int, for peer: PeerKey, into out: inout [BlockRef], limit: Int) {
        // Taken out while it changes, so that its blocks are not copied (the dictionary would share them).
        var p = self.partials.removeValue(forKey: piece)!
        defer { self.partials[piece] = p }
        for b in p.blocks.indices where out.count < limit && p.blocks[b] == .open {
            p.blocks[b] = .requested([peer])
            out.append(self.block(piece, b))
        }
    }

    private func block(_ piece: Int, _ b: Int) -> BlockRef { self.map.block(self.map.index(piece)!, b) }

    /// The next piece to start: highest priority, then rarest, ties broken at random (or lowest index
    /// when sequential).
    private func choose(has: Bitfield, using rng: inout some RandomNumberGenerator) -> Int? {
        var best: Int?
        var bestPriority: UInt8 = 0
        var bestAvailability = UInt16.max
        var ties = 0
        for i in 0..<self.pieceCount {
            let pr = self.priorities[i]
            guard pr > 0, has[i], !self.have[i], self.partials[i] == nil else { continue }
            if self.sequential {
                if best == nil || pr > bestPriority {
                    best = i
                    bestPriority = pr
                }
                continue
            }
            let av = self.availability[i]
            if best == nil || pr > bestPriority || (pr == bestPriority && av < bestAvailability) {
                best = i
                bestPriority = pr
                bestAvailability = av
                ties = 1
            } else if pr == bestPriority && av == bestAvailability {
                ties += 1
                if rng.next(upperBound: UInt64(ties)) == 0 { best = i }  // reservoir sampling: uniform among ties
            }
        }
        return best
    }

    // MARK: whole pieces (web seeds, BEP 19)

    /// Claims a whole piece for a source that fetches pieces whole (a web seed): the piece `pick` would start
    /// next, among all wanted pieces no peer has started. Every block is marked requested by `source`, so
    /// peers leave it alone outside end-game. Give it back with `peerLeft(source, has:)` if it never arrives.
    /// - Returns: The piece, or nil when every wanted piece is verified or in progress.
    public mutating func claimWholePiece(for source: PeerKey, using rng: inout some RandomNumberGenerator) -> Int? {
        guard let piece = self.choose(has: Bitfield.full(self.pieceCount), using: &rng) else { return nil }
        self.partials[piece] = Partial(
            blocks: Array(repeating: .requested([source]), count: self.blockCount(piece)), owner: source)
        return piece
    }

    /// Every block of `piece` arrived at once from `source`: verify the piece now.
    /// - Returns: false when there is nothing to verify: the piece is verified already, or all its blocks
    ///   were already received (from peers in end-game) and it is being verified.
    public mutating func receivedWholePiece(_ piece: Int, from source: PeerKey) -> Bool {
        guard piece >= 0, piece < self.pieceCount, !self.have[piece] else { return false }
        var p = self.partials[piece] ?? Partial(blocks: Array(repeating: .open, count: self.blockCount(piece)))
        guard p.received < p.blocks.count else { return false }
        p.blocks = Array(repeating: .received, count: p.blocks.count)
        p.received = p.blocks.count
        p.owner = source
        self.partials[piece] = p
        return true
    }

    // MARK: outcomes

    /// A block arrived from `peer`.
    public mutating func received(_ block: BlockRef, from peer: PeerKey) -> Receipt {
        let piece = Int(block.piece)
        guard piece < self.pieceCount, !self.have[piece], block.offset % UInt32(PieceMap.blockSize) == 0,
            var p = self.partials.removeValue(forKey: piece)  // put back below; taken out so as not to copy it
        else { return .unexpected }
        defer { self.partials[piece] = p }
        let b = Int(block.offset) / PieceMap.blockSize
        guard b < p.blocks.count, block == self.block(piece, b), case .requested(let who) = p.blocks[b],
            who.contains(peer)
        else { return .unexpected }
        p.blocks[b] = .received
        p.received += 1
        return .accepted(complete: p.received == p.blocks.count, cancel: who.filter { $0 != peer })
    }

    /// A request will not be answered (rejected, choked, timed out): the block is open again.
    public mutating func requestFailed(_ block: BlockRef, peer: PeerKey) {
        let piece = Int(block.piece)
        guard piece < self.pieceCount, var p = self.partials.removeValue(forKey: piece) else { return }
        defer { self.partials[piece] = p }
        let b = Int(block.offset) / PieceMap.blockSize
        guard b < p.blocks.count, case .requested(var who) = p.blocks[b] else { return }
        who.removeAll { $0 == peer }
        p.blocks[b] = who.isEmpty ? .open : .requested(who)
    }

    /// The piece passed its hash check.
    public mutating func pieceVerified(_ piece: Int) {
        self.partials[piece] = nil
        self.have[piece] = true
    }

    /// The piece failed its hash check: every block is to be fetched again, by anyone.
    public mutating func pieceFailed(_ piece: Int) {
        self.partials[piece] = nil
    }
}
