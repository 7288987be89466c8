import Bencode
import Crypto
import DequeModule
import Metainfo
import NIOCore
import PeerBase
import PeerWire
import Storage
import Swarm

/// A swarm to simulate: one file, seeds and leechers with upload and download capacities, latency, loss,
/// churn and hostile peers. Every field has the value of the flash-crowd scenario of docs/ARCHITECTURE.md.
public struct SwarmScenario: Sendable {
    public var leechers = 100
    public var fileSize: Int64 = 64 << 20
    public var pieceLength = 256 << 10
    /// Upload capacity U of every leecher, bytes per second.
    public var upload: Int64 = 256 << 10
    /// The seed's upload capacity.
    public var seedUpload: Int64 = 512 << 10
    /// Download capacity D of every peer.
    public var download: Int64 = 1 << 20
    /// One-way delay of every link.
    public var latency: Duration = .milliseconds(50)
    /// Chance that a chunk is lost once and sent again (it then arrives a retransmission timeout later).
    public var loss = 0.0
    /// Fractions of the leechers that are hostile: they claim every piece and send corrupt blocks, never
    /// answer requests, or reject every request (a lying bitfield).
    public var corrupt = 0.0
    public var silent = 0.0
    public var liars = 0.0
    /// Fraction of the honest leechers that leave once, at a random time in the first half of the bound, and
    /// come back `rejoinAfter` later with the pieces they had.
    public var churn = 0.0
    public var rejoinAfter: Duration = .seconds(30)
    /// Peers a node is given by the "tracker" when it joins, and again when it has fewer than half as many.
    public var peersPerAnnounce = 50
    public var seed: UInt64 = 1
    /// Changes to the machines' configuration (the production defaults otherwise).
    public var uploadSlots: Int?
    /// Virtual time after which the run stops, finished or not.
    public var timeLimit: Duration = .seconds(3600)

    public init() {}

    /// The fluid model's lower bound on the time for every leecher to finish (Kumar and Ross 2006):
    /// max(F/U_seed, F/D, N·F/(U_seed + N·U)), over the honest leechers.
    public var bound: Duration {
        let n = Double(self.honestLeechers)
        let f = Double(self.fileSize)
        let seconds = max(f / Double(self.seedUpload), f / Double(self.download),
            n * f / (Double(self.seedUpload) + n * Double(self.upload)))
        return .milliseconds(Int64(seconds * 1000))
    }

    var hostileCount: (corrupt: Int, silent: Int, liars: Int) {
        (Int((Double(self.leechers) * self.corrupt).rounded()), Int((Double(self.leechers) * self.silent).rounded()),
            Int((Double(self.leechers) * self.liars).rounded()))
    }

    public var honestLeechers: Int {
        let h = self.hostileCount
        return self.leechers - h.corrupt - h.silent - h.liars
    }
}

/// What a run measured, in virtual time.
public struct SwarmReport: Sendable {
    public var scenario: SwarmScenario
    /// Finish times of the honest leechers that finished, in order.
    public var finishTimes: [Duration]
    /// Honest leechers that did not finish within the time limit.
    public var unfinished: Int
    /// When every piece had gone out from the seed at least once.
    public var seedFirstCopy: Duration?
    public var seedUploaded: Int64
    /// Pieces that failed their hash check, and pieces written whose bytes differ from the original (must be 0).
    public var hashFailures: Int
    public var wrongPieces: Int
    /// Hostile hosts banned by at least one honest leecher, and honest hosts banned by anyone (must be 0).
    public var hostileBanned: Int
    public var honestBanned: Int
    public var events: Int
    /// Bytes of blocks all nodes sent, over what the honest leechers needed (N·F): above 1 is waste
    /// (duplicates in end-game, blocks that crossed a cancel).
    public var sentOverNeeded: Double
    /// What the nodes sent over what their upload capacity allowed until the last leecher finished.
    public var uploadUtilization: Double

    public var lastFinish: Duration? { self.unfinished == 0 ? self.finishTimes.last : nil }
    public var bound: Duration { self.scenario.bound }

