import Metainfo
import NIOCore
import PeerBase
import Testing

@testable import PeerWire

/// Two sessions joined back to back in memory (quinn's `Pair`): `drive()` moves bytes until both are quiet.
struct Pair {
    var a: PeerWireSession
    var b: PeerWireSession
    var now = Instant.zero
    var eventsA: [PeerWireSession.Event] = []
    var eventsB: [PeerWireSession.Event] = []

    static let hash = [UInt8](repeating: 0x42, count: 20)

    init(pieceCount: Int? = 10, fastA: Bool = true, fastB: Bool = true, hashB: [UInt8] = Pair.hash) {
        var ca = PeerWireSession.Configuration(infoHashes: [Pair.hash], localID: PeerID(Array("-PE0100-aaaaaaaaaaaa".utf8)),
            pieceCount: pieceCount)
        ca.extendedHandshake = ExtendedHandshake(extensions: ["ut_metadata": 2], client: "A")
        if !fastA { ca.reserved.remove(.fast) }
        var cb = PeerWireSession.Configuration(infoHashes: [hashB], localID: PeerID(Array("-PE0100-bbbbbbbbbbbb".utf8)),
            pieceCount: pieceCount)
        cb.extendedHandshake = ExtendedHandshake(extensions: ["ut_metadata": 5], client: "B", metadataSize: 1234)
        if !fastB { cb.reserved.remove(.fast) }
        self.a = PeerWireSession(role: .outgoing, configuration: ca, at: .zero)
        self.b = PeerWireSession(role: .incoming, configuration: cb, at: .zero)
    }

    /// Delivers pending bytes both ways until nothing moves (bounded, so a livelock fails the test).
    mutating func drive() {
        for _ in 0..<100 {
            var moved = false
            while let out = self.a.pollTransmit() {
                self.b.receive(out, at: self.now)
                moved = true
            }
            while let out = self.b.pollTransmit() {
                self.a.receive(out, at: self.now)
                moved = true
            }
            while let e = self.a.pollEvent() { self.eventsA.append(e) }
            while let e = self.b.pollEvent() { self.eventsB.append(e) }
            if !moved { return }
        }
        Issue.record("the pair never went quiet")
    }

    /// Sends raw bytes to B as if A's socket carried them.
    mutating func injectIntoB(_ bytes: [UInt8]) {
        self.b.receive(ByteBuffer(bytes: bytes), at: self.now)
        while let e = self.b.pollEvent() { self.eventsB.append(e) }
    }

    mutating func send(_ m: PeerMessage) {
        self.a.handle(.send(m), at: self.now)
        self.drive()
    }

    var closedB: PeerWireError?? {
        for case .closed(let r) in self.eventsB { return .some(r) }
        return nil
    }
}

@Suite("Peer wire session")
struct SessionTests {
    @Test("handshakes and extended handshakes are exchanged")
    func handshake() {
        var p = Pair()
        p.drive()
        #expect(p.eventsA.contains { if case .handshake(let h) = $0 { h.infoHash == Pair.hash } else { false } })
        #expect(p.eventsB.contains { if case .handshake = $0 { true } else { false } })
        #expect(p.a.remoteExtensions?.metadataSize == 1234 && p.a.remoteExtensions?.extensions["ut_metadata"] == 5)
        #expect(p.b.remoteExtensions?.client == "A")
        #expect(p.a.fastExtension && p.a.extensionProtocol && !p.a.isClosed && !p.b.isClosed)
    }

    @Test("state follows choke and interest both ways")
    func chokeAndInterest() {
        var p = Pair()
        p.drive()
        p.send(.interested)
        #expect(p.a.amInterested && p.b.peerInterested)
        p.b.handle(.send(.unchoke), at: p.now)
        p.drive()
        #expect(!p.b.amChoking && !p.a.peerChoking)
        p.send(.request(BlockRef(piece: 1, offset: 0, length: 16384)))
        #expect(p.eventsB.contains(.message(.request(BlockRef(piece: 1, offset: 0, length: 16384)))))
    }

    @Test("bitfield and have build the peer's pieces")
    func bitfield() {
        var p = Pair(pieceCount: 10)
        p.drive()
        p.send(.bitfield(ByteBuffer(bytes: [0b1000_0000, 0b0100_0000])))
        #expect(p.b.peerBitfield == [0b1000_0000, 0b0100_0000])
        p.send(.have(piece: 2))
        #expect(p.b.peerBitfield == [0b1010_0000, 0b0100_0000])
        #expect(p.closedB == nil)
    }

    @Test(
        "violations close the connection with a reason",
        arguments: [
            ("wrong-size bitfield", [PeerMessage.bitfield(ByteBuffer(bytes: [0xff]))]),
            ("spare bits set", [.bitfield(ByteBuffer(bytes: [0xff, 0xff]))]),
            ("have past the end", [.have(piece: 10)]),
            ("request past the end", [.request(BlockRef(piece: 99, offset: 0, length: 1))]),
        ])
    func violations(_ name: String, _ messages: [PeerMessage]) {
        var p = Pair(pieceCount: 10)
        p.drive()
        for m in messages { p.send(m) }
        #expect(p.b.isClosed, "\(name)")
        #expect(p.closedB != nil && p.closedB! != nil, "\(name): closed with a reason")
    }

