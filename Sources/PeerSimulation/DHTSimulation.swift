// A deterministic simulator of many sans-I/O DHT nodes in one virtual network with a virtual clock.
// No sockets, no wall clock: datagrams are byte arrays handed from node to node through an event queue
// ordered by (virtual time, sequence number), and every random choice comes from generators seeded by
// `Configuration.seed`, so a run with the same configuration gives the same figures.
import DHT
import PeerBase

public struct DHTSimulation {
    public struct Configuration: Equatable, Sendable {
        /// Nodes in the network, routers included.
        public var nodeCount: Int
        public var seed: UInt64
        public var latency: LatencyModel
        /// Probability that a datagram is lost, on every link.
        public var loss: Double
        /// Fraction of the nodes that leave per hour of virtual time; each one that leaves is replaced by a new
        /// node with a fresh address and ID, which bootstraps through the routers.
        public var churnPerHour: Double
        /// Fraction of the (non-router) nodes that never answer a query (they still send their own queries).
        public var silentShare: Double
        /// Fraction of the (non-router) nodes that lie: every answer they give lists random nodes that do not
        /// exist instead of their closest nodes, and every get_peers answer carries bogus peers.
        public var liarShare: Double
        /// Honest, never-leaving nodes every node bootstraps from.
        public var routers: Int
        /// Delay between two nodes joining.
        public var joinInterval: Duration
        /// Virtual time the network runs after the last node joined, before the experiment.
        public var settle: Duration
        /// Announces (each of a fresh random info-hash, from a random honest node).
        public var announces: Int
        /// get_peers lookups, each for one of the announced info-hashes, from a random honest node that is
        /// neither the announcer nor busy with another lookup.
        public var lookups: Int
        /// Delay between the start of two announces, and between the start of two lookups.
        public var spacing: Duration
        /// A lookup not finished after this long counts as failed, with this duration.
        public var lookupLimit: Duration
        /// Applied to every node's DHT configuration.
        public var node: @Sendable (inout DHTNode.Configuration) -> Void

        public init(
            nodeCount: Int, seed: UInt64 = 1, latency: LatencyModel = .standard, loss: Double = 0.05,
            churnPerHour: Double = 0, silentShare: Double = 0, liarShare: Double = 0, routers: Int = 4,
            joinInterval: Duration = .milliseconds(20), settle: Duration = .seconds(300), announces: Int = 100,
            lookups: Int = 200, spacing: Duration = .milliseconds(100), lookupLimit: Duration = .seconds(120),
            node: @escaping @Sendable (inout DHTNode.Configuration) -> Void = { _ in }
        ) {
            self.nodeCount = nodeCount
            self.seed = seed
            self.latency = latency
            self.loss = loss
            self.churnPerHour = churnPerHour
            self.silentShare = silentShare
            self.liarShare = liarShare
            self.routers = routers
            self.joinInterval = joinInterval
            self.settle = settle
            self.announces = announces
            self.lookups = lookups
            self.spacing = spacing
            self.lookupLimit = lookupLimit
            self.node = node
        }

        public static func == (a: Configuration, b: Configuration) -> Bool {
            (a.nodeCount, a.seed, a.latency, a.loss) == (b.nodeCount, b.seed, b.latency, b.loss)
                && (a.churnPerHour, a.silentShare, a.liarShare, a.routers) == (b.churnPerHour, b.silentShare, b.liarShare, b.routers)
                && (a.joinInterval, a.settle, a.announces, a.lookups, a.spacing, a.lookupLimit)
                    == (b.joinInterval, b.settle, b.announces, b.lookups, b.spacing, b.lookupLimit)
        }
    }

    public enum Behaviour: Sendable {
        case honest, silent, liar
    }

    struct Slot {
        var node: DHTNode
        var endpoint: DHTEndpoint
        var behaviour: Behaviour
        /// Bumped when the node in this slot is replaced; datagrams and timers for an older generation vanish.
        var generation = 0
        /// The instant of the timer event queued for this node (later ones supersede it).
        var timer: Instant?
    }

    enum Event {
        case deliver(slot: Int, generation: Int, from: DHTEndpoint, bytes: [UInt8])
        case timer(slot: Int, generation: Int)
        case churn
    }

