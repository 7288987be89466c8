import DequeModule
import Metainfo
import NIOCore
import PeerBase
import PeerSimulation
import PeerWire
import Storage
import Swarm

/// A peer on the other end of a `TorrentMachine`'s connection, scripted by a test: a real `PeerWireSession`
/// (so every byte the machine sees is the wire protocol) with a few behaviours.
final class Remote {
    var session: PeerWireSession
    var have: Bitfield
    /// Messages received from the machine, in order.
    var received: [PeerMessage] = []
    /// Unchoke the machine as soon as it is interested.
    var unchokes = true
    /// Requests answered per `step` (nil: all at once; 0: never).
    var answersPerStep: Int?
    /// Send blocks with every byte flipped.
    var corrupt = false
    var pending: Deque<BlockRef> = []
    var closed = false
    let host: String
    let port: UInt16

    init(_ harness: MachineHarness, host: String, port: UInt16 = 6881, have: Bitfield, pex: Bool = false) {
        var gen = SeededGenerator(seed: UInt64(port) &* 31 &+ UInt64(host.utf8.reduce(0) { $0 &* 7 &+ Int($1) }))
        var config = PeerWireSession.Configuration(infoHashes: harness.machine.handshakeHashes,
            localID: PeerID.random(using: &gen), pieceCount: have.count)
        config.reserved = [.extensionProtocol, .fast]
        config.openingMessage = have.allSet ? .haveAll
            : (have.noneSet ? .haveNone : .bitfield(ByteBuffer(bytes: have.bytes)))
        var extensions = [UTMetadataMessage.name: UInt8(7)]
        if pex { extensions[PEXMessage.name] = 9 }
        config.extendedHandshake = ExtendedHandshake(extensions: extensions, client: "remote", listenPort: port,
            requestQueue: 250)
        self.session = PeerWireSession(role: .outgoing, configuration: config, at: harness.now)
        self.have = have
        self.host = host
        self.port = port
    }

    func requests() -> [BlockRef] { self.received.compactMap { if case .request(let b) = $0 { b } else { nil } } }
    func cancels() -> [BlockRef] { self.received.compactMap { if case .cancel(let b) = $0 { b } else { nil } } }
    var choked: Bool {
        for m in self.received.reversed() {
            if case .choke = m { return true }
            if case .unchoke = m { return false }
        }
        return true
    }
}

/// Drives one `TorrentMachine` against scripted `Remote`s in virtual time, carrying out its actions as a
/// driver would (hashing with the real `PieceVerifier`, reads from the seeded content) and recording them.
final class MachineHarness {
    let machine: TorrentMachine
    let metainfo: TorrentMetainfo
    let verifier: PieceVerifier
    let seed: UInt64
    var now: Instant = .zero
    var remotes: [Int: Remote] = [:]
    var actions: [TorrentMachine.Action] = []
    var logs: [String] { self.actions.compactMap { if case .log(let l) = $0 { l } else { nil } } }
    var verified: [Int] { self.actions.compactMap { if case .pieceVerified(let p) = $0 { p } else { nil } } }
    /// Splits bytes from remotes to the machine into chunks of these sizes (cycled); nil delivers as sent.
    var chunking: ((Int) -> [Int])?

    init(size: Int64, pieceLength: Int, have: Bitfield? = nil, seed: UInt64 = 7,
        configure: (inout TorrentMachine.Configuration) -> Void = { _ in }) throws
    {
        self.seed = seed
        self.metainfo = try SwarmSimulation.makeTorrent(size: size, pieceLength: pieceLength, seed: seed)
        self.verifier = PieceVerifier(metainfo: self.metainfo)
        var config = TorrentMachine.Configuration()
        config.listenPort = 6881
        configure(&config)
        var gen = SeededGenerator(seed: seed)
        self.machine = TorrentMachine(metainfo: self.metainfo,
            have: have ?? Bitfield(count: PieceMap(self.metainfo).pieceCount), pieceLayers: [:],
            configuration: config, localID: PeerID.random(using: &gen), seed: seed, at: .zero)
    }

    var pieceCount: Int { self.machine.map.pieceCount }

    func content(_ piece: Int) -> [UInt8] {
        SwarmSimulation.content(piece, size: self.machine.map.pieceSize(self.machine.map.index(piece)!), seed: self.seed)
    }

    func all() -> Bitfield {
        var b = Bitfield(count: self.pieceCount)
        for i in 0..<self.pieceCount { b[i] = true }
        return b
    }

