// One torrent as a sans-I/O state machine: BEP 3 (choking, interest, requests), BEP 6 (rejects), BEP 9
// (serving metadata), BEP 11 (PEX), BEP 52 (piece layers asked of peers and served).
import DequeModule
import Metainfo
import NIOCore
import PeerBase
import PeerWire

/// One torrent's peers and everything decided about them, as plain state: their `PeerWireSession`s, the
/// piece picker, the choker, interest and the request pipeline, block assembly, trust and bans, PEX, metadata
/// and piece-layer serving, deadlines (streaming) and the figures a status page shows.
///
/// Sans-I/O, like `DHTNode` and quinn-proto's `Connection`: it opens no socket, touches no file and reads
/// no clock. Time is passed in, randomness comes from a seeded generator, and peers are integer keys chosen
/// by the driver. The same machine runs under `TorrentEngine` (NIO channels, a thread pool for disk and
/// hashing) and in `PeerSimulation`'s swarm harness (a virtual network and clock).
///
/// Four kinds of method:
/// - getters (`progress`, `isComplete`, `have`, `connectedPeers`, `nextTimeout`);
/// - inputs: `addPeer`, `receive`, `peerClosed`, `setWritable`, `pieceChecked`, `pieceRead`, `resumeSaved`,
///   `handleTimeout(at:)`, and the whole-piece inputs of other sources (web seeds);
/// - commands: `prioritize` (a reader waits for pieces), `stop`;
/// - outputs, drained after every input or command: `pollTransmit()` (bytes for a peer) and `pollAction()`
///   (close a peer, check and write a piece, read a piece, dial peers, …).
public final class TorrentMachine {
    public struct Configuration: Sendable {
        /// Outstanding block requests per peer: about `requestQueueTime` of its measured rate, within these
        /// bounds (and never more than the peer's own `reqq`).
        public var pipelineDepth = 16...500
        public var requestQueueTime: Duration = .seconds(2)
        /// Regular upload slots (tit-for-tat); one optimistic slot comes on top. Four, as BitTorrent's own
        /// client had: in the swarm simulation (1 seed, 100 leechers, 64 MiB) the last leecher finished at
        /// 1.31x the fluid bound with 4 and 1.56x with 8, since each slot passes pieces on faster (1.10x with
        /// 4 after the end-game, snub and initial-seeding changes that followed).
        public var uploadSlots = 4
        /// Initial seeding: a torrent that starts complete gives each piece to the first peer that asks for it
        /// and, until every piece has gone out once, refuses (BEP 6 reject) a second peer's request for it
        /// while that peer lacks a piece nobody has asked for: the seed's upload goes to pieces the swarm does
        /// not have yet (BEP 16's aim, without hiding pieces). In the swarm simulation (1 seed, 100 leechers,
        /// 64 MiB) the seed's first copy was out at 1.25x F/U_seed without it.
        public var initialSeeding = true
        /// Byte rates for the whole torrent; nil is unlimited.
        public var maxUploadRate: Int64?
        public var maxDownloadRate: Int64?
        /// Fetch pieces in order instead of rarest first.
        public var sequential = false
        /// Files not to download; pieces they share with wanted files are still fetched.
        public var unselectedFiles: Set<Int> = []
        /// Files whose pieces are fetched before those of other files.
        public var highPriorityFiles: Set<Int> = []
        /// The first and last piece of each wanted file come before any other (a player reads a file's header
        /// and, for some containers, its index at the end).
        public var firstLastPieces = false
        /// Ask for resume data to be saved (`.saveResume`) after verified pieces, at most this often; nil
        /// never asks.
        public var resumeInterval: Duration? = nil
        /// A peer that sends nothing for this long while we wait on its blocks is snubbed: its requests go
        /// to other peers and it is asked for one block at a time until it sends again.
        public var snubTimeout: Duration = .seconds(30)
        /// An unchoked peer whose connection has been full and sent nothing for this long (it asks and does
        /// not read) is choked when another peer waits for a slot, and gets none until its connection drains
        /// (a slow reader that drains at all is not stalled: `writeProgressed`). Before, 20 such peers kept a
        /// seed's slots and an honest leecher took 50x as long.
        public var stallTimeout: Duration = .seconds(5)
        /// Outstanding block requests per peer waiting on the disk while serving; more are rejected.
        public var maxQueuedReads = 1024
        /// Whole pieces kept in memory for serving.
        public var readCacheBytes = 32 << 20
        /// Bytes of pieces waiting for their check and write; beyond it no more blocks are requested until
        /// the disk catches up.
        public var maxPendingWriteBytes = 64 << 20
        /// Connections for this torrent, incoming and outgoing; more are refused.
        public var maxPeers = 100
        /// Requests a peer may have waiting with us (we say so in `reqq`); more are rejected.
        public var maxPeerRequests = 2000
        public var clientName = "Peer 0.1"
        public var listenPort: UInt16?
        /// Choke rounds every this many ticks (a tick is a second).
        public var chokeRoundTicks = 10
        /// Log every message received (PEER_DEBUG).
        public var debugLog = false
        /// BEP 10 extensions besides ut_metadata and ut_pex that this torrent offers (channel pointers, …): their
        /// messages come out as `.extensionMessage`, and `sendExtension` sends them.
        public var extraExtensions: [String] = []
        /// BEP 55 (ut_holepunch): relay rendezvous between peers, and ask a peer to relay when a peer it told us
        /// of cannot be reached (`dialFailed`). The driver must be able to open uTP connections.
        public var holePunch = false
        public init() {}
    }

    /// Progress as the command line shows it.
    public struct Progress: Sendable, Equatable {
        public var havePieces: Int
        public var wantedPieces: Int
        public var downloaded: Int64
        public var uploaded: Int64
        public var peers: Int
        public var complete: Bool
    }

    /// Where a connected peer is, as the driver knows it.
    public struct Endpoint: Sendable, Equatable {
        /// The IP address as text: the unit of trust and bans.
        public var host: String
        /// The address's bytes (4 or 16) and the remote port, for PEX; nil when unknown.
        public var ip: [UInt8]?
        public var port: UInt16?
        public init(host: String, ip: [UInt8]?, port: UInt16?) {
            self.host = host
            self.ip = ip
            self.port = port
        }
        /// "host:port", as status pages show it.
        public var display: String { self.port.map { "\(self.host):\($0)" } ?? self.host }
    }

    /// One connected peer, as a status page shows it.
    public struct PeerInfo: Sendable {
        public var key: Int
        public var endpoint: Endpoint
        public var client: String?
        /// Pieces it has, 0…1.
        public var progress: Double
        /// Bytes per second received from it, smoothed.
        public var downloadRate: Double
        public var outgoing: Bool
        public var snubbed: Bool
        public var amChoking: Bool
        public var peerInterested: Bool
    }

    /// What the driver carries out.
    public enum Action: Sendable {
        /// Close the peer's connection (then tell the machine `peerClosed`).
        case close(peer: Int)
        /// Check the assembled piece's hash and write it; answer with `pieceChecked`.
        case checkAndWrite(piece: Int, bytes: [UInt8])
        /// Read the whole verified piece for serving; answer with `pieceRead`.
        case read(piece: Int, length: Int)
        /// Peers learnt from others (PEX), as "host:port", to connect to.
        case dial([String])
        /// A v2 file's piece layer arrived from peers and matched its root: verify its pieces with it.
        case pieceLayer(root: [UInt8], layer: [UInt8])
        /// Every piece layer is known now (keep them with the torrent's metadata).
        case pieceLayersComplete([[UInt8]: [UInt8]])
        /// A piece is verified and on disk (wake readers waiting for it).
        case pieceVerified(Int)
        /// Every wanted piece is in (`quiet`: it was so from the start).
        case downloadComplete(quiet: Bool)
        /// Save resume data for these pieces; answer with `resumeSaved`.
        case saveResume(Bitfield)
        /// A message of a registered extension the machine does not handle itself.
        case extensionMessage(peer: Int, name: String, payload: ByteBuffer)
        /// A relay asked us to open a uTP connection to this "host:port" now (BEP 55): the other side does too.
        case holePunch(String)
        /// The "host:port" we dialled is this node (the handshake carried our peer id): never dial it again.
        case ownAddress(String)
        /// A line worth logging.
        case log(String)
    }

