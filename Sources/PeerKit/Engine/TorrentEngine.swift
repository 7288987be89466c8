#if canImport(Glibc)
import Glibc
#endif
import Metainfo
import NIOCore
import Synchronization
import NIOPosix
import PeerBase
import PeerWire
import Storage
import DequeModule
import Swarm
import Tracker

/// Drives one torrent: its peer connections (PeerWireSession), piece picking (PiecePicker), disk
/// (TorrentStorage on a thread pool) and verification (PieceVerifier).
///
/// Confined to one event loop: every method runs on `eventLoop`, so the torrent's state needs no lock
/// (DESIGN.md §5). Disk reads, writes and hashing run on the thread pool and hop back to the loop.
public final class TorrentEngine: @unchecked Sendable {
    public struct Configuration: Sendable {
        /// Keep serving after the download completes.
        public var seedAfterDownload = false
        /// Outstanding block requests per peer: about `requestQueueTime` of its measured rate, within these
        /// bounds (and never more than the peer's own `reqq`).
        public var pipelineDepth = 16...500
        public var requestQueueTime: Duration = .seconds(2)
        /// Regular upload slots (tit-for-tat); one optimistic slot comes on top.
        public var uploadSlots = 8
        /// Byte rates for the whole torrent; nil is unlimited.
        public var maxUploadRate: Int64?
        public var maxDownloadRate: Int64?
        /// Fetch pieces in order (for playing while downloading) instead of rarest first.
        public var sequential = false
        /// Files not to download (indices into the torrent's files); pieces they share with wanted files are
        /// still fetched (the storage keeps their part in a part file).
        public var unselectedFiles: Set<Int> = []
        /// Files whose pieces are fetched before those of other files.
        public var highPriorityFiles: Set<Int> = []
        /// Where resume data is saved (after verified pieces, at most every `resumeInterval`, and on stop).
        public var resume: ResumeStore?
        public var resumeInterval: Duration = .seconds(5)
        /// A peer that sends nothing for this long while we wait on its blocks is snubbed: its requests go
        /// to other peers and it is asked for one block at a time until it sends again.
        public var snubTimeout: Duration = .seconds(30)
        /// Outstanding block requests per peer waiting on the disk while serving; more are rejected.
        public var maxQueuedReads = 1024
        /// Whole pieces kept in memory for serving (read once from disk, then sent block by block).
        public var readCacheBytes = 32 << 20
        /// Bytes of verified-or-verifying pieces waiting for the disk; beyond it no more blocks are requested
        /// until the disk catches up (backpressure from a slow disk to the peers).
        public var maxPendingWriteBytes = 64 << 20
        /// Connections for this torrent, incoming and outgoing; more are closed at once.
        public var maxPeers = 100
        /// Requests a peer may have waiting with us (we say so in `reqq`); more are rejected.
        public var maxPeerRequests = 2000
        public var clientName = "Peer 0.1"
        public var listenPort: UInt16?
        public init() {}
    }

    /// Progress as the command line shows it.
    public struct Progress: Sendable {
        public var havePieces: Int
        public var wantedPieces: Int
        public var downloaded: Int64
        public var uploaded: Int64
        public var peers: Int
        public var complete: Bool
    }

    public let metainfo: TorrentMetainfo
    public let eventLoop: any EventLoop
    let storage: any TorrentStorage
    private(set) var verifier: PieceVerifier
    /// v2 piece layers still to learn from peers (a v2 torrent from a magnet link); nil when all are known.
    private var layerFetch: PieceLayerFetch?
    let threadPool: NIOThreadPool
    let configuration: Configuration
    let localID: PeerID
    private var picker: PiecePicker
    private var peers: [Int: PeerState] = [:]
    private let nextKey = Atomic<Int>(0)
    private var pieceBuffers: [Int: [UInt8]] = [:]
    /// Buffers of whole pieces written out, kept for the next pieces: a fresh megabyte for every piece costs
    /// page faults and zeroing in the kernel.
    private var spareBuffers: [[UInt8]] = []
    /// Picking and choking draw many random numbers: a fast generator seeded once from the system's.
    private var rng = SeededGenerator(seed: UInt64.random(in: .min ... .max))
    private var downloaded: Int64 = 0
    private var uploaded: Int64 = 0
    private var timer: RepeatedTask?
    private let started = ContinuousClock.now
    private var completion: EventLoopPromise<Void>?
    private var failures: [String: Int] = [:]  // host -> pieces it helped corrupt
    private var goodPieces: [String: Int] = [:]  // host -> verified pieces it sent blocks of
    private var banned: Set<String> = []
    private var senders: [Int: Set<String>] = [:]  // piece -> hosts that sent blocks of it
    private var choker: Choker
    private var ticks = 0
    private var uploadLimiter: RateLimiter
    private var downloadLimiter: RateLimiter
    /// Blocks read for peers, waiting for the upload limiter.
    private var uploadQueue: Deque<(key: Int, message: PeerMessage)> = []
    private var pacer: RepeatedTask?
    private var resumeDirty = false
    /// Set by `stop()`: disk jobs cancelled by the shutdown are not errors worth a line.
    private var stopped = false
    /// Bytes of pieces handed to the thread pool for verifying and writing, not yet done.
    private var pendingWriteBytes = 0
    /// Pieces read for serving, by piece, with when each was last used (small: a few dozen pieces), in the
    /// buffers their blocks are sent from (as slices, not copies).
    private var readCache: [Int: (bytes: ByteBuffer, lastUse: UInt64)] = [:]
    private var readCacheClock: UInt64 = 0
    /// Requests waiting on a piece's read from disk.
    private var pendingReads: [Int: [(key: Int, block: PeerWire.BlockRef)]] = [:]
    private var resumeSaving = false
    private var lastResumeSave: Instant = .zero
    /// Readers waiting for pieces (streaming), by piece.
    private var pieceWaiters: [Int: [EventLoopPromise<Void>]] = [:]

