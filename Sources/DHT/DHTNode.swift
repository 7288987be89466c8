// BEP 5 (with 32, 42, 43, 44, 51): a Mainline DHT node as a sans-I/O state machine.
import Bencode
import PeerBase

/// A Mainline DHT node, sans I/O (DESIGN.md §4).
///
/// The node opens no socket and reads no clock. A driver feeds it:
/// - `receive(_:from:at:)` with every datagram that arrives on the DHT socket(s), with its source;
/// - `handle(_:at:)` with the application's commands (bootstrap, get_peers, announce, get/put, …);
/// - `handleTimeout(at:)` whenever `nextTimeout` has passed;
///
/// and after each of those drains `pollTransmit()` (datagrams to send) and `pollEvent()` (results), both until
/// they return nil, then re-arms its timer at `nextTimeout`.
///
/// What the node does by itself: answers queries (ping, find_node, get_peers, announce_peer, get, put,
/// sample_infohashes) unless it is read-only, verifies unknown nodes that query it with a ping before they enter
/// its routing table, pings questionable nodes, refreshes buckets unchanged for 15 minutes, rotates its token
/// secret every 5 minutes, expires stored peers (30 minutes) and items (2 hours), and bootstraps again from
/// the routers when its table empties.
///
/// A driver, in outline:
/// ```swift
/// var node = DHTNode(configuration: .init(families: [.ipv4, .ipv6], version: Array("PE01".utf8)),
///                    at: now, using: &systemRandom)
/// let boot = node.handle(.bootstrap(routers: routers, knownNodes: saved), at: now)
/// // on each datagram:  node.receive(bytes, from: DHTEndpoint(ip: …, port: …), at: now); drain()
/// // on the timer:      node.handleTimeout(at: now); drain()
/// func drain() {
///     while let d = node.pollTransmit() { socket(for: d.destination.family).send(d.bytes, to: d.destination) }
///     while let e = node.pollEvent() { … }   // .finished(id, outcome), .peersFound, .peerAnnounced, …
///     timer.schedule(at: node.nextTimeout)
/// }
/// ```
/// Save `knownNodes` on exit and pass their endpoints back as `knownNodes` next time (BEP 5: "The routing table
/// should be saved between invocations").
///
/// Amplification and abuse: a malformed query is answered with at most a short fixed error (203), and only
/// when its transaction id is at most 8 bytes; every answer is at most `maxReplyLength` bytes; answers are
/// rate-limited per source IP; our own queries are rate-limited too (they wait in a queue, never dropped).
public struct DHTNode: Sendable {
    private enum Purpose: Sendable {
        case lookup(LookupID, traversal: Int)
        case store(LookupID, NodeInfo)
        case ping(LookupID?)
        case sample(LookupID)
    }

    private struct PendingQuery: Sendable {
        var destination: DHTEndpoint
        var expectedID: NodeID?
        var bytes: [UInt8]
        var purpose: Purpose
        var sends = 0
        /// nil while the query waits in the outbox for the rate limiter.
        var deadline: Instant?
        /// When it was last sent, for the round-trip estimate.
        var sentAt: Instant?
        /// A lookup query slower than the usual round trip stops holding its lookup up at this moment (it is
        /// still answered until `deadline`).
        var shortDeadline: Instant?
    }

    private struct Operation: Sendable {
        enum Kind: Sendable {
            case bootstrap, findNode, getPeers
            case announce(port: UInt16, impliedPort: Bool)
            case get(salt: [UInt8], newerThan: Int64?)
            case put(DHTItem, cas: Int64?)
            case ping, sample
        }

        var kind: Kind
        var target: NodeID
        /// Internal lookups (bucket refresh, automatic bootstrap) report nothing.
        var silent: Bool
        var traversals: [Traversal] = []
        var storing = false
        var pendingStores = 0
        var acceptedBy: [NodeInfo] = []
        var refusals: [StoreRefusal] = []
        var peers: [DHTEndpoint] = []
        var peerSet: Set<DHTEndpoint> = []
        var item: DHTItem?
    }

    /// Our node ID: configured, else random until the nodes we ask agree on our external address, then one
    /// that BEP 42 derives from it.
    public private(set) var id: NodeID
    public let configuration: Configuration
    /// Our external IP: configured, or agreed on by the nodes we ask (BEP 42 `ip`).
    public private(set) var externalIP: DHTEndpoint.IP?
    /// Peers other nodes announced to us.
    public private(set) var peerStore: PeerStore
    /// BEP 44 items other nodes put on us.
    public private(set) var itemStore: ItemStore

    private var rng: SeededGenerator
    private var tables: [DHTEndpoint.Family: RoutingTable] = [:]
    private var tokens: WriteTokens
    private var replyLimiter: SourceRateLimiter
    private var queryLimiter: TokenBucket
    private var pending: [UInt16: PendingQuery] = [:]
    private var outbox: [UInt16] = []
    private var outboxHead = 0
    private var operations: [LookupID: Operation] = [:]
    private var nextLookupID: UInt64 = 1
    private var transmits: [DHTDatagram] = []
    private var transmitHead = 0
    private var events: [Event] = []
    private var eventHead = 0
    private var routers: Set<DHTEndpoint> = []
    private var verifying: Set<DHTEndpoint> = []
    private var votes: [(voter: DHTEndpoint.IP, reported: DHTEndpoint.IP)] = []
    private var sampleCache: (samples: [NodeID], until: Instant)?
    private var nextMaintenance: Instant
    private var nextExpiry: Instant
    private var lastBootstrap: Instant?
    private var lastNow: Instant
    private var counters: Stats
    /// Smoothed round trip of answered queries and its mean deviation, in seconds (RFC 6298's estimator).
    private var rtt: (smoothed: Double, deviation: Double)?

