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
import Swarm
import Tracker

/// Drives one torrent's `TorrentMachine` (Swarm) with NIO: the peers' channels, the thread pool for hashing
/// and disk (`TorrentStorage`, `PieceVerifier`), the clock and timers, and the futures of the public API.
/// Every decision about peers and pieces is the machine's; this class only carries out its actions.
///
/// Confined to one event loop: every method runs on `eventLoop`, so the torrent's state needs no lock
/// (DESIGN.md §5). Disk reads, writes and hashing run on the thread pool and hop back to the loop.
public final class TorrentEngine: @unchecked Sendable {
    /// The machine's configuration (its fields read and set as this type's own: `config.sequential = true`)
    /// and what only the driver needs.
    @dynamicMemberLookup
    public struct Configuration: Sendable {
        /// Keep serving after the download completes.
        public var seedAfterDownload = false
        /// Where resume data is saved (after verified pieces, at most every `resumeInterval`, and on stop).
        public var resume: ResumeStore?
        public var resumeInterval: Duration = .seconds(5)
        /// Peers, pieces, choking, limits: everything the torrent machine decides.
        public var policy = TorrentMachine.Configuration()
        public init() {}

        public subscript<T>(dynamicMember keyPath: WritableKeyPath<TorrentMachine.Configuration, T>) -> T {
            get { self.policy[keyPath: keyPath] }
            set { self.policy[keyPath: keyPath] = newValue }
        }

        /// The machine's part of the configuration, as the driver hands it over.
        var machine: TorrentMachine.Configuration {
            var m = self.policy
            m.resumeInterval = self.resume == nil ? nil : self.resumeInterval
            m.debugLog = TorrentEngine.debug
            return m
        }
    }

    /// Progress as the command line shows it.
    public typealias Progress = TorrentMachine.Progress

    public let metainfo: TorrentMetainfo
    public let eventLoop: any EventLoop
    let storage: any TorrentStorage
    private(set) var verifier: PieceVerifier
    let threadPool: NIOThreadPool
    let configuration: Configuration
    public var localID: PeerID { self.machine.localID }
    private let machine: TorrentMachine
    private var channels: [Int: any Channel] = [:]
    /// Connections that take no more bytes, with the bytes they held at the last look (`checkFullConnections`;
    /// -1 before the first).
    private var full: [Int: Int] = [:]
    private var lastFullCheck: Instant = .zero
    private let nextKey = Atomic<Int>(0)
    private var timer: RepeatedTask?
    private let started = ContinuousClock.now
    private var completion: EventLoopPromise<Void>?
    /// How the download ended, when it ended before `start()` was called.
    private var outcome: Result<Void, any Error>?
    /// Set by `stop()`: disk jobs cancelled by the shutdown are not errors worth a line.
    private var stopped = false
    /// Readers waiting for pieces (streaming), by piece.
    private var pieceWaiters: [Int: [EventLoopPromise<Void>]] = [:]
    /// Whole pieces from other sources (web seeds) being checked, with whom to tell the outcome.
    private var wholePieceWaiters: [Int: @Sendable (Bool) -> Void] = [:]

