// Issue 17: a live stream on the node — the peer_live extension (Live.LiveMessage) on connections whose info-hash
// is the stream's id, driving a LiveMachine.
import Crypto
import DequeModule
import Foundation
import Live
import NIOCore
import PeerBase
import PeerWire
import Synchronization
import Tracker

/// How a live stream stands on this node: what `peer live` prints and the API shows.
public struct LiveStats: Sendable, Codable, Equatable {
    /// The stream's id in hex (its DHT key and handshake info-hash).
    public var stream: String
    public var name: String
    public var source: Bool
    public var neighbours: Int
    public var newest: UInt64?
    /// Chunks cut and signed here (the source), and their bytes.
    public var published: Int
    public var publishedBytes: Int
    /// Chunks played in order, and given up on.
    public var played: Int
    public var skipped: Int
    /// Chunks that came twice (a push and a pull crossing).
    public var duplicates: Int
    /// peer_live chunk bytes received and sent.
    public var receivedBytes: Int
    public var uploadedBytes: Int
    /// Neighbours dropped for sending what no honest one would.
    public var dropped: Int
    /// Milliseconds from the source cutting a chunk to its playing here, over the last 300 chunks played.
    public var latency: Latency?

    public struct Latency: Sendable, Codable, Equatable {
        public var median: Double
        public var p95: Double
        public var max: Double
    }

    enum CodingKeys: String, CodingKey {
        case stream, name, source, neighbours, newest, published, played, skipped, duplicates, dropped, latency
        case publishedBytes = "published_bytes"
        case receivedBytes = "received_bytes"
        case uploadedBytes = "uploaded_bytes"
    }
}

/// A live stream on this node: its source, or a viewer that plays it and relays it to other viewers. A `PeerHost`
/// for the stream's id: every connection to it is a neighbour in the stream's swarm (at most `maxNeighbours`),
/// speaking `peer_live` (BEP 10). The `LiveMachine` decides what to push, pull, play and whom to drop; this
/// class carries its messages, tells it when a chunk has gone out (its write completed), ticks it, paces chunk
/// uploads to `maxUploadRate`, and finds neighbours through the DHT. Confined to its event loop.
public final class LiveStream: @unchecked Sendable {
    public struct Configuration: Sendable {
        public var machine = LiveMachine.Configuration()
        /// Connections taken, dialled and accepted.
        public var maxNeighbours = 32
        /// Neighbours dialled from what the DHT names, while fewer are connected (the source dials none: viewers
        /// come to it).
        public var dialTarget = 6
        /// Chunk bytes sent per second, at most (nil: no limit). The limit holds each chunk back until the
        /// rate allows it; the machine sends fewer as its uplink stays busy.
        public var maxUploadRate: Int?
        /// Asks the DHT for more neighbours this often while it has fewer than `dialTarget`.
        public var refresh: Duration = .seconds(10)
        /// A host dropped for what it sent is refused for this long.
        public var banTime: Duration = .seconds(600)
        public init() {}
    }

    public let eventLoop: any EventLoop
    public let link: LiveLink
    public let configuration: Configuration
    private var machine: LiveMachine
    private let links: OverlayLinks<Void>
    private let nextKey = Atomic<Int>(0)
    private var timer: RepeatedTask?
    private let epoch = ContinuousClock.now
    private var banned: [String: Instant] = [:]
    private var lastRefresh: Instant = .zero
    private var lastSessionTick: Instant = .zero
    private var lastPeerExchange: Instant = .zero
    /// Chunks held back by `maxUploadRate`, in order, and the bytes the rate allows now (negative: owed).
    private var paced: Deque<(key: Int, message: LiveMessage, bytes: Int)> = []
    private var credit = 0.0
    private var creditAt: Instant = .zero
    private var stats: LiveStats
    private var latencies: Deque<Double> = []

    /// Each chunk in order as it plays (a viewer; on the event loop: hand the bytes on, never block).
    public var onPlay: (@Sendable (LiveChunk) -> Void)?
    /// A chunk given up on.
    public var onSkipped: (@Sendable (UInt64) -> Void)?
    public var onLog: (@Sendable (String) -> Void)?
    var dialer: (@Sendable (String) -> Void)?
    var refreshNeighbours: (@Sendable () -> Void)?

