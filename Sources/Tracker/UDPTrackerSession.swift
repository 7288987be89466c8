// BEP 15: the client side of the UDP tracker protocol as a sans-I/O state machine.
import NIOCore
import PeerBase

/// The exchange with one UDP tracker endpoint: connect, announce, scrape, retransmission, errors.
///
/// The session opens no socket and reads no clock. A driver feeds it:
/// - `handle(_:at:)` when the application wants to announce or scrape,
/// - `receive(_:at:)` with every datagram that arrives from the tracker's address,
/// - `handleTimeout(at:)` when `nextTimeout` has passed;
///
/// and after each of those drains `pollTransmit()` (datagrams to send to the tracker) and `pollEvent()`
/// (results for the application), both until they return nil.
///
/// A connection id is reused until `Configuration.connectionLifetime` (60 s) after it arrived, then a new
/// connect is sent before the next request. A request not answered is retransmitted after 15 × 2ⁿ seconds,
/// n = 0, 1, … 8; the counter carries over a reconnect, as in BEP 15's examples. After the last wait the
/// request fails with `.timedOut`. Several requests may be in flight at once; each has its own transaction
/// id, drawn from a generator seeded at `init`. Datagrams that are malformed, oversized, carry an unknown
/// transaction id or the wrong action are ignored and counted in `ignoredDatagrams`.
public struct UDPTrackerSession: Sendable {
    /// What the application asks for.
    public enum Command: Equatable, Sendable {
        /// Announce; the result is `.announced` or `.failed`.
        case announce(AnnounceRequest)
        /// Ask for the swarm counts of 1 to 74 torrents (20-byte info-hashes); the result is `.scraped` or `.failed`.
        case scrape([[UInt8]])

        var name: String {
            switch self {
            case .announce: "announce"
            case .scrape: "scrape"
            }
        }
    }

    /// What the session tells the application.
    public enum Event: Equatable, Sendable {
        /// The tracker answered an announce (UDP responses do not name the torrent, so the request comes back too).
        case announced(AnnounceRequest, AnnounceResponse)
        /// The tracker answered a scrape.
        case scraped(ScrapeResponse)
        /// A command failed: the tracker sent an error (`.failure`) or never answered (`.timedOut`).
        case failed(Command, TrackerError)
    }

    /// Timing, from BEP 15 unless a driver has reason to change it.
    public struct Configuration: Equatable, Sendable {
        /// How long a connection id may be used after it arrived.
        public var connectionLifetime: Duration
        /// The first retransmission timeout; it doubles after each retransmission.
        public var baseTimeout: Duration
        /// The largest n in 15 × 2ⁿ: a request is sent `maxRetransmissions + 1` times in all.
        public var maxRetransmissions: Int

        public init(
            connectionLifetime: Duration = .seconds(60),
            baseTimeout: Duration = .seconds(15),
            maxRetransmissions: Int = 8
        ) {
            precondition(maxRetransmissions >= 0 && maxRetransmissions <= 30, "maxRetransmissions out of range")
            self.connectionLifetime = connectionLifetime
            self.baseTimeout = baseTimeout
            self.maxRetransmissions = maxRetransmissions
        }
    }

    private struct Pending: Sendable {
        var command: Command
        var transactionID: UInt32
        /// n in 15 × 2ⁿ: how many timeouts this request has had.
        var attempt: Int
        var deadline: Instant
        /// True once the request itself (not only a connect on its behalf) has gone out.
        var sent: Bool
        /// True while it waits for a connection id.
        var awaitingConnection: Bool
    }

    /// The address family of the socket (decides the peer format of announce responses).
    public let addressFamily: AddressFamily
    public let configuration: Configuration
    /// Datagrams received and ignored: malformed, oversized, unknown transaction, unexpected action.
    public private(set) var ignoredDatagrams = 0

    private var generator: SeededGenerator
    private var connection: (id: UInt64, expires: Instant)?
    private var connectAttempt: (transactionID: UInt32, lastSent: Instant)?
    private var pending: [Pending] = []
    private var transmits: [[UInt8]] = []
    private var transmitHead = 0
    private var events: [Event] = []
    private var eventHead = 0