    /// The last finish over the bound.
    public var ratio: Double? {
        self.lastFinish.map { Self.seconds($0) / Self.seconds(self.bound) }
    }
    /// The seed's first copy over F/U_seed.
    public var firstCopyRatio: Double? {
        self.seedFirstCopy.map {
            Self.seconds($0) / (Double(self.scenario.fileSize) / Double(self.scenario.seedUpload))
        }
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    public static let header = """
        | leechers | size | hostile | churn | loss | bound | median finish | last finish | last/bound | seed first copy | first copy/(F/U_seed) | seed uploaded | sent/needed | upload used | hash failures | banned (hostile/honest) | events |
        |---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
        """

    public var row: String {
        func s(_ d: Duration?) -> String { d.map { String(format: "%.1f s", Self.seconds($0)) } ?? "—" }
        func r(_ x: Double?) -> String { x.map { String(format: "%.3f", $0) } ?? "—" }
        let sc = self.scenario
        let h = sc.hostileCount
        var hostile: [String] = []
        if h.corrupt > 0 { hostile.append("\(h.corrupt) corrupt") }
        if h.silent > 0 { hostile.append("\(h.silent) silent") }
        if h.liars > 0 { hostile.append("\(h.liars) liars") }
        let median = self.finishTimes.isEmpty ? nil : self.finishTimes[self.finishTimes.count / 2]
        let last = self.lastFinish.map { s($0) } ?? "\(self.unfinished) unfinished"
        return "| \(sc.leechers) | \(ByteCount.format(sc.fileSize)) | \(hostile.isEmpty ? "none" : hostile.joined(separator: ", ")) "
            + "| \(Int(sc.churn * 100))% | \(Int(sc.loss * 100))% | \(s(sc.bound)) | \(s(median)) | \(last) "
            + "| \(r(self.ratio)) | \(s(self.seedFirstCopy)) | \(r(self.firstCopyRatio)) "
            + "| \(String(format: "%.2f", Double(self.seedUploaded) / Double(sc.fileSize)))×F "
            + "| \(String(format: "%.3f", self.sentOverNeeded)) | \(String(format: "%.0f%%", self.uploadUtilization * 100)) "
            + "| \(self.hashFailures) "
            + "| \(self.hostileBanned)/\(self.honestBanned) | \(self.events) |"
    }
}

/// Many `TorrentMachine`s, the production code, in a virtual network with a virtual clock: each node's
/// upload is a link of its capacity shared round-robin by its connections (as TCP flows share one), each
/// download a first-come link of its capacity, every link one-way `latency` long. Disk and hashing take no
/// virtual time; hashing is real (SHA-1 of every piece). Reproducible from the scenario's seed when run with
/// `SWIFT_DETERMINISTIC_HASHING=1` (the machines' sets and dictionaries then iterate alike on every run).
public final class SwarmSimulation {
    public enum Kind: Sendable { case seed, leecher, corrupt, silent, liar }

    final class Node {
        let index: Int
        let kind: Kind
        var machine: TorrentMachine
        let upload: Int64
        let download: Int64
        /// Per connection, the bytes waiting for the uplink, and the round-robin order of connections with some.
        var queues: [Int: Deque<ByteBuffer>] = [:]
        var queued: [Int: Int] = [:]
        var ring: Deque<Int> = []
        var uplinkBusy = false
        var downlinkFreeAt: Instant = .zero
        var connections: [Int: Int] = [:]  // connection id (the machine's key) -> the other node
        var online = true
        var finishedAt: Instant?
        var timerAt: Instant?
        var lastAnnounce: Instant = .zero
        var leaveAt: Instant?

        init(index: Int, kind: Kind, machine: TorrentMachine, upload: Int64, download: Int64) {
            self.index = index
            self.kind = kind
            self.machine = machine
            self.upload = upload
            self.download = download
        }

        var honest: Bool { self.kind == .seed || self.kind == .leecher }
        var host: String { SwarmSimulation.host(self.index) }
    }

    enum Event {
        case timer(node: Int)
        case established(connection: Int, dialer: Int, acceptor: Int)
        case uplinkDone(node: Int, connection: Int, bytes: ByteBuffer)
        case deliver(node: Int, connection: Int, bytes: ByteBuffer)
        case closed(node: Int, connection: Int)
        case checked(node: Int, piece: Int, outcome: TorrentMachine.PieceOutcome, bytes: [UInt8])
        case read(node: Int, piece: Int, result: Result<ByteBuffer, SimDiskError>)
        case leave(node: Int)
        case rejoin(node: Int)
    }

