// The connections of an overlay: one BEP 10 extension spoken between Peer nodes on connections to one hash (the
// search overlay's rendezvous, a live stream's id). What SearchOverlay and LiveStream share.
import NIOCore
import PeerBase
import PeerWire

/// The connections of an overlay whose neighbours speak one BEP 10 extension on connections to one 20-byte hash.
/// It makes the sessions (plain BitTorrent handshakes, have-none, the extended handshake naming the extension),
/// keeps one connection per node, learns this node's own address when it dials itself, and turns what a
/// neighbour says into `Event`s for its owner, which keeps its own per-neighbour `State`. Confined to the owner's
/// event loop.
final class OverlayLinks<State> {
    final class Link {
        let channel: any Channel
        var session: PeerWireSession
        /// The neighbour's IP address.
        let host: String
        /// The neighbour's id for the extension, once its extended handshake named it.
        var theirID: UInt8?
        var state: State
        init(channel: any Channel, session: PeerWireSession, host: String, state: State) {
            self.channel = channel
            self.session = session
            self.host = host
            self.state = state
        }

        var isReady: Bool { self.theirID != nil }

        /// "host:port" of the neighbour's listener, once its extended handshake said the port.
        var listenAddress: String? {
            guard let port = self.session.remoteExtensions?.listenPort else { return nil }
            return self.host.contains(":") ? "[\(self.host)]:\(port)" : "\(self.host):\(port)"
        }
    }

    enum Event {
        /// The neighbour speaks the extension: messages may go to it.
        case ready(Int)
        /// One of its extension messages (the payload after the id byte).
        case message(Int, ByteBuffer)
        /// Another connection to the same node, dropped in favour of this one: the owner forgets it.
        case replaced(Int)
        /// The session ended; the reason when the neighbour broke the protocol (not when this side closed).
        case closed(Int, String?)
    }

    let hash: [UInt8]
    let extensionName: String
    let localID: PeerID
    let listenPort: UInt16
    let ourID: UInt8
    private let registry: ExtensionRegistry
    private(set) var links: [Int: Link] = [:]
    /// The node's own addresses: one a neighbour turns out to be (the DHT lists the node with the others) is added.
    let ownAddresses: OwnAddresses

    init(hash: [UInt8], extensionName: String, listenPort: UInt16, ownAddresses: OwnAddresses) {
        self.hash = hash
        self.ownAddresses = ownAddresses
        self.extensionName = extensionName
        self.listenPort = listenPort
        var rng = SystemRandomNumberGenerator()
        self.localID = PeerID.random(using: &rng)
        var registry = ExtensionRegistry(pex: false)
        self.ourID = registry.register(extensionName)
        self.registry = registry
    }

    subscript(key: Int) -> Link? { self.links[key] }
    var count: Int { self.links.count }
    var ready: [Int: Link] { self.links.filter { $0.value.isReady } }
    var readyCount: Int { self.links.values.count { $0.isReady } }

    /// The listen addresses of the neighbours connected now.
    var connectedAddresses: Set<String> { Set(self.links.values.compactMap(\.listenAddress)) }

    /// Starts the session on `channel` under `key` and sends the handshake (outgoing).
    func attach(_ channel: any Channel, role: PeerWireSession.Role, key: Int, state: State, at now: Instant) {
        var config = PeerWireSession.Configuration(infoHashes: [self.hash], localID: self.localID, pieceCount: nil)
        config.reserved = [.extensionProtocol, .fast]
        config.openingMessage = .haveNone
        config.extendedHandshake = ExtendedHandshake(extensions: self.registry.ids, client: "Peer 0.1",
            listenPort: self.listenPort)
        let link = Link(channel: channel, session: PeerWireSession(role: role, configuration: config, at: now),
            host: channel.remoteAddress?.ipAddress ?? "?", state: state)
        self.links[key] = link
        self.flush(link)
    }

    func key(of channel: any Channel) -> Int { self.links.first { $0.value.channel === channel }?.key ?? -1 }

