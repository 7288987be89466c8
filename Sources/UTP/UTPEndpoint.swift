// BEP 29: the uTP side of one UDP socket: connections by address and id, SYNs taken within limits, sans I/O.
import DequeModule
import PeerBase

/// Every uTP connection of one UDP socket, sans I/O.
///
/// The driver gives it the datagrams that `UTPPacket.looksLikeUTP` says are uTP (the DHT and UDP trackers share
/// the socket), the application's commands for each connection, and `handleTimeout(at:)` once `nextTimeout` has
/// passed; after each it drains `pollTransmit()` (address, datagram) and `pollEvent()`.
///
/// Abuse: a SYN is taken only while fewer than `maxConnections` are held and the SYN bucket has a token; a resent
/// SYN goes to the connection it opened (never a second one); a packet for no connection gets a RESET, at most
/// `resetsPerSecond`; a datagram that does not decode is counted and dropped. State is bounded by
/// `maxConnections` connections, each bounded by its buffers.
public struct UTPEndpoint<Address: Hashable & Sendable>: Sendable {
    public struct Configuration: Sendable {
        public var maxConnections = 1_000
        /// New incoming connections per second, in bursts of the same size.
        public var synsPerSecond = 200.0
        public var resetsPerSecond = 10.0
        public var connection = UTPConnection.Configuration()
        public init() {}
    }

    /// A connection: the other side's address and the id it sends with (our receive id).
    public struct ConnectionKey: Hashable, Sendable, CustomStringConvertible {
        public var address: Address
        public var receiveID: UInt16
        public var description: String { "\(self.address)#\(self.receiveID)" }
    }

    public enum Event: Sendable, Equatable {
        /// A SYN from a new peer was taken: its connection is open.
        case accepted(ConnectionKey)
        case connection(ConnectionKey, UTPConnection.Event)
    }

    public let configuration: Configuration
    private var connections: [ConnectionKey: UTPConnection] = [:]
    private var rng: SeededGenerator
    private var syns: TokenBucket
    private var resets: TokenBucket
    private var transmits: Deque<(Address, [UInt8])> = []
    private var events: Deque<Event> = []
    /// Datagrams that were not uTP packets, and SYNs refused by the limits.
    public private(set) var malformed = 0
    public private(set) var refusedSYNs = 0

    /// - Parameter seed: seeds connection ids and sequence numbers (the driver passes a random one).
    public init(configuration: Configuration = Configuration(), seed: UInt64, at now: Instant) {
        self.configuration = configuration
        self.rng = SeededGenerator(seed: seed)
        self.syns = TokenBucket(capacity: max(1, configuration.synsPerSecond), rate: configuration.synsPerSecond, at: now)
        self.resets = TokenBucket(capacity: max(1, configuration.resetsPerSecond), rate: configuration.resetsPerSecond,
            at: now)
    }

    /// Connections held (open or closing).
    public var count: Int { self.connections.count }

    /// Every connection's summary, for logs and failing tests.
    public var summaries: [String] { self.connections.map { "\($0.key): \($0.value.summary)" } }

    /// A connection's state, for the API and tests.
    public func connection(_ key: ConnectionKey) -> UTPConnection? { self.connections[key] }

    // MARK: outputs

    public mutating func pollTransmit() -> (Address, [UInt8])? { self.transmits.popFirst() }
    public mutating func pollEvent() -> Event? { self.events.popFirst() }

    /// The earliest timeout of any connection.
    public var nextTimeout: Instant? { self.connections.values.compactMap(\.nextTimeout).min() }

    // MARK: inputs

    /// Opens a connection to `address` (sends SYN); `.connection(key, .connected)` comes when it answers.
    public mutating func connect(to address: Address, at now: Instant) -> ConnectionKey {
        var id: UInt16
        repeat {
            id = UInt16.random(in: 0...UInt16.max, using: &self.rng)
        } while self.connections[ConnectionKey(address: address, receiveID: id)] != nil
            || self.connections[ConnectionKey(address: address, receiveID: id &+ 1)] != nil
        let key = ConnectionKey(address: address, receiveID: id)
        self.connections[key] = UTPConnection(connectingWith: id, seq: UInt16.random(in: 0...UInt16.max, using: &self.rng),
            configuration: self.configuration.connection, at: now)
        self.drain(key)
        return key
    }

    /// The application's command for one connection (ignored for one that is gone).
    public mutating func handle(_ command: UTPConnection.Command, for key: ConnectionKey, at now: Instant) {
        guard self.connections[key] != nil else { return }
        self.connections[key]!.handle(command, at: now)
        self.drain(key)
    }

    /// A datagram from `address` (one `looksLikeUTP` accepted).
    public mutating func receive(_ datagram: [UInt8], from address: Address, at now: Instant) {
        let packet: UTPPacket
        do { packet = try UTPPacket(bytes: datagram) } catch {
            self.malformed += 1
            return
        }
        if packet.type == .syn {
            let key = ConnectionKey(address: address, receiveID: packet.connectionID &+ 1)
            if self.connections[key] != nil {
                self.connections[key]!.receive(packet, at: now)
                self.drain(key)
                return
            }
            guard self.connections.count < self.configuration.maxConnections, self.syns.take(at: now) else {
                self.refusedSYNs += 1
                return
            }
            self.connections[key] = UTPConnection(accepting: packet,
                seq: UInt16.random(in: 0...UInt16.max, using: &self.rng), configuration: self.configuration.connection,
                at: now)
            self.events.append(.accepted(key))
            self.drain(key)
            return
        }
        let key = ConnectionKey(address: address, receiveID: packet.connectionID)
        guard self.connections[key] != nil else {
            if packet.type != .reset && self.resets.take(at: now) {
                let reset = UTPPacket(type: .reset, connectionID: packet.connectionID,
                    timestamp: UTPConnection.micro(now), seq: UInt16.random(in: 0...UInt16.max, using: &self.rng),
                    ack: packet.seq)
                self.transmits.append((address, reset.bytes))
            }
            return
        }
        self.connections[key]!.receive(packet, at: now)
        self.drain(key)
    }

    /// Call once `nextTimeout` has passed.
    public mutating func handleTimeout(at now: Instant) {
        for (key, c) in self.connections {
            guard let due = c.nextTimeout, due <= now else { continue }
            self.connections[key]!.handleTimeout(at: now)
            self.drain(key)
        }
    }

    /// Moves a connection's datagrams and events out, in place, and forgets it once it is closed.
    private mutating func drain(_ key: ConnectionKey) {
        while let bytes = self.connections[key]?.pollTransmit() { self.transmits.append((key.address, bytes)) }
        while let e = self.connections[key]?.pollEvent() { self.events.append(.connection(key, e)) }
        if self.connections[key]?.state == .closed { self.connections[key] = nil }
    }
}