    /// What became of a piece the machine asked to be checked and written.
    public enum PieceOutcome: Sendable, Equatable {
        case verified
        case hashFailed
        /// The write failed: no one's fault, the piece is fetched again.
        case notWritten
    }

    public let metainfo: TorrentMetainfo
    public let map: PieceMap
    public let configuration: Configuration
    public let localID: PeerID
    /// The extended messages we offer.
    public private(set) var extensions: ExtensionRegistry

    private var picker: PiecePicker
    private var choker: Choker
    private var trust = TrustLedger()
    private let depth: PipelineDepth
    private var readCache: ReadCache
    private var peers: [Int: Peer] = [:]
    private var rng: SeededGenerator
    private var layerFetch: PieceLayerFetch?
    /// Piece layers we know (from the torrent or learnt), to serve hash requests.
    private var pieceLayers: [[UInt8]: [UInt8]]
    private var uploadLimiter: RateLimiter
    private var downloadLimiter: RateLimiter
    /// Blocks read for peers, waiting for the upload limiter.
    private var uploadQueue: Deque<(key: Int, message: PeerMessage)> = []
    private var pieceBuffers: [Int: [UInt8]] = [:]
    /// Buffers of pieces written out, kept for the next pieces.
    private var spareBuffers: [[UInt8]] = []
    /// Bytes of pieces handed out for checking and writing, not done yet.
    private var pendingWriteBytes = 0
    /// Requests waiting on a piece's read from disk.
    private var pendingReads: [Int: [(key: Int, block: BlockRef)]] = [:]
    private var downloaded: Int64 = 0
    private var uploaded: Int64 = 0
    /// Bytes of each piece sent to peers, and how many pieces have had at least their size sent (the first
    /// full copy is out when this is the piece count; a block sent twice counts twice).
    private var uploadedByPiece: [Int]
    public private(set) var piecesUploadedOnce = 0
    /// Initial seeding: the peer each piece was first asked by (-1: nobody yet), and how many were asked for;
    /// nil when the torrent did not start complete or once every piece was asked for.
    private var firstAskedBy: [Int]?
    private var piecesAsked = 0
    private var ticks = 0
    private var nextTick: Instant
    private var nextPace: Instant
    private var resumeDirty = false
    private var resumeSaving = false
    private var lastResumeSave: Instant = .zero
    private var stopped = false
    private var progressChanged = true
    private var actions: Deque<Action> = []
    /// Peers with bytes waiting in their session, in the order they got them.
    private var transmitting: Deque<Int> = []

    /// The picker priority of pieces a reader waits for: above every other.
    public static let deadlinePriority: UInt8 = 255
    /// How often rate-limited transfers are paced.
    public static let paceInterval: Duration = .milliseconds(50)

    /// - Parameters:
    ///   - have: pieces already verified on disk.
    ///   - pieceLayers: v2 piece layers known already, by pieces root (the torrent's, or learnt before).
    ///   - seed: seeds the generator behind picking and choking (a simulation passes a fixed one).
    public init(
        metainfo: TorrentMetainfo, have: Bitfield, pieceLayers: [[UInt8]: [UInt8]], configuration: Configuration,
        localID: PeerID, seed: UInt64, at now: Instant
    ) {
        let map = PieceMap(metainfo)
        self.metainfo = metainfo
        self.map = map
        self.configuration = configuration
        self.localID = localID
        self.extensions = ExtensionRegistry(pex: !metainfo.isPrivate)
        for name in configuration.extraExtensions { self.extensions.register(name) }
        if configuration.holePunch { self.extensions.register(HolePunchMessage.name) }
        self.rng = SeededGenerator(seed: seed)
        self.pieceLayers = pieceLayers
        self.uploadedByPiece = Array(repeating: 0, count: map.pieceCount)
        self.picker = PiecePicker(map: map, have: have)
        self.picker.sequential = configuration.sequential
        if !configuration.unselectedFiles.isEmpty {
            for piece in map.allPieces where map.files(inPiece: piece).allSatisfy(configuration.unselectedFiles.contains) {
                self.picker.setPriority(0, pieces: piece.value..<piece.value + 1)
            }
        }
        for file in configuration.highPriorityFiles.sorted() where map.files.indices.contains(file) {
            for i in map.pieces(ofFile: file) where self.picker.priority(of: i) > 0 {
                self.picker.setPriority(2, pieces: i..<i + 1)
            }
        }
        if configuration.firstLastPieces {
            for file in map.files where !file.isPadding && file.length > 0 {
                let pieces = map.pieces(ofFile: file.index)
                for i in Set([pieces.lowerBound, pieces.upperBound - 1]) where self.picker.priority(of: i) > 0 {
                    self.picker.setPriority(3, pieces: i..<i + 1)
                }
            }
        }
        // A v2 torrent from a magnet link knows each file's root but not its piece layer: those pieces wait
        // (priority 0) until the layer arrives from peers.
        var needed: [(fileIndex: Int, root: [UInt8], pieceCount: Int)] = []
        if metainfo.version == .v2 {
            for file in map.files where !file.isPadding && !configuration.unselectedFiles.contains(file.index) {
                let pieces = map.pieces(ofFile: file.index)
                guard let root = file.piecesRoot, pieces.count > 1, pieceLayers[root] == nil else { continue }
                needed.append((file.index, root, pieces.count))
                self.picker.setPriority(0, pieces: pieces)
            }
        }
        if !needed.isEmpty { self.layerFetch = PieceLayerFetch(needed: needed, pieceLength: map.pieceLength) }
        self.choker = Choker(slots: configuration.uploadSlots)
        self.depth = PipelineDepth(bounds: configuration.pipelineDepth, queueTime: configuration.requestQueueTime)
        self.readCache = ReadCache(bytes: configuration.readCacheBytes, pieceLength: map.pieceLength)
        self.uploadLimiter = RateLimiter(rate: configuration.maxUploadRate)
        self.downloadLimiter = RateLimiter(rate: configuration.maxDownloadRate)
        self.nextTick = now + .seconds(1)
        self.nextPace = now + Self.paceInterval
        self.lastResumeSave = now
        if self.isComplete { self.actions.append(.downloadComplete(quiet: true)) }
        if self.isComplete && configuration.initialSeeding { self.firstAskedBy = Array(repeating: -1, count: map.pieceCount) }
    }

    // MARK: getters

    /// The 20-byte hashes peers may use in handshakes for this torrent.
    public var handshakeHashes: [[UInt8]] {
        [self.metainfo.infoHashes.v1?.bytes, self.metainfo.infoHashes.v2?.truncated].compactMap { $0 }
    }

    /// Every wanted piece is verified and every piece layer known.
    public var isComplete: Bool { self.picker.isComplete && self.layerFetch == nil }

    /// The verified pieces.
    public var have: Bitfield { self.picker.have }