    /// Feeds bytes from the neighbour under `key`; returns what came of them, in order.
    func received(_ key: Int, _ bytes: ByteBuffer, at now: Instant) -> [Event] {
        guard let link = self.links[key] else { return [] }
        link.session.receive(bytes, at: now)
        var out: [Event] = []
        while let event = link.session.pollEvent() {
            switch event {
            case .handshake(let h):
                if h.peerID == self.localID {
                    link.session.handle(.close, at: now)
                } else if let (otherKey, other) = self.links.first(where: {
                    $0.key != key && $0.value.session.remote?.peerID == h.peerID
                }) {
                    // Connected twice to one node. A connection in use stays; of two new ones (both dialled at once)
                    // both sides keep the one dialled by the node with the lower peer id.
                    let keepOutgoing = self.localID.bytes.lexicographicallyPrecedes(h.peerID.bytes)
                    if !other.isReady && (link.session.role == .outgoing) == keepOutgoing {
                        self.links[otherKey] = nil
                        out.append(.replaced(otherKey))
                        other.channel.close(promise: nil)
                    } else {
                        link.channel.close(promise: nil)
                    }
                }
            case .extendedHandshake(let ext):
                guard let theirs = ext.extensions[self.extensionName], theirs != 0 else {
                    link.session.handle(.close, at: now)
                    break
                }
                if link.theirID == nil {
                    link.theirID = theirs
                    out.append(.ready(key))
                }
            case .message(.extended(let id, let payload)) where id == self.ourID && link.isReady:
                out.append(.message(key, payload))
            case .closed(let reason):
                if reason == .connectedToSelf {
                    self.ownAddresses.insert(link.host.contains(":") ? "[\(link.host)]:\(self.listenPort)"
                        : "\(link.host):\(self.listenPort)")
                    out.append(.closed(key, nil))
                } else {
                    out.append(.closed(key, reason.map { "\($0)" }))
                }
                link.channel.close(promise: nil)
            default:
                break
            }
        }
        self.flush(link)
        return out
    }

    /// Forgets the connection under `key` (its channel closed); returns it.
    @discardableResult
    func remove(_ key: Int) -> Link? { self.links.removeValue(forKey: key) }

    /// Sends an extension message; `written` completes once its last byte is written (or at once when the
    /// neighbour is not ready or gone).
    func send(_ payload: [UInt8], to key: Int, at now: Instant, written: EventLoopPromise<Void>? = nil) {
        guard let link = self.links[key], let theirs = link.theirID else {
            written?.succeed()
            return
        }
        link.session.handle(.send(.extended(id: theirs, payload: ByteBuffer(bytes: payload))), at: now)
        self.flush(link, written: written)
    }

    /// Closes the session under `key` (after what it has to send).
    func close(_ key: Int, at now: Instant) {
        guard let link = self.links[key] else { return }
        link.theirID = nil
        link.session.handle(.close, at: now)
        self.flush(link)
        link.channel.close(promise: nil)
    }

    /// Keep-alives and idle timeouts.
    func tick(at now: Instant) {
        for link in self.links.values {
            link.session.handleTimeout(at: now)
            self.flush(link)
        }
    }

    func closeAll() {
        for link in self.links.values { link.channel.close(promise: nil) }
    }

    private func flush(_ link: Link, written: EventLoopPromise<Void>? = nil) {
        var last: ByteBuffer?
        while let out = link.session.pollTransmit() {
            if let previous = last { link.channel.write(previous, promise: nil) }
            last = out
        }
        if let last { link.channel.writeAndFlush(last, promise: written) } else { written?.succeed() }
    }
}

/// A host that finds its neighbours through the DHT and dials them itself: the search overlay, a live stream.
protocol DHTOverlay: PeerHost {
    /// Set by the node: dials "host:port" for this host.
    var dialer: (@Sendable (String) -> Void)? { get set }
    /// Set by the node: looks the host's hash up on the DHT now.
    var refreshNeighbours: (@Sendable () -> Void)? { get set }
    /// Addresses the DHT named: the host dials those it wants.
    func discovered(_ addresses: [String])
}

extension PeerNode {
    /// Takes connections for `overlay`'s hash, announces it on the DHT on `listenPort`, and wires its dialling and
    /// lookups to this node.
    func join(_ overlay: some DHTOverlay, listenPort: Int) {
        self.register(overlay)
        overlay.dialer = { [weak self, weak overlay] address in
            guard let self, let overlay else { return }
            self.dial(overlay, address)
        }
        self.trackOnDHT(overlay, listenPort: listenPort) { [weak overlay] peers in overlay?.discovered(peers) }
        overlay.refreshNeighbours = { [weak self, weak overlay] in
            guard let self, let overlay else { return }
            self.refreshOnDHT(overlay)
        }
    }
}