    /// Connects a remote under `key`; the machine sees an incoming connection (or outgoing, as said).
    @discardableResult
    func connect(_ key: Int, _ remote: Remote, role: PeerWireSession.Role = .incoming) -> Bool {
        let octets = remote.host.split(separator: ".").compactMap { UInt8($0) }
        let ok = self.machine.addPeer(key, role: role,
            endpoint: TorrentMachine.Endpoint(host: remote.host, ip: octets.count == 4 ? octets : nil, port: remote.port),
            at: self.now)
        if ok { self.remotes[key] = remote }
        self.pump()
        return ok
    }

    /// Moves bytes both ways and carries out actions until nothing moves (bounded).
    func pump() {
        for _ in 0..<10_000 {
            var moved = false
            while let (key, bytes) = self.machine.pollTransmit() {
                guard let r = self.remotes[key], !r.closed else { continue }
                r.session.receive(bytes, at: self.now)
                moved = true
            }
            while let action = self.machine.pollAction() {
                self.actions.append(action)
                self.carryOut(action)
                moved = true
            }
            for (key, r) in self.remotes.sorted(by: { $0.key < $1.key }) where !r.closed {
                while let event = r.session.pollEvent() {
                    if case .message(let m) = event { self.remote(r, got: m) }
                    if case .closed = event { self.close(key) }
                }
                self.answer(r)
                while !r.closed, let bytes = r.session.pollTransmit() {
                    self.deliver(bytes, to: key)
                    moved = true
                }
            }
            if !moved { return }
        }
        fatalError("the harness did not settle")
    }

    /// Advances virtual time by `duration` in steps of `step`, running timeouts and pumping at each.
    func advance(_ duration: Duration, step: Duration = .milliseconds(100)) {
        let end = self.now + duration
        while self.now < end {
            self.now = min(end, self.now + step)
            for r in self.remotes.values where !r.closed { r.session.handleTimeout(at: self.now) }
            self.machine.handleTimeout(at: self.now)
            self.answeredThisStep = [:]
            self.pump()
        }
    }

    private var answeredThisStep: [ObjectIdentifier: Int] = [:]

    private func deliver(_ bytes: ByteBuffer, to key: Int) {
        guard let chunking = self.chunking else {
            self.machine.receive(key, bytes, at: self.now)
            return
        }
        var rest = bytes
        var sizes = chunking(rest.readableBytes)[...]
        while rest.readableBytes > 0 {
            let n = min(rest.readableBytes, max(1, sizes.popFirst() ?? rest.readableBytes))
            self.machine.receive(key, rest.readSlice(length: n)!, at: self.now)
        }
    }

    private func remote(_ r: Remote, got m: PeerMessage) {
        r.received.append(m)
        switch m {
        case .interested where r.unchokes && r.session.amChoking:
            r.session.handle(.send(.unchoke), at: self.now)
        case .request(let b):
            r.pending.append(b)
        case .cancel(let b):
            r.pending.removeAll { $0 == b }
        default:
            break
        }
    }

    /// Sends the blocks a remote was asked for, as its budget allows.
    private func answer(_ r: Remote) {
        guard r.answersPerStep != 0 else { return }
        while let b = r.pending.first {
            if let budget = r.answersPerStep, self.answeredThisStep[ObjectIdentifier(r), default: 0] >= budget { return }
            r.pending.removeFirst()
            self.answeredThisStep[ObjectIdentifier(r), default: 0] += 1
            var bytes = Array(self.content(Int(b.piece))[Int(b.offset)..<Int(b.offset + b.length)])
            if r.corrupt { bytes = bytes.map { ~$0 } }
            r.session.handle(.send(.piece(piece: b.piece, offset: b.offset, data: ByteBuffer(bytes: bytes))), at: self.now)
        }
    }

    private func close(_ key: Int) {
        guard let r = self.remotes[key], !r.closed else { return }
        r.closed = true
        r.session.handle(.close, at: self.now)
        self.machine.peerClosed(key, at: self.now)
    }

    private func carryOut(_ action: TorrentMachine.Action) {
        switch action {
        case .close(let key):
            self.close(key)
        case .checkAndWrite(let piece, let bytes):
            let passed = self.verifier.verify(self.verifier.pieceMap.index(piece)!, bytes: bytes).passed
            self.machine.pieceChecked(piece, passed ? .verified : .hashFailed, buffer: bytes, at: self.now)
        case .read(let piece, _):
            self.machine.pieceRead(piece, .success(ByteBuffer(bytes: self.content(piece))), at: self.now)
        default:
            break
        }
    }
}