    public var progress: Progress {
        let wanted = (0..<self.picker.pieceCount).reduce(0) { $0 + (self.picker.priority(of: $1) > 0 ? 1 : 0) }
        return Progress(havePieces: self.picker.have.setCount, wantedPieces: wanted, downloaded: self.downloaded,
            uploaded: self.uploaded, peers: self.peers.count, complete: self.picker.isComplete)
    }

    /// Bytes of wanted pieces not verified yet (a tracker's `left`).
    public var bytesLeft: Int64 {
        (0..<self.picker.pieceCount).reduce(Int64(0)) {
            $0 + (self.picker.have[$1] || self.picker.priority(of: $1) == 0 ? 0 : Int64(self.picker.pieceSize($1)))
        }
    }

    /// The connected peers that completed their handshake.
    public var connectedPeers: [PeerInfo] {
        self.peers.values.filter { $0.session.remote != nil }.sorted { $0.key < $1.key }.map { p in
            PeerInfo(key: p.key, endpoint: p.endpoint, client: p.session.remoteExtensions?.client,
                progress: p.has.count > 0 ? Double(p.has.setCount) / Double(p.has.count) : 0,
                downloadRate: p.rate, outgoing: p.role == .outgoing, snubbed: p.snubbed,
                amChoking: p.session.amChoking, peerInterested: p.session.peerInterested)
        }
    }

    /// Peers attached, handshake or not.
    public var peerCount: Int { self.peers.count }

    /// Hosts banned for sending corrupt data.
    public var banned: Set<String> { self.trust.banned }

    /// True once since the progress last changed (the driver then shows `progress`).
    public func takeProgressChanged() -> Bool {
        defer { self.progressChanged = false }
        return self.progressChanged
    }

    /// When `handleTimeout(at:)` is due next: the one-second tick (choking, snubbing, PEX, keep-alives,
    /// resume), or the pacing of rate-limited transfers.
    public var nextTimeout: Instant {
        self.configuration.maxUploadRate != nil || self.configuration.maxDownloadRate != nil
            ? min(self.nextTick, self.nextPace) : self.nextTick
    }

    // MARK: outputs

    /// Bytes to write to a peer's connection, grouped by peer: write each and flush the connection when the
    /// key changes or none is left. Call after every input and command until it returns nil.
    public func pollTransmit() -> (peer: Int, bytes: ByteBuffer)? {
        while let key = self.transmitting.first {
            if let p = self.peers[key], let bytes = p.session.pollTransmit() { return (key, bytes) }
            self.transmitting.removeFirst()
            self.peers[key]?.queuedForTransmit = false
        }
        return nil
    }

    /// The next thing for the driver to do. Call after every input and command until it returns nil.
    public func pollAction() -> Action? { self.actions.popFirst() }

    // MARK: inputs: peers

    /// Adopts a connected peer under `key` (unique while it is attached).
    /// - Returns: false when it is refused (its host is banned, or the torrent has all the peers it takes):
    ///   close its connection and do not report it again.
    public func addPeer(_ key: Int, role: PeerWireSession.Role, endpoint: Endpoint, at now: Instant) -> Bool {
        if self.trust.isBanned(endpoint.host) || self.peers.count >= self.configuration.maxPeers { return false }
        var config = PeerWireSession.Configuration(infoHashes: self.handshakeHashes, localID: self.localID,
            pieceCount: self.picker.pieceCount)
        // The BEP 52 upgrade bit only for hybrids (libtorrent drops a v1-only peer that sets it).
        config.reserved = [.extensionProtocol, .fast]
        if self.metainfo.version == .hybrid { config.reserved.insert(.v2Upgrade) }
        let have = self.picker.have
        config.openingMessage = have.allSet ? .haveAll
            : (have.noneSet ? .haveNone : .bitfield(ByteBuffer(bytes: have.bytes)))
        config.extendedHandshake = ExtendedHandshake(
            extensions: self.extensions.ids, client: self.configuration.clientName,
            listenPort: self.configuration.listenPort, requestQueue: self.configuration.maxPeerRequests,
            metadataSize: self.metainfo.infoBytes.count)
        let p = Peer(key: key, session: PeerWireSession(role: role, configuration: config, at: now),
            endpoint: endpoint, pieceCount: self.picker.pieceCount, role: role, at: now)
        self.peers[key] = p
        if self.configuration.debugLog { self.log("attached \(endpoint.host) as \(role)") }
        self.queueTransmit(p)
        return true
    }

    /// Bytes received from a peer.
    public func receive(_ key: Int, _ bytes: ByteBuffer, at now: Instant) {
        guard let p = self.peers[key] else { return }
        p.session.receive(bytes, at: now)
        self.process(p, at: now)
    }

    /// The peer's connection closed (whoever closed it).
    public func peerClosed(_ key: Int, at now: Instant) {
        guard let p = self.peers.removeValue(forKey: key) else { return }
        if self.configuration.debugLog { self.log("disconnected \(p.endpoint.host)") }
        if p.session.remote == nil && !p.session.isClosed && !self.stopped {
            self.log("\(p.endpoint.host) closed the connection before its handshake (does it have this torrent?)")
        }
        if p.joined { self.picker.peerLeft(key, has: p.has) } else {
            for b in p.outstanding { self.picker.requestFailed(b, peer: key) }
        }
        self.layerFetch?.peerLeft(key)
        self.releaseFirstAsks(of: key)
        self.progressChanged = true
    }

    /// The peer's connection takes more bytes (true) or has a megabyte waiting already (false). While it does
    /// not, blocks it asks for are held back.
    public func setWritable(_ key: Int, _ writable: Bool, at now: Instant) {
        guard let p = self.peers[key], p.writable != writable else { return }
        p.writable = writable
        p.unwritableSince = writable ? nil : now
        guard writable else { return }
        p.stalled = false
        while p.writable, let b = p.heldBack.popFirst() {
            self.serve(b, to: p, at: now)
        }
    }

    /// The connection of a peer that takes no more bytes (`setWritable(false)`) sent some of what it holds:
    /// it drains, if slowly, and is not stalled. The driver reports this about once a second at most.
    public func writeProgressed(_ key: Int, at now: Instant) {
        guard let p = self.peers[key], !p.writable else { return }
        p.unwritableSince = now
        p.stalled = false
    }

    // MARK: inputs: disk

    /// The outcome of a `.checkAndWrite`; `buffer` is the piece's buffer back, for reuse.
    public func pieceChecked(_ piece: Int, _ outcome: PieceOutcome, buffer: [UInt8], at now: Instant) {
        let wasFull = self.pendingWriteBytes >= self.configuration.maxPendingWriteBytes
        self.pendingWriteBytes -= buffer.count
        if self.spareBuffers.count < 8 { self.spareBuffers.append(buffer) }
        if wasFull && self.pendingWriteBytes < self.configuration.maxPendingWriteBytes {
            for p in self.orderedPeers { self.requestMore(p, at: now) }
        }
        switch outcome {
        case .verified:
            self.picker.pieceVerified(piece)
            self.resumeDirty = true
            for host in self.trust.verified(piece: piece, bytes: buffer, blockSize: PieceMap.blockSize) {
                self.ban(host, why: "its blocks of piece \(piece) differed from the good copy")
            }
            self.actions.append(.pieceVerified(piece))
            for other in self.orderedPeers where other.session.remote != nil {
                self.send(.have(piece: UInt32(piece)), to: other, at: now)
                self.updateInterest(other, at: now)
            }
            if self.isComplete { self.actions.append(.downloadComplete(quiet: false)) }
        case .hashFailed:
            self.hashFailed(piece, bytes: buffer, at: now)
        case .notWritten:
            self.trust.forget(piece: piece)
            self.picker.pieceFailed(piece)
        }
        self.progressChanged = true
    }

