// What the DHT harvester does next, within its budget. No I/O, no clock: `Harvester` drives it.
import DHT
import DequeModule
import PeerBase

/// The polite crawler's plan (issue 14): which info-hashes to fetch the metadata of, from whom, which nodes to ask
/// for BEP 51 samples and when, all within a budget.
///
/// - Sources, most polite first: info-hashes other nodes announce to us (with the announcing peer, who has the
///   torrent) or ask us about while we serve the DHT, then BEP 51 samples from nodes of our routing table.
/// - A node is sampled again only after the `interval` it asked for (none given: `defaultInterval`), never
///   clamped shorter; one that did not answer waits `failedNodeWait`.
/// - Crawler queries (samples, and get_peers lookups for hashes with no known peer, charged `lookupCost`
///   each) are at most `queriesPerSecond` within any one second (a sliding window, so no burst goes over);
///   metadata fetches are at most `concurrentFetches` at once and one per remote address.
/// - Bounded memory: at most `maxQueue` hashes wait, `maxKnown` are remembered as done.
struct HarvestPlan {
    struct Budget: Sendable, Equatable {
        var queriesPerSecond = 20.0
        var concurrentFetches = 4
        var fetchTimeout = Duration.seconds(15)
        /// Queries one get_peers lookup is charged (α = 3 over a few rounds).
        var lookupCost = 16.0
        var defaultInterval = Duration.seconds(21600)
        var failedNodeWait = Duration.seconds(600)
        var maxQueue = 10_000
        var maxKnown = 200_000
        var maxNodes = 5_000
    }

    let budget: Budget
    /// Hashes waiting, oldest first, with the peers known to have them.
    private var queue = Deque<[UInt8]>()
    private var peers: [[UInt8]: [String]] = [:]
    /// How often each waiting hash was seen: a hash asked about again and again is a real torrent's, a hash seen
    /// once is often a lookup's obfuscated target (libtorrent randomises the tail of early hops), so the most
    /// seen go first.
    private var sightings: [[UInt8]: Int] = [:]
    private var known = Set<[UInt8]>()
    private var knownOrder = Deque<[UInt8]>()
    /// Nodes to sample, and when each may be asked next (nil: a query in flight).
    private var nodes: [DHTEndpoint: Instant?] = [:]
    private var fetching: [[UInt8]: String] = [:]
    private var perAddress: [String: Int] = [:]
    private var lookingUp: [UInt8]?

    // What `peer index` shows.
    private(set) var queriesCharged = 0.0
    private(set) var samplesAsked = 0
    private(set) var lookups = 0
    private(set) var fetchesStarted = 0
    private(set) var fetched = 0
    private(set) var failed = 0
    private(set) var maxConcurrentFetches = 0
    private(set) var maxFetchesPerAddress = 0
    /// The most crawler queries charged within any one second.
    private(set) var maxQueriesPerSecond = 0.0
    private var window = Deque<(at: Instant, cost: Double)>()
    private var windowSum = 0.0

    init(budget: Budget) { self.budget = budget }

    var waiting: Int { self.queue.count }
    var knownCount: Int { self.known.count }
    var inFlight: Int { self.fetching.count }

    /// An info-hash seen on the DHT, with a peer that has it when it was announced.
    mutating func saw(_ infoHash: [UInt8], peer: String?) {
        guard !self.known.contains(infoHash), self.fetching[infoHash] == nil else { return }
        if self.peers[infoHash] == nil {
            guard self.queue.count < self.budget.maxQueue else { return }
            self.queue.append(infoHash)
            self.peers[infoHash] = []
        }
        // An announce names a peer that has it: worth as much as many sightings.
        self.sightings[infoHash, default: 0] += peer == nil ? 1 : 10
        if let peer, !self.peers[infoHash]!.contains(peer), self.peers[infoHash]!.count < 8 {
            self.peers[infoHash]!.append(peer)
        }
    }

    /// Already indexed: not fetched again.
    mutating func markKnown(_ infoHash: [UInt8]) {
        guard self.known.insert(infoHash).inserted else { return }
        self.knownOrder.append(infoHash)
        if self.knownOrder.count > self.budget.maxKnown { self.known.remove(self.knownOrder.removeFirst()) }
        if self.peers.removeValue(forKey: infoHash) != nil { self.queue.removeAll { $0 == infoHash } }
        self.sightings[infoHash] = nil
    }

    /// The waiting hash seen most often among those that `include` admits (the oldest of equals).
    private func mostSeen(where include: ([UInt8]) -> Bool) -> [UInt8]? {
        var best: [UInt8]?
        var bestCount = 0
        for ih in self.queue where include(ih) {
            let n = self.sightings[ih, default: 0]
            if n > bestCount {
                best = ih
                bestCount = n
            }
        }
        return best
    }