    public struct SimDiskError: Error, Sendable, CustomStringConvertible {
        public var description: String { "no such piece here" }
    }

    public let scenario: SwarmScenario
    public let metainfo: TorrentMetainfo
    private let verifier: PieceVerifier
    private var nodes: [Node] = []
    private var queue = EventQueue<Event>()
    private var rng: SeededGenerator
    private var now: Instant = .zero
    private var nextConnection = 0
    private var lastDelivery: [Int: Instant] = [:]  // connection * 2 + direction -> last delivery time
    private var hashFailures = 0
    private var wrongPieces = 0
    private var events = 0
    private var seedFirstCopy: Instant?
    private var unfinished = 0
    /// Bytes sent by machines that were replaced when their node came back (churn).
    private var uploadedBefore: Int64 = 0
    private let map: PieceMap
    /// Every piece's bytes, made once and shared by every honest node's reads (a read cache holds a slice of
    /// these, not a copy).
    private var contents: [Int: ByteBuffer] = [:]
    /// A connection's send buffer: blocks beyond it wait in the machine (where a cancel still finds them).
    private let highWater = 64 << 10
    private let lowWater = 16 << 10

    public init(_ scenario: SwarmScenario) throws {
        self.scenario = scenario
        self.rng = SeededGenerator(seed: scenario.seed)
        self.metainfo = try Self.makeTorrent(size: scenario.fileSize, pieceLength: scenario.pieceLength,
            seed: scenario.seed)
        self.verifier = PieceVerifier(metainfo: self.metainfo)
        self.map = PieceMap(self.metainfo)
        let h = scenario.hostileCount
        var kinds: [Kind] = [.seed] + Array(repeating: .corrupt, count: h.corrupt)
            + Array(repeating: .silent, count: h.silent) + Array(repeating: .liar, count: h.liars)
        kinds += Array(repeating: .leecher, count: scenario.leechers - h.corrupt - h.silent - h.liars)
        // The seed first, the others in a seeded random order (hostile ones among the honest).
        let rest = kinds.dropFirst().shuffled(using: &self.rng)
        for (i, kind) in ([.seed] + rest).enumerated() {
            let up = kind == .seed ? scenario.seedUpload : scenario.upload
            self.nodes.append(Node(index: i, kind: kind, machine: self.makeMachine(i, kind: kind, have: nil),
                upload: up, download: scenario.download))
        }
        let honest = self.nodes.filter { $0.kind == .leecher }.map(\.index).shuffled(using: &self.rng)
        self.unfinished = honest.count
        let leaving = Int((Double(honest.count) * scenario.churn).rounded())
        let window = max(1, Int64(SwarmReport.seconds(scenario.bound) * 500))
        for i in honest.prefix(leaving) {
            self.queue.schedule(.leave(node: i), at: .zero + .milliseconds(Int64.random(in: 1...window, using: &self.rng)))
        }
    }

    static func host(_ index: Int) -> String { "127.\(1 + index / 65536).\(index / 256 % 256).\(index % 256)" }

    private func makeMachine(_ index: Int, kind: Kind, have: Bitfield?) -> TorrentMachine {
        var config = TorrentMachine.Configuration()
        config.listenPort = 6881
        config.readCacheBytes = 4 << 20
        if let slots = self.scenario.uploadSlots { config.uploadSlots = slots }
        let count = PieceMap(self.metainfo).pieceCount
        var bits = have ?? Bitfield(count: count)
        if kind != .leecher { for i in 0..<count { bits[i] = true } }
        var gen = SeededGenerator(seed: self.scenario.seed &+ UInt64(index) &* 0x9E37_79B9)
        return TorrentMachine(metainfo: self.metainfo, have: bits, pieceLayers: self.metainfo.pieceLayers,
            configuration: config, localID: PeerID.random(using: &gen), seed: gen.next(), at: self.now)
    }

    /// Runs until every honest leecher finished or the time limit passed.
    public func run() -> SwarmReport {
        for node in self.nodes { self.announce(node) }
        for node in self.nodes { self.drain(node) }
        let limit = Instant.zero + self.scenario.timeLimit
        while let entry = self.queue.pop() {
            if entry.at > limit { break }
            self.now = entry.at
            self.events += 1
            self.handle(entry.payload)
            if self.unfinished == 0 { break }
        }
        return self.report()
    }