    /// Called on the loop whenever something changes (for progress lines).
    public var onProgress: (@Sendable (Progress) -> Void)?
    /// Called on the loop with a line worth logging (peer dropped, hash failure).
    public var onLog: (@Sendable (String) -> Void)?
    /// Called on the loop with peers learnt from other peers (PEX, BEP 11), as "host:port", to connect to.
    public var onPeersDiscovered: (@Sendable ([String]) -> Void)?
    /// Called once, on the loop, when the piece layers learnt from peers are complete (to keep them with the
    /// torrent's metadata): every layer by pieces root.
    public var onPieceLayers: (@Sendable ([[UInt8]: [UInt8]]) -> Void)?

    /// Confined to the engine's loop like the engine itself.
    private final class PeerState: @unchecked Sendable {
        let key: Int
        let channel: any Channel
        var session: PeerWireSession
        let host: String
        var has: Bitfield
        var joined = false
        var outstanding: Set<PeerWire.BlockRef> = []
        var queuedReads = 0
        /// Requests held back while the peer's connection does not take more bytes (it reads slowly).
        var heldBack: Deque<PeerWire.BlockRef> = []
        let role: PeerWireSession.Role
        let connectedAt: Instant
        /// PEX: the peers we last told it about, and when.
        var pexSent: Set<PEXPeer> = []
        var lastPex: Instant?
        /// Bytes of blocks received from / sent to the peer this second and this choke round.
        var receivedSecond: Int64 = 0
        var receivedRound: Int64 = 0
        var sentRound: Int64 = 0
        /// Bytes per second received, smoothed.
        var rate: Double = 0
        var lastBlockAt: Instant
        var snubbed = false
        init(key: Int, channel: any Channel, session: PeerWireSession, host: String, pieceCount: Int, now: Instant,
            role: PeerWireSession.Role)
        {
            self.lastBlockAt = now
            self.connectedAt = now
            self.role = role
            self.key = key
            self.channel = channel
            self.session = session
            self.host = host
            self.has = Bitfield(count: pieceCount)
        }
    }

    /// - Parameter have: pieces already verified on disk.
    public init(
        metainfo: TorrentMetainfo, storage: any TorrentStorage, have: Bitfield, eventLoop: any EventLoop,
        threadPool: NIOThreadPool, configuration: Configuration
    ) {
        self.metainfo = metainfo
        self.storage = storage
        self.verifier = PieceVerifier(metainfo: metainfo)
        self.eventLoop = eventLoop
        self.threadPool = threadPool
        self.configuration = configuration
        var generator = SystemRandomNumberGenerator()
        self.localID = PeerID.random(using: &generator)
        let map = storage.pieceMap
        var short: [Int: Int] = [:]
        for i in 0..<map.pieceCount {
            let size = map.pieceSize(map.index(i)!)
            if size != map.pieceLength { short[i] = size }
        }
        self.picker = PiecePicker(pieceCount: map.pieceCount, pieceLength: map.pieceLength, shortPieces: short,
            have: have)
        self.picker.sequential = configuration.sequential
        if !configuration.unselectedFiles.isEmpty {
            for i in 0..<map.pieceCount where map.files(inPiece: map.index(i)!).allSatisfy(configuration.unselectedFiles.contains) {
                self.picker.setPriority(0, pieces: i..<i + 1)
            }
        }
        for file in configuration.highPriorityFiles.sorted() where map.files.indices.contains(file) {
            for i in map.pieces(ofFile: file) where self.picker.priority(of: i) > 0 { self.picker.setPriority(2, pieces: i..<i + 1) }
        }
        // A v2 torrent from a magnet link knows each file's root but not its piece layer: those pieces wait
        // (priority 0) until the layer arrives from peers.
        var needed: [(fileIndex: Int, root: [UInt8], pieceCount: Int)] = []
        if metainfo.version == .v2 {
            for file in map.files where !file.isPadding && !configuration.unselectedFiles.contains(file.index) {
                let pieces = map.pieces(ofFile: file.index)
                guard let root = file.piecesRoot, pieces.count > 1, self.verifier.pieceLayers[root] == nil else { continue }
                needed.append((file.index, root, pieces.count))
                self.picker.setPriority(0, pieces: pieces)
            }
        }
        if !needed.isEmpty { self.layerFetch = PieceLayerFetch(needed: needed, pieceLength: map.pieceLength) }
        self.choker = Choker(slots: configuration.uploadSlots)
        self.uploadLimiter = RateLimiter(rate: configuration.maxUploadRate)
        self.downloadLimiter = RateLimiter(rate: configuration.maxDownloadRate)
    }

    /// The 20-byte hashes peers may use in handshakes for this torrent.
    public var handshakeHashes: [[UInt8]] {
        [self.metainfo.infoHashes.v1?.bytes, self.metainfo.infoHashes.v2?.truncated].compactMap { $0 }
    }

    public var isComplete: Bool { self.picker.isComplete && self.layerFetch == nil }

    /// Starts the timer; the returned future completes when every wanted piece is verified.
    public func start() -> EventLoopFuture<Void> {
        self.eventLoop.flatSubmit {
            let promise = self.eventLoop.makePromise(of: Void.self)
            self.completion = promise
            self.timer = self.eventLoop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { _ in
                self.tick()
            }
            if self.configuration.maxUploadRate != nil || self.configuration.maxDownloadRate != nil {
                self.pacer = self.eventLoop.scheduleRepeatedTask(initialDelay: .milliseconds(50),
                    delay: .milliseconds(50)) { _ in self.pace() }
            }
            if self.isComplete { self.finishDownload(log: false) }
            self.report()
            return promise.futureResult
        }
    }

    /// Ends the wait on `start()`'s future with `CancellationError` (Ctrl-C).
    public func cancel() {
        self.eventLoop.execute { self.complete(.failure(CancellationError())) }
    }

