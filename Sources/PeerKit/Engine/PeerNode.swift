#if canImport(Glibc)
import Glibc
#endif
import AsyncHTTPClient
import DHT
import Foundation
import Metainfo
import NIOCore
import NIOPosix
import PeerBase
import PeerWire
import Storage
import Synchronization

/// A running node: a listener (two without `--bind`: IPv4 and IPv6) for TCP and a UDP socket on the same port for
/// uTP and the DHT, outgoing connections over either transport, and the torrents it serves.
///
/// The event-loop group has one loop per core. Each torrent is pinned to one loop (round robin, starting with
/// the node's own loop), so its state needs no lock; its outgoing connections live on that loop too. Incoming
/// connections are registered on the node's own loop and routed to a torrent by the info-hash in their
/// handshake; when the torrent lives on another loop, the channel's reads hop to it and its writes hop back
/// (NIO cannot move a channel between loops, nor know the torrent before the handshake). So a node with one
/// torrent, as `peer get` and `peer share` are, never hops: measured, the hops cost a third of the seed's CPU
/// and about a fifth of Peer -> Peer throughput. The node's own bookkeeping
/// (dialled addresses, announcers, the torrents by hash) is behind locks. Hashing and disk work run on the
/// thread pool.
public final class PeerNode: @unchecked Sendable {
    public let group: MultiThreadedEventLoopGroup
    public let threadPool: NIOThreadPool
    public let bindHost: String?
    /// The one HTTP(S) client of the node (trackers, web seeds), on its event loop, bound to `bindHost`.
    public let httpClient: HTTPClient
    private let loop: any EventLoop
    private let engines = Mutex<[[UInt8]: any PeerHost]>([:])
    private var listeners: [any Channel] = []
    /// Connections open now, over every torrent; `maxConnections` at most.
    private let connections = Atomic<Int>(0)
    /// Incoming connections by address and those still waiting for their handshake (`ConnectionGate`), with
    /// the channels it may tell us to close.
    private let gate = Mutex<(gate: ConnectionGate, waiting: [Int: any Channel], next: Int)>((ConnectionGate(), [:], 0))
    /// An incoming connection that has not sent its handshake by then is closed (libtorrent waits as long).
    static let handshakeTimeout: TimeAmount = .seconds(10)
    public let maxConnections: Int
    public let encryption: EncryptionMode
    /// The transports outgoing connections try, in order: the next when one fails. Incoming connections come over
    /// both whatever this says.
    public let transports: [PeerTransport]
    /// The UDP sockets on the listen port (`UDPPort`: uTP, the DHT), one per address family; set by `listen`.
    private let udpPorts = Mutex<[UDPPort]>([])
    /// A channel takes up to this many bytes queued for writing before it reports itself unwritable.
    static let writeWaterMark = ChannelOptions.Types.WriteBufferWaterMark(low: 256 << 10, high: 1 << 20)
    /// Whether downloads write whole aligned pieces with `O_DIRECT` (`FileStorage.directWrites`): yes unless
    /// PEER_DIRECT_WRITES=0 (for a file system where direct I/O is slow).
    public static var directWrites: Bool { ProcessInfo.processInfo.environment["PEER_DIRECT_WRITES"] != "0" }