    private func report() -> SwarmReport {
        let leechers = self.nodes.filter { $0.kind == .leecher }
        let times = leechers.compactMap(\.finishedAt).map { $0 - .zero }.sorted()
        let hostileHosts = Set(self.nodes.filter { !$0.honest }.map(\.host))
        var bannedHostile = Set<String>()
        var bannedHonest = 0
        for node in self.nodes where node.honest {
            for host in node.machine.banned {
                if hostileHosts.contains(host) { bannedHostile.insert(host) } else { bannedHonest += 1 }
            }
        }
        let sent = Double(self.nodes.reduce(Int64(0)) { $0 + $1.machine.progress.uploaded } + self.uploadedBefore)
        let capacity = Double(self.nodes.reduce(Int64(0)) { $0 + $1.upload })
        return SwarmReport(scenario: self.scenario, finishTimes: times, unfinished: leechers.count - times.count,
            seedFirstCopy: self.seedFirstCopy.map { $0 - .zero }, seedUploaded: self.nodes[0].machine.progress.uploaded,
            hashFailures: self.hashFailures, wrongPieces: self.wrongPieces, hostileBanned: bannedHostile.count,
            honestBanned: bannedHonest, events: self.events,
            sentOverNeeded: sent / Double(Int64(leechers.count) * self.scenario.fileSize),
            uploadUtilization: sent / (SwarmReport.seconds(self.now - .zero) * capacity))
    }

    // MARK: the tracker

    /// Gives a node peers to dial: random online nodes it is not connected to.
    private func announce(_ node: Node) {
        node.lastAnnounce = self.now
        let connected = Set(node.connections.values)
        var candidates = self.nodes.filter { $0.online && $0.index != node.index && !connected.contains($0.index) }
        candidates.shuffle(using: &self.rng)
        for other in candidates.prefix(self.scenario.peersPerAnnounce) {
            let id = self.nextConnection
            self.nextConnection += 1
            self.queue.schedule(.established(connection: id, dialer: node.index, acceptor: other.index),
                at: self.now + self.scenario.latency * 2)
        }
    }

    // MARK: events

    private func handle(_ event: Event) {
        switch event {
        case .timer(let i):
            let node = self.nodes[i]
            node.timerAt = nil
            guard node.online else { return }
            node.machine.handleTimeout(at: self.now)
            if node.machine.peerCount < self.scenario.peersPerAnnounce / 2 && self.now - node.lastAnnounce >= .seconds(30) {
                self.announce(node)
            }
            self.drain(node)
        case .established(let id, let d, let a):
            let (dialer, acceptor) = (self.nodes[d], self.nodes[a])
            guard dialer.online, acceptor.online else { return }
            let ok = dialer.machine.addPeer(id, role: .outgoing, endpoint: self.endpoint(acceptor), at: self.now)
                && acceptor.machine.addPeer(id, role: .incoming, endpoint: self.endpoint(dialer, port: 40000), at: self.now)
            if ok {
                dialer.connections[id] = a
                acceptor.connections[id] = d
            } else {
                dialer.machine.peerClosed(id, at: self.now)
                acceptor.machine.peerClosed(id, at: self.now)
            }
            self.drain(dialer)
            self.drain(acceptor)
        case .uplinkDone(let i, let id, let bytes):
            let node = self.nodes[i]
            node.uplinkBusy = false
            if let to = node.connections[id] { self.send(bytes, from: node, to: self.nodes[to], connection: id) }
            self.queued(node, id, -bytes.readableBytes)
            self.startUplink(node)
        case .deliver(let i, let id, let bytes):
            let node = self.nodes[i]
            guard node.online, node.connections[id] != nil else { return }
            node.machine.receive(id, bytes, at: self.now)
            self.drain(node)
        case .closed(let i, let id):
            let node = self.nodes[i]
            guard node.connections.removeValue(forKey: id) != nil else { return }
            node.machine.peerClosed(id, at: self.now)
            self.drain(node)
        case .checked(let i, let piece, let outcome, let bytes):
            let node = self.nodes[i]
            guard node.online else { return }
            node.machine.pieceChecked(piece, outcome, buffer: bytes, at: self.now)
            self.drain(node)
        case .read(let i, let piece, let result):
            let node = self.nodes[i]
            guard node.online else { return }
            node.machine.pieceRead(piece, result.mapError { $0 as any Error }, at: self.now)
            self.drain(node)
        case .leave(let i):
            let node = self.nodes[i]
            guard node.finishedAt == nil else { return }
            for (id, other) in node.connections { self.queue.schedule(.closed(node: other, connection: id), at: self.now + self.scenario.latency) }
            node.connections = [:]
            node.queues = [:]
            node.queued = [:]
            node.ring = []
            node.online = false
            self.queue.schedule(.rejoin(node: i), at: self.now + self.scenario.rejoinAfter)
        case .rejoin(let i):
            let node = self.nodes[i]
            self.uploadedBefore += node.machine.progress.uploaded
            node.machine = self.makeMachine(i, kind: node.kind, have: node.machine.have)
            node.online = true
            node.uplinkBusy = false
            self.announce(node)
            self.drain(node)
        }
    }

