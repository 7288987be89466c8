// BEP 9: fetching a magnet link's info dictionary from peers.
import Crypto
import Metainfo
import NIOCore
import Synchronization
import PeerBase
import PeerWire
import Tracker

/// Asks the peers of a magnet link for its info dictionary (ut_metadata) and checks it against the
/// link's info-hash. Confined to one event loop, like `TorrentEngine`.
public final class MetadataFetcher: @unchecked Sendable {
    /// Our ut_metadata message id.
    static let utMetadataID: UInt8 = 3

    public let magnet: MagnetLink
    public let eventLoop: any EventLoop
    private let localID: PeerID
    private let listenPort: UInt16
    private let epoch = ContinuousClock.now
    private var peers: [Int: Conn] = [:]
    private let nextKey = Atomic<Int>(0)
    private var assembler: MetadataAssembler?
    private var promise: EventLoopPromise<[UInt8]>?
    private var timer: RepeatedTask?
    private let result: EventLoopFuture<[UInt8]>

    /// Called on the loop with a line worth logging.
    public var onLog: (@Sendable (String) -> Void)?

    private final class Conn: @unchecked Sendable {
        let channel: any Channel
        var session: PeerWireSession
        let host: String
        init(channel: any Channel, session: PeerWireSession, host: String) {
            self.channel = channel
            self.session = session
            self.host = host
        }
    }

    init(magnet: MagnetLink, eventLoop: any EventLoop, listenPort: UInt16) {
        self.magnet = magnet
        self.eventLoop = eventLoop
        self.listenPort = listenPort
        var rng = SystemRandomNumberGenerator()
        self.localID = PeerID.random(using: &rng)
        let promise = eventLoop.makePromise(of: [UInt8].self)
        self.promise = promise
        self.result = promise.futureResult
        self.timer = eventLoop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { _ in
            self.tick()
        }
    }

    /// The info dictionary's bytes, once fetched and checked.
    public var infoBytes: EventLoopFuture<[UInt8]> { self.result }

    /// Ends the wait with `CancellationError` (Ctrl-C).
    public func cancel() {
        self.eventLoop.execute { self.finish(.failure(CancellationError())) }
    }

    var handshakeHashes: [[UInt8]] {
        [self.magnet.infoHashes.v1?.bytes, self.magnet.infoHashes.v2?.truncated].compactMap { $0 }
    }

    private var now: Instant { Instant(offset: ContinuousClock.now - self.epoch) }

    func log(_ line: String) { self.onLog?(line) }

    func announceRequest(event: AnnounceRequest.Event) -> AnnounceRequest? {
        AnnounceRequest(infoHash: self.handshakeHashes[0], peerID: self.localID.bytes, port: self.listenPort,
            left: UInt64(self.magnet.exactLength ?? 1), event: event, numWant: 200,
            key: UInt32(truncatingIfNeeded: self.localID.bytes.hashValue))
    }

    func reserveKey() -> Int { self.nextKey.wrappingAdd(1, ordering: .relaxed).oldValue }

    func attach(_ channel: any Channel, role: PeerWireSession.Role, key reserved: Int? = nil) {
        self.eventLoop.preconditionInEventLoop()
        var config = PeerWireSession.Configuration(infoHashes: self.handshakeHashes, localID: self.localID,
            pieceCount: nil)
        config.reserved = [.extensionProtocol, .fast]
        if self.magnet.infoHashes.v1 != nil && self.magnet.infoHashes.v2 != nil { config.reserved.insert(.v2Upgrade) }
        config.openingMessage = .haveNone
        config.extendedHandshake = ExtendedHandshake(extensions: [UTMetadataMessage.name: Self.utMetadataID],
            client: "Peer 0.1", listenPort: self.listenPort)
        let key = reserved ?? self.reserveKey()
        let conn = Conn(channel: channel, session: PeerWireSession(role: role, configuration: config, at: self.now),
            host: channel.remoteAddress?.ipAddress ?? "?")
        self.peers[key] = conn
        if reserved == nil { _ = channel.pipeline.addHandler(PeerChannelHandler(host: self, key: key)) }
        self.flush(conn)
    }