    struct Tracked {
        var index: Int
        var queriesBefore: Int
    }

    public let configuration: Configuration
    public private(set) var now: Instant = .zero
    private var slots: [Slot] = []
    private var bySlotEndpoint: [DHTEndpoint: Int] = [:]
    private var queue = EventQueue<Event>()
    private var rng: SeededGenerator
    private var nextAddress: UInt32 = 0
    private var routerEndpoints: [DHTEndpoint] = []
    /// Lookups and announces being measured, by the node running them.
    private var tracked: [Int: [LookupID: Tracked]] = [:]
    private var finished: [Int: (outcome: LookupOutcome, at: Instant, queries: Int)] = [:]
    private var firstPeer: [Int: Instant] = [:]
    private var expected: [Int: DHTEndpoint] = [:]
    /// Measured commands not finished yet.
    private var measuring = 0
    /// Counters for the report.
    public private(set) var delivered = 0
    public private(set) var lost = 0
    public private(set) var departures = 0

    public init(_ configuration: Configuration) {
        precondition(configuration.nodeCount > configuration.routers && configuration.routers > 0)
        self.configuration = configuration
        self.rng = SeededGenerator(seed: configuration.seed)
    }

    // MARK: Nodes

    private mutating func freshEndpoint() -> DHTEndpoint {
        // 11.0.0.0 upwards, spread over the space by an odd multiplier: public, distinct, never reused.
        let ip = DHTEndpoint.IP.v4(0x0B00_0000 &+ self.nextAddress &* 0x0001_0F2B)
        self.nextAddress += 1
        return DHTEndpoint(ip: ip, port: 6881)
    }

    private mutating func makeNode(at endpoint: DHTEndpoint) -> DHTNode {
        var c = DHTNode.Configuration(externalIP: endpoint.ip, enforceNodeIDs: true)
        self.configuration.node(&c)
        return DHTNode(configuration: c, at: self.now, using: &self.rng)
    }

    private mutating func drawBehaviour() -> Behaviour {
        let u = LatencyModel.unit(self.rng.next())
        if u < self.configuration.silentShare { return .silent }
        if u < self.configuration.silentShare + self.configuration.liarShare { return .liar }
        return .honest
    }

    private static func key(_ e: DHTEndpoint) -> UInt64 {
        guard case .v4(let v) = e.ip else { return UInt64(e.port) }
        return UInt64(v) << 16 | UInt64(e.port)
    }

    /// Sends what node `i` has to send, collects its events and requeues its timer.
    private mutating func drain(_ i: Int) {
        let from = self.slots[i].endpoint
        let behaviour = self.slots[i].behaviour
        while let d = self.slots[i].node.pollTransmit() {
            var bytes = d.bytes
            if behaviour != .honest {
                guard let rewritten = self.misbehave(behaviour, bytes) else { continue }
                bytes = rewritten
            }
            guard let j = self.bySlotEndpoint[d.destination] else { continue }  // nobody there (left, or fake)
            if LatencyModel.unit(self.rng.next()) < self.configuration.loss {
                self.lost += 1
                continue
            }
            let latency = self.configuration.latency.latency(
                from: Self.key(from), to: Self.key(d.destination), seed: self.configuration.seed)
            self.queue.schedule(
                .deliver(slot: j, generation: self.slots[j].generation, from: from, bytes: bytes), at: self.now + latency)
        }
        while let e = self.slots[i].node.pollEvent() { self.note(e, on: i) }
        let t = self.slots[i].node.nextTimeout
        if self.slots[i].timer != t {
            self.slots[i].timer = t
            self.queue.schedule(.timer(slot: i, generation: self.slots[i].generation), at: max(t, self.now))
        }
    }

    /// What a misbehaving node sends instead of `bytes` (nil: nothing).
    private mutating func misbehave(_ behaviour: Behaviour, _ bytes: [UInt8]) -> [UInt8]? {
        guard var message = try? KRPCMessage.decode(bytes) else { return bytes }
        switch message.kind {
        case .query: return bytes
        case .error: return behaviour == .silent ? nil : bytes
        case .response(var r):
            if behaviour == .silent { return nil }
            if !r.nodes.isEmpty || r.token != nil {
                r.nodes = (0..<8).map { _ in
                    NodeInfo(
                        id: NodeID.random(using: &self.rng),
                        endpoint: DHTEndpoint(ip: .v4(0xC800_0000 | UInt32(truncatingIfNeeded: self.rng.next() >> 40)), port: 6881))
                }
            }
            if r.token != nil {
                r.values = (0..<4).map { _ in
                    DHTEndpoint(ip: .v4(0xC900_0000 | UInt32(truncatingIfNeeded: self.rng.next() >> 40)), port: 7000)
                }
            }
            message.kind = .response(r)
            return message.encoded
        }
    }