    private func endpoint(_ node: Node, port: UInt16 = 6881) -> TorrentMachine.Endpoint {
        let i = node.index
        return TorrentMachine.Endpoint(host: node.host, ip: [127, UInt8(1 + i / 65536), UInt8(i / 256 % 256), UInt8(i % 256)],
            port: port)
    }

    /// Carries out what a node's machine has for the outside after an input.
    private func drain(_ node: Node) {
        while let (id, bytes) = node.machine.pollTransmit() {
            guard node.connections[id] != nil else { continue }
            node.queues[id, default: []].append(bytes)
            if node.queues[id]!.count == 1 { node.ring.append(id) }
            self.queued(node, id, bytes.readableBytes)
        }
        self.startUplink(node)
        while let action = node.machine.pollAction() {
            switch action {
            case .close(let id):
                guard let other = node.connections.removeValue(forKey: id) else { continue }
                node.queues[id] = nil
                node.queued[id] = nil
                node.machine.peerClosed(id, at: self.now)
                self.queue.schedule(.closed(node: other, connection: id), at: self.now + self.scenario.latency)
            case .checkAndWrite(let piece, let bytes):
                let index = self.verifier.pieceMap.index(piece)!
                let passed = self.verifier.verify(index, bytes: bytes).passed
                if passed {
                    let original = self.content(piece)
                    if !bytes.withUnsafeBytes({ a in original.withUnsafeReadableBytes { $0.elementsEqual(a) } }) {
                        self.wrongPieces += 1
                    }
                } else {
                    self.hashFailures += 1
                }
                self.queue.schedule(.checked(node: node.index, piece: piece, outcome: passed ? .verified : .hashFailed,
                    bytes: bytes), at: self.now)
            case .read(let piece, _):
                switch node.kind {
                case .seed, .leecher:
                    self.queue.schedule(.read(node: node.index, piece: piece, result: .success(self.content(piece))),
                        at: self.now)
                case .corrupt:
                    var bytes = Array(buffer: self.content(piece))
                    for k in stride(from: 0, to: bytes.count, by: 4096) { bytes[k] ^= 0x5A }
                    self.queue.schedule(.read(node: node.index, piece: piece, result: .success(ByteBuffer(bytes: bytes))), at: self.now)
                case .liar:
                    self.queue.schedule(.read(node: node.index, piece: piece, result: .failure(SimDiskError())), at: self.now)
                case .silent:
                    break  // never answers
                }
            case .downloadComplete:
                if node.finishedAt == nil && node.kind == .leecher {
                    node.finishedAt = self.now
                    self.unfinished -= 1
                }
            case .dial, .pieceLayer, .pieceLayersComplete, .pieceVerified, .saveResume, .extensionMessage, .holePunch, .ownAddress, .log:
                break
            }
        }
        if node.index == 0 && self.seedFirstCopy == nil && node.machine.piecesUploadedOnce == node.machine.map.pieceCount {
            self.seedFirstCopy = self.now
        }
        if node.online && node.timerAt == nil {
            let at = max(self.now, node.machine.nextTimeout)
            node.timerAt = at
            self.queue.schedule(.timer(node: node.index), at: at)
        }
    }