    /// Called on the loop whenever something changes (for progress lines).
    public var onProgress: (@Sendable (Progress) -> Void)?
    /// Called on the loop with a line worth logging (peer dropped, hash failure).
    public var onLog: (@Sendable (String) -> Void)?
    /// Called on the loop with peers learnt from other peers (PEX, BEP 11), as "host:port", to connect to.
    public var onPeersDiscovered: (@Sendable ([String]) -> Void)?
    /// Called on the loop when a relay asks for a uTP connection to "host:port" now (BEP 55).
    var onHolePunch: (@Sendable (String) -> Void)?
    /// Called on the loop with a "host:port" we dialled that turned out to be this node.
    var onOwnAddress: (@Sendable (String) -> Void)?
    /// Called once, on the loop, when the piece layers learnt from peers are complete (to keep them with the
    /// torrent's metadata): every layer by pieces root.
    public var onPieceLayers: (@Sendable ([[UInt8]: [UInt8]]) -> Void)?
    /// Called on the loop with a message of an extension in `extraExtensions`: its name, payload, and where its
    /// sender listens ("host:port", nil when not known).
    public var onExtensionMessage: (@Sendable (_ name: String, _ payload: [UInt8], _ from: String?) -> Void)?

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
        self.machine = TorrentMachine(metainfo: metainfo, have: have, pieceLayers: self.verifier.pieceLayers,
            configuration: configuration.machine, localID: PeerID.random(using: &generator),
            seed: UInt64.random(in: .min ... .max), at: .zero)
    }

    /// The 20-byte hashes peers may use in handshakes for this torrent.
    public var handshakeHashes: [[UInt8]] { self.machine.handshakeHashes }

    public var isComplete: Bool { self.machine.isComplete }

    /// Starts the timer; the returned future completes when every wanted piece is verified.
    public func start() -> EventLoopFuture<Void> {
        self.eventLoop.flatSubmit {
            let promise = self.eventLoop.makePromise(of: Void.self)
            if let outcome = self.outcome { promise.completeWith(outcome) } else { self.completion = promise }
            // The machine's tick is every second; rate limits pace it every 50 ms.
            let paced = self.configuration.maxUploadRate != nil || self.configuration.maxDownloadRate != nil
            let period: TimeAmount = paced ? .milliseconds(50) : .seconds(1)
            self.timer = self.eventLoop.scheduleRepeatedTask(initialDelay: period, delay: period) { _ in
                self.checkFullConnections()
                self.machine.handleTimeout(at: self.now)
                self.drive()
            }
            self.drive()
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
            self.machine.stop()
            self.drive()
        }
    }

    /// Saves resume data now (on stop), if the engine has a resume store; failures are logged, not thrown.
    public func saveResumeData() -> EventLoopFuture<Void> {
        self.eventLoop.flatSubmit { self.writeResume(self.machine.beginResumeSave(at: self.now)) }
    }

    /// Writes the verified pieces and the files' statuses off the loop.
    private func writeResume(_ pieces: Bitfield) -> EventLoopFuture<Void> {
        guard let store = self.configuration.resume else {
            self.machine.resumeSaved()
            return self.eventLoop.makeSucceededVoidFuture()
        }
        let storage = self.storage
        return self.threadPool.runIfActive(eventLoop: self.eventLoop) {
            try store.save(pieces: pieces, storage: storage)
        }.flatMapErrorThrowing { error in
            self.onLog?("cannot save resume data to \(store.location): \(error)")
        }.always { _ in self.machine.resumeSaved() }
    }

    private var now: Instant { Instant(offset: ContinuousClock.now - self.started) }

    // MARK: carrying out the machine's actions

    /// Writes what the machine has for peers (one flush per peer) and carries out its actions. Called after
    /// every input to the machine.
    private func drive() {
        var last: (key: Int, channel: any Channel)?
        while let (key, bytes) = self.machine.pollTransmit() {
            if let l = last, l.key != key { self.flushed(l.key, l.channel) }
            guard let channel = self.channels[key] else { continue }
            channel.write(bytes, promise: nil)
            last = (key, channel)
        }
        if let l = last { self.flushed(l.key, l.channel) }
        while let action = self.machine.pollAction() { self.carryOut(action) }
        if self.machine.takeProgressChanged() { self.onProgress?(self.machine.progress) }
    }

    /// Flushes a peer's writes (one writev for every buffer) and tells the machine when its connection stops
    /// taking bytes.
    private func flushed(_ key: Int, _ channel: any Channel) {
        channel.flush()
        if !channel.isWritable && self.full[key] == nil {
            self.full[key] = -1  // not looked at yet
            self.machine.setWritable(key, false, at: self.now)
        }
    }

    /// About once a second: for each connection that takes no more bytes, whether it sent some of what it holds
    /// since the last look (the machine chokes a peer whose connection sends nothing: it asks and never reads).
    private func checkFullConnections() {
        guard self.now - self.lastFullCheck >= .seconds(1) else { return }
        self.lastFullCheck = self.now
        for (key, before) in self.full {
            guard let channel = self.channels[key] else {
                self.full[key] = nil
                continue
            }
            channel.getOption(.bufferedWritableBytes).hop(to: self.eventLoop).whenSuccess { held in
                guard self.full[key] != nil else { return }
                self.full[key] = held
                if before >= 0 && held < before {
                    self.machine.writeProgressed(key, at: self.now)
                    self.drive()
                }
            }
        }
    }

    private func carryOut(_ action: TorrentMachine.Action) {
        switch action {
        case .close(let key):
            self.channels[key]?.close(promise: nil)
        case .checkAndWrite(let piece, let bytes):
            self.checkAndWrite(piece, bytes)
        case .read(let piece, let length):
            self.readForServing(piece, length: length)
        case .dial(let peers):
            self.onPeersDiscovered?(peers)
        case .pieceLayer(let root, let layer):
            self.verifier.addPieceLayer(layer, root: root)
        case .pieceLayersComplete(let layers):
            self.onPieceLayers?(layers)
        case .pieceVerified(let piece):
            for waiter in self.pieceWaiters.removeValue(forKey: piece) ?? [] { waiter.succeed() }
        case .downloadComplete(let quiet):
            self.finishDownload(log: !quiet)
        case .saveResume(let pieces):
            _ = self.writeResume(pieces)
        case .holePunch(let address):
            self.onHolePunch?(address)
        case .ownAddress(let address):
            self.onOwnAddress?(address)
        case .extensionMessage(let peer, let name, let payload):
            self.onExtensionMessage?(name, Array(buffer: payload), self.machine.listenAddress(ofPeer: peer))
        case .log(let line):
            self.onLog?(line)
        }
    }

    private func checkAndWrite(_ piece: Int, _ bytes: [UInt8]) {
        guard let index = self.storage.pieceMap.index(piece) else { return }
        let storage = self.storage
        let verifier = self.verifier
        self.threadPool.runIfActive(eventLoop: self.eventLoop) { () throws -> Bool in
            guard verifier.verify(index, bytes: bytes).passed else { return false }
            try storage.write(piece: index, offset: 0, bytes: bytes)
            return true
        }.whenComplete { result in
            let outcome: TorrentMachine.PieceOutcome
            switch result {
            case .success(let passed):
                outcome = passed ? .verified : .hashFailed
            case .failure(let error):
                if !self.stopped { self.onLog?("cannot write piece \(piece): \(error)") }
                outcome = .notWritten
                self.complete(.failure(error))
            }
            self.wholePieceWaiters.removeValue(forKey: piece)?(outcome != .hashFailed)
            self.machine.pieceChecked(piece, outcome, buffer: bytes, at: self.now)
            self.drive()
        }
    }

    private func readForServing(_ piece: Int, length size: Int) {
        guard let index = self.storage.pieceMap.index(piece) else { return }
        let storage = self.storage
        self.threadPool.runIfActive(eventLoop: self.eventLoop) { () throws -> ByteBuffer in
            // Straight into the buffer the blocks are sent from.
            var buffer = ByteBufferAllocator().buffer(capacity: size)
            try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { raw in
                try storage.read(piece: index, offset: 0, into: UnsafeMutableRawBufferPointer(rebasing: raw[0..<size]))
                return size
            }
            return buffer
        }.whenComplete { result in
            self.machine.pieceRead(piece, result, at: self.now)
            self.drive()
        }
    }

    /// Completes `start()`'s future once (or keeps the outcome for it); later outcomes are dropped.
    private func complete(_ result: Result<Void, any Error>) {
        guard self.outcome == nil else { return }
        self.outcome = result
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

    // MARK: connections

    /// A key for a channel not attached yet; callable from any thread.
    func reserveKey() -> Int { self.nextKey.wrappingAdd(1, ordering: .relaxed).oldValue }

    /// Adopts a connected channel (outgoing or accepted). Must be called on the engine's loop.
    func attach(_ channel: any Channel, role: PeerWireSession.Role, key reserved: Int? = nil) {
        self.eventLoop.preconditionInEventLoop()
        let key = reserved ?? self.reserveKey()
        guard self.machine.addPeer(key, role: role, endpoint: Self.endpoint(of: channel), at: self.now) else {
            channel.close(promise: nil)
            return
        }
        self.channels[key] = channel
        if reserved == nil { _ = channel.pipeline.addHandler(PeerChannelHandler(host: self, key: key)) }
        self.drive()
    }

    /// Where a channel's peer is, as the machine knows peers.
    private static func endpoint(of channel: any Channel) -> TorrentMachine.Endpoint {
        let remote = channel.remoteAddress
        let ip: [UInt8]? = switch remote {
        case .v4(let a): withUnsafeBytes(of: a.address.sin_addr) { Array($0) }
        case .v6(let a): withUnsafeBytes(of: a.address.sin6_addr) { Array($0) }
        default: nil
        }
        return TorrentMachine.Endpoint(host: remote?.ipAddress ?? "?", ip: ip,
            port: remote?.port.flatMap(UInt16.init(exactly:)))
    }

    /// The key under which `channel` was attached (for replaying its first bytes).
    func key(of channel: any Channel) -> Int {
        self.channels.first { $0.value === channel }?.key ?? -1
    }

    func received(_ key: Int, _ bytes: ByteBuffer) {
        self.machine.receive(key, bytes, at: self.now)
        self.drive()
    }

    /// A dial of `address` (learnt from a peer) failed: the machine may ask that peer to relay a hole punch.
    func dialFailed(_ address: String) {
        self.eventLoop.execute {
            guard !self.stopped else { return }
            self.machine.dialFailed(address, at: self.now)
            self.drive()
        }
    }

    func disconnected(_ key: Int) {
        guard self.channels.removeValue(forKey: key) != nil else { return }
        self.full[key] = nil
        self.machine.peerClosed(key, at: self.now)
        self.drive()
    }

    /// The peer's connection takes bytes again: serve the requests held back.
    func writabilityChanged(_ key: Int) {
        guard let channel = self.channels[key], channel.isWritable else { return }
        self.full[key] = nil
        self.machine.setWritable(key, true, at: self.now)
        self.drive()
    }

    /// Logs a line through `onLog`.
    func log(_ line: String) { self.onLog?(line) }

    /// What to tell a tracker now; nil before the engine knows its listen port.
    func announceRequest(event: AnnounceRequest.Event) -> AnnounceRequest? {
        guard let port = self.configuration.listenPort else { return nil }
        let hash = self.metainfo.infoHashes.v1?.bytes ?? self.metainfo.infoHashes.v2!.truncated
        let progress = self.machine.progress
        return AnnounceRequest(infoHash: hash, peerID: self.localID.bytes, port: port,
            uploaded: UInt64(progress.uploaded), downloaded: UInt64(progress.downloaded),
            left: UInt64(self.machine.bytesLeft), event: event, numWant: 200,
            key: UInt32(truncatingIfNeeded: self.localID.bytes.hashValue))
    }

    /// PEER_DEBUG=1 logs every message received.
    static let debug = getenv("PEER_DEBUG") != nil

    // MARK: figures

    /// The figures now (for a summary at exit).
    public func progress() -> EventLoopFuture<Progress> {
        self.eventLoop.submit { self.machine.progress }
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
        /// How the connection is carried.
        public var transport: PeerTransport
        /// uTP's datagram size now (grown by path MTU probing); nil over TCP.
        public var packetSize: Int?
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
            let peers = self.machine.connectedPeers.map { p in
                PeerSnapshot(address: p.endpoint.display, client: p.client, progress: p.progress,
                    downloadRate: p.downloadRate, outgoing: p.outgoing,
                    transport: self.channels[p.key] is UTPStreamChannel ? .utp : .tcp,
                    packetSize: (self.channels[p.key] as? UTPStreamChannel)?.packetSize.load(ordering: .relaxed))
            }
            return Snapshot(progress: self.machine.progress, have: self.machine.have, peers: peers)
        }
    }

    /// Sends an extension message (one of `extraExtensions`) to every connected peer that offers it; the
    /// future gives how many were sent it.
    public func sendExtension(_ name: String, payload: [UInt8]) -> EventLoopFuture<Int> {
        self.eventLoop.submit {
            guard !self.stopped else { return 0 }
            let sent = self.machine.sendExtension(name, payload: ByteBuffer(bytes: payload), at: self.now)
            self.drive()
            return sent
        }
    }

    // MARK: streaming

    /// Completes once every piece of `pieces` is verified, fetching those missing before any other (deadline
    /// mode, for a stream's reader). Fails with `PieceWaitTimeout` after `timeout`, and with
    /// `CancellationError` when the engine stops.
    public func waitForPieces(_ pieces: Range<Int>, timeout: TimeAmount) -> EventLoopFuture<Void> {
        self.eventLoop.flatSubmit {
            if self.stopped { return self.eventLoop.makeFailedFuture(CancellationError()) }
            let have = self.machine.have
            var waits: [EventLoopFuture<Void>] = []
            for piece in pieces.clamped(to: 0..<have.count) where !have[piece] {
                let promise = self.eventLoop.makePromise(of: Void.self)
                self.pieceWaiters[piece, default: []].append(promise)
                waits.append(promise.futureResult)
                // A waiter still listed when the time is up was not completed: fail it (once, on the loop).
                self.eventLoop.scheduleTask(in: timeout) {
                    guard let i = self.pieceWaiters[piece]?.firstIndex(where: { $0.futureResult === promise.futureResult })
                    else { return }
                    self.pieceWaiters[piece]!.remove(at: i)
                    promise.fail(PieceWaitTimeout(piece: piece))
                }
            }
            guard !waits.isEmpty else { return self.eventLoop.makeSucceededVoidFuture() }
            self.machine.prioritize(pieces, at: self.now)
            self.drive()
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
    static let deadlinePriority = TorrentMachine.deadlinePriority
}

// MARK: whole pieces from sources other than peers (web seeds: WebSeed+Engine.swift)

extension TorrentEngine {
    /// Claims for `source` (a negative key: peers have non-negative ones) a wanted piece no peer has started;
    /// nil when none is left, or while the download limit is spent. Call on the loop.
    func claimWholePiece(source: Int) -> Int? {
        self.machine.claimWholePiece(source: source, at: self.now)
    }

    /// Gives back the pieces `source` claimed and did not deliver.
    func releaseWholePieces(source: Int) {
        self.machine.releaseWholePieces(source: source)
    }

    /// Verifies and writes a whole piece from `source` (named `label` in logs) like one gathered from peers;
    /// `verified` gets false when it failed its hash check, else true (also when peers completed it first).
    func receivedWholePiece(_ piece: Int, bytes: [UInt8], source: Int, label: String,
        verified: @escaping @Sendable (Bool) -> Void)
    {
        guard self.machine.receivedWholePiece(piece, bytes: bytes, source: source, label: label) else {
            return verified(true)
        }
        self.wholePieceWaiters[piece] = verified
        self.drive()
    }
}

/// A piece a reader waited for did not arrive in time.
public struct PieceWaitTimeout: Error, Sendable, CustomStringConvertible {
    public var piece: Int
    public var description: String { "piece \(self.piece) did not arrive in time" }
}
