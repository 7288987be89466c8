import Bencode
import Crypto
import DHT
import PeerBase
import Testing

/// A virtual network of DHT nodes wired together by passing datagrams, in virtual time: each datagram is
/// delivered after a random 10-100 ms or lost with probability `loss`; between deliveries, nodes whose
/// `nextTimeout` has come are woken. Everything random comes from one seeded generator, so a run replays.
struct VirtualNetwork {
    var nodes: [DHTNode] = []
    var endpoints: [DHTEndpoint] = []
    var byEndpoint: [DHTEndpoint: Int] = [:]
    var events: [[DHTNode.Event]] = []
    var timers: [Instant] = []
    var now: Instant = .zero
    var rng: SeededGenerator
    let loss: Double
    /// Datagrams in flight, latest first (so the next one is popped from the end).
    private var inFlight: [(at: Instant, seq: Int, to: Int, from: DHTEndpoint, bytes: [UInt8])] = []
    private var sequence = 0
    private(set) var delivered = 0
    private(set) var lost = 0

    /// `count` nodes at distinct public IPv4 addresses, with BEP 42 IDs for them and enforcement on.
    init(count: Int, loss: Double, seed: UInt64, configure: (inout DHTNode.Configuration) -> Void = { _ in }) {
        self.rng = SeededGenerator(seed: seed)
        self.loss = loss
        for i in 0..<count {
            let ip = DHTEndpoint.IP.v4(0x0B00_0000 &+ UInt32(i) &* 0x0001_0F2B)  // 11.x.y.z: public, distinct
            let endpoint = DHTEndpoint(ip: ip, port: 6881)
            var c = DHTNode.Configuration(externalIP: ip, enforceNodeIDs: true)
            configure(&c)
            self.nodes.append(DHTNode(configuration: c, at: .zero, using: &self.rng))
            self.endpoints.append(endpoint)
            self.byEndpoint[endpoint] = i
            self.events.append([])
            self.timers.append(self.nodes[i].nextTimeout)
        }
    }

    mutating func handle(_ command: DHTNode.Command, on i: Int) -> LookupID {
        let id = self.nodes[i].handle(command, at: self.now)
        self.drain(i)
        return id
    }

    private mutating func drain(_ i: Int) {
        while let d = self.nodes[i].pollTransmit() {
            guard let j = self.byEndpoint[d.destination] else { continue }
            if Double(self.rng.next() % 1_000_000) / 1_000_000 < self.loss {
                self.lost += 1
                continue
            }
            let latency = Duration.milliseconds(10 + Int64(self.rng.next() % 91))
            self.sequence += 1
            let item = (at: self.now + latency, seq: self.sequence, to: j, from: self.endpoints[i], bytes: d.bytes)
            let index = self.insertionIndex(item.at, item.seq)
            self.inFlight.insert(item, at: index)
        }
        while let e = self.nodes[i].pollEvent() { self.events[i].append(e) }
        self.timers[i] = self.nodes[i].nextTimeout
    }