    private mutating func note(_ event: DHTNode.Event, on i: Int) {
        switch event {
        case .finished(let id, let outcome):
            guard let t = self.tracked[i]?.removeValue(forKey: id) else { return }
            let queries = self.slots[i].node.stats.queriesSent - t.queriesBefore
            self.finished[t.index] = (outcome, self.now, queries)
            self.measuring -= 1
        case .peersFound(let id, _, let peers):
            guard let t = self.tracked[i]?[id], let want = self.expected[t.index], self.firstPeer[t.index] == nil,
                peers.contains(want)
            else { return }
            self.firstPeer[t.index] = self.now
        case .peerAnnounced, .infoHashAsked, .externalAddressChanged, .idChanged:
            break
        }
    }

    private mutating func start(_ command: DHTNode.Command, on i: Int, index: Int) {
        let before = self.slots[i].node.stats.queriesSent
        let id = self.slots[i].node.handle(command, at: self.now)
        self.tracked[i, default: [:]][id] = Tracked(index: index, queriesBefore: before)
        self.measuring += 1
        self.drain(i)
    }

    private mutating func addNode(behaviour: Behaviour) -> Int {
        let endpoint = self.freshEndpoint()
        let node = self.makeNode(at: endpoint)
        self.slots.append(Slot(node: node, endpoint: endpoint, behaviour: behaviour))
        let i = self.slots.count - 1
        self.bySlotEndpoint[endpoint] = i
        return i
    }

    /// Node `i` leaves; a new node with a fresh address and ID takes its slot and bootstraps.
    private mutating func replace(_ i: Int) {
        self.bySlotEndpoint[self.slots[i].endpoint] = nil
        let endpoint = self.freshEndpoint()
        self.slots[i].node = self.makeNode(at: endpoint)
        self.slots[i].endpoint = endpoint
        self.slots[i].generation += 1
        self.slots[i].timer = nil
        self.bySlotEndpoint[endpoint] = i
        self.tracked[i] = nil
        self.departures += 1
        _ = self.slots[i].node.handle(.bootstrap(routers: self.routerEndpoints), at: self.now)
        self.drain(i)
    }

    private var churnInterval: Duration? {
        let perSecond = self.configuration.churnPerHour * Double(self.configuration.nodeCount - self.configuration.routers) / 3600
        guard perSecond > 0 else { return nil }
        return .nanoseconds(Int64((1e9 / perSecond).rounded()))
    }

    // MARK: Running

    /// Processes events up to `deadline` (or until `done` holds).
    private mutating func run(until deadline: Instant, done: (Self) -> Bool = { _ in false }) {
        while let t = self.queue.nextTime, t <= deadline {
            if done(self) { return }
            let entry = self.queue.pop()!
            self.now = max(self.now, entry.at)
            switch entry.payload {
            case .deliver(let j, let generation, let from, let bytes):
                guard self.slots[j].generation == generation else { continue }
                self.delivered += 1
                self.slots[j].node.receive(bytes, from: from, at: self.now)
                self.drain(j)
            case .timer(let j, let generation):
                guard self.slots[j].generation == generation, let t = self.slots[j].timer, t <= self.now else { continue }
                self.slots[j].timer = nil
                self.slots[j].node.handleTimeout(at: self.now)
                self.drain(j)
            case .churn:
                // Anyone but a router or a node measuring a lookup.
                let routers = self.configuration.routers
                var candidate = routers + Int(self.rng.next() % UInt64(self.slots.count - routers))
                var tries = 0
                while !(self.tracked[candidate]?.isEmpty ?? true), tries < 100 {
                    candidate = routers + Int(self.rng.next() % UInt64(self.slots.count - routers))
                    tries += 1
                }
                if tries < 100 { self.replace(candidate) }
                if let dt = self.churnInterval { self.queue.schedule(.churn, at: self.now + dt) }
            }
        }
        if !done(self) { self.now = max(self.now, deadline) }
    }

