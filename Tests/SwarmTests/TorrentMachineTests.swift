import Metainfo
import NIOCore
import PeerBase
import PeerSimulation
import PeerWire
import Testing

@testable import Swarm

/// The torrent machine driven with no sockets and no real time: scripted remote peers speak the real wire
/// protocol to it, and virtual time moves in steps.
@Suite struct TorrentMachineTests {
    static let block = PieceMap.blockSize

    /// Pieces `range` set, of `count`.
    static func bits(_ count: Int, _ range: Range<Int>) -> Bitfield {
        var b = Bitfield(count: count)
        for i in range { b[i] = true }
        return b
    }

    @Test func aLeecherDownloadsEveryPieceFromASeedAndSaysHave() throws {
        let h = try MachineHarness(size: 40 * Int64(Self.block) + 100, pieceLength: 4 * Self.block)
        let seed = Remote(h, host: "127.0.0.2", have: h.all())
        h.connect(1, seed)
        h.advance(.seconds(2))
        #expect(h.machine.isComplete)
        #expect(h.machine.have.allSet)
        #expect(Set(h.verified) == Set(0..<h.pieceCount))
        #expect(h.actions.contains { if case .downloadComplete(quiet: false) = $0 { true } else { false } })
        // A seed is told of nothing it lacks (every piece was asked of it exactly once: no end-game doubles).
        #expect(seed.requests().count == 41)
        #expect(h.machine.progress.downloaded == 40 * Int64(Self.block) + 100)
    }