    /// Reads of up to 256 KiB (NIO's default stops at 64 KiB): a busy connection takes a quarter of the reads
    /// and event-loop turns per megabyte.
    static let receiveAllocator = AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 16 << 10, maximum: 256 << 10)

    /// - Parameters:
    ///   - bindHost: the local address for listening and for outgoing connections (tests give each node its own
    ///     127.0.0.x).
    ///   - encryption: how message stream encryption is used (`EncryptionMode`).
    ///   - transports: what outgoing connections try, in order (`PeerTransport.defaultOrder`).
    public init(bindHost: String?, loops: Int = System.coreCount, diskThreads: Int = max(2, System.coreCount),
        maxConnections: Int = 500, encryption: EncryptionMode = .enabled,
        transports: [PeerTransport] = PeerTransport.defaultOrder)
    {
        self.maxConnections = maxConnections
        self.encryption = encryption
        self.transports = transports.isEmpty ? PeerTransport.defaultOrder : transports
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, loops))
        self.loop = self.group.next()
        self.threadPool = NIOThreadPool(numberOfThreads: diskThreads)
        self.threadPool.start()
        self.bindHost = bindHost
        self.httpClient = PeerHTTP.makeClient(group: self.group, bindHost: bindHost)
    }

    /// Adds a torrent whose verified pieces are `have`.
    public func add(metainfo: TorrentMetainfo, storage: any TorrentStorage, have: Bitfield,
        configuration: TorrentEngine.Configuration) -> TorrentEngine
    {
        var configuration = configuration
        // BEP 55 needs uTP, which every node speaks once it listens.
        configuration.holePunch = true
        let engine = TorrentEngine(metainfo: metainfo, storage: storage, have: have, eventLoop: self.nextHostLoop(),
            threadPool: self.threadPool, configuration: configuration)
        engine.onPeersDiscovered = { [weak engine] peers in
            guard let engine else { return }
            for peer in peers { self.dial(engine, peer) }
        }
        engine.onOwnAddress = { address in self.ownAddresses.insert(address) }
        engine.onHolePunch = { [weak engine] address in
            guard let engine else { return }
            // Both sides send their SYN now, each opening its NAT to the other's (BEP 55).
            self.dial(engine, address, transports: [.utp])
        }
        self.engines.withLock { for h in engine.handshakeHashes { $0[h] = engine } }
        return engine
    }

    /// Connects to a peer for a torrent.
    public func connect(_ engine: TorrentEngine, host: String, port: Int) -> EventLoopFuture<Void> {
        self.connect(engine as any PeerHost, host: host, port: port)
    }

    /// Announces a torrent to its trackers, tier by tier (BEP 12), and connects to the peers they return.
    /// - Parameter tiers: Tracker URLs by tier, as `TorrentMetainfo.trackers` holds them.
    public func startTrackers(_ engine: TorrentEngine, tiers: [[String]], listenPort: Int) {
        self.startTrackers(engine as any PeerHost, tiers: tiers, listenPort: listenPort)
    }

    /// Announces a torrent to trackers, each URL a tier of its own, in this order.
    public func startTrackers(_ engine: TorrentEngine, urls: [String], listenPort: Int) {
        self.startTrackers(engine as any PeerHost, tiers: urls.map { [$0] }, listenPort: listenPort)
    }

    /// Adds a magnet link: peers that connect or are found are asked for the info dictionary (BEP 9).
    public func addMagnet(_ magnet: MagnetLink, listenPort: Int) -> MetadataFetcher {
        let fetcher = MetadataFetcher(magnet: magnet, eventLoop: self.nextHostLoop(), listenPort: UInt16(listenPort))
        self.engines.withLock { for h in fetcher.handshakeHashes { $0[h] = fetcher } }
        return fetcher
    }

    /// Announces a magnet link to trackers (each URL a tier of its own, BEP 12) and connects to the peers they
    /// return.
    public func startTrackers(_ fetcher: MetadataFetcher, urls: [String], listenPort: Int) {
        self.startTrackers(fetcher as any PeerHost, tiers: urls.map { [$0] }, listenPort: listenPort)
    }

    /// Connects to a peer for a magnet link.
    public func connect(_ fetcher: MetadataFetcher, host: String, port: Int) -> EventLoopFuture<Void> {
        self.connect(fetcher as any PeerHost, host: host, port: port)
    }

    /// Splits "host:port" or "[v6]:port" (port 1-65535, host not empty); nil otherwise.
    public static func splitHostPort(_ text: String) -> (host: String, port: Int)? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (1...65535).contains(port)
        else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return host.isEmpty ? nil : (host, port)
    }

    /// Counts a new connection against `maxConnections`; false (close it) when the node is full.
    private func admit(_ channel: any Channel) -> Bool {
        guard self.connections.add(1, ordering: .relaxed).newValue <= self.maxConnections else {
            self.connections.subtract(1, ordering: .relaxed)
            return false
        }
        channel.closeFuture.whenComplete { _ in self.connections.subtract(1, ordering: .relaxed) }
        return true
    }

    /// Passes a new incoming connection through the gate: its id, or nil (close it) when its address has all
    /// the connections it may. Closes the connection the gate pushes out to make room, if any.
    private func gateIncoming(_ channel: any Channel) -> Int? {
        let host = channel.remoteAddress?.ipAddress ?? "?"
        let (id, admission, evicted) = self.gate.withLock { state -> (Int, ConnectionGate.Admission, (any Channel)?) in
            let id = state.next
            state.next += 1
            let admission = state.gate.opened(id, host: host)
            guard case .admit(let evict) = admission else { return (id, admission, nil) }
            state.waiting[id] = channel
            return (id, admission, evict.flatMap { state.waiting.removeValue(forKey: $0) })
        }
        evicted?.close(promise: nil)
        guard admission != .refuse else { return nil }
        channel.closeFuture.whenComplete { _ in
            self.gate.withLock {
                $0.gate.closed(id)
                $0.waiting[id] = nil
            }
        }
        return id
    }

    /// The incoming connection `id` sent its handshake: it no longer waits at the gate.
    fileprivate func routed(_ id: Int) {
        self.gate.withLock {
            $0.gate.routed(id)
            $0.waiting[id] = nil
        }
    }

    /// How many finished handshakes the kernel may hold before we accept them (capped by `net.core.somaxconn`).
    static let acceptBacklog: Int32 = 1024

    /// Starts listening for TCP and uTP on one port; returns it (useful with port 0, which picks a port free for
    /// both).
    public func listen(port: Int) async throws -> Int {
        var attempt = 0
        while true {
            let bound = try await self.listenTCP(port: port)
            do {
                try await self.openUDP(port: bound)
                return bound
            } catch where port == 0 && attempt < 8 {
                // The kernel's free TCP port is taken for UDP by someone else: another one.
                attempt += 1
                for listener in self.listeners { try? await listener.close() }
                self.listeners.removeAll()
            } catch {
                throw PortTaken(port: bound, error: error)
            }
        }
    }

    /// The UDP half of the listen port could not be had.
    public struct PortTaken: Error, CustomStringConvertible {
        public var port: Int
        public var error: any Error
        public var description: String { "UDP port \(self.port) (for uTP and the DHT) is not free: \(self.error)" }
    }

    /// Opens the UDP sockets on the listen port: `bindHost`'s, or 0.0.0.0 and [::] (IPv6 only, when the machine
    /// has IPv6) without it.
    private func openUDP(port: Int) async throws {
        let accept: @Sendable (any Channel) -> EventLoopFuture<Void> = { channel in self.acceptIncoming(channel) }
        var ports = [try await UDPPort.open(on: self.loop, host: self.bindHost ?? "0.0.0.0", port: port, accept: accept)]
        if self.bindHost == nil,
            let v6 = try? await UDPPort.open(on: self.loop, host: "::", port: port, ipv6Only: true, accept: accept)
        {
            ports.append(v6)
        }
        self.udpPorts.withLock { $0 = ports }
    }

    private let portMapper = Mutex<PortMapper?>(nil)

    /// Maps the listen port (TCP and UDP) on the home router (PCP, NAT-PMP, UPnP IGD) and keeps it mapped until
    /// `shutdown`; announces then give the mapped port and the router's external address. Call after `listen`.
    /// A node bound to a loopback address (every test node) maps nothing: no router could reach it.
    public func startPortMapping(port: Int, log: @escaping @Sendable (String) -> Void) {
        if let bind = self.bindHost, bind.hasPrefix("127.") || bind == "::1" { return }
        let mapper = PortMapper(group: self.group, httpClient: self.httpClient, bindHost: self.bindHost, port: port,
            log: log)
        self.portMapper.withLock { $0 = mapper }
        mapper.start()
    }

    /// The port mapping's state (nil when it is off).
    public var portMapping: PortMapper.Status? { self.portMapper.withLock { $0 }?.status }

    /// uTP connections held now, over the node's UDP ports (in every state: handshaking, open, closing).
    public func utpConnections() async -> Int {
        var total = 0
        for port in self.udpPorts.withLock({ $0 }) {
            total += (try? await port.channel.eventLoop.submit { port.utp.count }.get()) ?? 0
        }
        return total
    }

    /// Sets up an accepted connection (TCP or uTP): through the gate, counted, then its handshake routes it.
    private func acceptIncoming(_ channel: any Channel) -> EventLoopFuture<Void> {
        guard let id = self.gateIncoming(channel), self.admit(channel) else { return channel.close() }
        return channel.pipeline.addHandler(HandshakeRouter(node: self, id: id))
    }

    private func listenTCP(port: Int) async throws -> Int {
        let bootstrap = ServerBootstrap(group: self.group, childGroup: self.loop)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            // A deep accept queue: under a burst of connects (a flood, or a popular torrent's first minute) the
            // kernel keeps them for the gate to judge instead of dropping their ACKs, which would establish them
            // up to a minute later when its SYN-ACK retries run out. (NIO's default is 128.)
            .serverChannelOption(.backlog, value: Self.acceptBacklog)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelOption(.writeBufferWaterMark, value: Self.writeWaterMark)
            .childChannelOption(.recvAllocator, value: Self.receiveAllocator)
            .childChannelInitializer { channel in self.acceptIncoming(channel) }
        let channel = try await bootstrap.bind(host: self.bindHost ?? "0.0.0.0", port: port).get()
        let bound = channel.localAddress?.port ?? port
        self.listeners.append(channel)
        // Without --bind, IPv6 peers (the DHT's and trackers' IPv6 answers) reach us on the same port; a machine
        // without IPv6 has the IPv4 listener alone.
        if self.bindHost == nil,
            let v6 = try? await bootstrap
                .serverChannelOption(.ipv6Only, value: 1)
                .bind(host: "::", port: bound).get()
        {
            self.listeners.append(v6)
        }
        return bound
    }

    /// Connects to a peer for `engine`.
    func connect(_ engine: any PeerHost, host: String, port: Int) -> EventLoopFuture<Void> {
        self.open(engine, host: host, port: port).map { _ in }
    }

    /// Connects to a peer for `engine` and hands it the channel (closed at once when the node is full). The
    /// attempts go in order, the next one when a connection cannot be made or when the peer hangs up before
    /// sending a byte: each transport of `transports` (the node's order by default), and on each, in the default
    /// encryption mode, a plaintext handshake and then an encrypted one (a client that requires encryption hangs up
    /// on a plaintext handshake; libtorrent with TCP off accepts a TCP connection and closes it at once).
    /// - Parameters:
    ///   - encrypted: the one handshake to use on each transport (always encrypted when encryption is required).
    ///   - fallback: in the default mode, follow a plaintext handshake the peer hung up on with an encrypted one.
    /// - Returns: the first connection made.
    private func open(_ engine: any PeerHost, host: String, port: Int, encrypted: Bool? = nil, fallback: Bool = true,
        transports: [PeerTransport]? = nil) -> EventLoopFuture<any Channel>
    {
        let handshakes: [Bool] =
            if let encrypted { [encrypted || self.encryption == .required] }
            else if self.encryption == .required { [true] }
            else if fallback && self.encryption == .enabled { [false, true] }
            else { [false] }
        let attempts = (transports ?? self.transports).flatMap { t in handshakes.map { Attempt(transport: t, encrypted: $0) } }
        return self.open(engine, host: host, port: port, attempts[...])
    }

    private struct Attempt: Sendable {
        var transport: PeerTransport
        var encrypted: Bool
    }

    private func open(_ engine: any PeerHost, host: String, port: Int, _ attempts: ArraySlice<Attempt>)
        -> EventLoopFuture<any Channel>
    {
        let attempt = attempts.first!
        let rest = attempts.dropFirst()
        let address = "\(host):\(port)"
        let next: @Sendable (String) -> EventLoopFuture<any Channel>? = { why in
            guard let following = rest.first, !self.closing.load(ordering: .relaxed),
                let skey = engine.handshakeHashes.first, self.engines.withLock({ $0[skey] }) === engine
            else { return nil }
            if TorrentEngine.debug {
                engine.log("\(address) over \(attempt.transport), \(attempt.encrypted ? "encrypted" : "plaintext"): "
                    + "\(why); trying \(following.transport), \(following.encrypted ? "encrypted" : "plaintext")")
            }
            return self.open(engine, host: host, port: port, rest)
        }
        let onSilentClose: @Sendable () -> Void = {
            // A peer that answered a plaintext handshake before (for another torrent) and hangs up now lacks this
            // torrent: another attempt would cost both sides a connection, and an encrypted one a Diffie-Hellman
            // key, for nothing (half the CPU of 21 daemons passing a channel's revision on, in a debug build).
            guard !self.plaintextPeers.withLock({ $0.contains(address) }) else { return }
            _ = next("hung up before a byte")
        }
        return self.open(engine, host: host, port: port, attempt, onSilentClose: onSilentClose).flatMapError { error in
            // A refused TCP connect means the host is up and nothing listens there (the peer is not running, or
            // not yet): its uTP would only cost the SYN retries (21 s), and the attempts end here. (libtorrent
            // with TCP off does listen: it accepts and closes, which the silent-close rule above follows.)
            if attempt.transport == .tcp, Self.refused(error) { return engine.eventLoop.makeFailedFuture(error) }
            return next("\(error)") ?? engine.eventLoop.makeFailedFuture(error)
        }
    }

    /// Whether a TCP connect failed with ECONNREFUSED (NIO wraps it in `NIOConnectionError` when it resolved).
    private static func refused(_ error: any Error) -> Bool {
        if let io = error as? IOError { return io.errnoCode == ECONNREFUSED }
        if let many = error as? NIOConnectionError {
            return !many.connectionErrors.isEmpty
                && many.connectionErrors.allSatisfy { ($0.error as? IOError)?.errnoCode == ECONNREFUSED }
        }
        return false
    }

    /// One attempt: connects over `attempt.transport` and hands the channel to `engine`; `onSilentClose` runs if
    /// the peer closes it without sending a byte.
    private func open(_ engine: any PeerHost, host: String, port: Int, _ attempt: Attempt,
        onSilentClose: @escaping @Sendable () -> Void) -> EventLoopFuture<any Channel>
    {
        let encrypted = attempt.encrypted
        let address = "\(host):\(port)"
        let silence = SilenceWatcher(onHeard: encrypted ? nil : self.plaintextAnswer(address))
        let skey = engine.handshakeHashes.first
        let provide: MSE.Methods = self.encryption == .required ? .rc4 : [.plaintext, .rc4]
        let initialize: @Sendable (any Channel) -> EventLoopFuture<Void> = { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(silence)
                if encrypted, let skey {
                    // The encrypted handshake goes first; the torrent's own handshake waits in the handler until
                    // it is over.
                    var rng = SystemRandomNumberGenerator()
                    try channel.pipeline.syncOperations.addHandler(
                        EncryptionHandler(.initiator(MSEInitiator(infoHash: skey, provide: provide, using: &rng))))
                }
            }
        }
        let connected: EventLoopFuture<any Channel>
        switch attempt.transport {
        case .tcp:
            var bootstrap = ClientBootstrap(group: engine.eventLoop)
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .channelOption(.writeBufferWaterMark, value: Self.writeWaterMark)
                .channelOption(.recvAllocator, value: Self.receiveAllocator)
                .connectTimeout(.seconds(10))
                .channelInitializer(initialize)
            if let bindHost = self.bindHost, let local = try? SocketAddress(ipAddress: bindHost, port: 0) {
                bootstrap = bootstrap.bind(to: local)
            }
            connected = bootstrap.connect(host: host, port: port)
        case .utp:
            // uTP needs the node's UDP port (opened by `listen`) of the peer's address family; names are not
            // resolved here (peers come as addresses).
            guard let remote = try? SocketAddress(ipAddress: host, port: port),
                let udp = self.udpPorts.withLock({ ports in
                    ports.first { $0.localAddress?.protocol == remote.protocol }
                })
            else { return engine.eventLoop.makeFailedFuture(NoUTP(address: address)) }
            connected = udp.utp.connect(to: remote, initializer: initialize)
        }
        return connected.map { channel in
            guard self.admit(channel) else {
                channel.close(promise: nil)
                return channel
            }
            Self.hand(channel, to: engine, role: .outgoing)
            channel.closeFuture.whenComplete { _ in
                if !silence.heard { onSilentClose() }
            }
            return channel
        }
    }

    /// No uTP connection can be made to the address: it is not an IP address, or the node has no UDP port of
    /// its family (it does not listen).
    struct NoUTP: Error, CustomStringConvertible {
        var address: String
        var description: String { "no uTP to \(self.address): not an IP address, or no UDP port of its family" }
    }

    /// Gives a connected channel (on its own loop) to `host`. A channel on another loop than the host's (an
    /// accepted one, or any uTP one, which lives on the UDP port's loop) gets its handler here, so that no read is
    /// lost, and hands its reads over to the host's loop, after the attach.
    /// - Parameter replay: bytes already read (an accepted connection's handshake), given to the host first.
    fileprivate static func hand(_ channel: any Channel, to host: any PeerHost, role: PeerWireSession.Role,
        replay: ByteBuffer? = nil)
    {
        channel.eventLoop.preconditionInEventLoop()
        if host.eventLoop === channel.eventLoop {
            host.attach(channel, role: role, key: nil)
            if let replay { host.received(host.key(of: channel), replay) }
            return
        }
        let key = host.reserveKey()
        do {
            try channel.pipeline.syncOperations.addHandler(PeerChannelHandler(host: host, key: key))
        } catch {
            channel.close(promise: nil)
            return
        }
        host.eventLoop.execute {
            host.attach(channel, role: role, key: key)
            if let replay { host.received(key, replay) }
        }
    }

    /// Dials a peer the user named (`--peer`) until the torrent is complete: again whenever the connection fails
    /// or ends, 1, 2, 4 … 60 s later (the wait starts over after a connection that lasted a minute), alternating
    /// plaintext and encrypted handshakes in the default mode. Before, a named peer that refused two handshakes
    /// (not up yet, or full) was never dialled again and `peer get` sat at 0 B after it was free.
    /// - Parameter failed: told of the first failure to connect only.
    public func keepDialing(_ engine: TorrentEngine, host: String, port: Int,
        failed: @escaping @Sendable (any Error) -> Void)
    {
        self.keepDialing(engine, host: host, port: port, attempt: 0, failed: failed)
    }

    private func keepDialing(_ engine: TorrentEngine, host: String, port: Int, attempt: Int,
        failed: @escaping @Sendable (any Error) -> Void)
    {
        let encrypted = self.encryption == .required || (self.encryption == .enabled && attempt % 2 == 1)
        let started = NIODeadline.now()
        let again: @Sendable (Int) -> Void = { next in
            guard !self.closing.load(ordering: .relaxed) else { return }
            let wait = TimeAmount.seconds(Int64(min(60, 1 << min(next - 1, 6))))
            engine.eventLoop.scheduleTask(in: wait) {
                guard !self.closing.load(ordering: .relaxed), !engine.isComplete,
                    let key = engine.handshakeHashes.first, self.engines.withLock({ $0[key] }) === engine,
                    !self.ownAddresses.contains(host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)")
                else { return }
                self.keepDialing(engine, host: host, port: port, attempt: next, failed: failed)
            }
        }
        self.open(engine, host: host, port: port, encrypted: encrypted, fallback: false).whenComplete { result in
            switch result {
            case .success(let channel):
                channel.closeFuture.whenComplete { _ in
                    again(NIODeadline.now() - started >= .seconds(60) ? 1 : attempt + 1)
                }
            case .failure(let error):
                if attempt == 0 { failed(error) }
                again(attempt + 1)
            }
        }
    }

    /// Set once the node is shutting down: closed connections are not dialled again.
    private let closing = Atomic<Bool>(false)

    private let announcers = Mutex<[TrackerAnnouncer]>([])
    private let webSeedSources = Mutex<[WebSeedSource]>([])
    /// Addresses dialled for each torrent (not again while that connection is being made or is open).
    private let dialed = Mutex<Set<DialKey>>([])
    /// This node's listening addresses and those a dial found to be this node: never dialled.
    let ownAddresses = OwnAddresses()

    /// Addresses ("host:port") that answered one of our plaintext handshakes, at most `maxPlaintextPeers`.
    private let plaintextPeers = Mutex<Set<String>>([])
    private static let maxPlaintextPeers = 4096

    /// What a plaintext connection to `address` does once the peer answers: note that it speaks plaintext.
    private func plaintextAnswer(_ address: String) -> @Sendable () -> Void {
        return {
            self.plaintextPeers.withLock { known in
                if known.count >= Self.maxPlaintextPeers { known.removeFirst() }
                known.insert(address)
            }
        }
    }

    private struct DialKey: Hashable {
        var host: ObjectIdentifier
        var address: String
    }

    /// Announces `engine` to its trackers (UDP, HTTP and HTTPS) in tier order and connects to the peers they
    /// return. URLs of other schemes are logged and left out.
    func startTrackers(_ engine: any PeerHost, tiers: [[String]], listenPort: Int) {
        let own = "\(self.bindHost ?? "0.0.0.0"):\(listenPort)"
        self.ownAddresses.insert(own)
        engine.eventLoop.execute {
            var usable: [[String]] = []
            for tier in tiers {
                for url in tier where !TrackerTransports.supports(url) {
                    engine.log("tracker \(url): not a udp://, http:// or https:// URL; left out")
                }
                usable.append(tier.filter(TrackerTransports.supports))
            }
            guard usable.contains(where: { !$0.isEmpty }) else { return }
            let (loop, client, bindHost) = (engine.eventLoop, self.httpClient, self.bindHost)
            let announcer = TrackerAnnouncer(host: engine, tiers: usable,
                makeTransport: { url in
                    TrackerTransports.make(url: url, eventLoop: loop, client: client, bindHost: bindHost)
                },
                onPeers: { peers in
                    for peer in peers { self.dial(engine, peer.description) }
                },
                adjust: { request in
                    // Behind a router that mapped the port, peers are to dial its external port and address.
                    guard let external = self.portMapper.withLock({ $0 })?.external,
                        let port = UInt16(exactly: external.port)
                    else { return }
                    request.port = port
                    if let address = external.address { request.ip = address }
                })
            self.announcers.withLock { $0.append(announcer) }
            announcer.start()
        }
    }

    /// Tells the trackers the download completed (sent once per torrent); for every torrent without `engine`.
    public func announceCompleted(_ engine: TorrentEngine? = nil) {
        for a in self.announcers.withLock({ $0 }) where engine.map(a.announces) ?? true {
            a.eventLoop.execute { a.downloadCompleted() }
        }
    }

    /// Takes a torrent (or a magnet link's fetch) off the node: incoming handshakes for it are refused, its
    /// trackers hear `stopped`, the DHT, local discovery and web seeds forget it, and its connections close.
    /// The storage stays open: the caller closes it.
    public func remove(_ engine: TorrentEngine) async { await self.remove(engine as any PeerHost) }

    public func remove(_ fetcher: MetadataFetcher) async { await self.remove(fetcher as any PeerHost) }

    func remove(_ host: any PeerHost) async {
        self.engines.withLock { all in
            for h in host.handshakeHashes where all[h] === host { all[h] = nil }
        }
        self.dialed.withLock { $0 = $0.filter { $0.host != ObjectIdentifier(host) } }
        await self.stopAnnouncers { $0.announces(host) }
        let seeds = self.webSeedSources.withLock { all in
            defer { all.removeAll { $0.feeds(host) } }
            return all.filter { $0.feeds(host) }
        }
        for s in seeds { await s.stop() }
        // A hash another host took over meanwhile (a magnet's engine after its metadata fetch) stays tracked.
        if let dht = self.dht.withLock({ $0 }) {
            for h in host.handshakeHashes where self.engines.withLock({ $0[h] }) == nil { dht.untrack(infoHash: h) }
        }
        self.discovery.withLock { $0 }?.remove(host)
        try? await host.stop().get()
    }

    /// Connects `engine` to `address` ("host:port") unless it is this node or is being dialled or connected for
    /// that torrent already; any thread. Once the dial fails or the connection closes, the next announce, DHT
    /// lookup or PEX message that names the address dials it again.
    func dial(_ engine: any PeerHost, _ address: String, transports: [PeerTransport]? = nil) {
        let key = DialKey(host: ObjectIdentifier(engine), address: address)
        let fresh = !self.ownAddresses.contains(address) && self.dialed.withLock { $0.insert(key).inserted }
        if TorrentEngine.debug { engine.eventLoop.execute { engine.log("dial \(address): \(fresh ? "dialling" : "skipped")") } }
        guard fresh, let (host, port) = Self.splitHostPort(address) else { return }
        let forget: @Sendable () -> Void = { _ = self.dialed.withLock { $0.remove(key) } }
        self.open(engine, host: host, port: port, transports: transports).whenComplete { result in
            switch result {
            case .success(let channel): channel.closeFuture.whenComplete { _ in forget() }
            case .failure(let error):
                if TorrentEngine.debug { engine.eventLoop.execute { engine.log("dial \(address): \(error)") } }
                forget()
                // Behind a NAT that lets nothing in, a peer that told us of the address may relay a hole punch.
                (engine as? TorrentEngine)?.dialFailed(address)
            }
        }
    }

    /// Stops every torrent and closes the listener, then the loop and the thread pool.
    public func shutdown() async {
        self.closing.store(true, ordering: .relaxed)
        await self.stopAnnouncers()
        if let mapper = self.portMapper.withLock({ $0 }) { await mapper.stop() }
        for source in self.webSeedSources.withLock({ all in defer { all = [] }; return all }) { await source.stop() }
        let engines = self.engines.withLock { Array($0.values) }
        var seen = Set<ObjectIdentifier>()
        for engine in engines where seen.insert(ObjectIdentifier(engine)).inserted { try? await engine.stop().get() }
        for listener in self.listeners { try? await listener.close() }
        if let service = self.discovery.withLock({ $0 }) { await service.stop() }
        if let service = self.dht.withLock({ $0 }) { await service.stop() }
        for udp in self.udpPorts.withLock({ ports in defer { ports = [] }; return ports }) { await udp.close() }
        try? await self.httpClient.shutdown()
        // The disk pool first: its jobs in flight complete on the loops, which must still be running.
        try? await self.threadPool.shutdownGracefully()
        try? await self.group.shutdownGracefully()
    }

    private let discovery = Mutex<LocalPeerDiscovery?>(nil)
    private let dht = Mutex<DHTService?>(nil)

    /// Starts the node's DHT on UDP `bindHost:port` (the TCP listen port, by convention), joining through
    /// `routers` ("host:port", names resolved here) and `knownNodes` (saved by an earlier run).
    /// - Parameters:
    ///   - routers: well-known bootstrap routers: asked first, never kept in the routing table.
    ///   - nodes: ordinary nodes to join through (`--dht-bootstrap`): kept in the table when they answer.
    public func startDHT(port: Int, routers: [String], nodes: [String] = [], knownNodes: [DHTEndpoint],
        policy: DHTService.Policy = .init()) async throws -> DHTService
    {
        // On the listen port the node's UDP sockets are the DHT's too; without a listener (`peer dht`) it opens
        // its own.
        let shared = self.udpPorts.withLock { ports in ports.filter { $0.localAddress?.port == port } }
        let service = try await DHTService.start(group: self.group, bindHost: self.bindHost, port: port,
            sharing: shared, routers: Self.resolve(routers), knownNodes: Self.resolve(nodes) + knownNodes,
            policy: policy)
        self.dht.withLock { $0 = service }
        return service
    }

    /// "host:port" strings to endpoints, resolving names (blocking: call off the loops).
    private static func resolve(_ list: [String]) -> [DHTEndpoint] {
        var endpoints: [DHTEndpoint] = []
        for router in list {
            guard let (host, p) = Self.splitHostPort(router) else { continue }
            if let address = try? SocketAddress.makeAddressResolvingHost(host, port: p), let ep = DHTEndpoint(address) {
                endpoints.append(ep)
            }
        }
        return endpoints
    }

    /// Finds peers of a torrent (or a magnet link's torrent) through the DHT and dials them; with `announce`,
    /// also tells the DHT that this node has it.
    func trackOnDHT(_ host: any PeerHost, listenPort: Int, announce: Bool) {
        guard let service = self.dht.withLock({ $0 }) else { return }
        for hash in host.handshakeHashes.prefix(1) {
            service.track(infoHash: hash, announcePort: announce ? listenPort : nil) { peers in
                for peer in peers { self.dial(host, peer) }
            }
        }
    }

    /// Looks `host`'s first hash up on the DHT now and every 5 minutes, announcing it on `listenPort`; the
    /// addresses found go to `onPeers` (which dials those it wants), not straight to the dialler.
    func trackOnDHT(_ host: any PeerHost, listenPort: Int, onPeers: @escaping @Sendable ([String]) -> Void) {
        guard let service = self.dht.withLock({ $0 }), let hash = host.handshakeHashes.first else { return }
        service.track(infoHash: hash, announcePort: listenPort, onPeers: onPeers)
    }

    /// Takes connections for `host`'s hashes.
    func register(_ host: any PeerHost) {
        self.engines.withLock { for h in host.handshakeHashes { $0[h] = host } }
    }

    /// Looks `host`'s first hash up on the DHT now, besides the lookup every 5 minutes.
    func refreshOnDHT(_ host: any PeerHost) {
        guard let service = self.dht.withLock({ $0 }), let hash = host.handshakeHashes.first else { return }
        service.refresh(infoHash: hash)
    }

    public func trackOnDHT(_ engine: TorrentEngine, listenPort: Int) {
        self.trackOnDHT(engine as any PeerHost, listenPort: listenPort, announce: true)
    }

    public func trackOnDHT(_ fetcher: MetadataFetcher, listenPort: Int) {
        self.trackOnDHT(fetcher as any PeerHost, listenPort: listenPort, announce: false)
    }

    /// Announces a torrent on the local network (BEP 14) and dials the local peers that announce it. The first
    /// call opens the node's multicast socket; a failure (no multicast on the interface, the port taken) is
    /// thrown, and the torrent simply goes without local discovery.
    public func startLocalDiscovery(_ engine: TorrentEngine, listenPort: Int) async throws {
        try await self.startLocalDiscovery(engine as any PeerHost, listenPort: listenPort)
    }

    /// Local discovery for a magnet link's metadata fetch.
    public func startLocalDiscovery(_ fetcher: MetadataFetcher, listenPort: Int) async throws {
        try await self.startLocalDiscovery(fetcher as any PeerHost, listenPort: listenPort)
    }

    func startLocalDiscovery(_ host: any PeerHost, listenPort: Int) async throws {
        var service = self.discovery.withLock { $0 }
        if service == nil {
            let started = try await LocalPeerDiscovery.start(group: self.group, bindHost: self.bindHost) { host, peer in
                self.dial(host, peer)
            }
            service = self.discovery.withLock { current in
                if current == nil { current = started }
                return current
            }
            if service !== started { await started.stop() }
        }
        service!.add(host, port: listenPort)
    }

    func addWebSeeds(_ sources: [WebSeedSource]) {
        self.webSeedSources.withLock { $0 += sources }
    }

    /// Sends `stopped` to the trackers that count this node and waits for them, at most
    /// `TrackerAnnouncer.stoppedTimeout` (a leaving client does not wait on a slow tracker).
    private func stopAnnouncers(where matching: (TrackerAnnouncer) -> Bool = { _ in true }) async {
        let all = self.announcers.withLock { all in
            defer { all.removeAll(where: matching) }
            return all.filter(matching)
        }
        guard !all.isEmpty else { return }
        let stops = all.map { a in a.eventLoop.flatSubmit { a.stop() } }
        try? await EventLoopFuture.andAllComplete(stops, on: self.loop)
            .failing(after: TrackerAnnouncer.stoppedTimeout + .milliseconds(500)) { CancellationError() }.get()
    }

    /// The loop for the next torrent or magnet fetch: the group's loops in turn, the node's own (where incoming
    /// connections live) first.
    private func nextHostLoop() -> any EventLoop {
        let loops = Array(self.group.makeIterator())
        let first = loops.firstIndex { $0 === self.loop } ?? 0
        let turn = self.hostTurn.add(1, ordering: .relaxed).oldValue
        return loops[(first + turn) % loops.count]
    }

    private let hostTurn = Atomic<Int>(0)

    /// Where accepted connections are registered (the node's own loop).
    var incomingLoop: any EventLoop { self.loop }

    /// A torrent, a metadata fetch or the search overlay takes connections for this hash already.
    func hasHost(for infoHash: [UInt8]) -> Bool { self.engine(for: infoHash) != nil }

    fileprivate func engine(for infoHash: [UInt8]) -> (any PeerHost)? {
        self.engines.withLock { $0[infoHash] }
    }

    /// The info hash of a torrent on this node whose HASH('req2', info hash) is `skeyHash` (an encrypted
    /// handshake names its torrent that way).
    fileprivate func infoHash(matching skeyHash: [UInt8]) -> [UInt8]? {
        self.engines.withLock { all in all.keys.first { MSE.skeyHash($0) == skeyHash } }
    }
}