    /// Nodes of the routing table, to sample.
    mutating func addNodes(_ list: [DHTEndpoint], at now: Instant) {
        for n in list where self.nodes[n] == nil && self.nodes.count < self.budget.maxNodes { self.nodes[n] = .some(now) }
    }

    /// A node to ask for samples now, if one is due and the budget allows.
    mutating func nextSample(at now: Instant) -> DHTEndpoint? {
        guard let node = self.nodes.first(where: { $0.value.map { $0 <= now } ?? false })?.key,
            self.charge(1, at: now)
        else { return nil }
        self.nodes[node] = .some(nil)
        self.samplesAsked += 1
        return node
    }

    /// A node's samples, and the interval it asked for (seconds).
    mutating func sampled(_ node: DHTEndpoint, samples: [[UInt8]], interval: Int64?, at now: Instant) {
        let wait = interval.map { Duration.seconds(max(0, $0)) } ?? self.budget.defaultInterval
        self.nodes[node] = .some(now + wait)
        for s in samples { self.saw(s, peer: nil) }
    }

    mutating func sampleFailed(_ node: DHTEndpoint, at now: Instant) {
        self.nodes[node] = .some(now + self.budget.failedNodeWait)
    }

    /// A metadata fetch to start now: a waiting hash with a known peer whose address has no fetch running.
    mutating func nextFetch(at now: Instant) -> (infoHash: [UInt8], peer: String)? {
        guard self.fetching.count < self.budget.concurrentFetches else { return nil }
        let busy = self.perAddress
        let free: (String) -> Bool = { busy[Self.host($0), default: 0] == 0 }
        let peers = self.peers
        if let ih = self.mostSeen(where: { peers[$0]?.contains(where: free) ?? false }),
            let peer = peers[ih]?.first(where: free)
        {
            self.queue.removeAll { $0 == ih }
            self.peers[ih]?.removeAll { $0 == peer }
            self.fetching[ih] = peer
            self.perAddress[Self.host(peer), default: 0] += 1
            self.fetchesStarted += 1
            self.maxConcurrentFetches = max(self.maxConcurrentFetches, self.fetching.count)
            self.maxFetchesPerAddress = max(self.maxFetchesPerAddress, self.perAddress.values.max() ?? 0)
            return (ih, peer)
        }
        return nil
    }

    /// A waiting hash with no known peer to look up on the DHT, one at a time, when the budget allows.
    mutating func nextLookup(at now: Instant) -> [UInt8]? {
        guard self.lookingUp == nil,
            let ih = self.mostSeen(where: { self.peers[$0]?.isEmpty ?? false }),
            self.charge(self.budget.lookupCost, at: now)
        else { return nil }
        self.lookingUp = ih
        self.lookups += 1
        // It leaves the queue while looked up; peers found bring it back.
        self.queue.removeAll { $0 == ih }
        self.peers[ih] = nil
        return ih
    }

    mutating func lookedUp(_ infoHash: [UInt8], peers found: [String]) {
        if self.lookingUp == infoHash { self.lookingUp = nil }
        if found.isEmpty {
            self.markKnown(infoHash)
            return
        }
        for p in found.prefix(8) { self.saw(infoHash, peer: p) }
    }

    /// A fetch ended: fetched and indexed, or failed (another known peer is tried later).
    mutating func fetchEnded(_ infoHash: [UInt8], ok: Bool) {
        guard let peer = self.fetching.removeValue(forKey: infoHash) else { return }
        let host = Self.host(peer)
        self.perAddress[host, default: 1] -= 1
        if self.perAddress[host] == 0 { self.perAddress[host] = nil }
        if ok {
            self.fetched += 1
            self.markKnown(infoHash)
        } else if let more = self.peers[infoHash], !more.isEmpty {
            self.queue.append(infoHash)
        } else {
            self.failed += 1
            self.markKnown(infoHash)
        }
    }

    /// Takes `cost` queries from the budget if the last second leaves room for them.
    private mutating func charge(_ cost: Double, at now: Instant) -> Bool {
        while let first = self.window.first, now - first.at >= .seconds(1) {
            self.windowSum -= first.cost
            self.window.removeFirst()
        }
        guard self.windowSum + cost <= max(self.budget.queriesPerSecond, self.budget.lookupCost) else { return false }
        self.queriesCharged += cost
        self.window.append((now, cost))
        self.windowSum += cost
        self.maxQueriesPerSecond = max(self.maxQueriesPerSecond, self.windowSum)
        return true
    }

    static func host(_ address: String) -> String { PeerNode.splitHostPort(address)?.host ?? address }
}