    @Test("fast-extension messages need both fast bits")
    func fastNeedsBits() {
        var p = Pair(fastA: true, fastB: false)
        p.drive()
        p.send(.haveAll)
        #expect(p.b.isClosed)
        var q = Pair()
        q.drive()
        q.send(.haveAll)
        #expect(!q.b.isClosed && q.b.peerBitfield == [0xff, 0b1100_0000])
    }

    @Test("have-all before the piece count is known fills in when it is")
    func haveAllBeforeMetadata() {
        var p = Pair(pieceCount: nil)
        p.drive()
        p.send(.haveAll)
        #expect(p.b.peerHasAll && p.b.peerBitfield == nil)
        p.b.handle(.setPieceCount(3), at: p.now)
        #expect(p.b.peerBitfield == [0b1110_0000] && !p.b.isClosed)
    }

    @Test("haves before metadata become a bitfield of the right size")
    func havesBeforeMetadata() {
        var p = Pair(pieceCount: nil)
        p.drive()
        p.send(.have(piece: 0))
        p.send(.have(piece: 17))
        p.b.handle(.setPieceCount(20), at: p.now)
        #expect(p.b.peerBitfield == [0b1000_0000, 0, 0b0100_0000] && !p.b.isClosed)
        var q = Pair(pieceCount: nil)
        q.drive()
        q.send(.have(piece: UInt32(WireLimits.maxPieces)))
        #expect(q.b.isClosed, "a have index past any torrent is refused before memory is spent on it")
    }

    @Test("a handshake for another torrent is refused")
    func wrongHash() {
        var p = Pair(hashB: [UInt8](repeating: 0x99, count: 20))
        p.drive()
        #expect(p.b.isClosed && p.closedB == .some(.wrongInfoHash))
    }

    @Test("connecting to ourselves is refused")
    func selfConnection() {
        let id = PeerID(Array("-PE0100-ssssssssssss".utf8))
        var a = PeerWireSession(role: .outgoing, configuration: .init(infoHashes: [Pair.hash], localID: id, pieceCount: 1), at: .zero)
        var b = PeerWireSession(role: .incoming, configuration: .init(infoHashes: [Pair.hash], localID: id, pieceCount: 1), at: .zero)
        b.receive(a.pollTransmit()!, at: .zero)
        #expect(b.isClosed)
        #expect(b.pollEvent() == .closed(.connectedToSelf))
        a.handle(.close, at: .zero)
        #expect(a.pollEvent() == .closed(nil))
    }

    @Test("garbage instead of a handshake or a huge length drops the peer")
    func garbage() {
        var p = Pair()
        p.injectIntoB(Array("GET /announce HTTP/1.1\r\n\r\n".utf8))
        #expect(p.b.isClosed)
        var q = Pair()
        q.drive()
        q.injectIntoB([0xff, 0xff, 0xff, 0xf0])
        #expect(q.b.isClosed)
        if case .some(.some(.messageTooLong)) = q.closedB {} else { Issue.record("expected messageTooLong, got \(String(describing: q.closedB))") }
    }

    @Test("keep-alives go out after two quiet minutes and a silent peer is dropped after three")
    func timers() {
        var p = Pair()
        p.drive()
        #expect(p.a.nextTimeout == Instant.zero + .seconds(120))
        p.now = .zero + .seconds(120)
        p.a.handleTimeout(at: p.now)
        #expect(p.a.pollTransmit().map { Array($0.readableBytesView) } == [0, 0, 0, 0])
        p.a.handleTimeout(at: p.now)  // spurious: nothing more
        #expect(p.a.pollTransmit() == nil)
        p.now = .zero + .seconds(180)
        p.a.handleTimeout(at: p.now)
        #expect(p.a.isClosed)
        #expect(p.a.pollEvent() == .closed(.timeout))
        #expect(p.a.nextTimeout == nil)
    }
}

@Suite("Opening messages")
struct OpeningTests {
    @Test("the opening bitfield goes before the extended handshake; have-all becomes a bitfield without BEP 6")
    func opening() throws {
        for fast in [true, false] {
            var p = Pair(pieceCount: 10, fastA: true, fastB: fast)
            p.b.handle(.close, at: .zero)  // not used: build B again with an opening message
            var cb = PeerWireSession.Configuration(infoHashes: [Pair.hash], localID: PeerID(Array("-PE0100-cccccccccccc".utf8)),
                pieceCount: 10)
            cb.openingMessage = .haveAll
            cb.extendedHandshake = ExtendedHandshake(extensions: ["ut_metadata": 1])
            if !fast { cb.reserved.remove(.fast) }
            p.b = PeerWireSession(role: .incoming, configuration: cb, at: .zero)
            p.eventsA = []
            p.drive()
            let messages = p.eventsA.compactMap { e -> String? in
                switch e {
                case .message(.haveAll): "have-all"
                case .message(.bitfield): "bitfield"
                case .extendedHandshake: "ext"
                default: nil
                }
            }
            #expect(messages == [fast ? "have-all" : "bitfield", "ext"], "fast=\(fast)")
            #expect(p.a.peerBitfield == [0xff, 0b1100_0000])
            #expect(!p.a.isClosed)
        }
    }
}