    public func stop() -> EventLoopFuture<Void> {
        self.eventLoop.submit {
            self.stopped = true
            for waiter in self.pieceWaiters.values.joined() { waiter.fail(CancellationError()) }
            self.pieceWaiters = [:]
            self.timer?.cancel()
            self.pacer?.cancel()
            for p in self.peers.values { p.channel.close(promise: nil) }
        }
    }

    /// Saves resume data now (on stop), if the engine has a resume store; failures are logged, not thrown.
    public func saveResumeData() -> EventLoopFuture<Void> {
        self.eventLoop.flatSubmit { self.writeResume() }
    }

    /// Writes the verified pieces and the files' statuses off the loop.
    private func writeResume() -> EventLoopFuture<Void> {
        guard let store = self.configuration.resume else { return self.eventLoop.makeSucceededVoidFuture() }
        self.resumeDirty = false
        self.resumeSaving = true
        self.lastResumeSave = self.now
        let pieces = self.picker.have
        let storage = self.storage
        return self.threadPool.runIfActive(eventLoop: self.eventLoop) {
            try store.save(pieces: pieces, storage: storage)
        }.flatMapErrorThrowing { error in
            self.onLog?("cannot save resume data to \(store.location): \(error)")
        }.always { _ in self.resumeSaving = false }
    }

    private var now: Instant {
        let d = ContinuousClock.now - self.started
        return Instant(offset: d)
    }

    // MARK: connections

    /// Adopts a connected channel (outgoing or accepted). Must be called on the engine's loop.
    func reserveKey() -> Int { self.nextKey.wrappingAdd(1, ordering: .relaxed).oldValue }

    func attach(_ channel: any Channel, role: PeerWireSession.Role, key reserved: Int? = nil) {
        self.eventLoop.preconditionInEventLoop()
        let host = channel.remoteAddress?.ipAddress ?? "?"
        if self.banned.contains(host) || self.peers.count >= self.configuration.maxPeers {
            channel.close(promise: nil)
            return
        }
        var config = PeerWireSession.Configuration(infoHashes: self.handshakeHashes, localID: self.localID,
            pieceCount: self.picker.pieceCount)
        // The BEP 52 upgrade bit only for hybrids (libtorrent drops a v1-only peer that sets it), and no DHT
        // bit until this node runs a DHT.
        config.reserved = [.extensionProtocol, .fast]
        if self.metainfo.version == .hybrid { config.reserved.insert(.v2Upgrade) }
        let have = self.picker.have
        config.openingMessage = have.allSet ? .haveAll
            : (have.noneSet ? .haveNone : .bitfield(ByteBuffer(bytes: have.bytes)))
        var extensions = [UTMetadataMessage.name: MetadataFetcher.utMetadataID]
        // Private torrents (BEP 27) learn peers from their trackers only.
        if !self.metainfo.isPrivate { extensions[PEXMessage.name] = Self.utPexID }
        config.extendedHandshake = ExtendedHandshake(
            extensions: extensions, client: self.configuration.clientName,
            listenPort: self.configuration.listenPort, requestQueue: self.configuration.maxPeerRequests, metadataSize: self.metainfo.infoBytes.count)
        let key = reserved ?? self.reserveKey()
        let state = PeerState(key: key, channel: channel,
            session: PeerWireSession(role: role, configuration: config, at: self.now), host: host,
            pieceCount: self.picker.pieceCount, now: self.now, role: role)
        self.peers[key] = state
        if Self.debug { self.onLog?("attached \(host) as \(role)") }
        if reserved == nil { _ = channel.pipeline.addHandler(PeerChannelHandler(host: self, key: key)) }
        self.flush(state)
    }

    /// The key under which `channel` was attached (for replaying its first bytes).
    func key(of channel: any Channel) -> Int {
        self.peers.values.first { $0.channel === channel }?.key ?? -1
    }

    func received(_ key: Int, _ bytes: ByteBuffer) {
        guard let p = self.peers[key] else { return }
        p.session.receive(bytes, at: self.now)
        self.process(p)
    }

    func disconnected(_ key: Int) {
        guard let p = self.peers.removeValue(forKey: key) else { return }
        if Self.debug { self.onLog?("disconnected \(p.host)") }
        if p.session.remote == nil && !p.session.isClosed && !self.stopped {
            self.onLog?("\(p.host) closed the connection before its handshake (does it have this torrent?)")
        }
        if p.joined { self.picker.peerLeft(key, has: p.has) } else {
            for b in p.outstanding { self.picker.requestFailed(b, peer: key) }
        }
        self.layerFetch?.peerLeft(key)
        self.report()
    }

    private func process(_ p: PeerState) {
        while let event = p.session.pollEvent() {
            switch event {
            case .handshake, .extendedHandshake:
                if Self.debug { self.onLog?("\(p.host) <- \(event)") }
            case .message(let m):
                if Self.debug { self.onLog?("\(p.host) <- \(String(describing: m).prefix(120))") }
                self.handle(m, from: p)
            case .closed(let reason):
                if let reason { self.onLog?("dropped \(p.host): \(reason)") }
                p.channel.close(promise: nil)
            }
        }
        self.flush(p)
    }

    private func flush(_ p: PeerState) {
        var wrote = false
        while let out = p.session.pollTransmit() {
            p.channel.write(out, promise: nil)
            wrote = true
        }
        if wrote { p.channel.flush() }  // one writev for every buffer
    }

    /// Logs a line through `onLog`.
    func log(_ line: String) { self.onLog?(line) }

    /// What to tell a tracker now; nil before the engine knows its listen port.
    func announceRequest(event: AnnounceRequest.Event) -> AnnounceRequest? {
        guard let port = self.configuration.listenPort else { return nil }
        let hash = self.metainfo.infoHashes.v1?.bytes ?? self.metainfo.infoHashes.v2!.truncated
        let left = (0..<self.picker.pieceCount).reduce(Int64(0)) {
            $0 + (self.picker.have[$1] || self.picker.priority(of: $1) == 0 ? 0 : Int64(self.picker.pieceSize($1)))
        }
        return AnnounceRequest(infoHash: hash, peerID: self.localID.bytes, port: port, uploaded: UInt64(self.uploaded),
            downloaded: UInt64(self.downloaded), left: UInt64(left), event: event, numWant: 200,
            key: UInt32(truncatingIfNeeded: self.localID.bytes.hashValue))
    }