    init(eventLoop: any EventLoop, link: LiveLink, key: Curve25519.Signing.PrivateKey?, listenPort: UInt16,
        ownAddresses: OwnAddresses, configuration: Configuration)
    {
        self.eventLoop = eventLoop
        self.link = link
        self.configuration = configuration
        self.machine = key.map { LiveMachine(publishing: link, key: $0, configuration: configuration.machine) }
            ?? LiveMachine(viewing: link, configuration: configuration.machine)
        self.links = OverlayLinks(hash: link.streamID, extensionName: LiveMessage.name, listenPort: listenPort,
            ownAddresses: ownAddresses)
        self.stats = LiveStats(stream: Hex.encode(link.streamID), name: link.name, source: key != nil, neighbours: 0,
            published: 0, publishedBytes: 0, played: 0, skipped: 0, duplicates: 0, receivedBytes: 0,
            uploadedBytes: 0, dropped: 0)
        self.timer = eventLoop.scheduleRepeatedTask(initialDelay: .milliseconds(20), delay: .milliseconds(20)) { _ in
            self.tick()
        }
    }

    private var now: Instant { Instant(offset: ContinuousClock.now - self.epoch) }

    /// Microseconds since the Unix epoch: the clock chunks are stamped with, and latency measured by.
    public static var wallClock: UInt64 { UInt64(max(0, Date().timeIntervalSince1970 * 1_000_000)) }

    /// Cuts, signs and sends the next chunk (the source only).
    public func publish(_ payload: [UInt8], kind: LiveChunk.Kind = .media) -> EventLoopFuture<LiveChunk> {
        self.eventLoop.submit {
            let chunk = try self.machine.publish(payload, time: Self.wallClock, kind: kind, at: self.now)
            self.stats.published += 1
            self.stats.publishedBytes += payload.count
            self.drain()
            return chunk
        }
    }

    public var currentStats: EventLoopFuture<LiveStats> {
        self.eventLoop.submit {
            var s = self.stats
            s.neighbours = self.links.readyCount
            s.newest = self.machine.newest
            s.duplicates = self.machine.duplicates
            s.uploadedBytes = self.machine.uploadedBytes
            if !self.latencies.isEmpty {
                let sorted = self.latencies.sorted()
                s.latency = .init(median: sorted[sorted.count / 2], p95: sorted[min(sorted.count - 1, sorted.count * 95 / 100)],
                    max: sorted.last!)
            }
            return s
        }
    }

    // MARK: neighbours

    /// Nodes the DHT named for the stream: those not connected already, not this node, not refused, are dialled
    /// while fewer than `dialTarget` are connected.
    func discovered(_ addresses: [String]) {
        self.eventLoop.execute {
            if TorrentEngine.debug { self.log("discovered \(addresses.sorted())") }
            let connected = self.links.connectedAddresses
            // A viewer none of whose neighbours has a chunk (viewers that found each other before the source's
            // announce reached the DHT) lets two of its empty-handed neighbours go per lookup to try others: one
            // of the addresses named is the way in.
            var room = min(self.configuration.dialTarget, self.configuration.maxNeighbours) - self.links.count
            var evictions = self.isStarving ? 2 : 0
            for address in addresses.shuffled() where !connected.contains(address)
                && !self.links.ownAddresses.contains(address)
            {
                guard let (host, _) = PeerNode.splitHostPort(address), !self.isBanned(host) else { continue }
                if room <= 0 {
                    guard evictions > 0, self.makeRoom() else { break }
                    evictions -= 1
                    room += 1
                }
                room -= 1
                self.dialer?(address)
            }
        }
    }

    private func isBanned(_ host: String) -> Bool {
        guard let until = self.banned[host] else { return false }
        if self.now < until { return true }
        self.banned[host] = nil
        return false
    }

    // MARK: the machine's actions

    private func drain() {
        while let action = self.machine.pollAction() {
            switch action {
            case .send(let key, let message):
                if case .chunk(let chunk) = message, self.configuration.maxUploadRate != nil {
                    self.paced.append((key, message, chunk.payload.count))
                    self.sendPaced()
                } else {
                    self.send(message, to: key)
                }
            case .play(let chunk):
                self.stats.played += 1
                // A header a late joiner fetched is as old as the stream: not a measure of delay.
                if chunk.kind != .header {
                    self.latencies.append(Double(Int64(bitPattern: Self.wallClock &- chunk.time)) / 1000)
                    if self.latencies.count > 300 { self.latencies.removeFirst() }
                }
                self.onPlay?(chunk)
            case .skipped(let n):
                self.stats.skipped += 1
                self.onSkipped?(n)
            case .drop(let key, let reason):
                self.drop(key, reason)
            }
        }
    }