/// Holds an accepted connection's first bytes until its handshake names a torrent, then hands the channel
/// to that torrent's engine and replays the bytes.
private final class HandshakeRouter: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    let node: PeerNode
    /// The connection's id at the node's `ConnectionGate`.
    let id: Int
    var buffered = ByteBuffer()
    /// Whether the bytes come out of an encrypted handshake (MSE) already.
    var decrypted = false
    /// Closes the connection if no handshake (plain, or after an encrypted one) came in time.
    var timeout: Scheduled<Void>?
    static let plainStart: [UInt8] = [19] + Handshake.protocolName

    init(node: PeerNode, id: Int) {
        self.node = node
        self.id = id
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        self.timeout = context.eventLoop.scheduleTask(in: PeerNode.handshakeTimeout) { channel.close(promise: nil) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.timeout?.cancel()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = self.unwrapInboundIn(data)
        self.buffered.writeBuffer(&bytes)
        let start = self.buffered.readableBytesView.prefix(Self.plainStart.count)
        if !start.elementsEqual(Self.plainStart.prefix(start.count)) {
            guard !self.decrypted, self.node.encryption != .disabled else {
                context.close(promise: nil)
                return
            }
            self.startEncrypted(context: context)
            return
        }
        if !self.decrypted && self.node.encryption == .required {
            context.close(promise: nil)
            return
        }
        guard self.buffered.readableBytes >= 48 else { return }
        guard let hash = self.buffered.getBytes(at: self.buffered.readerIndex + 28, length: 20),
            let engine = self.node.engine(for: hash)
        else {
            context.close(promise: nil)
            return
        }
        let replay = self.buffered
        self.timeout?.cancel()
        self.node.routed(self.id)
        context.pipeline.syncOperations.removeHandler(self, promise: nil)
        PeerNode.hand(context.channel, to: engine, role: .incoming, replay: replay)
    }

    /// Not the plaintext handshake: an encrypted one (MSE) begins. Its handler goes in front of this one, is
    /// given the bytes so far, and hands back what comes after the handshake, decrypted.
    private func startEncrypted(context: ChannelHandlerContext) {
        self.decrypted = true
        var rng = SystemRandomNumberGenerator()
        let node = self.node
        let allowed: MSE.Methods = node.encryption == .required ? .rc4 : [.plaintext, .rc4]
        let handler = EncryptionHandler(
            .responder(MSEResponder(allowed: allowed, using: &rng) { node.infoHash(matching: $0) }))
        let bytes = self.buffered
        self.buffered = ByteBuffer()
        do {
            try context.pipeline.syncOperations.addHandler(handler, position: .before(self))
            let front = try context.pipeline.syncOperations.context(handler: handler)
            handler.channelRead(context: front, data: NIOAny(bytes))
        } catch {
            context.close(promise: nil)
        }
    }
}