    /// Creates a node whose randomness (node ID if not configured, transaction ids, token secrets, samples)
    /// comes from a generator seeded with `seed`.
    public init(configuration: Configuration = Configuration(), at now: Instant, seed: UInt64) {
        var rng = SeededGenerator(seed: seed)
        let id: NodeID
        if let configured = configuration.nodeID {
            id = configured
        } else if let ip = configuration.externalIP {
            id = NodeID.secure(for: ip, using: &rng)
        } else {
            id = NodeID.random(using: &rng)
        }
        self.id = id
        self.configuration = configuration
        self.externalIP = configuration.externalIP
        self.peerStore = PeerStore(limits: configuration.peerStore)
        self.itemStore = ItemStore(limits: configuration.itemStore)
        self.tokens = WriteTokens(interval: configuration.tokenInterval, at: now, using: &rng)
        self.rng = rng
        self.replyLimiter = SourceRateLimiter(
            capacity: configuration.replyBurst, rate: configuration.repliesPerSecond,
            maxSources: configuration.maxTrackedSources)
        self.queryLimiter = TokenBucket(
            capacity: configuration.queryBurst, rate: configuration.queriesPerSecond, at: now)
        for f in configuration.families {
            self.tables[f] = RoutingTable(ownID: id, configuration: configuration.routing, at: now)
        }
        self.nextMaintenance = now + configuration.maintenanceInterval
        self.nextExpiry = now + .seconds(60)
        self.lastNow = now
        self.counters = Stats(id: id)
    }

    /// Creates a node seeded from `generator` (one draw).
    public init(
        configuration: Configuration = Configuration(), at now: Instant,
        using generator: inout some RandomNumberGenerator
    ) {
        self.init(configuration: configuration, at: now, seed: generator.next())
    }

    // MARK: Getters

    /// The routing table of `family`, if the node has one.
    public func routingTable(_ family: DHTEndpoint.Family) -> RoutingTable? { self.tables[family] }

    /// Every node in the routing tables, for saving between runs (pass their endpoints back as `knownNodes`).
    public var knownNodes: [NodeInfo] {
        DHTEndpoint.Family.allCases.flatMap { self.tables[$0]?.nodes ?? [] }
    }

    /// Commands still running.
    public var activeLookups: Int { self.operations.count }

    /// Counters and sizes.
    public var stats: Stats {
        var s = self.counters
        s.ipv4Nodes = self.tables[.ipv4]?.count ?? 0
        s.ipv6Nodes = self.tables[.ipv6]?.count ?? 0
        s.goodNodes = self.tables.values.reduce(0) { $0 + $1.goodCount(at: self.lastNow) }
        s.buckets = self.tables.values.reduce(0) { $0 + $1.bucketCount }
        s.lookups = self.operations.count
        s.pendingQueries = self.pending.count
        s.storedInfoHashes = self.peerStore.infoHashCount
        s.storedPeers = self.peerStore.peerCount
        s.storedItems = self.itemStore.count
        return s
    }

    /// When `handleTimeout(at:)` must next be called: the earliest query deadline, the moment a rate-limited
    /// query may go out, or the next housekeeping round.
    public var nextTimeout: Instant {
        var t = self.nextMaintenance
        for p in self.pending.values {
            if let d = p.deadline, d < t { t = d }
            if let d = p.shortDeadline, d < t { t = d }
        }
        if self.outboxHead < self.outbox.count { t = min(t, self.queryLimiter.nextToken(after: self.lastNow)) }
        return t
    }

    // MARK: Outputs

    /// The next datagram to send, or nil. Call after every input until it returns nil.
    public mutating func pollTransmit() -> DHTDatagram? {
        self.transmits.popFront(head: &self.transmitHead)
    }

    /// The next event for the application, or nil. Call after every input until it returns nil.
    public mutating func pollEvent() -> Event? {
        self.events.popFront(head: &self.eventHead)
    }

    // MARK: Inputs

    /// Starts a command; its result arrives later as `.finished` with the returned ID. Then drain
    /// `pollTransmit()` and `pollEvent()`.
    @discardableResult
    public mutating func handle(_ command: Command, at now: Instant) -> LookupID {
        self.advanceClock(now)
        let lookup = LookupID(rawValue: self.nextLookupID)
        self.nextLookupID += 1
        switch command {
        case .bootstrap(let routers, let known):
            for r in routers.prefix(64) where self.routers.count < 64 { self.routers.insert(r) }
            self.lastBootstrap = now
            self.startLookup(lookup, kind: .bootstrap, target: self.id, seeds: routers + known, silent: false, at: now)
        case .ping(let endpoint):
            guard self.tables[endpoint.family] != nil else {
                self.events.append(.finished(lookup, .failed(.unsupportedFamily)))
                break
            }
            self.operations[lookup] = Operation(kind: .ping, target: self.id, silent: false)
            self.sendQuery(.ping, to: endpoint, expecting: nil, purpose: .ping(lookup), at: now)
        case .findNode(let target):
            self.startLookup(lookup, kind: .findNode, target: target, seeds: [], silent: false, at: now)
        case .getPeers(let infoHash):
            self.startLookup(lookup, kind: .getPeers, target: infoHash, seeds: [], silent: false, at: now)
        case .announce(let infoHash, let port, let implied):
            self.startLookup(
                lookup, kind: .announce(port: port, impliedPort: implied), target: infoHash, seeds: [], silent: false,
                at: now)
        case .get(let target, let salt, let newerThan):
            self.startLookup(lookup, kind: .get(salt: salt, newerThan: newerThan), target: target, seeds: [],
                silent: false, at: now)
        case .put(let item, let cas):
            self.startLookup(lookup, kind: .put(item, cas: cas), target: item.target, seeds: [], silent: false, at: now)
        case .sampleInfohashes(let endpoint, let target):
            guard self.tables[endpoint.family] != nil else {
                self.events.append(.finished(lookup, .failed(.unsupportedFamily)))
                break
            }
            self.operations[lookup] = Operation(kind: .sample, target: target, silent: false)
            self.sendQuery(.sampleInfohashes(target: target), to: endpoint, expecting: nil, purpose: .sample(lookup), at: now)
        }
        return lookup
    }