    private func randomHonest(excluding: Set<Int>, using rng: inout SeededGenerator) -> Int {
        while true {
            let i = self.configuration.routers + Int(rng.next() % UInt64(self.slots.count - self.configuration.routers))
            if self.slots[i].behaviour == .honest, !excluding.contains(i), self.tracked[i]?.isEmpty ?? true { return i }
        }
    }

    /// Builds the network, runs the experiment and reports.
    public mutating func run() -> Report {
        let c = self.configuration
        // Routers first: honest and never leaving.
        for _ in 0..<c.routers {
            let i = self.addNode(behaviour: .honest)
            self.routerEndpoints.append(self.slots[i].endpoint)
        }
        for i in 0..<c.routers {
            _ = self.slots[i].node.handle(.bootstrap(routers: self.routerEndpoints.filter { $0 != self.slots[i].endpoint }), at: self.now)
            self.drain(i)
        }
        for _ in c.routers..<c.nodeCount {
            self.run(until: self.now + c.joinInterval)
            let i = self.addNode(behaviour: self.drawBehaviour())
            _ = self.slots[i].node.handle(.bootstrap(routers: self.routerEndpoints), at: self.now)
            self.drain(i)
        }
        if let dt = self.churnInterval { self.queue.schedule(.churn, at: self.now + dt) }
        self.run(until: self.now + c.settle)

        // Announces.
        let experimentStart = self.now
        let deliveredBefore = self.delivered
        var infoHashes: [(NodeID, DHTEndpoint)] = []
        var announcers: [Int] = []
        for k in 0..<c.announces {
            let infoHash = NodeID.random(using: &self.rng)
            let a = self.randomHonest(excluding: [], using: &self.rng)
            let port = UInt16(7000 + k % 1000)
            infoHashes.append((infoHash, DHTEndpoint(ip: self.slots[a].endpoint.ip, port: port)))
            announcers.append(a)
            self.start(.announce(infoHash: infoHash, port: port), on: a, index: -1 - k)
            self.run(until: self.now + c.spacing)
        }
        self.run(until: self.now + c.lookupLimit) { $0.measuring == 0 }
        var stored: [Int] = []
        for k in 0..<c.announces {
            if case .announced(_, _, let acceptedBy, _)? = self.finished[-1 - k]?.outcome { stored.append(acceptedBy.count) } else { stored.append(0) }
        }

        // Lookups.
        var starts: [Instant] = []
        for m in 0..<c.lookups {
            let k = m % c.announces
            let seeker = self.randomHonest(excluding: [announcers[k]], using: &self.rng)
            self.expected[m] = infoHashes[k].1
            starts.append(self.now)
            self.start(.getPeers(infoHash: infoHashes[k].0), on: seeker, index: m)
            self.run(until: self.now + c.spacing)
        }
        self.run(until: self.now + c.lookupLimit) { $0.measuring == 0 }

        var samples: [Report.Lookup] = []
        for m in 0..<c.lookups {
            let want = self.expected[m]!
            if let f = self.finished[m] {
                var ok = false
                if case .peers(_, let peers, _) = f.outcome { ok = peers.contains(want) }
                samples.append(
                    Report.Lookup(
                        succeeded: ok, duration: f.at - starts[m], firstPeer: self.firstPeer[m].map { $0 - starts[m] },
                        queries: f.queries))
            } else {
                samples.append(Report.Lookup(succeeded: false, duration: c.lookupLimit, firstPeer: nil, queries: 0))
            }
        }
        return Report(
            configuration: c, lookups: samples, announceOutcomes: (0..<c.announces).map { self.finished[-1 - $0]?.outcome },
            lookupOutcomes: (0..<c.lookups).map { self.finished[$0]?.outcome }, storedOn: stored, medianRoundTrip: c.latency.medianRoundTrip,
            departures: self.departures, datagramsDelivered: self.delivered, datagramsLost: self.lost,
            experimentDatagrams: self.delivered - deliveredBefore, virtualTime: self.now - .zero,
            experimentTime: self.now - experimentStart)
    }
}