    /// PEER_DEBUG=1 logs every message received.
    static let debug = getenv("PEER_DEBUG") != nil

    private func send(_ m: PeerMessage, to p: PeerState) {
        p.session.handle(.send(m), at: self.now)
    }

    private func handle(_ m: PeerMessage, from p: PeerState) {
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
            self.updateInterest(p)
            self.askForLayers(p)
        case .have(let i):
            if !p.joined {
                p.joined = true
                self.picker.peerJoined(has: p.has)
            }
            if !p.has[Int(i)] {
                p.has[Int(i)] = true
                self.picker.peerHave(Int(i))
            }
            self.updateInterest(p)
            self.askForLayers(p)
        case .unchoke:
            self.requestMore(p)
        case .choke:
            for b in p.outstanding { self.picker.requestFailed(b, peer: p.key) }
            p.outstanding.removeAll()
        case .reject(let b):
            if p.outstanding.remove(b) != nil { self.picker.requestFailed(b, peer: p.key) }
            self.requestMore(p)
        case .piece(let index, let offset, let data):
            self.receivedBlock(index: index, offset: offset, data: data, from: p)
        case .interested:
            let unchoked = self.peers.values.count(where: { !$0.session.amChoking })
            if p.session.amChoking && self.choker.hasFreeSlot(unchoked: unchoked) { self.send(.unchoke, to: p) }
        case .notInterested:
            break
        case .request(let b):
            self.serve(b, to: p)
        case .extended(let id, let payload) where id == MetadataFetcher.utMetadataID:
            self.serveMetadata(payload, to: p)
        case .extended(let id, let payload) where id == Self.utPexID && !self.metainfo.isPrivate:
            self.receivedPEX(payload, from: p)
        case .hashRequest(let r):
            self.serveHashes(r, to: p)
        case .hashes(let r, let hashes):
            self.receivedHashes(r, Array(buffer: hashes), from: p)
        case .hashReject(let r):
            self.layerFetch?.rejected(r, by: p.key)
            self.askForLayers(p)
        default:
            break
        }
    }

    private func updateInterest(_ p: PeerState) {
        let wants = !self.picker.isComplete && p.has.setIndices.contains { !self.picker.have[$0] && self.picker.priority(of: $0) > 0 }
        if wants && !p.session.amInterested {
            self.send(.interested, to: p)
        } else if !wants && p.session.amInterested {
            self.send(.notInterested, to: p)
        }
        if wants && !p.session.peerChoking { self.requestMore(p) }
    }

    /// How many requests to keep outstanding at `p`: about `requestQueueTime` of its rate, within bounds.
    private func depth(_ p: PeerState) -> Int {
        if p.snubbed { return 1 }
        let bounds = self.configuration.pipelineDepth
        let seconds = Double(self.configuration.requestQueueTime.components.seconds)
        var depth = min(bounds.upperBound, max(bounds.lowerBound, Int(p.rate * seconds / 16384)))
        if let reqq = p.session.remoteExtensions?.requestQueue, reqq > 0 { depth = min(depth, reqq) }
        return depth
    }

    private func requestMore(_ p: PeerState) {
        guard !p.session.peerChoking, p.session.amInterested,
            self.pendingWriteBytes < self.configuration.maxPendingWriteBytes
        else { return }
        // As many as the pipeline has room for, and the download limit allows (the picker marks every block it
        // returns as requested, so ask it for no more than will be sent).
        // Topped up in batches of an eighth of the pipeline, not a block at a time: one pick and one write per
        // batch instead of per block received.
        let depth = self.depth(p)
        let free = depth - p.outstanding.count
        guard free > 0, free >= max(1, depth / 8) else { return }
        let allowance = self.downloadLimiter.allowance(at: self.now)
        let blocks = allowance > Int64(Int32.max) ? Int(Int32.max) : Int((allowance + 16383) / 16384)
        let room = min(free, blocks)
        guard room > 0 else { return }
        for b in self.picker.pick(for: p.key, has: p.has, count: room, using: &self.rng) {
            p.outstanding.insert(b)
            self.send(.request(b), to: p)
            self.downloadLimiter.spend(Int(b.length), at: self.now)
        }
    }

    // MARK: downloading

    private func receivedBlock(index: UInt32, offset: UInt32, data: ByteBuffer, from p: PeerState) {
        let block = PeerWire.BlockRef(piece: index, offset: offset, length: UInt32(data.readableBytes))
        guard p.outstanding.remove(block) != nil else { return }
        switch self.picker.received(block, from: p.key) {
        case .unexpected:
            return
        case .accepted(let complete, let cancel):
            for k in cancel {
                if let other = self.peers[k], other.outstanding.remove(block) != nil {
                    self.send(.cancel(block), to: other)
                    self.flush(other)
                }
            }
            let piece = Int(index)
            let size = self.picker.pieceSize(piece)
            if self.pieceBuffers[piece] == nil {
                // Not zeroed: the piece is verified only once every block has been copied in.
                self.pieceBuffers[piece] = self.spareBuffers.last?.count == size ? self.spareBuffers.removeLast()
                    : [UInt8](unsafeUninitializedCapacity: size) { _, count in count = size }
            }
            data.withUnsafeReadableBytes { raw in
                self.pieceBuffers[piece]!.withUnsafeMutableBytes { dst in
                    dst.baseAddress!.advanced(by: Int(offset)).copyMemory(from: raw.baseAddress!, byteCount: raw.count)
                }
            }
            self.senders[piece, default: []].insert(p.host)
            self.downloaded += Int64(data.readableBytes)
            p.receivedSecond += Int64(data.readableBytes)
            p.receivedRound += Int64(data.readableBytes)
            p.lastBlockAt = self.now
            p.snubbed = false
            if complete { self.finishPiece(piece) }
            self.requestMore(p)
        }
    }

    private func finishPiece(_ piece: Int, verified: (@Sendable (Bool) -> Void)? = nil) {
        guard let bytes = self.pieceBuffers.removeValue(forKey: piece),
            let index = self.storage.pieceMap.index(piece)
        else { return }
        let storage = self.storage
        let verifier = self.verifier
        self.pendingWriteBytes += bytes.count
        self.threadPool.runIfActive(eventLoop: self.eventLoop) { () throws -> Bool in
            guard verifier.verify(index, bytes: bytes).passed else { return false }
            try storage.write(piece: index, offset: 0, bytes: bytes)
            return true
        }.whenComplete { result in
            let wasFull = self.pendingWriteBytes >= self.configuration.maxPendingWriteBytes
            self.pendingWriteBytes -= bytes.count
            if self.spareBuffers.count < 8 { self.spareBuffers.append(bytes) }
            if wasFull && self.pendingWriteBytes < self.configuration.maxPendingWriteBytes {
                for p in self.peers.values {
                    self.requestMore(p)
                    self.flush(p)
                }
            }
            switch result {
            case .success(true):
                self.picker.pieceVerified(piece)
                self.resumeDirty = true
                for waiter in self.pieceWaiters.removeValue(forKey: piece) ?? [] { waiter.succeed() }
                for host in self.senders.removeValue(forKey: piece) ?? [] { self.goodPieces[host, default: 0] += 1 }
                for other in self.peers.values where other.session.remote != nil {
                    self.send(.have(piece: UInt32(piece)), to: other)
                    self.updateInterest(other)
                    self.flush(other)
                }
                if self.isComplete { self.finishDownload() }
                verified?(true)
            case .success(false):
                self.hashFailed(piece)
                verified?(false)
            case .failure(let error):
                if !self.stopped { self.onLog?("cannot write piece \(piece): \(error)") }
                self.picker.pieceFailed(piece)
                verified?(true)  // not the source's fault
                self.complete(.failure(error))
            }
            self.report()
        }
    }

    /// Completes `start()`'s future once; later outcomes are dropped.
    private func complete(_ result: Result<Void, any Error>) {
        guard let promise = self.completion else { return }
        self.completion = nil
        promise.completeWith(result)
    }

    /// Every wanted piece is in: create the empty files too, then report completion.
    private func finishDownload(log: Bool = true) {
        let storage = self.storage
        self.threadPool.runIfActive(eventLoop: self.eventLoop) { try storage.createEmptyFiles() }.whenComplete {
            result in
            switch result {
            case .success:
                if log { self.onLog?("download complete") }
                self.complete(.success(()))
            case .failure(let error):
                self.complete(.failure(error))
            }
        }
    }

    /// A piece failed its hash: fetch it again; hosts that sent it lose trust, and are banned after repeats.
    private func hashFailed(_ piece: Int) {
        self.picker.pieceFailed(piece)
        let hosts = self.senders.removeValue(forKey: piece) ?? []
        self.onLog?("piece \(piece) failed its hash check (from \(hosts.sorted().joined(separator: ", ")))")
        for host in hosts {
            let n = (self.failures[host] ?? 0) + 1
            self.failures[host] = n
            // Banned after repeated failures, unless the host's good pieces far outnumber them (in end-game an
            // honest seed can share a piece with a bad peer).
            if n >= 2 && n * 4 > (self.goodPieces[host] ?? 0) {
                self.banned.insert(host)
                self.onLog?("banned \(host) after sending corrupt data")
                for p in self.peers.values where p.host == host { p.channel.close(promise: nil) }
            }
        }
        for p in self.peers.values {
            self.requestMore(p)
            self.flush(p)
        }
    }

    // MARK: serving

    private func serve(_ b: PeerWire.BlockRef, to p: PeerState) {
        let map = self.storage.pieceMap
        // In a v2 torrent each file's last piece is short, but libtorrent lays files out padded to whole pieces
        // and asks for whole blocks there: the bytes past the file's end are served as zeros.
        let limit = { (piece: PieceIndex) in map.version == .v2 ? map.pieceLength : map.pieceSize(piece) }
        guard !p.session.amChoking, self.picker.have[Int(b.piece)], p.queuedReads < self.configuration.maxQueuedReads,
            p.heldBack.count < self.configuration.maxPeerRequests,
            let piece = map.index(Int(b.piece)), Int(b.offset) + Int(b.length) <= limit(piece), b.length > 0
        else {
            if p.session.fastExtension { self.send(.reject(b), to: p) }
            return
        }
        if let cached = self.readCache[piece.value] {
            self.readCacheClock += 1
            self.readCache[piece.value]!.lastUse = self.readCacheClock
            self.deliver(b, from: cached.bytes, to: p)
            return
        }
        // Read the whole piece once (one pread instead of one per block, and one hop to the thread pool); the
        // requests for its other blocks wait for it.
        p.queuedReads += 1
        if self.pendingReads[piece.value] != nil {
            self.pendingReads[piece.value]!.append((p.key, b))
            return
        }
        self.pendingReads[piece.value] = [(p.key, b)]
        let storage = self.storage
        let size = self.storage.pieceMap.pieceSize(piece)
        self.threadPool.runIfActive(eventLoop: self.eventLoop) { () throws -> ByteBuffer in
            // Straight into the buffer the blocks are sent from.
            var buffer = ByteBufferAllocator().buffer(capacity: size)
            try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { raw in
                try storage.read(piece: piece, offset: 0, into: UnsafeMutableRawBufferPointer(rebasing: raw[0..<size]))
                return size
            }
            return buffer
        }.whenComplete { result in
            let waiting = self.pendingReads.removeValue(forKey: piece.value) ?? []
            if case .success(let bytes) = result { self.cache(piece.value, bytes) }
            var touched: [Int: PeerState] = [:]
            for (key, block) in waiting {
                guard let peer = self.peers[key] else { continue }
                peer.queuedReads -= 1
                touched[key] = peer
                switch result {
                case .success(let bytes):
                    self.deliver(block, from: bytes, to: peer)
                case .failure(let error):
                    if !self.stopped { self.onLog?("cannot read \(block): \(error)") }
                    if peer.session.fastExtension { self.send(.reject(block), to: peer) }
                }
            }
            for peer in touched.values { self.flush(peer) }
        }
    }

    /// The peer's connection takes bytes again: serve the requests held back.
    func writabilityChanged(_ key: Int) {
        guard let p = self.peers[key] else { return }
        while p.channel.isWritable, let b = p.heldBack.popFirst() {
            self.serve(b, to: p)
        }
        self.flush(p)
    }

    /// Keeps a piece read for serving, dropping the least recently used beyond the cache's size.
    private func cache(_ piece: Int, _ bytes: ByteBuffer) {
        self.readCacheClock += 1
        self.readCache[piece] = (bytes, self.readCacheClock)
        let limit = max(2, self.configuration.readCacheBytes / max(1, self.storage.pieceMap.pieceLength))
        while self.readCache.count > limit, let oldest = self.readCache.min(by: { $0.value.lastUse < $1.value.lastUse }) {
            self.readCache[oldest.key] = nil
        }
    }

    /// Sends one block of a piece in memory (bytes past a v2 file's end as zeros), or queues it for the
    /// upload limiter.
    private func deliver(_ b: PeerWire.BlockRef, from piece: ByteBuffer, to p: PeerState) {
        guard !p.session.amChoking else {
            // Choked while the read was on its way: the request is void (BEP 6: say so).
            if p.session.fastExtension { self.send(.reject(b), to: p) }
            return
        }
        guard p.channel.isWritable else {
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
            if offset < count { buffer.writeImmutableBuffer(piece.getSlice(at: piece.readerIndex + offset, length: count - offset)!) }
            buffer.writeRepeatingByte(0, count: end - max(offset, count))
        }
        let message = PeerMessage.piece(piece: b.piece, offset: b.offset, data: buffer)
        if self.uploadQueue.isEmpty && self.uploadLimiter.canSpend(at: self.now) {
            self.sendPiece(message, bytes: Int(b.length), to: p)
        } else {
            self.uploadQueue.append((p.key, message))
        }
    }

    private func sendPiece(_ message: PeerMessage, bytes: Int, to p: PeerState) {
        self.send(message, to: p)
        self.uploaded += Int64(bytes)
        p.sentRound += Int64(bytes)
        self.uploadLimiter.spend(bytes, at: self.now)
    }

    /// Every 50 ms with a rate limit: sends queued blocks and asks for more as the limiters allow.
    private func pace() {
        while let (key, message) = self.uploadQueue.first, self.uploadLimiter.canSpend(at: self.now) {
            self.uploadQueue.removeFirst()
            guard let p = self.peers[key], !p.session.amChoking, case .piece(_, _, let data) = message else { continue }
            self.sendPiece(message, bytes: data.readableBytes, to: p)
            self.flush(p)
        }
        if self.downloadLimiter.rate != nil && self.downloadLimiter.canSpend(at: self.now) {
            for p in self.peers.values {
                self.requestMore(p)
                self.flush(p)
            }
        }
    }

    // MARK: peer exchange (BEP 11)

    /// Our extended message id for ut_pex.
    static let utPexID: UInt8 = 1
    /// How often each peer hears from us (BEP 11: at most once a minute), and how soon after connecting.
    static let pexInterval: Duration = .seconds(60)
    static let pexFirst: Duration = .seconds(2)

    /// Where a connected peer accepts connections: the address we dialled, or for an incoming connection its
    /// address with the listen port from its extended handshake. nil when unknown.
    private func listenAddress(_ p: PeerState) -> PEXPeer? {
        guard let remote = p.channel.remoteAddress, let port = p.role == .outgoing
            ? remote.port.flatMap(UInt16.init(exactly:)) : p.session.remoteExtensions?.listenPort
        else { return nil }
        var flags: PEXPeer.Flags = p.role == .outgoing ? [.reachable] : []
        if p.has.allSet { flags.insert(.seed) }
        switch remote {
        case .v4(let a): return PEXPeer(ip: withUnsafeBytes(of: a.address.sin_addr) { Array($0) }, port: port, flags: flags)
        case .v6(let a): return PEXPeer(ip: withUnsafeBytes(of: a.address.sin6_addr) { Array($0) }, port: port, flags: flags)
        default: return nil
        }
    }

    /// Tells each peer that speaks ut_pex which peers we are connected to now, as changes since the last time.
    private func sendPEX() {
        guard !self.metainfo.isPrivate else { return }
        let now = self.now
        let everyone = self.peers.values.compactMap { p in self.listenAddress(p).map { (p.key, $0) } }
        for p in self.peers.values {
            guard let id = p.session.remoteExtensions?.extensions[PEXMessage.name], id != 0 else { continue }
            let due = p.lastPex.map { now - $0 >= Self.pexInterval } ?? (now - p.connectedAt >= Self.pexFirst)
            guard due else { continue }
            let current = Set(everyone.filter { $0.0 != p.key }.map { PEXPeer(ip: $0.1.ip, port: $0.1.port) })
            let flags = Dictionary(everyone.map { (PEXPeer(ip: $0.1.ip, port: $0.1.port), $0.1.flags) }) { a, _ in a }
            let added = current.subtracting(p.pexSent).prefix(PEXMessage.maxPeers)
            let dropped = p.pexSent.subtracting(current).prefix(PEXMessage.maxPeers)
            p.lastPex = now
            guard !added.isEmpty || !dropped.isEmpty else { continue }
            p.pexSent.formUnion(added)
            p.pexSent.subtract(dropped)
            let message = PEXMessage(added: added.map { PEXPeer(ip: $0.ip, port: $0.port, flags: flags[$0] ?? []) },
                dropped: Array(dropped))
            self.send(.extended(id: id, payload: message.encoded()), to: p)
            self.flush(p)
        }
    }

    private func receivedPEX(_ payload: ByteBuffer, from p: PeerState) {
        let message: PEXMessage
        do { message = try PEXMessage(decoding: payload) } catch {
            self.onLog?("dropped \(p.host): \(error)")
            p.channel.close(promise: nil)
            return
        }
        let known = Set(self.peers.values.compactMap { self.listenAddress($0).map { PEXPeer(ip: $0.ip, port: $0.port) } })
        let new = message.added.filter { !known.contains(PEXPeer(ip: $0.ip, port: $0.port)) }
        guard !new.isEmpty else { return }
        self.onLog?("learnt \(new.count) peer\(new.count == 1 ? "" : "s") from \(p.host) through PEX")
        self.onPeersDiscovered?(new.map(\.description))
    }

    // MARK: v2 piece layers (BEP 52 hash requests)

    /// Asks `p` for runs of the piece layers we lack, for files it has pieces of.
    private func askForLayers(_ p: PeerState) {
        guard self.layerFetch != nil, p.session.remote != nil else { return }
        let map = self.storage.pieceMap
        let has = p.has
        for r in self.layerFetch!.requests(for: p.key, has: { file in
            map.pieces(ofFile: file).contains { has[$0] }
        }) {
            self.send(.hashRequest(r), to: p)
        }
    }

    private func receivedHashes(_ r: HashRequest, _ hashes: [UInt8], from p: PeerState) {
        guard self.layerFetch != nil else { return }
        switch self.layerFetch!.received(r, hashes: hashes, from: p.key) {
        case .unexpected, .stored:
            break
        case .invalid:
            self.onLog?("\(p.host) sent piece-layer hashes that do not match the file's root; asking others")
        case .layer(let fileIndex, let root, let layer):
            self.verifier.addPieceLayer(layer, root: root)
            self.picker.setPriority(1, pieces: self.storage.pieceMap.pieces(ofFile: fileIndex))
            if self.layerFetch!.isDone {
                self.layerFetch = nil
                self.onLog?("got every piece layer from peers")
                self.onPieceLayers?(self.verifier.pieceLayers)
            }
            for other in self.peers.values {
                self.updateInterest(other)
                self.flush(other)
            }
            if self.isComplete { self.finishDownload() }
        }
        self.askForLayers(p)
    }

    /// Answers a hash request for a piece layer we know; anything else is rejected.
    private func serveHashes(_ r: HashRequest, to p: PeerState) {
        let height = MerkleTree.log2(self.storage.pieceMap.pieceLength / MerkleTree.blockSize)
        if r.baseLayer == UInt32(height), let layer = self.verifier.pieceLayers[r.piecesRoot],
            let hashes = MerkleProof.answer(layer: layer, padHeight: height, index: Int(r.index), length: Int(r.length),
                proofLayers: Int(r.proofLayers))
        {
            self.send(.hashes(r, hashes: ByteBuffer(bytes: hashes)), to: p)
        } else {
            self.send(.hashReject(r), to: p)
        }
    }

    /// BEP 9: hands the info dictionary to peers that came with a magnet link.
    private func serveMetadata(_ payload: ByteBuffer, to p: PeerState) {
        guard let message = try? UTMetadataMessage(decoding: payload) else {
            p.session.handle(.close, at: self.now)
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
        self.send(.extended(id: theirID, payload: reply.encoded()), to: p)
    }

    // MARK: timer and progress

    private func tick() {
        let now = self.now
        self.ticks += 1
        for p in self.peers.values {
            p.rate = p.rate * 0.5 + Double(p.receivedSecond) * 0.5
            p.receivedSecond = 0
            if !p.outstanding.isEmpty && !p.snubbed && now - p.lastBlockAt > self.configuration.snubTimeout {
                p.snubbed = true
                self.onLog?("\(p.host) snubbed us (nothing for \(self.configuration.snubTimeout)); asking others")
                for b in p.outstanding { self.picker.requestFailed(b, peer: p.key) }
                p.outstanding.removeAll()
            }
            p.session.handleTimeout(at: now)
            self.process(p)
        }
        if self.ticks % 10 == 0 { self.chokeRound() }
        self.sendPEX()
        if self.resumeDirty && !self.resumeSaving && now - self.lastResumeSave >= self.configuration.resumeInterval {
            _ = self.writeResume()
        }
        self.report()
    }

    /// Every 10 s: tit-for-tat (or, when seeding, fastest upload) picks who may download from us.
    private func chokeRound() {
        let seeding = self.picker.isComplete
        let candidates = self.peers.values.filter { $0.session.remote != nil }.map {
            Choker.Candidate(key: $0.key, interested: $0.session.peerInterested, received: $0.receivedRound,
                sent: $0.sentRound, snubbed: $0.snubbed)
        }
        let unchoke = self.choker.round(candidates, seeding: seeding, using: &self.rng)
        for p in self.peers.values where p.session.remote != nil {
            p.receivedRound = 0
            p.sentRound = 0
            if unchoke.contains(p.key) && p.session.amChoking {
                self.send(.unchoke, to: p)
            } else if !unchoke.contains(p.key) && !p.session.amChoking {
                self.send(.choke, to: p)
                // Choking voids its requests; with the fast extension each is rejected explicitly (BEP 6).
                if p.session.fastExtension { for b in p.heldBack { self.send(.reject(b), to: p) } }
                p.heldBack.removeAll()
            }
            self.flush(p)
        }
    }

    private var progressNow: Progress {
        let wanted = (0..<self.picker.pieceCount).reduce(0) { $0 + (self.picker.priority(of: $1) > 0 ? 1 : 0) }
        return Progress(havePieces: self.picker.have.setCount, wantedPieces: wanted, downloaded: self.downloaded,
            uploaded: self.uploaded, peers: self.peers.count, complete: self.picker.isComplete)
    }

    /// The figures now (for a summary at exit).
    public func progress() -> EventLoopFuture<Progress> {
        self.eventLoop.submit { self.progressNow }
    }

    /// One connected peer, as a status page shows it.
    public struct PeerSnapshot: Sendable {
        public var address: String
        public var client: String?
        /// Pieces it has, 0…1.
        public var progress: Double
        /// Bytes per second received from it, smoothed.
        public var downloadRate: Double
        public var outgoing: Bool
    }

    /// What a status page shows of the torrent.
    public struct Snapshot: Sendable {
        public var progress: Progress
        public var have: Bitfield
        public var peers: [PeerSnapshot]
    }

    /// The verified pieces, the figures and the connected peers now.
    public func snapshot() -> EventLoopFuture<Snapshot> {
        self.eventLoop.submit {
            let peers = self.peers.values.filter { $0.session.remote != nil }.map { p in
                PeerSnapshot(address: p.channel.remoteAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? p.host,
                    client: p.session.remoteExtensions?.client,
                    progress: p.has.count > 0 ? Double(p.has.setCount) / Double(p.has.count) : 0,
                    downloadRate: p.rate, outgoing: p.role == .outgoing)
            }
            return Snapshot(progress: self.progressNow, have: self.picker.have, peers: peers)
        }
    }

    /// Completes once every piece of `pieces` is verified, fetching those missing before any other (deadline
    /// mode, for a stream's reader). Fails with `PieceWaitTimeout` after `timeout`, and with
    /// `CancellationError` when the engine stops.
    public func waitForPieces(_ pieces: Range<Int>, timeout: TimeAmount) -> EventLoopFuture<Void> {
        self.eventLoop.flatSubmit {
            if self.stopped { return self.eventLoop.makeFailedFuture(CancellationError()) }
            var waits: [EventLoopFuture<Void>] = []
            for piece in pieces.clamped(to: 0..<self.picker.pieceCount) where !self.picker.have[piece] {
                let promise = self.eventLoop.makePromise(of: Void.self)
                self.pieceWaiters[piece, default: []].append(promise)
                waits.append(promise.futureResult)
                if self.picker.priority(of: piece) < Self.deadlinePriority {
                    self.picker.setPriority(Self.deadlinePriority, pieces: piece..<piece + 1)
                }
                // A waiter still listed when the time is up was not completed: fail it (once, on the loop).
                self.eventLoop.scheduleTask(in: timeout) {
                    guard let i = self.pieceWaiters[piece]?.firstIndex(where: { $0.futureResult === promise.futureResult })
                    else { return }
                    self.pieceWaiters[piece]!.remove(at: i)
                    promise.fail(PieceWaitTimeout(piece: piece))
                }
            }
            guard !waits.isEmpty else { return self.eventLoop.makeSucceededVoidFuture() }
            // Requests already queued at a peer that has a waited-for piece would be served first: cancel those
            // of other pieces, so that the reader's come next (a peer that already sent them wastes a little).
            let waited = pieces.clamped(to: 0..<self.picker.pieceCount).filter { !self.picker.have[$0] }
            for p in self.peers.values where waited.contains(where: { p.has[$0] }) {
                for b in p.outstanding where self.picker.priority(of: Int(b.piece)) < Self.deadlinePriority {
                    p.outstanding.remove(b)
                    self.picker.requestFailed(b, peer: p.key)
                    self.send(.cancel(b), to: p)
                }
            }
            for p in self.peers.values {
                self.updateInterest(p)
                self.requestMore(p)
                self.flush(p)
            }
            return EventLoopFuture.andAllSucceed(waits, on: self.eventLoop)
        }
    }

    /// Reads bytes of verified pieces from the storage, off the loop.
    public func read(piece: Int, offset: Int, length: Int) -> EventLoopFuture<[UInt8]> {
        let storage = self.storage
        guard let index = storage.pieceMap.index(piece) else {
            return self.eventLoop.makeFailedFuture(StorageError.outOfRange(piece: piece, offset: offset, length: length, pieceSize: 0))
        }
        return self.threadPool.runIfActive(eventLoop: self.eventLoop) {
            try storage.read(piece: index, offset: offset, length: length)
        }
    }

    /// The picker priority of pieces a reader waits for: above every other.
    static let deadlinePriority: UInt8 = 255

    private func report() {
        self.onProgress?(self.progressNow)
    }
}