    /// Feeds a datagram that arrived from `source`. Never throws and never traps on what a peer sends: bad
    /// input is dropped (or answered with a short error) and counted. Then drain `pollTransmit()` and
    /// `pollEvent()`.
    public mutating func receive(_ datagram: [UInt8], from source: DHTEndpoint, at now: Instant) {
        self.advanceClock(now)
        self.counters.datagramsReceived += 1
        self.counters.bytesReceived += datagram.count
        guard source.port != 0, self.tables[source.family] != nil else {
            self.counters.malformed += 1
            return
        }
        let message: KRPCMessage
        do {
            message = try KRPCMessage.decode(datagram, limits: self.configuration.krpcLimits)
        } catch {
            self.counters.malformed += 1
            if case .invalidQuery(let t, _, _) = error, !self.configuration.readOnly,
                self.replyLimiter.allow(source.ip, at: now)
            {
                self.sendError(t, to: source, code: KRPCErrorCode.protocolError, message: "Protocol Error")
            }
            return
        }
        switch message.kind {
        case .query(let query):
            self.receiveQuery(query, message: message, from: source, at: now)
        case .response, .error:
            self.receiveAnswer(message, from: source, at: now)
        }
    }

    /// Retransmits or gives up on queries whose deadline passed, sends queries the rate limiter held back, and
    /// does housekeeping when due. Early or repeated calls are harmless. Then drain `pollTransmit()` and
    /// `pollEvent()`.
    public mutating func handleTimeout(at now: Instant) {
        self.advanceClock(now)
        let slow = self.pending.filter { $0.value.shortDeadline.map { $0 <= now } ?? false }
            .sorted { ($0.value.shortDeadline!, $0.key) < ($1.value.shortDeadline!, $1.key) }
        for (tid, _) in slow {
            guard var p = self.pending[tid], case .lookup(let lookup, let index) = p.purpose else { continue }
            p.shortDeadline = nil
            self.pending[tid] = p
            self.operations[lookup]?.traversals[index].stalled(p.destination)
            self.advance(lookup, at: now)
        }
        let expired = self.pending.filter { $0.value.deadline.map { $0 <= now } ?? false }
            .sorted { ($0.value.deadline!, $0.key) < ($1.value.deadline!, $1.key) }
        for (tid, _) in expired {
            guard var p = self.pending[tid] else { continue }
            // A lookup that ended needs no resend; its node is counted as failing all the same.
            let over = if case .lookup(let lookup, _) = p.purpose { self.operations[lookup] == nil } else { false }
            if p.sends <= self.configuration.queryRetries && !over {
                p.deadline = nil
                self.pending[tid] = p
                self.outbox.append(tid)
                if case .lookup(let lookup, let index) = p.purpose {
                    self.operations[lookup]?.traversals[index].stalled(p.destination)
                    self.advance(lookup, at: now)
                }
            } else {
                self.pending[tid] = nil
                self.counters.timeouts += 1
                self.queryFailed(p, at: now)
            }
        }
        self.flushOutbox(at: now)
        if now >= self.nextMaintenance {
            self.nextMaintenance = now + self.configuration.maintenanceInterval
            self.maintain(at: now)
            self.flushOutbox(at: now)
        }
    }

    // MARK: Answering queries