    /// The outcome of a `.read`: the piece's bytes (or why not), for the requests that waited on it.
    public func pieceRead(_ piece: Int, _ result: Result<ByteBuffer, any Error>, at now: Instant) {
        let waiting = self.pendingReads.removeValue(forKey: piece) ?? []
        if case .success(let bytes) = result { self.readCache.insert(piece, bytes) }
        for (key, block) in waiting {
            guard let peer = self.peers[key] else { continue }
            peer.queuedReads -= 1
            switch result {
            case .success(let bytes):
                self.deliver(block, from: bytes, to: peer, at: now)
            case .failure(let error):
                if !self.stopped { self.log("cannot read \(block): \(error)") }
                if peer.session.fastExtension { self.send(.reject(block), to: peer, at: now) }
            }
        }
    }

    /// The resume data asked for by `.saveResume` is written (or failed, which the driver logs).
    public func resumeSaved() { self.resumeSaving = false }

    // MARK: inputs: time

    /// Runs what is due: every second the tick (rates, snubbing, the sessions' keep-alives and idle
    /// timeouts, a choke round every `chokeRoundTicks`, PEX, resume), every `paceInterval` the rate limiters'
    /// pacing. Early or repeated calls do nothing that is not due.
    public func handleTimeout(at now: Instant) {
        if self.configuration.maxUploadRate != nil || self.configuration.maxDownloadRate != nil,
            now >= self.nextPace
        {
            self.nextPace = now + Self.paceInterval
            self.pace(at: now)
        }
        guard now >= self.nextTick else { return }
        self.nextTick = self.nextTick + .seconds(1)
        if self.nextTick <= now { self.nextTick = now + .seconds(1) }
        self.tick(at: now)
    }

    // MARK: commands

    /// Sends an extension message to every peer that offered extension `name` in its handshake; returns how many.
    @discardableResult
    public func sendExtension(_ name: String, payload: ByteBuffer, at now: Instant) -> Int {
        var sent = 0
        for p in self.orderedPeers {
            guard let id = p.session.remoteExtensions?.extensions[name], id != 0, !p.session.isClosed else { continue }
            self.send(.extended(id: id, payload: payload), to: p, at: now)
            sent += 1
        }
        return sent
    }

    /// Where a connected peer listens ("host:port"; nil when an incoming peer did not say), by its key as
    /// `.extensionMessage` names it.
    public func listenAddress(ofPeer key: Int) -> String? {
        self.peers[key].flatMap(self.listenAddress)?.description
    }

    /// A reader waits for `pieces`: those missing are fetched before any other, and requests queued at peers
    /// that have them are cancelled so that these come next. `.pieceVerified` tells when each is in.
    public func prioritize(_ pieces: Range<Int>, at now: Instant) {
        let waited = pieces.clamped(to: 0..<self.picker.pieceCount).filter { !self.picker.have[$0] }
        guard !waited.isEmpty else { return }
        for piece in waited where self.picker.priority(of: piece) < Self.deadlinePriority {
            self.picker.setPriority(Self.deadlinePriority, pieces: piece..<piece + 1)
        }
        // Requests already queued at a peer that has a waited-for piece would be served first: cancel those
        // of other pieces (a peer that already sent them wastes a little).
        for p in self.orderedPeers where waited.contains(where: { p.has[$0] }) {
            for b in p.outstanding where self.picker.priority(of: Int(b.piece)) < Self.deadlinePriority {
                p.outstanding.remove(b)
                self.picker.requestFailed(b, peer: p.key)
                self.send(.cancel(b), to: p, at: now)
            }
        }
        for p in self.orderedPeers {
            self.updateInterest(p, at: now)
            self.requestMore(p, at: now)
        }
    }

    /// The torrent stops: every peer is closed; later disk errors are not worth a line.
    public func stop() {
        self.stopped = true
        for key in self.peers.keys.sorted() { self.actions.append(.close(peer: key)) }
    }

    // MARK: whole pieces from other sources (web seeds)

    /// Claims for `source` (a negative key: peers have non-negative ones) a wanted piece no peer has started;
    /// nil when none is left, or while the download limit is spent (a piece is taken on credit, and the next
    /// waits until it is repaid).
    public func claimWholePiece(source: Int, at now: Instant) -> Int? {
        guard self.downloadLimiter.canSpend(at: now), let piece = self.picker.claimWholePiece(for: source, using: &self.rng)
        else { return nil }
        self.downloadLimiter.spend(self.picker.pieceSize(piece), at: now)
        return piece
    }

    /// Gives back the pieces `source` claimed and did not deliver.
    public func releaseWholePieces(source: Int) {
        self.picker.peerLeft(source, has: Bitfield(count: self.picker.pieceCount))
    }

    /// A whole piece from `source` (named `label` for trust): it is checked and written like one gathered from
    /// peers (a `.checkAndWrite` follows).
    /// - Returns: false when the piece is not wanted from it any more (peers completed it first).
    public func receivedWholePiece(_ piece: Int, bytes: [UInt8], source: Int, label: String) -> Bool {
        guard self.picker.receivedWholePiece(piece, from: source) else { return false }
        self.pieceBuffers[piece] = bytes
        self.trust.sent(piece: piece, block: 0, by: label)
        self.downloaded += Int64(bytes.count)
        self.finishPiece(piece)
        return true
    }

    // MARK: message handling

    private func log(_ line: String) { self.actions.append(.log(line)) }

    /// The peers in key order: loops over them run in the same order on every run (a simulation replays).
    private var orderedPeers: [Peer] { self.peers.values.sorted { $0.key < $1.key } }

    private func queueTransmit(_ p: Peer) {
        guard !p.queuedForTransmit else { return }
        p.queuedForTransmit = true
        self.transmitting.append(p.key)
    }

    private func send(_ m: PeerMessage, to p: Peer, at now: Instant) {
        p.session.handle(.send(m), at: now)
        self.queueTransmit(p)
    }

    private func close(_ p: Peer, reason: String?) {
        if let reason { self.log("dropped \(p.endpoint.host): \(reason)") }
        self.actions.append(.close(peer: p.key))
    }

    private func process(_ p: Peer, at now: Instant) {
        while let event = p.session.pollEvent() {
            switch event {
            case .handshake, .extendedHandshake:
                if self.configuration.debugLog { self.log("\(p.endpoint.host) <- \(event)") }
            case .message(let m):
                if self.configuration.debugLog { self.log("\(p.endpoint.host) <- \(String(describing: m).prefix(120))") }
                self.handle(m, from: p, at: now)
            case .closed(.connectedToSelf):
                // Not the peer's fault, and nobody to tell the user about: a tracker named us to ourselves.
                if p.role == .outgoing, let address = self.listenAddress(p) { self.actions.append(.ownAddress(address.description)) }
                self.close(p, reason: nil)
            case .closed(let reason):
                self.close(p, reason: reason.map { "\($0)" })
            }
        }
        self.queueTransmit(p)
    }