    private func insertionIndex(_ at: Instant, _ seq: Int) -> Int {
        var lo = 0
        var hi = self.inFlight.count
        while lo < hi {
            let mid = (lo + hi) / 2
            let m = self.inFlight[mid]
            if (m.at, m.seq) > (at, seq) { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    /// Runs until `deadline`, or until `done` holds (checked after every step).
    @discardableResult
    mutating func run(until deadline: Instant, stopWhen done: (VirtualNetwork) -> Bool = { _ in false }) -> Bool {
        while true {
            if done(self) { return true }
            var nextTimer = Instant(offset: .seconds(1 << 40))
            var who = -1
            for (i, t) in self.timers.enumerated() where t < nextTimer {
                nextTimer = t
                who = i
            }
            let nextPacket = self.inFlight.last?.at
            if let p = nextPacket, p <= nextTimer {
                guard p <= deadline else { return false }
                let d = self.inFlight.removeLast()
                self.now = max(self.now, d.at)
                self.delivered += 1
                self.nodes[d.to].receive(d.bytes, from: d.from, at: self.now)
                self.drain(d.to)
            } else {
                guard who >= 0, nextTimer <= deadline else { return false }
                self.now = max(self.now, nextTimer)
                self.nodes[who].handleTimeout(at: self.now)
                self.drain(who)
            }
        }
    }

    /// The outcome of `lookup` on node `i`, once it finished.
    func outcome(of lookup: LookupID, on i: Int) -> LookupOutcome? {
        for e in self.events[i] {
            if case .finished(lookup, let outcome) = e { return outcome }
        }
        return nil
    }

    /// Runs until `lookup` on node `i` finishes (or `limit` of virtual time passes).
    mutating func await(_ lookup: LookupID, on i: Int, limit: Duration = .seconds(120)) -> LookupOutcome? {
        self.run(until: self.now + limit, stopWhen: { $0.outcome(of: lookup, on: i) != nil })
        return self.outcome(of: lookup, on: i)
    }

    /// Every node but the first bootstraps from the first, 50 ms apart; then the network settles.
    mutating func bootstrap(settle: Duration = .seconds(60)) {
        for i in 1..<self.nodes.count {
            self.run(until: .zero + .milliseconds(Int64(50 * i)))
            _ = self.handle(.bootstrap(routers: [self.endpoints[0]]), on: i)
        }
        self.run(until: self.now + settle)
    }
}

@Suite("DHT simulation")
struct SimulationTests {
    @Test("200 nodes with 10% loss: get_peers finds a peer announced by a node far away")
    func announceAndFind() throws {
        var net = VirtualNetwork(count: 200, loss: 0.10, seed: 2024)
        net.bootstrap()
        let sizes = net.nodes.map { $0.stats.ipv4Nodes }
        #expect(sizes.filter { $0 >= 8 }.count >= 190, "routing tables: \(sizes.sorted())")

        var rng = SeededGenerator(seed: 77)
        let infoHash = NodeID.random(using: &rng)
        let announcer = 17
        let seeker = 151
        let announce = net.handle(.announce(infoHash: infoHash, port: 7000), on: announcer)
        guard case .announced(_, _, let acceptedBy, let refusals)? = net.await(announce, on: announcer) else {
            Issue.record("the announce did not finish")
            return
        }
        #expect(acceptedBy.count >= 4, "stored on \(acceptedBy.count) nodes")
        #expect(refusals.isEmpty)
        // The nodes that stored it are among the closest to the info-hash in the whole network.
        let allByDistance = net.nodes.map(\.id).sorted { ($0 ^ infoHash) < ($1 ^ infoHash) }
        let closest16 = Set(allByDistance.prefix(16))
        #expect(acceptedBy.filter { closest16.contains($0.id) }.count >= 4)

        let lookup = net.handle(.getPeers(infoHash: infoHash), on: seeker)
        guard case .peers(_, let peers, let closest)? = net.await(lookup, on: seeker) else {
            Issue.record("get_peers did not finish")
            return
        }
        let expected = DHTEndpoint(ip: net.endpoints[announcer].ip, port: 7000)
        #expect(peers.contains(expected))
        #expect(closest.count == 8)
        #expect(closest.allSatisfy { $0.token != nil })
        #expect(net.events[seeker].contains(.peersFound(lookup, infoHash: infoHash, peers: peers)) || peers.count > 1)
        #expect(net.lost > 0)
    }

    @Test("100 nodes with 5% loss: a mutable item put by one node is got by another; a stale put is refused")
    func putAndGet() throws {
        var net = VirtualNetwork(count: 100, loss: 0.05, seed: 99)
        net.bootstrap(settle: .seconds(30))
        let key = try Curve25519.Signing.PrivateKey(rawRepresentation: SeededGenerator.bytes(32, seed: 5))
        let item = try MutableItem.signed(value: ["feed": "hello", "n": 2], sequence: 2, salt: bytes("ch"), privateKey: key)
        let put = net.handle(.put(.mutable(item)), on: 3)
        guard case .stored(let target, let acceptedBy, _)? = net.await(put, on: 3) else {
            Issue.record("put did not finish")
            return
        }
        #expect(target == item.target)
        #expect(acceptedBy.count >= 4)

        let get = net.handle(.get(target: item.target, salt: bytes("ch")), on: 88)
        guard case .item(_, let found, _)? = net.await(get, on: 88) else {
            Issue.record("get did not finish")
            return
        }
        #expect(found == .mutable(item))

        // A poll with the sequence number held (BEP 44 `seq`): no item unless a newer one is out there.
        let unchanged = net.handle(.get(target: item.target, salt: bytes("ch"), newerThan: 2), on: 88)
        guard case .item(_, let none, let closest)? = net.await(unchanged, on: 88) else {
            Issue.record("get with seq did not finish")
            return
        }
        #expect(none == nil && !closest.isEmpty)
        let older = net.handle(.get(target: item.target, salt: bytes("ch"), newerThan: 1), on: 88)
        guard case .item(_, let newer, _)? = net.await(older, on: 88) else {
            Issue.record("get with an older seq did not finish")
            return
        }
        #expect(newer == .mutable(item))

        let stale = try MutableItem.signed(value: "old", sequence: 1, salt: bytes("ch"), privateKey: key)
        let again = net.handle(.put(.mutable(stale)), on: 40)
        guard case .stored(_, let staleAcceptedBy, let refusals)? = net.await(again, on: 40) else {
            Issue.record("second put did not finish")
            return
        }
        #expect(refusals.contains { $0.code == 302 })

        // Compare-and-swap: the right expected sequence number goes through, a stale one is refused with 301.
        let next = try MutableItem.signed(value: "v3", sequence: 3, salt: bytes("ch"), privateKey: key)
        let swap = net.handle(.put(.mutable(next), cas: 2), on: 20)
        guard case .stored(_, let swapped, let swapRefusals)? = net.await(swap, on: 20) else {
            Issue.record("cas put did not finish")
            return
        }
        #expect(swapped.count >= 4)
        // Only a node that took the stale item (it held nothing when that put came) holds another seq than 2.
        let staleHolders = Set(staleAcceptedBy.map(\.id))
        #expect(swapRefusals.filter { $0.code == 301 }.allSatisfy { staleHolders.contains($0.node.id) }, "\(swapRefusals)")
        let late = try MutableItem.signed(value: "v4", sequence: 4, salt: bytes("ch"), privateKey: key)
        let lost = net.handle(.put(.mutable(late), cas: 2), on: 21)
        guard case .stored(_, _, let lostRefusals)? = net.await(lost, on: 21) else {
            Issue.record("stale cas put did not finish")
            return
        }
        #expect(lostRefusals.contains { $0.code == 301 })

        let immutable = net.handle(.put(.immutable(["a", "b"])), on: 50)
        guard case .stored(let immutableTarget, let stored, _)? = net.await(immutable, on: 50) else {
            Issue.record("immutable put did not finish")
            return
        }
        #expect(stored.count >= 4)
        let getImmutable = net.handle(.get(target: immutableTarget), on: 60)
        guard case .item(_, let value, _)? = net.await(getImmutable, on: 60) else {
            Issue.record("immutable get did not finish")
            return
        }
        #expect(value == .immutable(["a", "b"]))
    }

    @Test("the same seed replays the same run")
    func deterministic() {
        func run() -> [DHTNode.Stats] {
            var net = VirtualNetwork(count: 40, loss: 0.1, seed: 5)
            net.bootstrap(settle: .seconds(20))
            _ = net.handle(.getPeers(infoHash: .max), on: 7)
            net.run(until: net.now + .seconds(30))
            return net.nodes.map(\.stats)
        }
        #expect(run() == run())
    }
}