    private mutating func receiveQuery(_ query: KRPCQuery, message: KRPCMessage, from source: DHTEndpoint, at now: Instant) {
        self.counters.queriesReceived += 1
        guard query.sender != self.id else {
            self.counters.malformed += 1
            return
        }
        // BEP 43: a read-only node answers nothing.
        guard !self.configuration.readOnly else { return }
        guard self.replyLimiter.allow(source.ip, at: now) else {
            self.counters.rateLimited += 1
            return
        }
        // After the answer: ping an unknown querier so that it may enter the table (BEP 43: not a read-only one).
        defer { if !message.readOnly { self.noticeQuerier(NodeInfo(id: query.sender, endpoint: source), at: now) } }

        let t = message.transactionID
        var r = KRPCResponse(sender: self.id)
        switch query.method {
        case .ping:
            self.reply(t, to: source, r, nodesNear: nil, want: [], peersOf: nil)
        case .findNode(let target):
            self.reply(t, to: source, r, nodesNear: target, want: query.want, peersOf: nil)
        case .getPeers(let infoHash):
            self.events.append(.infoHashAsked(infoHash))
            r.token = self.tokens.token(for: source.ip)
            self.reply(t, to: source, r, nodesNear: infoHash, want: query.want, peersOf: infoHash)
        case .announcePeer(let infoHash, let port, let implied, let token):
            guard self.tokens.isValid(token, for: source.ip) else {
                self.sendError(t, to: source, code: KRPCErrorCode.protocolError, message: "bad token")
                return
            }
            let peer = DHTEndpoint(ip: source.ip, port: implied ? source.port : port)
            self.peerStore.store(peer, for: infoHash, at: now)
            self.events.append(.peerAnnounced(infoHash: infoHash, peer: peer))
            self.reply(t, to: source, r, nodesNear: nil, want: [], peersOf: nil)
        case .get(let target, let seq):
            r.token = self.tokens.token(for: source.ip)
            switch self.itemStore.item(for: target) {
            case .immutable(let v)?:
                r.value = v
            case .mutable(let m)?:
                r.sequence = m.sequence
                if seq.map({ m.sequence > $0 }) ?? true {
                    r.value = m.value
                    r.publicKey = m.publicKey
                    r.signature = m.signature
                }
            case nil: break
            }
            self.reply(t, to: source, r, nodesNear: target, want: query.want, peersOf: nil)
        case .put(let token, let item, let cas):
            guard self.tokens.isValid(token, for: source.ip) else {
                self.sendError(t, to: source, code: KRPCErrorCode.protocolError, message: "bad token")
                return
            }
            switch self.itemStore.put(item, cas: cas, at: now) {
            case .success: self.reply(t, to: source, r, nodesNear: nil, want: [], peersOf: nil)
            case .failure(let refusal): self.sendError(t, to: source, code: refusal.code, message: refusal.description)
            }
        case .sampleInfohashes(let target):
            if self.sampleCache.map({ now >= $0.until }) ?? true {
                let samples = self.peerStore.sample(count: self.configuration.maxSamplesPerReply, using: &self.rng)
                self.sampleCache = (samples, now + self.configuration.sampleInterval)
            }
            let cache = self.sampleCache!
            r.samples = cache.samples
            r.sampleCount = Int64(self.peerStore.infoHashCount)
            r.interval = max(0, min(21600, Int64((cache.until - now).seconds.rounded(.up))))
            self.reply(t, to: source, r, nodesNear: target, want: query.want, peersOf: nil)
        case .unknown(_, let target?):
            self.reply(t, to: source, r, nodesNear: target, want: query.want, peersOf: nil)
        case .unknown(_, nil):
            self.sendError(t, to: source, code: KRPCErrorCode.methodUnknown, message: "Method Unknown")
        }
    }

    /// A node that is not read-only queried us: refresh its entry, or ping it if it could enter the table.
    private mutating func noticeQuerier(_ node: NodeInfo, at now: Instant) {
        guard var table = self.tables[node.endpoint.family], !self.routers.contains(node.endpoint) else { return }
        if table.contains(node.id) {
            table.queried(by: node, at: now)
            self.tables[node.endpoint.family] = table
            return
        }
        guard self.isCompliant(node) || !self.configuration.enforceNodeIDs,
            table.hasRoom(for: node.id, ip: node.endpoint.ip, at: now),
            self.verifying.count < self.configuration.maxVerificationPings,
            !self.verifying.contains(node.endpoint)
        else { return }
        self.verifying.insert(node.endpoint)
        self.sendQuery(.ping, to: node.endpoint, expecting: node.id, purpose: .ping(nil), at: now)
    }

    /// Sends an answer built from `base`, adding node lists and peers as far as `maxReplyLength` allows:
    /// first the requester's family's nodes, then peers, then the other family's nodes.
    private mutating func reply(
        _ t: [UInt8], to source: DHTEndpoint, _ base: KRPCResponse, nodesNear target: NodeID?, want: Want,
        peersOf infoHash: NodeID?
    ) {
        var r = base
        var message = KRPCMessage(
            transactionID: t, kind: .response(r), version: self.configuration.version, requesterAddress: source)
        var size = message.encoded.count
        let budget = self.configuration.maxReplyLength
        let k = self.configuration.routing.k
        var families: [DHTEndpoint.Family] = []
        if let _ = target {
            let wanted: Want = want.isEmpty ? (source.family == .ipv4 ? .n4 : .n6) : want
            let own: DHTEndpoint.Family = source.family
            let other: DHTEndpoint.Family = own == .ipv4 ? .ipv6 : .ipv4
            for f in [own, other] where wanted.contains(f == .ipv4 ? .n4 : .n6) { families.append(f) }
        }
        func addNodes(_ f: DHTEndpoint.Family) {
            guard let target, let table = self.tables[f] else { return }
            let nodes = table.closest(to: target, count: k)
            let key = f == .ipv4 ? "nodes" : "nodes6"
            var n = nodes.count
            while n > 0 && size + Self.stringEntryCost(key: key, length: n * f.compactNodeLength) > budget { n -= 1 }
            guard n > 0 else { return }
            size += Self.stringEntryCost(key: key, length: n * f.compactNodeLength)
            if f == .ipv4 { r.nodes = Array(nodes.prefix(n)) } else { r.nodes6 = Array(nodes.prefix(n)) }
        }
        if let first = families.first { addNodes(first) }
        if let infoHash {
            let per = source.family == .ipv4 ? 8 : 21  // "6:" + 6 bytes, "18:" + 18 bytes
            let room = (budget - size - 10) / per  // "6:values" "l" "e"
            let limit = min(self.configuration.maxPeersPerReply, room)
            if limit > 0 {
                r.values = self.peerStore.peers(for: infoHash, family: source.family, limit: limit, using: &self.rng)
                if !r.values.isEmpty { size += 10 + per * r.values.count }
            }
        }
        for f in families.dropFirst() { addNodes(f) }
        message.kind = .response(r)
        let bytes = message.encoded
        guard bytes.count <= budget else {
            // Cannot happen with the arithmetic above; never send more than the budget all the same.
            self.sendError(t, to: source, code: KRPCErrorCode.server, message: "Server Error")
            return
        }
        self.transmit(bytes, to: source)
    }

