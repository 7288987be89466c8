import Crypto
import PeerBase

@testable import Live

/// A live stream's swarm in virtual time: node 0 is the source, the rest viewers, joined by links with a one-way
/// delay; each node's chunks go out one after another at its upload rate (the queue a home uplink is), its small
/// messages at once.
/// Records each viewer's latency (virtual now minus the chunk's time stamp when it plays), what it played and
/// skipped, and every node's bytes sent.
struct LiveNetwork {
    struct Node {
        var machine: LiveMachine
        var upload: Double
        var busyUntil: Instant = .zero
        var neighbours: Set<Int> = []
        var joined: Instant
        var latencies: [(at: Instant, latency: Duration)] = []
        var played: [UInt64] = []
        var skipped: [UInt64] = []
        var sentBytes: [(at: Instant, bytes: Int)] = []
        var dropped: [String] = []
    }

    let link: LiveLink
    let key: Curve25519.Signing.PrivateKey
    var now = Instant.zero
    var nodes: [Int: Node] = [:]
    var delay: Duration = .milliseconds(10)
    /// Messages on the wire: arrival, destination, source, message.
    var wire: [(at: Instant, to: Int, from: Int, message: LiveMessage)] = []
    /// Chunks leaving their sender's uplink: when, sender, to whom.
    var leaving: [(at: Instant, from: Int, to: Int)] = []
    var rng = SeededGenerator(seed: 7)
    var published: [UInt64: LiveChunk] = [:]
    var nextID = 1
    /// What each chunk the source publishes is (a WebM stream: a header, then a start every so often).
    var kindOf: @Sendable (Int) -> LiveChunk.Kind = { _ in .media }

    init(sourceUpload: Double, configuration: LiveMachine.Configuration = .init()) throws {
        self.key = Curve25519.Signing.PrivateKey()
        self.link = try LiveLink(publicKey: Array(self.key.publicKey.rawRepresentation), name: "test")
        self.nodes[0] = Node(machine: LiveMachine(publishing: self.link, key: self.key, configuration: configuration),
            upload: sourceUpload, joined: .zero)
    }

    /// A new viewer, connected to `neighbours` nodes picked at random (the source among the candidates).
    @discardableResult
    mutating func join(upload: Double, neighbours: Int = 6, configuration: LiveMachine.Configuration = .init()) -> Int {
        let id = self.nextID
        self.nextID += 1
        let node = Node(machine: LiveMachine(viewing: self.link, configuration: configuration), upload: upload,
            joined: self.now)
        self.nodes[id] = node
        var candidates = self.nodes.keys.filter { $0 != id }
        candidates.shuffle(using: &self.rng)
        for other in candidates.prefix(neighbours) { self.connect(id, other) }
        return id
    }

    mutating func connect(_ a: Int, _ b: Int) {
        guard self.nodes[a] != nil, self.nodes[b] != nil, !self.nodes[a]!.neighbours.contains(b) else { return }
        self.nodes[a]!.neighbours.insert(b)
        self.nodes[b]!.neighbours.insert(a)
        self.nodes[a]!.machine.connected(b)
        self.nodes[b]!.machine.connected(a)
        self.drain(a)
        self.drain(b)
    }

    mutating func leave(_ id: Int) {
        guard let node = self.nodes.removeValue(forKey: id) else { return }
        for other in node.neighbours { self.disconnect(other, from: id) }
    }

    private mutating func disconnect(_ a: Int, from b: Int) {
        guard self.nodes[a] != nil else { return }
        self.nodes[a]!.neighbours.remove(b)
        self.nodes[a]!.machine.disconnected(b)
        self.drain(a)
    }

    mutating func send(_ message: LiveMessage, from: Int, to: Int) {
        guard var node = self.nodes[from] else { return }
        let bytes: Int
        let departs: Instant
        if case .chunk(let c) = message {
            bytes = c.payload.count + 120
            departs = max(self.now, node.busyUntil) + .seconds(Double(bytes) / node.upload)
            node.busyUntil = departs
            self.leaving.append((departs, from, to))
        } else {
            // A small message goes out on its own connection at once, between the chunks others carry (each
            // connection has its own queue; the node's upload is shared between them).
            bytes = 60
            departs = self.now + .seconds(Double(bytes) / node.upload)
        }
        node.sentBytes.append((self.now, bytes))
        self.nodes[from] = node
        self.wire.append((departs + self.delay, to, from, message))
    }

    mutating func drain(_ id: Int) {
        while let action = self.nodes[id]?.machine.pollAction() {
            switch action {
            case .send(let peer, let message): self.send(message, from: id, to: peer)
            case .play(let chunk):
                let latency = self.now - Instant(offset: .microseconds(Int64(chunk.time)))
                self.nodes[id]!.latencies.append((self.now, latency))
                self.nodes[id]!.played.append(chunk.number)
                precondition(self.published[chunk.number] == chunk, "viewer \(id) played a chunk the source never made")
            case .skipped(let n): self.nodes[id]!.skipped.append(n)
            case .drop(let peer, let reason):
                self.nodes[id]!.dropped.append(reason)
                self.nodes[id]!.neighbours.remove(peer)
                self.disconnect(peer, from: id)
            }
        }
    }

    /// The source publishes `chunkBytes` every `every`; every node ticks every 20 ms.
    mutating func run(until end: Instant, chunkBytes: Int, every: Duration, events: [(Instant, (inout LiveNetwork) -> Void)] = [])
        throws
    {
        var nextChunk = self.now
        var nextTick = self.now
        var pending = events.sorted { $0.0 < $1.0 }
        while self.now < end {
            let nextWire = self.wire.map(\.at).min()
            let nextEvent = pending.first?.0
            self.now = [nextChunk, nextTick, nextWire, nextEvent, self.leaving.map(\.at).min(), end].compactMap { $0 }.min()!
            let left = self.leaving.filter { $0.at <= self.now }
            self.leaving.removeAll { $0.at <= self.now }
            for l in left where self.nodes[l.from] != nil {
                self.nodes[l.from]!.machine.sent(to: l.to)
                self.drain(l.from)
            }
            while let e = pending.first, e.0 <= self.now {
                pending.removeFirst()
                e.1(&self)
            }
            if self.now >= nextChunk {
                let payload = [UInt8](repeating: UInt8(truncatingIfNeeded: self.published.count), count: chunkBytes)
                let time = UInt64(self.now.offset.components.seconds) * 1_000_000
                    + UInt64(self.now.offset.components.attoseconds / 1_000_000_000_000)
                let chunk = try self.nodes[0]!.machine.publish(payload, time: time, kind: self.kindOf(self.published.count),
                    at: self.now)
                self.published[chunk.number] = chunk
                self.drain(0)
                nextChunk = nextChunk + every
            }
            let due = self.wire.filter { $0.at <= self.now }.sorted { $0.at < $1.at }
            self.wire.removeAll { $0.at <= self.now }
            for d in due where self.nodes[d.to]?.neighbours.contains(d.from) == true {
                self.nodes[d.to]!.machine.received(d.message, from: d.from, at: self.now)
                self.drain(d.to)
            }
            if self.now >= nextTick {
                for id in self.nodes.keys.sorted() {
                    self.nodes[id]!.machine.tick(at: self.now)
                    self.drain(id)
                }
                nextTick = nextTick + .milliseconds(20)
            }
        }
    }

    /// Bytes node `id` sent between two instants.
    func sent(_ id: Int, from: Instant, to: Instant) -> Int {
        self.nodes[id]?.sentBytes.filter { $0.at >= from && $0.at < to }.reduce(0) { $0 + $1.bytes } ?? 0
    }
}