    private func handle(_ m: PeerMessage, from p: Peer, at now: Instant) {
        switch m {
        case .bitfield, .haveAll, .haveNone:
            guard let bits = p.session.peerBitfield, let b = try? Bitfield(bytes: bits, count: self.picker.pieceCount)
            else { break }
            if p.joined {
                // A later bitfield (aria2) adds pieces: count each new one once.
                for i in b.setIndices where !p.has[i] {
                    p.has[i] = true
                    self.picker.peerHave(i)
                }
            } else {
                p.has = b
                self.picker.peerJoined(has: p.has)
                p.joined = true
            }
            self.updateInterest(p, at: now)
            self.askForLayers(p, at: now)
        case .have(let i):
            if !p.joined {
                p.joined = true
                self.picker.peerJoined(has: p.has)
            }
            if !p.has[Int(i)] {
                p.has[Int(i)] = true
                self.picker.peerHave(Int(i))
            }
            self.updateInterest(p, at: now)
            self.askForLayers(p, at: now)
        case .unchoke:
            self.requestMore(p, at: now)
        case .choke:
            for b in p.outstanding { self.picker.requestFailed(b, peer: p.key) }
            p.outstanding.removeAll()
        case .reject(let b):
            if p.outstanding.remove(b) != nil { self.picker.requestFailed(b, peer: p.key) }
            // Not asked of it again until the next choke round (a seed steering its first copy, or a peer
            // that cannot read the piece).
            if Int(b.piece) < self.picker.pieceCount {
                if p.refused == nil { p.refused = Bitfield(count: self.picker.pieceCount) }
                p.refused![Int(b.piece)] = true
            }
            self.requestMore(p, at: now)
        case .piece(let index, let offset, let data):
            self.receivedBlock(index: index, offset: offset, data: data, from: p, at: now)
        case .interested:
            if p.session.amChoking && self.choker.hasFreeSlot(unchoked: self.uploading) { self.send(.unchoke, to: p, at: now) }
        case .notInterested:
            // Its slot is free until the next round: give it to a peer that waits (the slots are for peers
            // that download; an unchoked peer that wants nothing leaves our upload idle).
            guard !p.session.amChoking, self.choker.hasFreeSlot(unchoked: self.uploading) else { break }
            let waiting = self.orderedPeers.filter { $0.session.amChoking && $0.session.peerInterested && !$0.session.isClosed }
            if let next = waiting.randomElement(using: &self.rng) { self.send(.unchoke, to: next, at: now) }
        case .request(let b):
            self.serve(b, to: p, at: now)
        case .cancel(let b):
            self.cancelled(b, by: p)
        case .extended(let id, let payload):
            switch self.extensions.name(of: id) {
            case UTMetadataMessage.name?:
                self.serveMetadata(payload, to: p, at: now)
            case PEXMessage.name?:
                self.receivedPEX(payload, from: p)
            case HolePunchMessage.name? where self.configuration.holePunch:
                self.receivedHolePunch(payload, from: p, at: now)
            case let name?:
                self.actions.append(.extensionMessage(peer: p.key, name: name, payload: payload))
            case nil:
                break
            }
        case .hashRequest(let r):
            self.serveHashes(r, to: p, at: now)
        case .hashes(let r, let hashes):
            self.receivedHashes(r, Array(buffer: hashes), from: p, at: now)
        case .hashReject(let r):
            self.layerFetch?.rejected(r, by: p.key)
            self.askForLayers(p, at: now)
        default:
            break
        }
    }

    /// Peers we upload to: unchoked and interested (an unchoked peer that wants nothing holds no slot).
    private var uploading: Int { self.peers.values.count(where: { !$0.session.amChoking && $0.session.peerInterested }) }

    private func updateInterest(_ p: Peer, at now: Instant) {
        let wants = !self.picker.isComplete
            && p.has.setIndices.contains { !self.picker.have[$0] && self.picker.priority(of: $0) > 0 }
        if wants && !p.session.amInterested {
            self.send(.interested, to: p, at: now)
        } else if !wants && p.session.amInterested {
            self.send(.notInterested, to: p, at: now)
        }
        if wants && !p.session.peerChoking { self.requestMore(p, at: now) }
    }

    private func requestMore(_ p: Peer, at now: Instant) {
        guard !p.session.peerChoking, p.session.amInterested,
            self.pendingWriteBytes < self.configuration.maxPendingWriteBytes
        else { return }
        // As many as the pipeline has room for and the download limit allows (the picker marks every block it
        // returns as requested, so ask it for no more than will be sent), in batches.
        let depth = self.depth.depth(rate: p.rate, snubbed: p.snubbed,
            requestQueue: p.session.remoteExtensions?.requestQueue)
        guard self.depth.shouldTopUp(depth: depth, outstanding: p.outstanding.count) else { return }
        let allowance = self.downloadLimiter.allowance(at: now)
        let blocks = allowance > Int64(Int32.max) ? Int(Int32.max)
            : Int((allowance + Int64(PieceMap.blockSize) - 1) / Int64(PieceMap.blockSize))
        let room = min(depth - p.outstanding.count, blocks)
        guard room > 0 else { return }
        // The snub clock runs from when we started waiting on the peer, not from when it connected: a peer
        // that unchoked us a minute after it connected has had no chance to send yet.
        if p.outstanding.isEmpty { p.waitingSince = now }
        for b in self.picker.pick(for: p.key, has: p.refused.map { p.has.subtracting($0) } ?? p.has, count: room, outstanding: p.outstanding.count, using: &self.rng) {
            p.outstanding.insert(b)
            self.send(.request(b), to: p, at: now)
            self.downloadLimiter.spend(Int(b.length), at: now)
        }
    }

    // MARK: downloading

    private func receivedBlock(index: UInt32, offset: UInt32, data: ByteBuffer, from p: Peer, at now: Instant) {
        let block = BlockRef(piece: index, offset: offset, length: UInt32(data.readableBytes))
        guard p.outstanding.remove(block) != nil else { return }
        switch self.picker.received(block, from: p.key) {
        case .unexpected:
            return
        case .accepted(let complete, let cancel):
            for k in cancel {
                if let other = self.peers[k], other.outstanding.remove(block) != nil {
                    self.send(.cancel(block), to: other, at: now)
                }
            }
            let piece = Int(index)
            let size = self.picker.pieceSize(piece)
            if self.pieceBuffers[piece] == nil {
                // Not zeroed: the piece is checked only once every block has been copied in.
                self.pieceBuffers[piece] = self.spareBuffers.last?.count == size ? self.spareBuffers.removeLast()
                    : [UInt8](unsafeUninitializedCapacity: size) { _, count in count = size }
            }
            data.withUnsafeReadableBytes { raw in
                self.pieceBuffers[piece]!.withUnsafeMutableBytes { dst in
                    dst.baseAddress!.advanced(by: Int(offset)).copyMemory(from: raw.baseAddress!, byteCount: raw.count)
                }
            }
            self.trust.sent(piece: piece, block: block.blockIndex, by: p.endpoint.host)
            self.downloaded += Int64(data.readableBytes)
            p.receivedSecond += Int64(data.readableBytes)
            p.receivedRound += Int64(data.readableBytes)
            p.waitingSince = now
            p.snubbed = false
            if complete { self.finishPiece(piece) }
            self.requestMore(p, at: now)
        }
    }

    private func finishPiece(_ piece: Int) {
        guard let bytes = self.pieceBuffers.removeValue(forKey: piece) else { return }
        self.pendingWriteBytes += bytes.count
        self.actions.append(.checkAndWrite(piece: piece, bytes: bytes))
    }

    /// A piece failed its hash: fetch it again; the host that sent it loses trust and is banned after repeats
    /// (with several senders, the good copy decides later: `TrustLedger`).
    private func hashFailed(_ piece: Int, bytes: [UInt8], at now: Instant) {
        self.picker.pieceFailed(piece)
        let (hosts, banned) = self.trust.failed(piece: piece, bytes: bytes, blockSize: PieceMap.blockSize)
        self.log("piece \(piece) failed its hash check (from \(hosts.joined(separator: ", ")))")
        for host in banned { self.ban(host, why: nil) }
        for p in self.orderedPeers { self.requestMore(p, at: now) }
    }