    /// The encoded size of `<key>` followed by a byte string of `length` bytes in a dictionary.
    private static func stringEntryCost(key: String, length: Int) -> Int {
        let k = key.utf8.count
        return String(k).count + 1 + k + String(length).count + 1 + length
    }

    private mutating func sendError(_ t: [UInt8], to destination: DHTEndpoint, code: Int, message: String) {
        self.counters.errorsSent += 1
        let m = KRPCMessage(
            transactionID: t, kind: .error(code: code, message: message), version: self.configuration.version,
            requesterAddress: destination)
        self.transmit(m.encoded, to: destination)
    }

    private mutating func transmit(_ bytes: [UInt8], to destination: DHTEndpoint) {
        self.counters.datagramsSent += 1
        self.counters.bytesSent += bytes.count
        self.transmits.append(DHTDatagram(bytes: bytes, destination: destination))
    }

    // MARK: Answers to our queries

    private mutating func receiveAnswer(_ message: KRPCMessage, from source: DHTEndpoint, at now: Instant) {
        guard message.transactionID.count == 2,
            case let tid = UInt16(message.transactionID[0]) << 8 | UInt16(message.transactionID[1]),
            let p = self.pending[tid], p.destination == source, p.sends > 0
        else {
            self.counters.unmatched += 1
            return
        }
        self.pending[tid] = nil
        if p.sends == 1, let sent = p.sentAt { self.sampleRoundTrip(now - sent) }  // Karn: never a resent query's
        if let reported = message.requesterAddress { self.vote(reported.ip, by: source.ip, at: now) }
        switch message.kind {
        case .response(let response):
            self.counters.responsesReceived += 1
            self.receiveResponse(response, readOnly: message.readOnly, for: p, at: now)
        case .error(let code, let text):
            self.counters.errorsReceived += 1
            self.receiveError(code: code, message: text, for: p, at: now)
        case .query:
            fatalError("internal inconsistency: a query routed as an answer")
        }
    }

    private mutating func receiveResponse(_ response: KRPCResponse, readOnly: Bool, for p: PendingQuery, at now: Instant) {
        let node = NodeInfo(id: response.sender, endpoint: p.destination)
        let idMatches = p.expectedID.map { $0 == response.sender } ?? true
        if !idMatches, let old = p.expectedID {
            self.tables[node.endpoint.family]?.failed(NodeInfo(id: old, endpoint: node.endpoint), at: now)
        }
        if node.id != self.id && !readOnly { self.learn(node, at: now) }
        switch p.purpose {
        case .lookup(let lookup, let index):
            guard var op = self.operations[lookup] else { return }
            if idMatches && node.id != self.id {
                let compliant = self.isCompliant(node)
                op.traversals[index].responded(
                    node, token: response.token, compliant: compliant, router: self.routers.contains(node.endpoint),
                    sequence: response.sequence)
                let family = op.traversals[index].family
                let referred = (family == .ipv4 ? response.nodes : response.nodes6).filter { $0.id != self.id }
                op.traversals[index].add(referred, isCompliant: { self.isCompliant($0) })
                self.collect(response, into: &op, lookup: lookup)
            } else {
                op.traversals[index].failed(node.endpoint)
            }
            self.operations[lookup] = op
            self.advance(lookup, at: now)
        case .store(let lookup, let target):
            guard var op = self.operations[lookup] else { return }
            op.pendingStores -= 1
            op.acceptedBy.append(target)
            self.operations[lookup] = op
            self.advance(lookup, at: now)
        case .ping(let lookup):
            self.verifying.remove(p.destination)
            if let lookup { self.finish(lookup, .pong(node)) }
        case .sample(let lookup):
            let samples = InfohashSamples(
                from: node, samples: response.samples ?? [], available: response.sampleCount,
                interval: response.interval, nodes: response.nodes + response.nodes6)
            self.finish(lookup, .samples(samples))
        }
    }

    private mutating func receiveError(code: Int, message: String, for p: PendingQuery, at now: Instant) {
        switch p.purpose {
        case .lookup(let lookup, let index):
            self.operations[lookup]?.traversals[index].failed(p.destination)
            self.advance(lookup, at: now)
        case .store(let lookup, let target):
            guard var op = self.operations[lookup] else { return }
            op.pendingStores -= 1
            op.refusals.append(StoreRefusal(node: target, code: code, message: message))
            self.operations[lookup] = op
            self.advance(lookup, at: now)
        case .ping(let lookup):
            self.verifying.remove(p.destination)
            if let lookup { self.finish(lookup, .failed(.remoteError(code: code, message: message))) }
        case .sample(let lookup):
            self.finish(lookup, .failed(.remoteError(code: code, message: message)))
        }
    }