extension ChannelOption where Self == ChannelOptions.Types.SocketOption {
    /// IPV6_V6ONLY: an IPv6 socket that leaves the port's IPv4 half to an IPv4 socket beside it.
    static var ipv6Only: Self { .socket(SocketOptionLevel(IPPROTO_IPV6), SocketOptionName(IPV6_V6ONLY)) }
}

/// Notes whether a connection received anything, then leaves the pipeline.
private final class SilenceWatcher: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    /// Read and written on the channel's loop only.
    private(set) var heard = false
    private let onHeard: (@Sendable () -> Void)?

    init(onHeard: (@Sendable () -> Void)? = nil) { self.onHeard = onHeard }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.heard = true
        self.onHeard?()
        context.fireChannelRead(data)
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}

/// How a connection to a peer is carried.
public enum PeerTransport: String, Sendable, Codable, CaseIterable {
    /// TCP.
    case tcp
    /// uTP (BEP 29) over the node's UDP port: LEDBAT congestion control yields to other traffic.
    case utp

    /// TCP first, then uTP. libtorrent tries uTP first; Peer keeps TCP, the better measured path on a fast
    /// link, and reaches uTP-only peers through the fall-back. Incoming uTP is always taken.
    public static let defaultOrder: [PeerTransport] = [.tcp, .utp]

    /// Parses "utp,tcp", "tcp" … (each transport once); nil for anything else.
    public static func order(_ text: String) -> [PeerTransport]? {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false)
            .map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        let order = parts.compactMap(PeerTransport.init(rawValue:))
        guard !order.isEmpty, order.count == parts.count, Set(order).count == order.count else { return nil }
        return order
    }
}