    private func ban(_ host: String, why: String?) {
        self.log("banned \(host) after sending corrupt data" + (why.map { " (\($0))" } ?? ""))
        for p in self.orderedPeers where p.endpoint.host == host { self.actions.append(.close(peer: p.key)) }
    }

    // MARK: serving

    private func serve(_ b: BlockRef, to p: Peer, at now: Instant) {
        // In a v2 torrent each file's last piece is short, but libtorrent lays files out padded to whole pieces
        // and asks for whole blocks there: the bytes past the file's end are served as zeros.
        let limit = { (piece: PieceIndex) in self.map.version == .v2 ? self.map.pieceLength : self.map.pieceSize(piece) }
        guard !p.session.amChoking, self.picker.have[Int(b.piece)], p.queuedReads < self.configuration.maxQueuedReads,
            p.heldBack.count < self.configuration.maxPeerRequests,
            let piece = self.map.index(Int(b.piece)), Int(b.offset) + Int(b.length) <= limit(piece), b.length > 0
        else {
            if p.session.fastExtension { self.send(.reject(b), to: p, at: now) }
            return
        }
        if self.refusesAsDouble(piece.value, to: p) {
            self.send(.reject(b), to: p, at: now)
            return
        }
        if let cached = self.readCache.get(piece.value) {
            self.deliver(b, from: cached, to: p, at: now)
            return
        }
        // Read the whole piece once (one read instead of one per block); the requests for its other blocks
        // wait for it.
        p.queuedReads += 1
        if self.pendingReads[piece.value] != nil {
            self.pendingReads[piece.value]!.append((p.key, b))
            return
        }
        self.pendingReads[piece.value] = [(p.key, b)]
        self.actions.append(.read(piece: piece.value, length: self.map.pieceSize(piece)))
    }

    /// Initial seeding (`Configuration.initialSeeding`): whether to refuse `p` a piece another peer asked for
    /// first, because `p` lacks a piece nobody has asked for yet (it asks for that one instead). Only peers
    /// that speak the fast extension, which can be told so.
    private func refusesAsDouble(_ piece: Int, to p: Peer) -> Bool {
        guard self.firstAskedBy != nil, p.session.fastExtension else { return false }
        let first = self.firstAskedBy![piece]
        if first < 0 {
            self.firstAskedBy![piece] = p.key
            self.piecesAsked += 1
            if self.piecesAsked == self.map.pieceCount { self.firstAskedBy = nil }
            return false
        }
        guard first != p.key else { return false }
        return self.firstAskedBy!.indices.contains { self.firstAskedBy![$0] < 0 && !p.has[$0] }
    }

    /// Initial seeding: pieces `key` asked for first and did not get whole (we choked it, or it left) are
    /// open to the next peer that asks.
    private func releaseFirstAsks(of key: Int) {
        guard self.firstAskedBy != nil else { return }
        for i in self.firstAskedBy!.indices where self.firstAskedBy![i] == key && self.uploadedByPiece[i] < self.picker.pieceSize(i) {
            self.firstAskedBy![i] = -1
            self.piecesAsked -= 1
        }
    }

    /// The peer no longer wants `b` (it came from someone else): drop it wherever it still waits here, held
    /// back for a slow connection, for the disk, or for the upload limiter (BEP 3). Bytes already handed to
    /// the connection are gone.
    private func cancelled(_ b: BlockRef, by p: Peer) {
        if let i = p.heldBack.firstIndex(of: b) {
            p.heldBack.remove(at: i)
            return
        }
        if let waiting = self.pendingReads[Int(b.piece)], let i = waiting.firstIndex(where: { $0.key == p.key && $0.block == b }) {
            self.pendingReads[Int(b.piece)]!.remove(at: i)
            p.queuedReads -= 1
            return
        }
        if let i = self.uploadQueue.firstIndex(where: {
            if $0.key == p.key, case .piece(b.piece, b.offset, _) = $0.message { true } else { false }
        }) {
            self.uploadQueue.remove(at: i)
        }
    }

    /// Sends one block of a piece in memory (bytes past a v2 file's end as zeros), or queues it for the
    /// upload limiter.
    private func deliver(_ b: BlockRef, from piece: ByteBuffer, to p: Peer, at now: Instant) {
        guard !p.session.amChoking else {
            // Choked while the read was on its way: the request is void (BEP 6: say so).
            if p.session.fastExtension { self.send(.reject(b), to: p, at: now) }
            return
        }
        guard p.writable else {
            // The peer's connection has a megabyte waiting already: send this when it drains.
            p.heldBack.append(b)
            return
        }
        let offset = Int(b.offset)
        let end = offset + Int(b.length)
        let count = piece.readableBytes
        var buffer: ByteBuffer
        if end <= count {
            buffer = piece.getSlice(at: piece.readerIndex + offset, length: Int(b.length))!
        } else {
            buffer = ByteBufferAllocator().buffer(capacity: Int(b.length))
            if offset < count {
                buffer.writeImmutableBuffer(piece.getSlice(at: piece.readerIndex + offset, length: count - offset)!)
            }
            buffer.writeRepeatingByte(0, count: end - max(offset, count))
        }
        let message = PeerMessage.piece(piece: b.piece, offset: b.offset, data: buffer)
        if self.uploadQueue.isEmpty && self.uploadLimiter.canSpend(at: now) {
            self.sendPiece(message, bytes: Int(b.length), to: p, at: now)
        } else {
            self.uploadQueue.append((p.key, message))
        }
    }

    private func sendPiece(_ message: PeerMessage, bytes: Int, to p: Peer, at now: Instant) {
        self.send(message, to: p, at: now)
        self.uploaded += Int64(bytes)
        if case .piece(let index, _, _) = message {
            let piece = Int(index)
            let before = self.uploadedByPiece[piece]
            self.uploadedByPiece[piece] += bytes
            if before < self.picker.pieceSize(piece) && self.uploadedByPiece[piece] >= self.picker.pieceSize(piece) {
                self.piecesUploadedOnce += 1
            }
        }
        p.sentRound += Int64(bytes)
        self.uploadLimiter.spend(bytes, at: now)
    }

    /// With a rate limit: sends queued blocks and asks for more as the limiters allow.
    private func pace(at now: Instant) {
        while let (key, message) = self.uploadQueue.first, self.uploadLimiter.canSpend(at: now) {
            self.uploadQueue.removeFirst()
            guard let p = self.peers[key], !p.session.amChoking, case .piece(_, _, let data) = message else { continue }
            self.sendPiece(message, bytes: data.readableBytes, to: p, at: now)
        }
        if self.downloadLimiter.rate != nil && self.downloadLimiter.canSpend(at: now) {
            for p in self.orderedPeers { self.requestMore(p, at: now) }
        }
    }

    // MARK: peer exchange (BEP 11)

    /// Where a connected peer accepts connections: the address we dialled, or for an incoming connection its
    /// address with the listen port from its extended handshake. nil when unknown.
    private func listenAddress(_ p: Peer) -> PEXPeer? {
        guard let ip = p.endpoint.ip,
            let port = p.role == .outgoing ? p.endpoint.port : p.session.remoteExtensions?.listenPort
        else { return nil }
        var flags: PEXPeer.Flags = p.role == .outgoing ? [.reachable] : []
        if p.has.allSet { flags.insert(.seed) }
        // BEP 11's 0x08 and 0x04: it takes hole punches (which go over uTP). libtorrent asks a relay for a
        // rendezvous only with peers so marked.
        if let id = p.session.remoteExtensions?.extensions[HolePunchMessage.name], id != 0 {
            flags.formUnion([.holepunch, .utp])
        }
        return PEXPeer(ip: ip, port: port, flags: flags)
    }