    /// A query went unanswered after every retry.
    private mutating func queryFailed(_ p: PendingQuery, at now: Instant) {
        if let id = p.expectedID {
            self.tables[p.destination.family]?.failed(NodeInfo(id: id, endpoint: p.destination), at: now)
        }
        switch p.purpose {
        case .lookup(let lookup, let index):
            self.operations[lookup]?.traversals[index].failed(p.destination)
            self.advance(lookup, at: now)
        case .store(let lookup, _):
            self.operations[lookup]?.pendingStores -= 1
            self.advance(lookup, at: now)
        case .ping(let lookup):
            self.verifying.remove(p.destination)
            if let lookup { self.finish(lookup, .failed(.timedOut)) }
        case .sample(let lookup):
            self.finish(lookup, .failed(.timedOut))
        }
    }

    /// Peers and items a lookup answer carried.
    private mutating func collect(_ response: KRPCResponse, into op: inout Operation, lookup: LookupID) {
        switch op.kind {
        case .getPeers, .announce:
            var fresh: [DHTEndpoint] = []
            for peer in response.values where peer.port != 0 && !op.peerSet.contains(peer) {
                guard op.peers.count < 10_000 else { break }
                op.peerSet.insert(peer)
                op.peers.append(peer)
                fresh.append(peer)
            }
            if !fresh.isEmpty && !op.silent {
                self.events.append(.peersFound(lookup, infoHash: op.target, peers: fresh))
            }
        case .get(let salt, _):
            guard let item = Self.verifiedItem(response, target: op.target, salt: salt) else { return }
            switch (op.item, item) {
            case (nil, _): op.item = item
            case (.mutable(let old)?, .mutable(let new)) where new.sequence > old.sequence: op.item = item
            default: break
            }
        default:
            break
        }
    }

    /// The item in a get answer if it checks out: an immutable value must hash to the target; a mutable one
    /// must have a key and salt that hash to the target and a valid signature (BEP 44). Nil otherwise.
    public static func verifiedItem(_ r: KRPCResponse, target: NodeID, salt: [UInt8]) -> DHTItem? {
        guard let v = r.value, v.encoded.count <= DHTItem.maxValueLength else { return nil }
        if let k = r.publicKey, let sig = r.signature, let seq = r.sequence {
            let m = MutableItem(publicKey: k, salt: salt, sequence: seq, value: v, signature: sig)
            guard m.target == target, m.hasValidSignature else { return nil }
            return .mutable(m)
        }
        guard DHTItem.immutableTarget(for: v) == target else { return nil }
        return .immutable(v)
    }

    /// Puts a node that answered us into its table (unless it is a router, read-only, or fails BEP 42 while
    /// that is enforced), and pings a questionable node if its bucket is full.
    private mutating func learn(_ node: NodeInfo, at now: Instant) {
        guard var table = self.tables[node.endpoint.family], !self.routers.contains(node.endpoint),
            !self.configuration.enforceNodeIDs || self.isCompliant(node)
        else { return }
        let result = table.heardFrom(node, at: now)
        self.tables[node.endpoint.family] = table
        if case .cached(let ping?) = result {
            self.sendQuery(.ping, to: ping.endpoint, expecting: ping.id, purpose: .ping(nil), at: now)
        }
    }

    private func isCompliant(_ node: NodeInfo) -> Bool {
        !self.configuration.enforceNodeIDs || node.id.isSecure(for: node.endpoint.ip)
    }

    /// Records one node's report of our external address; changes `externalIP` when enough agree.
    private mutating func vote(_ reported: DHTEndpoint.IP, by voter: DHTEndpoint.IP, at now: Instant) {
        if let i = self.votes.firstIndex(where: { $0.voter == voter }) {
            self.votes[i].reported = reported
        } else {
            if self.votes.count >= 32 { self.votes.removeFirst() }
            self.votes.append((voter, reported))
        }
        var best: (ip: DHTEndpoint.IP, count: Int)?
        for v in self.votes {
            let n = self.votes.count(where: { $0.reported == v.reported })
            if n > (best?.count ?? 0) { best = (v.reported, n) }
        }
        guard let best, best.count >= self.configuration.externalAddressVotes, best.count * 2 > self.votes.count,
            best.ip != self.externalIP
        else { return }
        self.externalIP = best.ip
        self.events.append(.externalAddressChanged(best.ip))
        // One ID serves both families; an IPv4 address decides it when the node has an IPv4 table.
        if self.configuration.nodeID == nil, !self.id.isSecure(for: best.ip),
            best.ip.family == .ipv4 || self.tables[.ipv4] == nil
        {
            self.changeID(to: NodeID.secure(for: best.ip, using: &self.rng), at: now)
        }
    }

    /// Takes `id` as the node's ID: every routing table is rebuilt around it from the nodes it held (the
    /// buckets depend on our ID), and a silent lookup of the new ID fills the buckets near it. Lookups under
    /// way go on; queries in flight are answered to the same transaction ids.
    private mutating func changeID(to id: NodeID, at now: Instant) {
        self.id = id
        self.counters.id = id
        for (family, old) in self.tables {
            var table = RoutingTable(ownID: id, configuration: self.configuration.routing, at: now)
            for node in old.nodes { _ = table.heardFrom(node, at: now) }
            self.tables[family] = table
        }
        self.events.append(.idChanged(id))
        let lookup = LookupID(rawValue: self.nextLookupID)
        self.nextLookupID += 1
        self.startLookup(lookup, kind: .bootstrap, target: id, seeds: [], silent: true, at: now)
    }

    // MARK: Lookups

