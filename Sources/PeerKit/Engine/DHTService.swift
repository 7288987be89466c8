import DHT
import NIOCore
import NIOPosix
import PeerBase
import Synchronization

/// Runs the sans-I/O `DHTNode` on a UDP socket: datagrams in and out, its timer, and the torrents that look
/// for peers through it.
///
/// Confined to one event loop like a torrent. Each torrent registered with `track` is announced (a get_peers
/// lookup, then announce_peer to the closest nodes) once the node has joined the DHT and every 5 minutes after,
/// and the peers found are handed to its callback. The routing table's nodes are saved with `saveNodes` and
/// given back at the next start, so a restart needs no bootstrap router.
public final class DHTService: @unchecked Sendable {
    public let eventLoop: any EventLoop
    /// One UDP socket per address family (BEP 32), all on the same loop and port: the service's own, or the
    /// node's `UDPPort`s, which it shares with uTP.
    private let sockets: [DHTEndpoint.Family: Socket]
    private var node: DHTNode
    private var timer: Scheduled<Void>?
    private let epoch = ContinuousClock.now
    private var joined = false
    private var rounds: RepeatedTask?
    private var bootstrapLookup: LookupID?
    private var tracked: [NodeID: (port: UInt16?, onPeers: @Sendable ([String]) -> Void)] = [:]
    /// Lookups started on behalf of `tracked` torrents.
    private var lookups: [LookupID: NodeID] = [:]
    /// Lookups in a row that found no peer, per torrent.
    private var emptyRounds: [NodeID: Int] = [:]
    private let routers: [DHTEndpoint]
    /// Commands run for callers of `run`, and callers waiting for the node to join.
    private var waiters: [LookupID: EventLoopPromise<LookupOutcome>] = [:]
    private var joinWaiters: [EventLoopPromise<Void>] = []
    private let known: [DHTEndpoint]

    /// How often each torrent is announced again.
    static let interval: TimeAmount = .minutes(5)
    /// How long to wait before joining again when a bootstrap found nobody.
    static let retry: TimeAmount = .seconds(15)
    /// How long a command that needs the routing table waits for the node to join.
    static let joinTimeout: TimeAmount = .seconds(30)

    /// How the node takes part, beyond the BEPs' defaults.
    public struct Policy: Sendable {
        /// BEP 42: nodes whose ID does not match their IP stay out of the routing table and do not count in
        /// lookups (libtorrent's `dht_restrict_routing_ips`); local addresses are exempt.
        public var enforceNodeIDs = false
        /// BEP 43: ask, never answer, and say so, so that others leave the node out of their tables.
        public var readOnly = false
        public init(enforceNodeIDs: Bool = false, readOnly: Bool = false) {
            (self.enforceNodeIDs, self.readOnly) = (enforceNodeIDs, readOnly)
        }
    }

    /// A command gave up waiting for the node to join the DHT.
    public struct NotJoined: Error, CustomStringConvertible {
        public var seconds: Int64
        public var description: String { "no DHT node answered within \(self.seconds) s (check --dht-bootstrap)" }
    }

    private enum Socket {
        case own(any Channel)
        case shared(UDPPort)

        var channel: any Channel {
            switch self {
            case .own(let channel): channel
            case .shared(let port): port.channel
            }
        }
    }

    private init(sockets: [DHTEndpoint.Family: Socket], node: DHTNode, routers: [DHTEndpoint], known: [DHTEndpoint]) {
        self.sockets = sockets
        self.eventLoop = sockets.values.first!.channel.eventLoop
        self.node = node
        self.routers = routers
        self.known = known
    }

    /// Opens the UDP socket on `bindHost:port` and joins the DHT through `routers` and `knownNodes`. Without
    /// `bindHost` the node has two sockets on the same port, 0.0.0.0 and [::] (IPv6 only), and a routing table
    /// for each family (BEP 32); a machine without IPv6 gets the IPv4 one alone. With `bindHost` it has that
    /// address's family only.
    public static func start(
        group: any EventLoopGroup, bindHost: String?, port: Int, routers: [DHTEndpoint], knownNodes: [DHTEndpoint],
        policy: Policy = Policy()
    ) async throws -> DHTService {
        try await self.start(group: group, bindHost: bindHost, port: port, sharing: [], routers: routers,
            knownNodes: knownNodes, policy: policy)
    }