@Suite("Peer wire session: reads split anywhere")
struct SplitReadTests {
    /// A's whole opening (handshake, extended handshake) plus a run of messages, as one byte stream.
    func stream() -> [UInt8] {
        var p = Pair()
        var bytes: [UInt8] = []
        let messages: [PeerMessage] = [.interested, .have(piece: 3), .keepAlive,
            .piece(piece: 1, offset: 16384, data: ByteBuffer(bytes: SeededGenerator.bytes(16384, seed: 1))),
            .request(BlockRef(piece: 2, offset: 0, length: 16384)),
            .piece(piece: 9, offset: 0, data: ByteBuffer(bytes: SeededGenerator.bytes(777, seed: 2))), .notInterested]
        while let out = p.a.pollTransmit() {
            bytes += Array(out.readableBytesView)
            p.b.receive(out, at: p.now)
        }
        // B's reply opens A's side, so A may send messages.
        while let out = p.b.pollTransmit() { p.a.receive(out, at: p.now) }
        for m in messages { p.a.handle(.send(m), at: p.now) }
        while let out = p.a.pollTransmit() { bytes += Array(out.readableBytesView) }
        return bytes
    }

    @Test("a piece payload goes out as its own buffer after its header, not copied; small messages are coalesced")
    func payloadSlices() {
        var p = Pair()
        p.drive()
        let payload = ByteBuffer(bytes: SeededGenerator.bytes(16384, seed: 3))
        p.a.handle(.send(.have(piece: 1)), at: p.now)
        p.a.handle(.send(.piece(piece: 2, offset: 0, data: payload)), at: p.now)
        p.a.handle(.send(.have(piece: 4)), at: p.now)
        p.a.handle(.send(.piece(piece: 5, offset: 16, data: ByteBuffer(bytes: [1, 2, 3]))), at: p.now)
        var out: [ByteBuffer] = []
        while let b = p.a.pollTransmit() { out.append(b) }
        #expect(out.map(\.readableBytes) == [9 + 13, 16384, 9 + 13 + 3])
        #expect(out[1] == payload)
        var expected = ByteBuffer()
        for m: PeerMessage in [.have(piece: 1), .piece(piece: 2, offset: 0, data: payload), .have(piece: 4),
            .piece(piece: 5, offset: 16, data: ByteBuffer(bytes: [1, 2, 3]))]
        {
            PeerMessageEncoder.encode(m, into: &expected)
        }
        #expect(out.flatMap { Array($0.readableBytesView) } == Array(expected.readableBytesView))
    }

    func events(feeding bytes: [UInt8], cuts: [Int]) -> [PeerWireSession.Event] {
        var b = Pair().b
        var events: [PeerWireSession.Event] = []
        var start = 0
        for cut in cuts.sorted() + [bytes.count] where cut >= start {
            b.receive(ByteBuffer(bytes: bytes[start..<cut]), at: .zero)
            while let e = b.pollEvent() { events.append(e) }
            start = cut
        }
        return events
    }

    @Test("any split of the stream into reads gives the same events as one read", arguments: 0..<40)
    func splits(seed: Int) {
        let bytes = self.stream()
        let whole = self.events(feeding: bytes, cuts: [])
        #expect(whole.count == 8)  // handshake, extended handshake, and every message but the keep-alive
        #expect(!whole.contains { if case .closed = $0 { true } else { false } })
        var rng = SeededGenerator(seed: UInt64(seed))
        let cuts = seed == 0 ? Array(1..<bytes.count) : (0..<Int.random(in: 1...60, using: &rng)).map { _ in
            Int.random(in: 0...bytes.count, using: &rng)
        }
        #expect(self.events(feeding: bytes, cuts: cuts) == whole)
    }
}

@Suite("Peer wire session: late bitfields")
struct LateBitfieldTests {
    @Test("a bitfield after other messages adds pieces, as aria2 sends it, and never removes any")
    func lateBitfield() {
        var p = Pair(pieceCount: 10)
        p.drive()
        p.send(.have(piece: 1))
        p.send(.bitfield(ByteBuffer(bytes: [0b0010_0000, 0b0100_0000])))
        #expect(p.closedB == nil)
        #expect(p.b.peerBitfield == [0b0110_0000, 0b0100_0000])
        p.send(.bitfield(ByteBuffer(bytes: [0xff])))  // the wrong size still closes the connection
        #expect(p.b.isClosed)
    }

    @Test("a late have-all makes the peer a seed")
    func lateHaveAll() {
        var p = Pair(pieceCount: 10)
        p.drive()
        p.send(.have(piece: 1))
        p.send(.haveAll)
        #expect(p.closedB == nil)
        #expect(p.b.peerBitfield == [0xff, 0b1100_0000])
    }
}