    /// Tells each peer that speaks ut_pex which peers we are connected to now, as changes since the last time.
    private func sendPEX(at now: Instant) {
        guard !self.metainfo.isPrivate else { return }
        let everyone = self.orderedPeers.compactMap { p in self.listenAddress(p).map { (p.key, $0) } }
        for p in self.orderedPeers {
            guard let id = p.session.remoteExtensions?.extensions[PEXMessage.name], id != 0,
                let message = p.pex.next(current: everyone.filter { $0.0 != p.key }.map(\.1),
                    connectedAt: p.connectedAt, at: now)
            else { continue }
            self.send(.extended(id: id, payload: message.encoded()), to: p, at: now)
        }
    }

    private func receivedPEX(_ payload: ByteBuffer, from p: Peer) {
        let message: PEXMessage
        do { message = try PEXMessage(decoding: payload) } catch {
            self.close(p, reason: "\(error)")
            return
        }
        let known = Set(self.peers.values.compactMap { self.listenAddress($0).map { PEXPeer(ip: $0.ip, port: $0.port) } })
        let new = message.added.filter { !known.contains(PEXPeer(ip: $0.ip, port: $0.port)) }
        guard !new.isEmpty else { return }
        self.log("learnt \(new.count) peer\(new.count == 1 ? "" : "s") from \(p.endpoint.host) through PEX")
        if self.configuration.holePunch {
            if self.learntFrom.count + new.count > Self.maxLearntFrom { self.learntFrom.removeAll() }
            for peer in new { self.learntFrom[peer.description] = p.key }
        }
        self.actions.append(.dial(new.map(\.description)))
    }

    // MARK: hole punching (BEP 55)

    /// Who told us of each address learnt through PEX (the relay to ask when it cannot be reached), at most
    /// `maxLearntFrom`; and the addresses a rendezvous was asked for already.
    private var learntFrom: [String: Int] = [:]
    private var rendezvousAsked: Set<String> = []
    private static let maxLearntFrom = 4096

    /// A dial of `address` failed: if a peer that relays (ut_holepunch) told us of it, ask it for a rendezvous,
    /// once per address.
    public func dialFailed(_ address: String, at now: Instant) {
        guard self.configuration.holePunch, let key = self.learntFrom[address], let relay = self.peers[key],
            let id = relay.session.remoteExtensions?.extensions[HolePunchMessage.name], id != 0,
            let target = Self.pexPeer(address), self.rendezvousAsked.insert(address).inserted
        else { return }
        if self.rendezvousAsked.count > Self.maxLearntFrom { self.rendezvousAsked = [address] }
        self.log("\(address) cannot be reached: asking \(relay.endpoint.host) to relay a hole punch")
        self.send(.extended(id: id, payload: HolePunchMessage(.rendezvous, peer: target).encoded()), to: relay, at: now)
    }

    private func receivedHolePunch(_ payload: ByteBuffer, from p: Peer, at now: Instant) {
        // BEP 55: messages from a peer that did not offer the extension are ignored.
        guard let id = p.session.remoteExtensions?.extensions[HolePunchMessage.name], id != 0 else { return }
        let message: HolePunchMessage
        do { message = try HolePunchMessage(decoding: payload) } catch {
            self.close(p, reason: "\(error)")
            return
        }
        switch message.kind {
        case .rendezvous:
            let refuse: (HolePunchMessage.ErrorCode) -> Void = { code in
                let error = HolePunchMessage(.error, peer: message.peer, error: code)
                self.send(.extended(id: id, payload: error.encoded()), to: p, at: now)
            }
            guard let target = self.peer(at: message.peer) else { return refuse(.notConnected) }
            guard target !== p else { return refuse(.noSuchPeer) }
            guard let tid = target.session.remoteExtensions?.extensions[HolePunchMessage.name], tid != 0 else {
                return refuse(.noSupport)
            }
            guard let initiator = self.holePunchEndpoint(p), let other = self.holePunchEndpoint(target) else {
                return refuse(.noSuchPeer)
            }
            self.log("relaying a hole punch between \(initiator) and \(other)")
            self.send(.extended(id: tid, payload: HolePunchMessage(.connect, peer: initiator).encoded()), to: target,
                at: now)
            self.send(.extended(id: id, payload: HolePunchMessage(.connect, peer: other).encoded()), to: p, at: now)
        case .connect:
            // Already connected to it: nothing to do (BEP 55).
            guard self.peer(at: message.peer) == nil else { return }
            self.log("\(p.endpoint.host) relays a hole punch: connecting to \(message.peer) over uTP")
            self.actions.append(.holePunch(message.peer.description))
        case .error:
            self.log("\(p.endpoint.host) cannot relay a hole punch to \(message.peer): error \(message.errorCode)")
        }
    }

    /// The connected peer at `endpoint`: its remote address, or the address it listens on.
    private func peer(at endpoint: PEXPeer) -> Peer? {
        self.orderedPeers.first { p in
            guard p.endpoint.ip == endpoint.ip, !p.session.isClosed else { return false }
            return p.endpoint.port == endpoint.port || self.listenAddress(p)?.port == endpoint.port
        }
    }

    /// Where the other side of a hole punch is to send its uTP packets: the peer's address with the port it
    /// listens on (its uTP port; a NAT that keeps ports maps it to the same number).
    private func holePunchEndpoint(_ p: Peer) -> PEXPeer? {
        self.listenAddress(p).map { PEXPeer(ip: $0.ip, port: $0.port) }
    }

    static func pexPeer(_ address: String) -> PEXPeer? {
        guard let colon = address.lastIndex(of: ":"), let port = UInt16(address[address.index(after: colon)...]) else {
            return nil
        }
        var host = address[..<colon]
        if host.hasPrefix("["), host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        let v4 = host.split(separator: ".", omittingEmptySubsequences: false).compactMap { UInt8($0) }
        guard v4.count == 4, host.split(separator: ".").count == 4 else { return nil }  // IPv4 only here
        return PEXPeer(ip: v4, port: port)
    }

    // MARK: v2 piece layers (BEP 52 hash requests)

    /// Asks `p` for runs of the piece layers we lack, for files it has pieces of.
    private func askForLayers(_ p: Peer, at now: Instant) {
        guard self.layerFetch != nil, p.session.remote != nil else { return }
        let map = self.map
        let has = p.has
        for r in self.layerFetch!.requests(for: p.key, has: { file in map.pieces(ofFile: file).contains { has[$0] } }) {
            self.send(.hashRequest(r), to: p, at: now)
        }
    }

    private func receivedHashes(_ r: HashRequest, _ hashes: [UInt8], from p: Peer, at now: Instant) {
        guard self.layerFetch != nil else { return }
        switch self.layerFetch!.received(r, hashes: hashes, from: p.key) {
        case .unexpected, .stored:
            break
        case .invalid:
            self.log("\(p.endpoint.host) sent piece-layer hashes that do not match the file's root; asking others")
        case .layer(let fileIndex, let root, let layer):
            self.pieceLayers[root] = layer
            self.actions.append(.pieceLayer(root: root, layer: layer))
            self.picker.setPriority(1, pieces: self.map.pieces(ofFile: fileIndex))
            if self.layerFetch!.isDone {
                self.layerFetch = nil
                self.log("got every piece layer from peers")
                self.actions.append(.pieceLayersComplete(self.pieceLayers))
            }
            for other in self.orderedPeers { self.updateInterest(other, at: now) }
            if self.isComplete { self.actions.append(.downloadComplete(quiet: false)) }
        }
        self.askForLayers(p, at: now)
    }