    /// Sends the chunks held back by the rate limit that it allows now.
    private func sendPaced() {
        guard let rate = self.configuration.maxUploadRate.map(Double.init) else { return }
        let now = self.now
        // Credit accrues at the rate, up to a tenth of a second's worth (or one chunk): a burst no longer than that.
        self.credit = min(max(rate / 10, Double(LiveLimits.maxPayload) / 4),
            self.credit + (now - self.creditAt).seconds * rate)
        self.creditAt = now
        while self.credit > 0, let next = self.paced.popFirst() {
            self.credit -= Double(next.bytes)
            self.send(next.message, to: next.key)
        }
    }

    private func send(_ message: LiveMessage, to key: Int) {
        guard case .chunk = message else { return self.links.send(message.encoded(), to: key, at: self.now) }
        // The machine sends the next chunk once this one is written: a slow reader holds the uplink back.
        let written = self.eventLoop.makePromise(of: Void.self)
        self.links.send(message.encoded(), to: key, at: self.now, written: written)
        written.futureResult.whenComplete { _ in
            self.machine.sent(to: key)
            self.drain()
        }
    }

    /// Closes a neighbour that sent what no honest one would, and refuses its address for `banTime` (the machine
    /// has let it go already).
    private func drop(_ key: Int, _ reason: String) {
        guard let link = self.links[key] else { return }
        self.stats.dropped += 1
        self.log("dropped live neighbour \(link.host): \(reason); refused for \(self.configuration.banTime)")
        self.banned[link.host] = self.now + self.configuration.banTime
        self.links.close(key, at: self.now)
    }

    // MARK: ticking

    private func tick() {
        let now = self.now
        self.sendPaced()
        self.machine.tick(at: now)
        self.drain()
        if now - self.lastSessionTick >= .seconds(1) {
            self.lastSessionTick = now
            self.links.tick(at: now)
        }
        if now - self.lastPeerExchange >= .seconds(15) {
            self.lastPeerExchange = now
            self.sendPeers(to: Array(self.links.ready.keys))
        }
        // Alone, or with no chunk from anyone, a viewer asks every 2 s (the source may have announced a moment after
        // the last lookup); below its dial target, every 10 s. A source nobody has found announces again every 10 s.
        let every: Duration? =
            if self.machine.isSource { self.links.count == 0 ? self.configuration.refresh : nil }
            else if self.links.count == 0 || self.isStarving { min(.seconds(2), self.configuration.refresh) }
            else if self.links.count < self.configuration.dialTarget { self.configuration.refresh }
            else { nil }
        if let every, now - self.lastRefresh >= every {
            self.lastRefresh = now
            self.refreshNeighbours?()
        }
    }

    // MARK: peer exchange

    /// Tells neighbours of others (their listen addresses) and of the source, when it is one of ours.
    private func sendPeers(to keys: [Int]) {
        guard !keys.isEmpty else { return }
        let ready = self.links.ready
        let source = self.machine.sourceNeighbour.flatMap { ready[$0]?.listenAddress }
        let all = ready.values.compactMap(\.listenAddress).shuffled()
        for key in keys {
            let theirs = ready[key]?.listenAddress
            let peers = Array(all.filter { $0 != theirs }.prefix(LiveMessage.maxPeers))
            guard !peers.isEmpty || source != nil else { continue }
            self.links.send(LiveMessage.peers(peers, source: source == theirs ? nil : source).encoded(), to: key,
                at: self.now)
        }
    }

    /// Addresses a neighbour named. The source's is dialled even when this viewer has its fill (then the
    /// neighbour with the fewest chunks makes room): viewers that found each other before the source's announce
    /// reached the DHT learn where it is from the first of them to find it.
    private func heard(peers: [String], source: String?) {
        let valid = peers.filter { PeerNode.splitHostPort($0) != nil }
        if !self.machine.isSource, let source, PeerNode.splitHostPort(source) != nil,
            self.machine.sourceNeighbour == nil, !self.links.connectedAddresses.contains(source),
            !self.links.ownAddresses.contains(source)
        {
            if self.links.count >= self.configuration.maxNeighbours { _ = self.makeRoom() }
            self.dialer?(source)
        }
        self.discovered(valid)
    }