    /// Joins the DHT on the node's UDP ports (`sharing`, one per family, all on one loop) when it has them, else
    /// on sockets of its own as above.
    static func start(
        group: any EventLoopGroup, bindHost: String?, port: Int, sharing: [UDPPort], routers: [DHTEndpoint],
        knownNodes: [DHTEndpoint], policy: Policy = Policy()
    ) async throws -> DHTService {
        var configuration = DHTNode.Configuration(readOnly: policy.readOnly, enforceNodeIDs: policy.enforceNodeIDs)
        configuration.version = Array("PE01".utf8)
        let box = Mutex<DHTService?>(nil)
        let limit = configuration.krpcLimits.maxDatagramLength
        func open(_ host: String, port: Int, on loops: any EventLoopGroup) async throws -> any Channel {
            var bootstrap = DatagramBootstrap(group: loops)
                // NIO reads a datagram into a buffer of fixed size and silently drops what does not fit (by
                // default 2 048 bytes, exactly the decoder's limit): a 65 507-byte datagram whose first 2 048
                // bytes were a valid query was answered. One byte more than the limit lets the node see that it
                // is too long.
                .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: limit + 1))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(Receiver { bytes, source in
                            box.withLock { $0 }?.received(bytes, from: source)
                        })
                    }
                }
            if host == "::" {
                // The IPv4 socket has the port's IPv4 half; this one must not claim it too.
                bootstrap = bootstrap.channelOption(.ipv6Only, value: 1)
            }
            return try await bootstrap.bind(host: host, port: port).get()
        }
        var sockets: [DHTEndpoint.Family: Socket] = [:]
        if !sharing.isEmpty {
            for shared in sharing {
                guard let family = shared.localAddress.flatMap(DHTEndpoint.init)?.ip.family else { continue }
                sockets[family] = .shared(shared)
            }
        } else if let host = bindHost, let ip = DHTEndpoint.IP(text: host) {
            sockets[ip.family] = .own(try await open(host, port: port, on: group))
        } else {
            let v4 = try await open(bindHost ?? "0.0.0.0", port: port, on: group)
            sockets[.ipv4] = .own(v4)
            if bindHost == nil, let v6 = try? await open("::", port: v4.localAddress?.port ?? port, on: v4.eventLoop) {
                sockets[.ipv6] = .own(v6)
            }
        }
        configuration.families = Set(sockets.keys)
        let node = DHTNode(configuration: configuration, at: .zero, seed: UInt64.random(in: .min ... .max))
        let service = DHTService(sockets: sockets, node: node, routers: routers, known: knownNodes)
        box.withLock { $0 = service }
        for case .shared(let shared) in sockets.values {
            shared.deliverOthers { bytes, source in box.withLock { $0 }?.received(bytes, from: source) }
        }
        try await service.eventLoop.submit { service.join() }.get()
        return service
    }

    /// The UDP port the node listens on.
    public var port: Int { self.sockets.values.first?.channel.localAddress?.port ?? 0 }

    /// The address families the node has sockets for.
    public var families: Set<DHTEndpoint.Family> { Set(self.sockets.keys) }

    private var now: Instant { Instant(offset: ContinuousClock.now - self.epoch) }

    /// Joins again after `retry`, or as soon as a node has found this one (the first node of a small DHT, whose
    /// bootstrap node is itself or absent: the others join through it, and it through them).
    private func rejoin(waited: TimeAmount = .zero) {
        _ = self.eventLoop.scheduleTask(in: .seconds(1)) {
            let waited = waited + .seconds(1)
            let known = [DHTEndpoint.Family.ipv4, .ipv6].contains { (self.node.routingTable($0)?.count ?? 0) > 0 }
            if known || waited >= Self.retry { self.join() } else { self.rejoin(waited: waited) }
        }
    }

    private func join() {
        self.bootstrapLookup = self.node.handle(.bootstrap(routers: self.routers, knownNodes: self.known), at: self.now)
        self.pump()
    }

    /// Looks for peers of `infoHash` (20 bytes) now and every 5 minutes; with `announcePort`, also announces this
    /// node as a peer on that TCP port. `onPeers` gets "ip:port" strings (on the DHT's loop).
    public func track(infoHash: [UInt8], announcePort: Int?, onPeers: @escaping @Sendable ([String]) -> Void) {
        guard let id = NodeID(bytes: infoHash) else { return }
        self.eventLoop.execute {
            self.tracked[id] = (announcePort.flatMap(UInt16.init(exactly:)), onPeers)
            if self.joined { self.lookUp(id) }
        }
    }

    /// Info-hashes other nodes ask about or announce (with the announcing peer), for the harvester; on the
    /// DHT's loop. Set before or after start, from the loop.
    public var onInfoHashSeen: (@Sendable ([UInt8], String?) -> Void)?

    /// Sets `onInfoHashSeen` on the DHT's loop.
    public func observeInfoHashes(_ body: @escaping @Sendable ([UInt8], String?) -> Void) {
        self.eventLoop.execute { self.onInfoHashSeen = body }
    }

    /// Looks a tracked hash up again now (and announces it again, if it announces).
    public func refresh(infoHash: [UInt8]) {
        guard let id = NodeID(bytes: infoHash) else { return }
        self.eventLoop.execute { if self.joined { self.lookUp(id) } }
    }

    /// Stops looking for (and announcing) `infoHash`.
    public func untrack(infoHash: [UInt8]) {
        guard let id = NodeID(bytes: infoHash) else { return }
        self.eventLoop.execute { self.tracked[id] = nil }
    }

    /// Whether the DHT speaks from the node's listen port `port` (a shared `UDPPort`): then its announces say
    /// `implied_port` (BEP 5), and the nodes that store them take the port the datagram came from, which a NAT
    /// that changes ports has mapped, where the port in the message is only the one inside.
    private func answersOnListenPort(_ port: UInt16) -> Bool {
        !self.sockets.isEmpty && self.sockets.values.allSatisfy {
            if case .shared(let udp) = $0 { udp.localAddress?.port == Int(port) } else { false }
        }
    }

    private func lookUp(_ id: NodeID) {
        guard let entry = self.tracked[id] else { return }
        let lookup = entry.port.map {
            self.node.handle(.announce(infoHash: id, port: $0, impliedPort: self.answersOnListenPort($0)), at: self.now)
        } ?? self.node.handle(.getPeers(infoHash: id), at: self.now)
        self.lookups[lookup] = id
        self.pump()
    }

    /// Runs one command on the node and returns its outcome; with `joinFirst`, once the node has joined the DHT
    /// (lookups need a routing table; a ping or a sample query to a named node does not).
    public func run(_ command: DHTNode.Command, joinFirst: Bool) async throws -> LookupOutcome {
        try await self.eventLoop.flatSubmit { () -> EventLoopFuture<LookupOutcome> in
            let start: @Sendable () -> EventLoopFuture<LookupOutcome> = {
                let promise = self.eventLoop.makePromise(of: LookupOutcome.self)
                self.waiters[self.node.handle(command, at: self.now)] = promise
                self.pump()
                return promise.futureResult
            }
            guard joinFirst && !self.joined else { return start() }
            let joined = self.eventLoop.makePromise(of: Void.self)
            self.joinWaiters.append(joined)
            // A node nobody answers retries its bootstrap for ever; its callers do not wait for ever.
            let timeout = self.eventLoop.scheduleTask(in: Self.joinTimeout) {
                guard let i = self.joinWaiters.firstIndex(where: { $0.futureResult === joined.futureResult }) else { return }
                self.joinWaiters.remove(at: i)
                joined.fail(NotJoined(seconds: Self.joinTimeout.nanoseconds / 1_000_000_000))
            }
            joined.futureResult.whenComplete { _ in timeout.cancel() }
            return joined.futureResult.flatMap(start)
        }.get()
    }

    /// Nodes of the routing table, to save for the next start.
    public func knownNodes() async -> [DHTEndpoint] {
        (try? await self.eventLoop.submit { self.node.knownNodes.map(\.endpoint) }.get()) ?? []
    }

    /// The node's figures (routing table size, queries in and out).
    public func stats() async -> DHTNode.Stats? {
        try? await self.eventLoop.submit { self.node.stats }.get()
    }

    public func stop() async {
        try? await self.eventLoop.submit {
            self.timer?.cancel()
            self.rounds?.cancel()
            for w in self.waiters.values { w.fail(CancellationError()) }
            for w in self.joinWaiters { w.fail(CancellationError()) }
            self.waiters.removeAll()
            self.joinWaiters.removeAll()
        }.get()
        for socket in self.sockets.values {
            switch socket {
            case .own(let channel): try? await channel.close()
            case .shared(let port): port.deliverOthers(to: nil)
            }
        }
    }

    // MARK: driving the node

    private func received(_ bytes: [UInt8], from source: SocketAddress) {
        guard let endpoint = DHTEndpoint(source) else { return }
        self.node.receive(bytes, from: endpoint, at: self.now)
        self.pump()
    }

    /// Sends what the node has to send, acts on its events, and re-arms its timer.
    private func pump() {
        while let datagram = self.node.pollTransmit() {
            guard let address = datagram.destination.socketAddress,
                let channel = self.sockets[datagram.destination.ip.family]?.channel
            else { continue }
            channel.writeAndFlush(AddressedEnvelope(remoteAddress: address, data: ByteBuffer(bytes: datagram.bytes)),
                promise: nil)
        }
        while let event = self.node.pollEvent() { self.handle(event) }
        self.timer?.cancel()
        let delay = self.node.nextTimeout - self.now
        let nanos = max(Int64(1_000_000), delay.components.seconds * 1_000_000_000 + delay.components.attoseconds / 1_000_000_000)
        self.timer = self.eventLoop.scheduleTask(in: .nanoseconds(nanos)) {
            self.node.handleTimeout(at: self.now)
            self.pump()
        }
    }

    private func handle(_ event: DHTNode.Event) {
        switch event {
        case .finished(let id, let outcome) where id == self.bootstrapLookup:
            self.bootstrapLookup = nil
            if case .nodes(_, let closest) = outcome, !closest.isEmpty {
                self.joined = true
                for waiter in self.joinWaiters { waiter.succeed() }
                self.joinWaiters.removeAll()
                for hash in self.tracked.keys { self.lookUp(hash) }
                self.rounds = self.eventLoop.scheduleRepeatedTask(initialDelay: Self.interval, delay: Self.interval) { _ in
                    for hash in self.tracked.keys { self.lookUp(hash) }
                }
            } else {
                self.rejoin()
            }
        case .finished(let id, let outcome) where self.waiters[id] != nil:
            self.waiters.removeValue(forKey: id)!.succeed(outcome)
        case .finished(let id, let outcome):
            guard let hash = self.lookups.removeValue(forKey: id) else { return }
            var found = 0
            switch outcome {
            case .peers(_, let peers, _), .announced(_, let peers, _, _):
                self.deliver(peers, for: hash)
                found = peers.count
            default: break
            }
            // Nobody had it yet (a seed may announce a moment later): ask again soon, 5 s then twice as long
            // each time, rather than only at the next 5-minute round.
            if found == 0 {
                let n = self.emptyRounds[hash, default: 0]
                self.emptyRounds[hash] = n + 1
                if n < 6 { _ = self.eventLoop.scheduleTask(in: .seconds(5 << Int64(n))) { self.lookUp(hash) } }
            } else {
                self.emptyRounds[hash] = nil
            }
        case .peersFound(_, let hash, let peers):
            self.deliver(peers, for: hash)
        case .peerAnnounced(let hash, let peer):
            self.onInfoHashSeen?(hash.bytes, peer.hostPort)
        case .infoHashAsked(let hash):
            self.onInfoHashSeen?(hash.bytes, nil)
        case .externalAddressChanged, .idChanged:
            break
        }
    }

    private func deliver(_ peers: [DHTEndpoint], for hash: NodeID) {
        guard let entry = self.tracked[hash], !peers.isEmpty else { return }
        entry.onPeers(peers.map(\.hostPort))
    }

    /// Hands datagrams to the service.
    private final class Receiver: ChannelInboundHandler, Sendable {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        let deliver: @Sendable ([UInt8], SocketAddress) -> Void
        init(deliver: @escaping @Sendable ([UInt8], SocketAddress) -> Void) { self.deliver = deliver }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let envelope = Self.unwrapInboundIn(data)
            self.deliver(Array(envelope.data.readableBytesView), envelope.remoteAddress)
        }
    }
}