    /// Creates a session whose transaction ids come from a generator seeded with `seed`.
    public init(addressFamily: AddressFamily, configuration: Configuration = Configuration(), seed: UInt64) {
        self.addressFamily = addressFamily
        self.configuration = configuration
        self.generator = SeededGenerator(seed: seed)
    }

    /// Creates a session seeded from `generator` (one draw).
    public init(
        addressFamily: AddressFamily,
        configuration: Configuration = Configuration(),
        using generator: inout some RandomNumberGenerator
    ) {
        self.init(addressFamily: addressFamily, configuration: configuration, seed: generator.next())
    }

    // MARK: Inputs

    /// Starts an announce or a scrape. Call when the application needs one; then drain `pollTransmit()`.
    /// - Precondition: a scrape names 1 to 74 hashes of 20 bytes each.
    public mutating func handle(_ command: Command, at now: Instant) {
        if case .scrape(let hashes) = command {
            precondition(
                !hashes.isEmpty && hashes.count <= TrackerLimits.maxUDPScrapeHashes,
                "a UDP scrape asks about 1 to \(TrackerLimits.maxUDPScrapeHashes) torrents")
            precondition(hashes.allSatisfy { $0.count == 20 }, "info-hashes have 20 bytes")
        }
        var p = Pending(
            command: command, transactionID: self.newTransactionID(), attempt: 0,
            deadline: now + self.timeout(attempt: 0), sent: false, awaitingConnection: true)
        if let id = self.validConnection(at: now) {
            self.send(&p, connectionID: id)
        } else if self.connectAttempt == nil {
            self.sendConnect(at: now)
        }  // else: a connect is in flight; this request's own deadline retransmits it if need be
        self.pending.append(p)
    }

    /// Feeds a datagram that arrived from the tracker. Call for every datagram from its address; then
    /// drain `pollTransmit()` and `pollEvent()`.
    public mutating func receive(_ datagram: [UInt8], at now: Instant) {
        let message: UDPTrackerResponse
        do {
            message = try UDPTrackerResponse.decode(datagram, addressFamily: self.addressFamily)
        } catch {
            self.ignoredDatagrams += 1
            return
        }
        let tid = message.transactionID
        if let attempt = self.connectAttempt, attempt.transactionID == tid {
            self.receiveConnectAnswer(message, at: now)
        } else if let index = self.pending.firstIndex(where: { $0.transactionID == tid && $0.sent }) {
            self.receiveAnswer(message, datagramLength: datagram.count, index: index)
        } else {
            self.ignoredDatagrams += 1
        }
    }

    /// Feeds a datagram held in a `ByteBuffer` (its readable bytes).
    public mutating func receive(_ datagram: ByteBuffer, at now: Instant) {
        guard datagram.readableBytes <= TrackerLimits.maxDatagramLength else {
            self.ignoredDatagrams += 1
            return
        }
        self.receive(Array(datagram.readableBytesView), at: now)
    }

    /// Retransmits or gives up on requests whose deadline has passed. Call when `nextTimeout` is reached;
    /// early or repeated calls do nothing. Then drain `pollTransmit()` and `pollEvent()`.
    public mutating func handleTimeout(at now: Instant) {
        var index = 0
        while index < self.pending.count {
            guard self.pending[index].deadline <= now else {
                index += 1
                continue
            }
            var p = self.pending[index]
            p.attempt += 1
            if p.attempt > self.configuration.maxRetransmissions {
                self.pending.remove(at: index)
                self.events.append(.failed(p.command, .timedOut(request: p.command.name, attempts: p.attempt)))
                continue
            }
            p.deadline = now + self.timeout(attempt: p.attempt)
            if let id = self.validConnection(at: now) {
                self.send(&p, connectionID: id)
            } else {
                p.awaitingConnection = true
                self.sendConnect(at: now)
            }
            self.pending[index] = p
            index += 1
        }
        if !self.pending.contains(where: \.awaitingConnection) { self.connectAttempt = nil }
    }

    // MARK: Outputs

    /// The next datagram to send to the tracker, or nil. Call after every input until it returns nil.
    public mutating func pollTransmit() -> [UInt8]? {
        self.transmits.popFront(head: &self.transmitHead)
    }