    func key(of channel: any Channel) -> Int { self.peers.first { $0.value.channel === channel }?.key ?? -1 }

    func received(_ key: Int, _ bytes: ByteBuffer) {
        guard let c = self.peers[key] else { return }
        c.session.receive(bytes, at: self.now)
        while let event = c.session.pollEvent() {
            switch event {
            case .extendedHandshake(let ext):
                self.start(ext, from: c)
            case .message(.extended(let id, let payload)) where id == Self.utMetadataID:
                self.handleMetadata(payload, from: c)
            case .closed(let reason):
                // A tracker that names us to ourselves is nobody's fault.
                if let reason, reason != .connectedToSelf { self.log("dropped \(c.host): \(reason)") }
                c.channel.close(promise: nil)
            default:
                break
            }
        }
        self.flush(c)
    }

    func disconnected(_ key: Int) { self.peers[key] = nil }

    func writabilityChanged(_ key: Int) {}

    func stop() -> EventLoopFuture<Void> {
        self.eventLoop.submit {
            self.timer?.cancel()
            for c in self.peers.values { c.channel.close(promise: nil) }
            self.finish(.failure(CancellationError()))
        }
    }

    private func flush(_ c: Conn) {
        while let out = c.session.pollTransmit() { c.channel.writeAndFlush(out, promise: nil) }
    }

    /// A peer said it speaks ut_metadata: ask it for every piece still missing.
    private func start(_ ext: ExtendedHandshake, from c: Conn) {
        guard let theirID = ext.extensions[UTMetadataMessage.name], theirID != 0, let size = ext.metadataSize else { return }
        if self.assembler == nil || self.assembler!.totalSize != size {
            guard let a = try? MetadataAssembler(totalSize: size) else { return }
            self.assembler = a
        }
        for piece in self.assembler!.missing {
            c.session.handle(.send(.extended(id: theirID, payload: UTMetadataMessage.request(piece: piece).encoded())),
                at: self.now)
        }
    }

    private func handleMetadata(_ payload: ByteBuffer, from c: Conn) {
        guard let message = try? UTMetadataMessage(decoding: payload) else {
            c.session.handle(.close, at: self.now)
            return
        }
        switch message {
        case .request(let piece):
            if let theirID = c.session.remoteExtensions?.extensions[UTMetadataMessage.name], theirID != 0 {
                c.session.handle(.send(.extended(id: theirID, payload: UTMetadataMessage.reject(piece: piece).encoded())),
                    at: self.now)
            }
        case .reject:
            break
        case .data(let piece, let total, let bytes):
            guard var a = self.assembler, a.totalSize == total else { return }
            do { try a.add(piece: piece, bytes: Array(bytes.readableBytesView)) } catch {
                self.log("dropped \(c.host): \(error)")
                c.session.handle(.close, at: self.now)
                return
            }
            self.assembler = a
            if let info = a.assembled {
                if self.matches(info) {
                    self.finish(.success(info))
                } else {
                    self.log("metadata from \(c.host) does not match the info-hash; asking again")
                    self.assembler = nil
                    c.session.handle(.close, at: self.now)
                }
            }
        }
    }

    private func matches(_ info: [UInt8]) -> Bool {
        if let v1 = self.magnet.infoHashes.v1 { return Array(Insecure.SHA1.hash(data: info)) == v1.bytes }
        if let v2 = self.magnet.infoHashes.v2 { return Array(SHA256.hash(data: info)) == v2.bytes }
        return false
    }

    private func finish(_ result: Result<[UInt8], any Error>) {
        guard let promise = self.promise else { return }
        self.promise = nil
        promise.completeWith(result)
    }

    private func tick() {
        for c in self.peers.values {
            c.session.handleTimeout(at: self.now)
            self.flush(c)
        }
    }
}

extension MetadataFetcher: PeerHost {}