    private mutating func startLookup(
        _ lookup: LookupID, kind: Operation.Kind, target: NodeID, seeds: [DHTEndpoint], silent: Bool, at now: Instant
    ) {
        var op = Operation(kind: kind, target: target, silent: silent)
        let k = self.configuration.routing.k
        for f in DHTEndpoint.Family.allCases {
            guard let table = self.tables[f] else { continue }
            var t = Traversal(
                target: target, family: f, k: k, alpha: self.configuration.alpha,
                maxQueries: self.configuration.maxQueriesPerLookup, maxCandidates: 8 * k)
            t.addSeeds(seeds)
            t.add(table.closest(to: target, count: 3 * k), isCompliant: { self.isCompliant($0) })
            op.traversals.append(t)
        }
        if op.traversals.allSatisfy({ $0.isFinished }) {
            if !silent { self.events.append(.finished(lookup, .failed(.noNodes))) }
            return
        }
        self.operations[lookup] = op
        self.advance(lookup, at: now)
    }

    /// Sends what a lookup may send now, moves it to its store phase, or finishes it.
    private mutating func advance(_ lookup: LookupID, at now: Instant) {
        guard var op = self.operations[lookup] else { return }
        if !op.storing {
            var sends: [(DHTEndpoint, NodeID?, Int)] = []
            for i in op.traversals.indices {
                for (endpoint, id) in op.traversals[i].next() { sends.append((endpoint, id, i)) }
            }
            self.operations[lookup] = op
            let method: KRPCQuery.Method
            switch op.kind {
            case .bootstrap, .findNode, .ping, .sample: method = .findNode(target: op.target)
            case .getPeers, .announce: method = .getPeers(infoHash: op.target)
            case .get(_, let newerThan): method = .get(target: op.target, sequence: newerThan)
            case .put: method = .get(target: op.target, sequence: nil)
            }
            for (endpoint, id, i) in sends {
                self.sendQuery(method, to: endpoint, expecting: id, purpose: .lookup(lookup, traversal: i), at: now)
            }
            guard op.traversals.allSatisfy({ $0.isFinished }) else { return }
            let storeMethod: ((Traversal.Candidate) -> KRPCQuery.Method)?
            switch op.kind {
            case .announce(let port, let implied):
                storeMethod = { c in
                    .announcePeer(infoHash: op.target, port: port, impliedPort: implied, token: c.token!)
                }
            case .put(let item, let cas):
                // BEP 44: cas "SHOULD NOT" go to a node that returned no data for the get.
                storeMethod = { c in .put(token: c.token!, item: item, cas: c.sequence == nil ? nil : cas) }
            default:
                storeMethod = nil
            }
            guard let storeMethod else {
                self.finish(lookup, self.outcome(of: op))
                return
            }
            op.storing = true
            let targets = op.traversals.flatMap(\.closestWithTokens)
            op.pendingStores = targets.count
            self.operations[lookup] = op
            for c in targets {
                self.sendQuery(
                    storeMethod(c), to: c.node.endpoint, expecting: c.node.id,
                    purpose: .store(lookup, c.node), at: now)
            }
        }
        if let op = self.operations[lookup], op.storing && op.pendingStores <= 0 {
            self.finish(lookup, self.outcome(of: op))
        }
    }

    /// A lookup's peers and those announced to this node itself (in a small DHT they may be the only ones).
    private func withOwnPeers(_ op: Operation) -> [DHTEndpoint] {
        var peers = op.peers
        for p in self.peerStore.allPeers(for: op.target).prefix(self.configuration.maxPeersPerReply) where !peers.contains(p) {
            peers.append(p)
        }
        return peers
    }

    private func outcome(of op: Operation) -> LookupOutcome {
        if op.traversals.allSatisfy({ $0.answers == 0 }) { return .failed(.timedOut) }
        let closest = op.traversals.flatMap(\.closest).sorted { ($0.node.id ^ op.target) < ($1.node.id ^ op.target) }
            .map { ClosestNode(node: $0.node, token: $0.token) }
        switch op.kind {
        case .bootstrap, .findNode, .ping, .sample:
            return .nodes(target: op.target, closest: closest.map(\.node))
        case .getPeers:
            return .peers(infoHash: op.target, peers: self.withOwnPeers(op), closest: closest)
        case .announce:
            return .announced(infoHash: op.target, peers: self.withOwnPeers(op), acceptedBy: op.acceptedBy,
                refusals: op.refusals)
        case .get(_, let newerThan):
            // This node may hold the item itself (others put it here): the newest of ours and theirs.
            var item = op.item
            switch (self.itemStore.item(for: op.target), item) {
            case (.mutable(let mine)?, .mutable(let theirs)?) where mine.sequence > theirs.sequence: item = .mutable(mine)
            case (let mine?, nil): item = mine
            default: break
            }
            if case .mutable(let m)? = item, let newerThan, m.sequence <= newerThan { item = nil }
            return .item(target: op.target, item: item, closest: closest)
        case .put:
            return .stored(target: op.target, acceptedBy: op.acceptedBy, refusals: op.refusals)
        }
    }

    private mutating func finish(_ lookup: LookupID, _ outcome: LookupOutcome) {
        guard let op = self.operations.removeValue(forKey: lookup) else { return }
        if !op.silent { self.events.append(.finished(lookup, outcome)) }
        if case .bootstrap = op.kind { self.refreshFarBuckets(at: self.lastNow) }
    }