    /// Counts bytes waiting on a connection's uplink, and tells the machine when the connection fills up or
    /// drains (its writability).
    private func queued(_ node: Node, _ id: Int, _ delta: Int) {
        guard node.connections[id] != nil else { return }
        let before = node.queued[id] ?? 0
        let after = before + delta
        node.queued[id] = after
        if before <= self.highWater && after > self.highWater {
            node.machine.setWritable(id, false, at: self.now)
        } else if before > self.lowWater && after <= self.lowWater {
            node.machine.setWritable(id, true, at: self.now)
            self.drain(node)
        } else if delta < 0 && after > self.lowWater {
            node.machine.writeProgressed(id, at: self.now)
        }
    }

    /// Starts sending the next chunk (up to a block and its header) of the next connection in turn.
    private func startUplink(_ node: Node) {
        guard !node.uplinkBusy, node.online else { return }
        while let id = node.ring.popFirst() {
            guard var q = node.queues[id], !q.isEmpty else { continue }
            var chunk = q.removeFirst()
            while let next = q.first, chunk.readableBytes + next.readableBytes <= PieceMap.blockSize + 64 {
                chunk.writeImmutableBuffer(next)
                q.removeFirst()
            }
            node.queues[id] = q.isEmpty ? nil : q
            if !q.isEmpty { node.ring.append(id) }
            node.uplinkBusy = true
            let time = Duration.nanoseconds(Int64(chunk.readableBytes) * 1_000_000_000 / node.upload)
            self.queue.schedule(.uplinkDone(node: node.index, connection: id, bytes: chunk), at: self.now + time)
            return
        }
    }

    /// A chunk left `from`'s uplink: it reaches `to` after the link's delay, through `to`'s download link.
    private func send(_ bytes: ByteBuffer, from: Node, to: Node, connection id: Int) {
        var arrival = self.now + self.scenario.latency
        if self.scenario.loss > 0 && Double.random(in: 0..<1, using: &self.rng) < self.scenario.loss {
            arrival = arrival + self.scenario.latency * 2 + .milliseconds(200)  // a retransmission timeout
        }
        let start = max(arrival, to.downlinkFreeAt)
        var at = start + .nanoseconds(Int64(bytes.readableBytes) * 1_000_000_000 / to.download)
        to.downlinkFreeAt = at
        let direction = id * 2 + (from.index < to.index ? 0 : 1)
        if let last = self.lastDelivery[direction], at < last { at = last }
        self.lastDelivery[direction] = at
        self.queue.schedule(.deliver(node: to.index, connection: id, bytes: bytes), at: at)
    }

    // MARK: content

    /// Piece `i`'s bytes: the same on every run of a seed.
    func content(_ piece: Int) -> ByteBuffer {
        if let bytes = self.contents[piece] { return bytes }
        let bytes = ByteBuffer(bytes: Self.content(piece, size: self.map.pieceSize(self.map.index(piece)!),
            seed: self.scenario.seed))
        self.contents[piece] = bytes
        return bytes
    }

    public static func content(_ piece: Int, size: Int, seed: UInt64) -> [UInt8] {
        var gen = SeededGenerator(seed: seed ^ (UInt64(piece) &* 0xD6E8_FEB8_6659_FD93))
        var bytes = [UInt8](repeating: 0, count: size)
        bytes.withUnsafeMutableBytes { raw in
            var k = 0
            while k + 8 <= raw.count {
                raw.storeBytes(of: gen.next(), toByteOffset: k, as: UInt64.self)
                k += 8
            }
            while k < raw.count {
                raw[k] = UInt8(truncatingIfNeeded: gen.next())
                k += 1
            }
        }
        return bytes
    }

    /// A v1 torrent of one file of `size` bytes of seeded content.
    public static func makeTorrent(size: Int64, pieceLength: Int, seed: UInt64) throws -> TorrentMetainfo {
        let builder = TorrentBuilder(name: "sim.bin", pieceLength: pieceLength, version: .v1,
            files: [TorrentBuilder.File(path: ["sim.bin"], length: size)], isMultiFile: false)
        let map = PieceMap(totalLength: size, pieceLength: pieceLength)
        var hashes: [UInt8] = []
        hashes.reserveCapacity(map.pieceCount * 20)
        for piece in map.allPieces {
            hashes += Insecure.SHA1.hash(data: Self.content(piece.value, size: map.pieceSize(piece), seed: seed))
        }
        return try TorrentMetainfo(bytes: BencodeEncoder.encode(builder.build(v1Pieces: hashes, v2: nil)))
    }
}