    /// The next result for the application, or nil. Call after every input until it returns nil.
    public mutating func pollEvent() -> Event? {
        self.events.popFront(head: &self.eventHead)
    }

    /// When `handleTimeout(at:)` must next be called, or nil when nothing is in flight.
    public var nextTimeout: Instant? { self.pending.map(\.deadline).min() }

    /// The number of commands waiting for an answer.
    public var inFlight: Int { self.pending.count }

    // MARK: Internals

    private mutating func receiveConnectAnswer(_ message: UDPTrackerResponse, at now: Instant) {
        switch message {
        case .connect(_, let id):
            self.connectAttempt = nil
            self.connection = (id, now + self.configuration.connectionLifetime)
            for i in self.pending.indices where self.pending[i].awaitingConnection {
                var p = self.pending[i]
                p.deadline = now + self.timeout(attempt: p.attempt)
                self.send(&p, connectionID: id)
                self.pending[i] = p
            }
        case .error(_, let text):
            self.connectAttempt = nil
            var kept: [Pending] = []
            for p in self.pending {
                if p.awaitingConnection {
                    self.events.append(.failed(p.command, .failure(text)))
                } else {
                    kept.append(p)
                }
            }
            self.pending = kept
        default:
            self.ignoredDatagrams += 1
        }
    }

    private mutating func receiveAnswer(_ message: UDPTrackerResponse, datagramLength: Int, index: Int) {
        let p = self.pending[index]
        switch (p.command, message) {
        case (.announce(let request), .announce(_, let response)):
            self.events.append(.announced(request, response))
        case (.scrape(let hashes), .scrape(_, let stats)):
            var files: [[UInt8]: ScrapeStats] = [:]
            for (hash, s) in zip(hashes, stats) { files[hash] = s }
            var ignored: [TrackerError] = []
            if stats.count < hashes.count {
                ignored.append(
                    .badLength(
                        what: "scrape response", length: datagramLength,
                        expected: "\(8 + 12 * hashes.count) for \(hashes.count) info-hashes"))
            }
            self.events.append(.scraped(ScrapeResponse(files: files, ignored: ignored)))
        case (_, .error(_, let text)):
            self.events.append(.failed(p.command, .failure(text)))
        default:
            self.ignoredDatagrams += 1
            return
        }
        self.pending.remove(at: index)
        if !self.pending.contains(where: \.awaitingConnection) { self.connectAttempt = nil }
    }

    private func validConnection(at now: Instant) -> UInt64? {
        guard let c = self.connection, now < c.expires else { return nil }
        return c.id
    }

    private mutating func send(_ p: inout Pending, connectionID: UInt64) {
        let datagram: UDPTrackerRequest
        switch p.command {
        case .announce(var request):
            if self.addressFamily == .ipv6 { request.ip = nil }  // the 32-bit field cannot hold IPv6 (BEP 15)
            datagram = .announce(connectionID: connectionID, transactionID: p.transactionID, request: request)
        case .scrape(let hashes):
            datagram = .scrape(connectionID: connectionID, transactionID: p.transactionID, infoHashes: hashes)
        }
        self.transmits.append(datagram.encoded)
        p.sent = true
        p.awaitingConnection = false
    }

    /// Sends a connect request, unless one already went out at this instant.
    private mutating func sendConnect(at now: Instant) {
        self.connection = nil
        let tid: UInt32
        if let attempt = self.connectAttempt {
            if attempt.lastSent == now { return }
            tid = attempt.transactionID
        } else {
            tid = self.newTransactionID()
        }
        self.connectAttempt = (tid, now)
        self.transmits.append(UDPTrackerRequest.connect(transactionID: tid).encoded)
    }

    private func timeout(attempt: Int) -> Duration {
        self.configuration.baseTimeout * (1 << attempt)
    }

    /// A transaction id not used by any request in flight.
    private mutating func newTransactionID() -> UInt32 {
        while true {
            let tid = UInt32(truncatingIfNeeded: self.generator.next())
            if self.connectAttempt?.transactionID != tid && !self.pending.contains(where: { $0.transactionID == tid }) {
                return tid
            }
        }
    }
}