extension DHTEndpoint {
    /// From a socket address (IPv4 or IPv6).
    init?(_ address: SocketAddress) {
        guard let port = address.port.flatMap(UInt16.init(exactly:)) else { return nil }
        switch address {
        case .v4(let a):
            guard let ip = IP(bytes: withUnsafeBytes(of: a.address.sin_addr) { Array($0) }) else { return nil }
            self.init(ip: ip, port: port)
        case .v6(let a):
            guard let ip = IP(bytes: withUnsafeBytes(of: a.address.sin6_addr) { Array($0) }) else { return nil }
            self.init(ip: ip, port: port)
        default:
            return nil
        }
    }

    /// Parses "a.b.c.d:port" or "[v6]:port" without resolving names.
    public init?(text: String) {
        guard let (host, port) = PeerNode.splitHostPort(text),
            let address = try? SocketAddress(ipAddress: host, port: port), let ep = DHTEndpoint(address)
        else {
            return nil
        }
        self = ep
    }

    var socketAddress: SocketAddress? {
        try? SocketAddress(ipAddress: self.ip.description, port: Int(self.port))
    }

    /// "ip:port", or "[ip]:port" for IPv6, as the node dials.
    var hostPort: String {
        self.ip.family == .ipv4 ? "\(self.ip):\(self.port)" : "[\(self.ip)]:\(self.port)"
    }
}

extension DHTEndpoint.IP {
    /// Parses a numeric IPv4 or IPv6 address.
    init?(text: String) {
        guard let address = try? SocketAddress(ipAddress: text, port: 0), let ep = DHTEndpoint(address) else { return nil }
        self = ep.ip
    }
}