    /// Kademlia's last joining step: after the lookup for our own ID, which fills the buckets near it, a lookup
    /// for a random ID in every other bucket. Without it the far buckets stay empty until their 15-minute
    /// refresh (only nodes near us answer the bootstrap lookup), and lookups for targets in the other half of
    /// the key space start from nodes that know no one there; the DHT simulator saw 15% of announces stored
    /// on the wrong nodes that way.
    private mutating func refreshFarBuckets(at now: Instant) {
        for f in DHTEndpoint.Family.allCases {
            guard let table = self.tables[f], table.count > 0 else { continue }
            for b in 0..<(table.bucketCount - 1) {
                let lookup = LookupID(rawValue: self.nextLookupID)
                self.nextLookupID += 1
                let target = table.randomID(inBucket: b, using: &self.rng)
                self.startLookup(lookup, kind: .findNode, target: target, seeds: [], silent: true, at: now)
            }
        }
    }

    // MARK: Round trips

    /// How long a lookup waits on one node before it asks the next one instead: the smoothed round trip plus
    /// four deviations (as TCP's retransmission timeout), within `shortTimeout` bounds; `queryTimeout` / 2
    /// until the first answer. The slow node is still answered until `queryTimeout`, and then resent to.
    public var shortTimeout: Duration {
        let bounds = self.configuration.shortTimeout
        guard let rtt = self.rtt else { return min(bounds.upperBound, self.configuration.queryTimeout / 2) }
        let estimate = Duration.nanoseconds(Int64((rtt.smoothed + 4 * rtt.deviation) * 1e9))
        return min(max(estimate, bounds.lowerBound), bounds.upperBound)
    }

    private mutating func sampleRoundTrip(_ sample: Duration) {
        let r = Double(sample.components.seconds) + Double(sample.components.attoseconds) / 1e18
        guard let old = self.rtt else {
            self.rtt = (r, r / 2)
            return
        }
        self.rtt = (0.875 * old.smoothed + 0.125 * r, 0.75 * old.deviation + 0.25 * abs(old.smoothed - r))
    }

    // MARK: Sending queries

    private mutating func sendQuery(
        _ method: KRPCQuery.Method, to destination: DHTEndpoint, expecting id: NodeID?, purpose: Purpose, at now: Instant
    ) {
        var tid: UInt16
        repeat { tid = UInt16(truncatingIfNeeded: self.rng.next() as UInt64) } while self.pending[tid] != nil
        let message = KRPCMessage(
            transactionID: [UInt8(tid >> 8), UInt8(tid & 0xff)],
            kind: .query(KRPCQuery(sender: self.id, method: method)), version: self.configuration.version,
            readOnly: self.configuration.readOnly)
        self.pending[tid] = PendingQuery(
            destination: destination, expectedID: id, bytes: message.encoded, purpose: purpose)
        self.outbox.append(tid)
        self.flushOutbox(at: now)
    }

    /// Sends queued queries while the rate limiter allows.
    private mutating func flushOutbox(at now: Instant) {
        while self.outboxHead < self.outbox.count {
            let tid = self.outbox[self.outboxHead]
            guard var p = self.pending[tid], p.deadline == nil else {
                self.outboxHead += 1
                continue
            }
            guard self.queryLimiter.take(at: now) else { break }
            self.outboxHead += 1
            p.sends += 1
            p.deadline = now + self.configuration.queryTimeout
            p.sentAt = now
            if case .lookup = p.purpose, p.sends == 1 { p.shortDeadline = now + self.shortTimeout }
            self.pending[tid] = p
            self.counters.queriesSent += 1
            self.transmit(p.bytes, to: p.destination)
        }
        if self.outboxHead == self.outbox.count {
            self.outbox.removeAll(keepingCapacity: true)
            self.outboxHead = 0
        }
    }

    // MARK: Housekeeping

    private mutating func maintain(at now: Instant) {
        self.tokens.rotate(at: now, using: &self.rng)
        self.replyLimiter.purge(at: now)
        if now >= self.nextExpiry {
            self.nextExpiry = now + .seconds(60)
            self.peerStore.expire(at: now)
            self.itemStore.expire(at: now)
        }
        for f in DHTEndpoint.Family.allCases {
            guard var table = self.tables[f] else { continue }
            let pings = table.questionableNodes(at: now, limit: self.configuration.pingsPerMaintenance)
            let targets = table.count > 0 ? table.refreshTargets(at: now, using: &self.rng) : []
            self.tables[f] = table
            for node in pings {
                self.sendQuery(.ping, to: node.endpoint, expecting: node.id, purpose: .ping(nil), at: now)
            }
            for target in targets {
                let lookup = LookupID(rawValue: self.nextLookupID)
                self.nextLookupID += 1
                self.startLookup(lookup, kind: .findNode, target: target, seeds: [], silent: true, at: now)
            }
        }
        // An empty table is bootstrapped again from the routers, at most once a minute.
        if !self.routers.isEmpty, self.tables.values.allSatisfy({ $0.count == 0 }),
            self.lastBootstrap.map({ now - $0 >= .seconds(60) }) ?? true
        {
            self.lastBootstrap = now
            let lookup = LookupID(rawValue: self.nextLookupID)
            self.nextLookupID += 1
            let seeds = self.routers.sorted { $0.compact.lexicographicallyPrecedes($1.compact) }
            self.startLookup(lookup, kind: .bootstrap, target: self.id, seeds: seeds, silent: true, at: now)
        }
    }

    private mutating func advanceClock(_ now: Instant) {
        if now > self.lastNow { self.lastNow = now }
    }
}