// MARK: whole pieces from sources other than peers (web seeds: WebSeed+Engine.swift)

extension TorrentEngine {
    /// Claims for `source` (a negative key: peers have non-negative ones) a wanted piece no peer has started;
    /// nil when none is left, or while the download limit is spent (a piece is taken on credit, and the next
    /// waits until it is repaid). Call on the loop.
    func claimWholePiece(source: Int) -> Int? {
        guard self.downloadLimiter.canSpend(at: self.now),
            let piece = self.picker.claimWholePiece(for: source, using: &self.rng)
        else { return nil }
        self.downloadLimiter.spend(self.picker.pieceSize(piece), at: self.now)
        return piece
    }

    /// Gives back the pieces `source` claimed and did not deliver.
    func releaseWholePieces(source: Int) {
        self.picker.peerLeft(source, has: Bitfield(count: self.picker.pieceCount))
    }

    /// Verifies and writes a whole piece from `source` (named `label` in logs) like one gathered from peers;
    /// `verified` gets false when it failed its hash check, else true (also when peers completed it first).
    func receivedWholePiece(_ piece: Int, bytes: [UInt8], source: Int, label: String,
        verified: @escaping @Sendable (Bool) -> Void)
    {
        guard self.picker.receivedWholePiece(piece, from: source) else { return verified(true) }
        self.pieceBuffers[piece] = bytes
        self.senders[piece] = [label]
        self.downloaded += Int64(bytes.count)
        self.finishPiece(piece, verified: verified)
    }
}

/// A piece a reader waited for did not arrive in time.
public struct PieceWaitTimeout: Error, Sendable, CustomStringConvertible {
    public var piece: Int
    public var description: String { "piece \(self.piece) did not arrive in time" }
}