    /// Answers a hash request for a piece layer we know; anything else is rejected.
    private func serveHashes(_ r: HashRequest, to p: Peer, at now: Instant) {
        let height = MerkleTree.log2(self.map.pieceLength / PieceMap.blockSize)
        if r.baseLayer == UInt32(height), let layer = self.pieceLayers[r.piecesRoot],
            let hashes = MerkleProof.answer(layer: layer, padHeight: height, index: Int(r.index), length: Int(r.length),
                proofLayers: Int(r.proofLayers))
        {
            self.send(.hashes(r, hashes: ByteBuffer(bytes: hashes)), to: p, at: now)
        } else {
            self.send(.hashReject(r), to: p, at: now)
        }
    }

    /// BEP 9: hands the info dictionary to peers that came with a magnet link.
    private func serveMetadata(_ payload: ByteBuffer, to p: Peer, at now: Instant) {
        guard let message = try? UTMetadataMessage(decoding: payload) else {
            p.session.handle(.close, at: now)  // its `.closed` event comes next in `process`
            return
        }
        guard case .request(let piece) = message,
            let theirID = p.session.remoteExtensions?.extensions[UTMetadataMessage.name], theirID != 0
        else { return }
        let info = self.metainfo.infoBytes
        let start = piece * WireLimits.metadataPieceSize
        let reply: UTMetadataMessage = start < info.count
            ? .data(piece: piece, totalSize: info.count,
                bytes: ByteBuffer(bytes: info[start..<min(info.count, start + WireLimits.metadataPieceSize)]))
            : .reject(piece: piece)
        self.send(.extended(id: theirID, payload: reply.encoded()), to: p, at: now)
    }

    // MARK: the tick

    private func tick(at now: Instant) {
        self.ticks += 1
        for p in self.orderedPeers {
            p.rate = p.rate * 0.5 + Double(p.receivedSecond) * 0.5
            p.receivedSecond = 0
            if !p.outstanding.isEmpty && !p.snubbed && now - p.waitingSince > self.configuration.snubTimeout {
                p.snubbed = true
                self.log("\(p.endpoint.host) snubbed us (nothing for \(self.configuration.snubTimeout)); asking others")
                for b in p.outstanding { self.picker.requestFailed(b, peer: p.key) }
                p.outstanding.removeAll()
            }
            p.session.handleTimeout(at: now)
            self.process(p, at: now)
            // A peer with nothing outstanding may have work now that it did not have when it last asked
            // (end-game began, or a block was left open).
            if p.outstanding.isEmpty && !self.picker.isComplete { self.requestMore(p, at: now) }
        }
        self.chokeStalled(at: now)
        if self.ticks % self.configuration.chokeRoundTicks == 0 { self.chokeRound(at: now) }
        self.sendPEX(at: now)
        if let interval = self.configuration.resumeInterval, self.resumeDirty, !self.resumeSaving,
            now - self.lastResumeSave >= interval
        {
            self.actions.append(.saveResume(self.beginResumeSave(at: now)))
        }
        self.progressChanged = true
    }

    /// Starts a save of resume data (the driver's, on stop; or the tick's, when due): the pieces to save.
    /// Answer with `resumeSaved()` when it is written.
    public func beginResumeSave(at now: Instant) -> Bitfield {
        self.resumeDirty = false
        self.resumeSaving = true
        self.lastResumeSave = now
        return self.picker.have
    }

    /// Every tick: an unchoked peer whose full connection has sent nothing for `stallTimeout` is stalled; while
    /// another peer waits for a slot, it is choked and the slot goes to one that waits (and is not stalled).
    private func chokeStalled(at now: Instant) {
        let ordered = self.orderedPeers
        for p in ordered where !p.stalled {
            if let since = p.unwritableSince, now - since >= self.configuration.stallTimeout { p.stalled = true }
        }
        for p in ordered where p.stalled && !p.session.amChoking {
            let waiting = ordered.filter { $0.session.amChoking && $0.session.peerInterested && !$0.stalled && !$0.session.isClosed }
            guard let next = waiting.randomElement(using: &self.rng) else { return }
            self.log("choked \(p.endpoint.host): its connection sent nothing for \(self.configuration.stallTimeout)")
            self.choke(p, at: now)
            self.send(.unchoke, to: next, at: now)
        }
    }

    private func choke(_ p: Peer, at now: Instant) {
        self.send(.choke, to: p, at: now)
        self.releaseFirstAsks(of: p.key)
        // Choking voids its requests; with the fast extension each is rejected explicitly (BEP 6).
        if p.session.fastExtension { for b in p.heldBack { self.send(.reject(b), to: p, at: now) } }
        p.heldBack.removeAll()
    }

    /// Every `chokeRoundTicks`: tit-for-tat (or, when seeding, fastest upload) picks who may download from us.
    private func chokeRound(at now: Instant) {
        let seeding = self.picker.isComplete

        let ordered = self.orderedPeers.filter { $0.session.remote != nil }
        let candidates = ordered.map {
            Choker.Candidate(key: $0.key, interested: $0.session.peerInterested, received: $0.receivedRound,
                sent: $0.sentRound, snubbed: $0.snubbed, stalled: $0.stalled)
        }
        let unchoke = self.choker.round(candidates, seeding: seeding, using: &self.rng)
        for p in ordered {
            p.receivedRound = 0
            p.sentRound = 0
            p.refused = nil
            if unchoke.contains(p.key) && p.session.amChoking {
                self.send(.unchoke, to: p, at: now)
            } else if !unchoke.contains(p.key) && !p.session.amChoking {
                self.choke(p, at: now)
            }
        }
    }
}

extension TorrentMachine {
    /// One connected peer's state; the machine's own (a reference, so that handlers change it in place).
    fileprivate final class Peer {
        let key: Int
        var session: PeerWireSession
        let endpoint: Endpoint
        var has: Bitfield
        /// Pieces it rejected a request for this choke round: not asked of it again until the next.
        var refused: Bitfield?
        var joined = false
        var outstanding: Set<BlockRef> = []
        var queuedReads = 0
        /// Requests held back while the peer's connection does not take more bytes (it reads slowly).
        var heldBack: Deque<BlockRef> = []
        var writable = true
        /// Since when its connection has been full and sent nothing of what it holds; nil while it takes bytes.
        var unwritableSince: Instant?
        /// Its connection sent nothing for `stallTimeout`: no slot until it drains.
        var stalled = false
        var queuedForTransmit = false
        let role: PeerWireSession.Role
        let connectedAt: Instant
        var pex = PEXDiff()
        /// Bytes of blocks received from / sent to the peer this second and this choke round.
        var receivedSecond: Int64 = 0
        var receivedRound: Int64 = 0
        var sentRound: Int64 = 0
        /// Bytes per second received, smoothed.
        var rate: Double = 0
        /// When the last block from the peer arrived, or, if later, when we asked it for blocks with none
        /// outstanding: the snub timeout counts from here.
        var waitingSince: Instant
        var snubbed = false

        init(key: Int, session: PeerWireSession, endpoint: Endpoint, pieceCount: Int, role: PeerWireSession.Role,
            at now: Instant)
        {
            self.key = key
            self.session = session
            self.endpoint = endpoint
            self.has = Bitfield(count: pieceCount)
            self.role = role
            self.connectedAt = now
            self.waitingSince = now
        }
    }
}