    /// opentracker names every announcer to itself: the dial that reaches this node is remembered so it is not
    /// made again, and it is not reported as a peer dropped for a bad handshake (issue 13's `peer share` showed
    /// two such lines per announce).
    @Test func aDialThatReachesThisNodeIsRememberedAndNotReportedAsADrop() throws {
        // Both ends of the connection are this machine: each reads a handshake with its own peer id.
        for (role, port) in [(PeerWireSession.Role.outgoing, UInt16(6881)), (.incoming, 50_000)] {
            let h = try MachineHarness(size: 4 * Int64(Self.block), pieceLength: Self.block)
            #expect(h.machine.addPeer(1, role: role,
                endpoint: TorrentMachine.Endpoint(host: "127.0.0.1", ip: [127, 0, 0, 1], port: port), at: h.now))
            var bytes = ByteBuffer()
            Handshake(reserved: [.extensionProtocol, .fast], infoHash: h.machine.handshakeHashes[0],
                peerID: h.machine.localID).encode(into: &bytes)
            h.machine.receive(1, bytes, at: h.now)
            h.pump()
            let own = h.actions.compactMap { if case .ownAddress(let a) = $0 { a } else { nil } }
            // The address we dialled is ours; an incoming connection's port is the dialler's ephemeral one.
            #expect(own == (role == .outgoing ? ["127.0.0.1:6881"] : []))
            #expect(h.actions.contains { if case .close(peer: 1) = $0 { true } else { false } })
            #expect(h.logs.isEmpty)
        }
    }

    @Test func firstAndLastPiecesComeFirstWhenAsked() throws {
        for on in [true, false] {
            let h = try MachineHarness(size: 40 * Int64(Self.block), pieceLength: Self.block) { $0.firstLastPieces = on }
            let seed = Remote(h, host: "127.0.0.2", have: h.all())
            seed.answersPerStep = 0
            h.connect(1, seed)
            h.advance(.seconds(1))
            let first = Set(seed.requests().prefix(2).map { Int($0.piece) })
            // Without the option, rarest first among equals is random: 0 and 39 first would be chance (1 in 780).
            #expect((first == [0, 39]) == on, "\(on): \(first)")
        }
    }

    @Test func chokeRoundsGiveRegularSlotsToTheFastestAndRotateTheOptimisticOne() throws {
        // We have the first half, ten peers the second: each side wants the other's.
        let h = try MachineHarness(size: 64 * Int64(Self.block), pieceLength: Self.block,
            have: Self.bits(64, 0..<32)) { $0.uploadSlots = 2 }
        var remotes: [Remote] = []
        for k in 0..<10 {
            let r = Remote(h, host: "127.0.1.\(k + 1)", have: Self.bits(64, 32..<64))
            r.answersPerStep = k  // peer k sends k blocks per 100 ms: 9 is the fastest
            remotes.append(r)
            h.connect(k, r)
        }
        // Interested peers take free slots at once: slots + 1 of them.
        for r in remotes { r.session.handle(.send(.interested), at: h.now) }
        h.pump()
        #expect(remotes.count(where: { !$0.choked }) == 3)
        // The first round (10 s): tit-for-tat keeps the two that sent most; one more is the optimistic slot.
        h.advance(.seconds(10))
        let unchoked = Set(remotes.indices.filter { !remotes[$0].choked })
        #expect(unchoked.count == 3)
        #expect(unchoked.isSuperset(of: [8, 9]) || h.machine.isComplete)
        let optimistic = h.machine.connectedPeers.filter { !$0.amChoking }.map(\.key).first { $0 < 8 }
        // Over six more rounds the optimistic slot moves (every third round) to another choked peer.
        var seen: Set<Int> = optimistic.map { [$0] } ?? []
        for _ in 0..<6 {
            h.advance(.seconds(10))
            let now = h.machine.connectedPeers.filter { !$0.amChoking }.map(\.key)
            #expect(now.count <= 3)
            seen.formUnion(now.filter { $0 < 8 })
        }
        #expect(seen.count >= 2)
    }

    @Test func aPeerThatStopsSendingIsSnubbedAndItsBlocksAskedElsewhere() throws {
        // 800 blocks: more than the other peer sends (10 a second) before the snub timeout.
        let h = try MachineHarness(size: 800 * Int64(Self.block), pieceLength: 4 * Self.block)
        let silent = Remote(h, host: "127.0.0.2", have: h.all())
        silent.answersPerStep = 0
        h.connect(1, silent)
        h.advance(.seconds(1))
        let asked = Set(silent.requests())
        #expect(!asked.isEmpty)
        let good = Remote(h, host: "127.0.0.3", have: h.all())
        good.answersPerStep = 1
        h.connect(2, good)
        h.advance(.seconds(31))
        #expect(h.logs.contains { $0.contains("127.0.0.2 snubbed us") })
        #expect(h.machine.connectedPeers.first { $0.key == 1 }?.snubbed == true)
        let snubbedAt = silent.received.count
        h.advance(.seconds(60), step: .milliseconds(50))
        #expect(h.machine.isComplete)
        // What the silent peer was asked for came from the other one.
        #expect(asked.isSubset(of: Set(good.requests())))
        // Once snubbed it is asked one block at a time: a new one only when the last was cancelled (it came
        // from the other peer).
        var outstanding = 0
        for m in silent.received[snubbedAt...] {
            if case .request = m { outstanding += 1 }
            if case .cancel = m { outstanding -= 1 }
            #expect(outstanding <= 1)
        }
    }

    @Test func aPeerSendingCorruptBlocksIsBannedAndItsPiecesFetchedElsewhere() throws {
        let h = try MachineHarness(size: 16 * Int64(Self.block), pieceLength: 2 * Self.block)
        let bad = Remote(h, host: "127.0.0.66", have: h.all())
        bad.corrupt = true
        h.connect(1, bad)
        h.advance(.seconds(1))
        #expect(h.logs.contains { $0.contains("failed its hash check (from 127.0.0.66)") })
        #expect(h.logs.contains("banned 127.0.0.66 after sending corrupt data"))
        #expect(bad.closed)
        #expect(h.machine.banned == ["127.0.0.66"])
        // The banned host is refused when it comes back, on any port.
        #expect(!h.connect(2, Remote(h, host: "127.0.0.66", port: 7000, have: h.all())))
        #expect(!h.machine.isComplete)
        let good = Remote(h, host: "127.0.0.3", have: h.all())
        h.connect(3, good)
        h.advance(.seconds(2))
        #expect(h.machine.isComplete)
        #expect(Set(h.verified) == Set(0..<h.pieceCount))
    }

    @Test func endGameAsksTwoPeersForTheLastBlocksAndCancelsTheLoser() throws {
        let h = try MachineHarness(size: 8 * Int64(Self.block), pieceLength: 2 * Self.block)
        let slow = Remote(h, host: "127.0.0.2", have: h.all())
        slow.answersPerStep = 0
        h.connect(1, slow)
        h.pump()
        // Every block is asked of the slow peer; a second peer then gets the same blocks (end-game).
        #expect(slow.requests().count == 8)
        let fast = Remote(h, host: "127.0.0.3", have: h.all())
        h.connect(2, fast)
        h.advance(.seconds(1))
        #expect(h.machine.isComplete)
        #expect(!fast.requests().isEmpty)
        // Blocks that came from the fast peer are cancelled at the slow one.
        #expect(!slow.cancels().isEmpty)
        #expect(Set(slow.cancels()).isSubset(of: Set(fast.requests())))
    }

    @Test func theSnubClockStartsWhenWeAskNotWhenThePeerConnected() throws {
        let h = try MachineHarness(size: 64 * Int64(Self.block), pieceLength: 4 * Self.block)
        let late = Remote(h, host: "127.0.0.2", have: h.all())
        late.unchokes = false
        late.answersPerStep = 0
        h.connect(1, late)
        h.advance(.seconds(40))
        #expect(late.requests().isEmpty)
        // It unchokes us 40 s after connecting: it has had no chance to send yet, so it is not snubbed.
        late.session.handle(.send(.unchoke), at: h.now)
        h.advance(.seconds(5))
        #expect(!late.requests().isEmpty)
        #expect(!h.logs.contains { $0.contains("snubbed us") })
        #expect(h.machine.connectedPeers.first?.snubbed == false)
        // Silent for the whole timeout after we asked: now it is.
        h.advance(.seconds(30))
        #expect(h.machine.connectedPeers.first?.snubbed == true)
    }

    /// We seed to two leechers, A (key 1) and B (key 2), each asking for blocks of its own choosing.
    func seeding(initialSeeding: Bool) throws -> (MachineHarness, Remote, Remote) {
        let h = try MachineHarness(size: 8 * Int64(Self.block), pieceLength: 2 * Self.block,
            have: Self.bits(4, 0..<4)) { $0.initialSeeding = initialSeeding }
        let a = Remote(h, host: "127.0.0.5", have: Self.bits(4, 0..<0))
        let b = Remote(h, host: "127.0.0.6", have: Self.bits(4, 0..<0))
        h.connect(1, a)
        h.connect(2, b)
        for r in [a, b] { r.session.handle(.send(.interested), at: h.now) }
        h.pump()
        #expect(!a.choked && !b.choked)
        return (h, a, b)
    }

    func ask(_ r: Remote, _ piece: Int, _ h: MachineHarness) -> PeerMessage? {
        let before = r.received.count
        r.session.handle(.send(.request(BlockRef(piece: UInt32(piece), offset: 0, length: UInt32(Self.block)))), at: h.now)
        h.pump()
        return r.received[before...].first { if case .piece = $0 { true } else if case .reject = $0 { true } else { false } }
    }

    @Test func initialSeedingGivesEachPieceToTheFirstAskerUntilEveryPieceIsOut() throws {
        let (h, a, b) = try self.seeding(initialSeeding: true)
        func served(_ m: PeerMessage?) -> Bool { if case .piece = m { true } else { false } }
        #expect(served(self.ask(a, 0, h)))
        #expect(served(self.ask(a, 0, h)), "the first asker may ask again")
        // B lacks pieces nobody asked for: piece 0 is refused and it gets one of those.
        let refused = self.ask(b, 0, h)
        #expect({ if case .reject = refused { true } else { false } }())
        #expect(served(self.ask(b, 1, h)))
        #expect(served(self.ask(a, 2, h)))
        #expect(!served(self.ask(b, 2, h)))
        // Every piece has been asked for: doubles are served.
        #expect(served(self.ask(b, 3, h)))
        #expect(served(self.ask(b, 0, h)))
        #expect(served(self.ask(a, 1, h)))
    }

    @Test func withoutInitialSeedingADoubleIsServed() throws {
        let (h, a, b) = try self.seeding(initialSeeding: false)
        #expect({ if case .piece = self.ask(a, 0, h) { true } else { false } }())
        #expect({ if case .piece = self.ask(b, 0, h) { true } else { false } }())
    }

    @Test func initialSeedingReleasesThePiecesOfAPeerThatLeft() throws {
        let (h, a, b) = try self.seeding(initialSeeding: true)
        #expect({ if case .piece = self.ask(a, 0, h) { true } else { false } }())
        // A leaves having one block of piece 0's two: piece 0 is B's to have.
        a.closed = true
        h.machine.peerClosed(1, at: h.now)
        #expect({ if case .piece = self.ask(b, 0, h) { true } else { false } }())
    }

    @Test func aLeecherRefusedAPieceAsksForAnotherUntilTheNextRound() throws {
        // We leech from a seed that rejects every request for piece 0.
        let h = try MachineHarness(size: 8 * Int64(Self.block), pieceLength: 2 * Self.block)
        let seed = Remote(h, host: "127.0.0.2", have: h.all())
        seed.answersPerStep = 0
        h.connect(1, seed)
        h.pump()
        var rejected = 0
        for _ in 0..<20 {
            for b in seed.pending where b.piece == 0 {
                seed.session.handle(.send(.reject(b)), at: h.now)
                rejected += 1
            }
            seed.pending.removeAll { $0.piece == 0 }
            h.advance(.milliseconds(100))
        }
        #expect(rejected > 0)
        // Piece 0 was asked for once (one request per block), not again after the rejects.
        #expect(seed.requests().filter { $0.piece == 0 }.count == 2)
        #expect(Set(seed.requests().map(\.piece)) == [0, 1, 2, 3])
    }

    @Test func aSlotLeftByAPeerThatWantsNothingGoesToOneThatWaits() throws {
        // One regular slot and the optimistic one: two of three interested leechers are unchoked.
        let h = try MachineHarness(size: 8 * Int64(Self.block), pieceLength: 2 * Self.block,
            have: Self.bits(4, 0..<4)) { $0.uploadSlots = 1 }
        let rs = (0..<3).map { Remote(h, host: "127.0.0.\(10 + $0)", have: Self.bits(4, 0..<0)) }
        for (k, r) in rs.enumerated() {
            h.connect(k, r)
            r.session.handle(.send(.interested), at: h.now)
        }
        h.pump()
        #expect(rs.count(where: { !$0.choked }) == 2)
        let waiting = try #require(rs.first { $0.choked })
        // An unchoked one loses interest: the waiting one is unchoked at once, not at the next round.
        let done = try #require(rs.first { !$0.choked })
        done.session.handle(.send(.notInterested), at: h.now)
        h.pump()
        #expect(!waiting.choked)
    }

    @Test func peersWhoseConnectionsTakeNothingLoseTheirSlotsToOneThatWaits() throws {
        // We seed with one regular slot and the optimistic one: two hogs take them, ask for everything and never
        // read (their connections stay unwritable); an honest leecher comes a second later and waits.
        let h = try MachineHarness(size: 32 * Int64(Self.block), pieceLength: 2 * Self.block,
            have: Self.bits(16, 0..<16)) { $0.uploadSlots = 1 }
        let hogs = (0..<2).map { Remote(h, host: "127.0.0.\(20 + $0)", have: Self.bits(16, 0..<0)) }
        for (k, r) in hogs.enumerated() {
            h.connect(k, r)
            r.session.handle(.send(.interested), at: h.now)
            h.pump()
            for i in 0..<16 { r.session.handle(.send(.request(BlockRef(piece: UInt32(i), offset: 0, length: UInt32(Self.block)))), at: h.now) }
            h.pump()
            h.machine.setWritable(k, false, at: h.now)
        }
        #expect(hogs.allSatisfy { !$0.choked })
        h.advance(.seconds(1))
        let honest = Remote(h, host: "127.0.0.30", have: Self.bits(16, 0..<0))
        h.connect(5, honest)
        honest.session.handle(.send(.interested), at: h.now)
        h.pump()
        #expect(honest.choked)
        // A slow reader whose connection drains a little is not stalled.
        h.advance(.seconds(3))
        h.machine.writeProgressed(1, at: h.now)
        // Within the stall timeout and a tick, the other hog is choked and the honest peer has its slot.
        h.advance(.seconds(3))
        #expect(!honest.choked)
        #expect(!hogs[1].choked)
        #expect(h.logs.contains { $0.contains("127.0.0.20: its connection sent nothing") })
        // Then the slow one stops draining too; the choke round (every 10 s) gives stalled peers no slot.
        h.advance(.seconds(11))
        #expect(!honest.choked)
        #expect(h.logs.contains { $0.contains("its connection sent nothing") })
        h.advance(.seconds(20))
        #expect(!honest.choked)
        #expect(hogs.allSatisfy { $0.choked })
    }

    @Test func aCancelledRequestHeldBackForASlowConnectionIsNeverSent() throws {
        // We seed; the remote leecher asks for four blocks while our connection to it is full.
        let seeder = try MachineHarness(size: 8 * Int64(Self.block), pieceLength: 2 * Self.block,
            have: Self.bits(4, 0..<4))
        let leecher = Remote(seeder, host: "127.0.0.5", have: Self.bits(4, 0..<0))
        seeder.connect(1, leecher)
        leecher.session.handle(.send(.interested), at: seeder.now)
        seeder.pump()
        #expect(seeder.machine.connectedPeers.first?.amChoking == false)
        seeder.machine.setWritable(1, false, at: seeder.now)
        let asked = (0..<4).map { BlockRef(piece: UInt32($0), offset: 0, length: UInt32(Self.block)) }
        for b in asked { leecher.session.handle(.send(.request(b)), at: seeder.now) }
        seeder.pump()
        #expect(!leecher.received.contains { if case .piece = $0 { true } else { false } })
        leecher.session.handle(.send(.cancel(asked[1])), at: seeder.now)
        leecher.session.handle(.send(.cancel(asked[3])), at: seeder.now)
        seeder.pump()
        seeder.machine.setWritable(1, true, at: seeder.now)
        seeder.pump()
        let sent = leecher.received.compactMap { if case .piece(let p, _, _) = $0 { Int(p) } else { nil } }
        #expect(sent == [0, 2])
    }

    @Test func aStreamingDeadlineIsFetchedBeforeAnythingElse() throws {
        let h = try MachineHarness(size: 64 * Int64(Self.block), pieceLength: 4 * Self.block) { $0.sequential = true }
        let seed = Remote(h, host: "127.0.0.2", have: h.all())
        seed.answersPerStep = 2
        h.connect(1, seed)
        h.advance(.seconds(1))
        #expect(!h.verified.contains(12))
        let requestsBefore = seed.requests().count
        let verifiedBefore = h.verified.count
        h.machine.prioritize(12..<13, at: h.now)
        h.pump()
        // What was queued for other pieces is cancelled, and the next requests are for piece 12.
        #expect(!seed.cancels().isEmpty)
        let next = seed.requests().dropFirst(requestsBefore).prefix(4)
        #expect(next.allSatisfy { $0.piece == 12 })
        h.advance(.seconds(3))
        // Sequential mode would have fetched piece 12 after the pieces before it; it is the next one in.
        #expect(h.verified.count > verifiedBefore)
        #expect(h.verified.dropFirst(verifiedBefore).first == 12)
    }

    @Test func pexTellsAPeerWhoElseIsThereWithFlagsAndAtMostFiftyAtATime() throws {
        let h = try MachineHarness(size: 8 * Int64(Self.block), pieceLength: Self.block, have: nil) { $0.maxPeers = 100 }
        let listener = Remote(h, host: "127.0.9.1", have: Self.bits(8, 0..<0), pex: true)
        h.connect(0, listener)
        // 60 more: outgoing ones are reachable; seeds flagged as seeds.
        for k in 1...60 {
            let r = Remote(h, host: "127.0.5.\(k)", port: UInt16(7000 + k), have: k <= 5 ? h.all() : Self.bits(8, 0..<0))
            h.connect(k, r, role: k % 2 == 0 ? .outgoing : .incoming)
        }
        h.advance(.seconds(1))
        #expect(Self.pexMessages(listener).isEmpty)  // not before 2 s
        h.advance(.seconds(2))
        let first = Self.pexMessages(listener)
        #expect(first.count == 1)
        let added = try #require(first.first?.added)
        #expect(added.count == PEXMessage.maxPeers)
        #expect(!added.contains { $0.ip == [127, 0, 9, 1] })  // not itself
        for p in added {
            let k = Int(p.ip[3])
            #expect(p.port == UInt16(7000 + k))
            #expect(p.flags.contains(.reachable) == (k % 2 == 0))
            #expect(p.flags.contains(.seed) == (k <= 5))
        }
        // Nothing more within the minute; then the rest, and the peer that left as dropped.
        h.machine.peerClosed(1, at: h.now)
        h.advance(.seconds(30))
        #expect(Self.pexMessages(listener).count == 1)
        h.advance(.seconds(31))
        let second = try #require(Self.pexMessages(listener).dropFirst().first)
        #expect(second.added.count == 60 - 1 - PEXMessage.maxPeers + (added.contains { $0.ip[3] == 1 } ? 1 : 0))
        #expect(second.dropped.allSatisfy { $0.ip[3] == 1 })
        // Peers learnt from a PEX message are dialled, those we know already are not.
        let known = PEXPeer(ip: [127, 0, 5, 2], port: 7002)
        let new = PEXPeer(ip: [127, 0, 7, 7], port: 7777)
        listener.session.handle(.send(.extended(id: ExtensionRegistry.utPex,
            payload: PEXMessage(added: [known, new], dropped: []).encoded())), at: h.now)
        h.pump()
        let dials = h.actions.compactMap { if case .dial(let d) = $0 { d } else { nil } }
        #expect(dials == [["127.0.7.7:7777"]])
    }

    static func pexMessages(_ r: Remote) -> [PEXMessage] {
        r.received.compactMap {
            if case .extended(9, let payload) = $0 { try? PEXMessage(decoding: payload) } else { nil }
        }
    }

    @Test func privateTorrentsSendNoPEX() throws {
        // The harness's torrent is public; a private one offers no ut_pex in its handshake at all.
        #expect(ExtensionRegistry(pex: false).ids[PEXMessage.name] == nil)
        #expect(ExtensionRegistry().ids == ["ut_metadata": 3, "ut_pex": 1])
    }

    @Test func metadataIsServedInPiecesOf16KiBAndPastTheEndRejected() throws {
        // 4 096 pieces: an info dictionary of over 80 KiB.
        let h = try MachineHarness(size: 4096 * Int64(Self.block), pieceLength: Self.block)
        let magnet = Remote(h, host: "127.0.0.2", have: Self.bits(4096, 0..<0))
        h.connect(1, magnet)
        let info = h.metainfo.infoBytes
        let count = (info.count + WireLimits.metadataPieceSize - 1) / WireLimits.metadataPieceSize
        #expect(count >= 5)
        for piece in 0...count {
            magnet.session.handle(.send(.extended(id: ExtensionRegistry.utMetadata,
                payload: UTMetadataMessage.request(piece: piece).encoded())), at: h.now)
        }
        h.pump()
        var assembled: [UInt8] = []
        var rejected: [Int] = []
        for case .extended(7, let payload) in magnet.received {
            switch try UTMetadataMessage(decoding: payload) {
            case .data(let piece, let total, let bytes):
                #expect(total == info.count)
                #expect(piece * WireLimits.metadataPieceSize == assembled.count)
                #expect(bytes.readableBytes == min(WireLimits.metadataPieceSize, info.count - assembled.count))
                assembled += Array(buffer: bytes)
            case .reject(let piece): rejected.append(piece)
            case .request: Issue.record("the machine asked for metadata it has")
            }
        }
        #expect(assembled == info)
        #expect(rejected == [count])
        // A garbled ut_metadata message closes the connection.
        magnet.session.handle(.send(.extended(id: ExtensionRegistry.utMetadata, payload: ByteBuffer(bytes: [0x78]))),
            at: h.now)
        h.pump()
        #expect(magnet.closed)
    }

    @Test(arguments: ["one byte at a time", "random chunks", "as sent"])
    func theSameDownloadWhateverTheChunking(_ how: String) throws {
        let h = try MachineHarness(size: 24 * Int64(Self.block) + 7, pieceLength: 2 * Self.block)
        var rng = SeededGenerator(seed: 99)
        switch how {
        case "one byte at a time": h.chunking = { n in Array(repeating: 1, count: n) }
        case "random chunks": h.chunking = { n in (0..<n).map { _ in Int.random(in: 1...40_000, using: &rng) } }
        default: h.chunking = nil
        }
        let seed = Remote(h, host: "127.0.0.2", have: h.all())
        h.connect(1, seed)
        h.advance(.seconds(2))
        #expect(h.machine.isComplete)
        #expect(Set(h.verified) == Set(0..<h.pieceCount))
        #expect(!h.logs.contains { $0.contains("dropped") || $0.contains("failed") })
        #expect(seed.requests().count == 25)
    }
}