    /// Closes the neighbour with the fewest chunks to offer (never the source); false when there is none.
    private func makeRoom() -> Bool {
        let source = self.machine.sourceNeighbour
        guard let (weakest, _) = self.links.links.filter({ $0.key != source })
            .min(by: { self.machine.heldCount($0.key) < self.machine.heldCount($1.key) })
        else { return false }
        let wasReady = self.links[weakest]?.isReady ?? false
        self.links.close(weakest, at: self.now)
        self.links.remove(weakest)  // its room is another's now, before its channel has closed
        if wasReady { self.machine.disconnected(weakest) }
        self.paced.removeAll { $0.key == weakest }
        return true
    }

    /// A viewer that has heard of no chunk from anyone.
    private var isStarving: Bool { !self.machine.isSource && self.machine.newest == nil && !self.machine.hasAnnouncements }

    func log(_ line: String) { self.onLog?(line) }
}

extension LiveStream: DHTOverlay {
    var handshakeHashes: [[UInt8]] { [self.link.streamID] }

    func announceRequest(event: AnnounceRequest.Event) -> AnnounceRequest? { nil }

    func reserveKey() -> Int { self.nextKey.wrappingAdd(1, ordering: .relaxed).oldValue }

    func attach(_ channel: any Channel, role: PeerWireSession.Role, key reserved: Int?) {
        self.eventLoop.preconditionInEventLoop()
        guard self.links.count < self.configuration.maxNeighbours,
            !self.isBanned(channel.remoteAddress?.ipAddress ?? "?")
        else {
            channel.close(promise: nil)
            return
        }
        let key = reserved ?? self.reserveKey()
        self.links.attach(channel, role: role, key: key, state: (), at: self.now)
        if reserved == nil { _ = channel.pipeline.addHandler(PeerChannelHandler(host: self, key: key)) }
    }

    func key(of channel: any Channel) -> Int { self.links.key(of: channel) }

    func received(_ key: Int, _ bytes: ByteBuffer) {
        let now = self.now
        for event in self.links.received(key, bytes, at: now) {
            switch event {
            case .ready(let k):
                self.machine.connected(k)
                self.sendPeers(to: [k])
            case .replaced: break  // never ready, so the machine never knew it
            case .message(let k, let payload):
                let message: LiveMessage
                do { message = try LiveMessage(decoding: Array(payload.readableBytesView)) } catch {
                    self.machine.disconnected(k)
                    self.drop(k, "\(error)")
                    continue
                }
                if case .chunk = message { self.stats.receivedBytes += payload.readableBytes }
                if case .peers(let peers, let source) = message {
                    self.heard(peers: peers, source: source)
                    continue
                }
                self.machine.received(message, from: k, at: now)
            case .closed(let k, let reason):
                if let reason, let link = self.links[k] { self.log("live neighbour \(link.host) left: \(reason)") }
            }
        }
        self.drain()
    }

    func disconnected(_ key: Int) {
        guard let link = self.links.remove(key) else { return }
        if link.isReady { self.machine.disconnected(key) }
        self.paced.removeAll { $0.key == key }
        self.drain()
    }

    func writabilityChanged(_ key: Int) {}

    func stop() -> EventLoopFuture<Void> {
        self.eventLoop.submit {
            self.timer?.cancel()
            self.links.closeAll()
        }
    }
}

extension PeerNode {
    /// Joins the live stream `link`: as its source when `key` is given (it signs the chunks `publish` cuts), else
    /// as a viewer. Takes connections for the stream's id, announces it on the DHT and dials the nodes the DHT
    /// names (again every `refresh` while it has fewer than `dialTarget`).
    public func startLive(_ link: LiveLink, key: Curve25519.Signing.PrivateKey? = nil, listenPort: Int,
        configuration: LiveStream.Configuration = .init()) -> LiveStream
    {
        var configuration = configuration
        if key != nil { configuration.dialTarget = 0 }
        let stream = LiveStream(eventLoop: self.group.next(), link: link, key: key,
            listenPort: UInt16(clamping: listenPort), ownAddresses: self.ownAddresses, configuration: configuration)
        self.join(stream, listenPort: listenPort)
        return stream
    }

    /// Dials a neighbour of the stream by address ("host:port"): `--peer`.
    public func dialLive(_ stream: LiveStream, _ address: String) { self.dial(stream, address) }

    /// Leaves the stream: its connections close, the DHT stops announcing it.
    public func stopLive(_ stream: LiveStream) async { await self.remove(stream as any PeerHost) }
}
