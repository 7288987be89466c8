// BEP 5: the routing table. k-buckets over the 160-bit space; only the bucket that holds our own ID splits.
import PeerBase

/// The nodes one address family's DHT knows, in k-buckets (BEP 5).
///
/// Bucket i (for i below the last) holds nodes whose ID shares exactly i leading bits with ours; the last
/// bucket holds everything closer. A full last bucket splits (up to 160 buckets); any other full bucket keeps
/// its nodes and remembers the newcomer in a small replacement cache, from which bad nodes are replaced.
///
/// Only nodes that answered one of our queries enter the table (`heardFrom`): a query from an unknown node is
/// only a reason to ping it. States follow BEP 5: a node is *good* if it answered within 15 minutes, or has
/// answered before and queried us within 15 minutes; *bad* after `maxFailures` unanswered queries in a row;
/// *questionable* otherwise. With `oneNodePerIP`, a non-local IP holds at most one entry, so one host cannot fill
/// a bucket.
public struct RoutingTable: Sendable {
    public struct Configuration: Equatable, Sendable {
        /// Nodes per bucket (BEP 5: 8).
        public var k: Int
        /// Remembered newcomers per full bucket.
        public var replacementCacheSize: Int
        /// How long an answer keeps a node good (BEP 5: 15 minutes).
        public var goodWindow: Duration
        /// Unanswered queries in a row that make a node bad.
        public var maxFailures: Int
        /// A bucket not changed for this long is refreshed (BEP 5: 15 minutes).
        public var refreshInterval: Duration
        /// Allow one entry per non-local IP address.
        public var oneNodePerIP: Bool
        /// A questionable node is offered for a ping at most this often.
        public var pingInterval: Duration

        public init(
            k: Int = 8, replacementCacheSize: Int = 8, goodWindow: Duration = .seconds(900), maxFailures: Int = 2,
            refreshInterval: Duration = .seconds(900), oneNodePerIP: Bool = true, pingInterval: Duration = .seconds(60)
        ) {
            precondition(k > 0 && replacementCacheSize >= 0 && maxFailures > 0)
            self.k = k
            self.replacementCacheSize = replacementCacheSize
            self.goodWindow = goodWindow
            self.maxFailures = maxFailures
            self.refreshInterval = refreshInterval
            self.oneNodePerIP = oneNodePerIP
            self.pingInterval = pingInterval
        }
    }

    public enum Status: Equatable, Sendable { case good, questionable, bad }

    /// One known node and what we know of its liveness.
    public struct Entry: Equatable, Sendable {
        public var node: NodeInfo
        public var firstSeen: Instant
        /// When it last answered one of our queries.
        public var lastResponse: Instant?
        /// When it last sent us a query.
        public var lastQuery: Instant?
        /// Our queries it left unanswered since its last answer.
        public var failures: Int
        /// When we last pinged it to see whether it is still there.
        public var lastPinged: Instant?

        /// The latest sign of life.
        public var lastSeen: Instant { max(self.firstSeen, self.lastResponse ?? self.firstSeen, self.lastQuery ?? self.firstSeen) }

        func status(at now: Instant, _ c: Configuration) -> Status {
            if self.failures >= c.maxFailures { return .bad }
            if let r = self.lastResponse {
                if now - r < c.goodWindow { return .good }
                if let q = self.lastQuery, now - q < c.goodWindow { return .good }
            }
            return .questionable
        }
    }

    /// What `heardFrom` did.
    public enum InsertResult: Equatable, Sendable {
        /// The node is now in the table.
        case added
        /// The node was there already; its answer was recorded.
        case updated
        /// Its bucket is full; the node waits in the replacement cache. `ping` is a questionable node of that
        /// bucket worth pinging now: if it fails, the newcomer can take its place.
        case cached(ping: NodeInfo?)
        /// Not kept: our own ID, an ID already known at another address, or an IP already in the table.
        case ignored
    }

    private struct Bucket: Sendable {
        var entries: [Entry] = []
        var replacements: [Entry] = []
        var lastChanged: Instant
    }

    public let ownID: NodeID
    public let configuration: Configuration
    private var buckets: [Bucket]
    private var addresses: [DHTEndpoint.IP: NodeID] = [:]

    public init(ownID: NodeID, configuration: Configuration = Configuration(), at now: Instant) {
        self.ownID = ownID
        self.configuration = configuration
        self.buckets = [Bucket(lastChanged: now)]
    }

    // MARK: Queries

    /// The number of nodes in the table (not counting replacement caches).
    public var count: Int { self.buckets.reduce(0) { $0 + $1.entries.count } }
    /// The number of buckets.
    public var bucketCount: Int { self.buckets.count }
    /// Every entry, bucket by bucket (farthest bucket first).
    public var entries: [Entry] { self.buckets.flatMap(\.entries) }
    /// Every node in the table, for saving between runs.
    public var nodes: [NodeInfo] { self.buckets.flatMap { $0.entries.map(\.node) } }

    /// The number of good nodes at `now`.
    public func goodCount(at now: Instant) -> Int {
        self.buckets.reduce(0) { n, b in n + b.entries.filter { $0.status(at: now, self.configuration) == .good }.count }
    }

    /// The entry for `id`, if the table holds it.
    public func entry(for id: NodeID) -> Entry? {
        let b = self.bucketIndex(for: id)
        return self.buckets[b].entries.first(where: { $0.node.id == id })
    }

    public func contains(_ id: NodeID) -> Bool { self.entry(for: id) != nil }

    /// The status of `id` at `now`, or nil if it is not in the table.
    public func status(of id: NodeID, at now: Instant) -> Status? {
        self.entry(for: id)?.status(at: now, self.configuration)
    }

    /// Up to `count` nodes closest to `target`, closest first; bad nodes are left out.
    public func closest(to target: NodeID, count: Int) -> [NodeInfo] {
        var all: [NodeInfo] = []
        for b in self.buckets {
            for e in b.entries where e.failures < self.configuration.maxFailures { all.append(e.node) }
        }
        all.sort { ($0.id ^ target) < ($1.id ^ target) }
        return Array(all.prefix(count))
    }

    /// True when a node with `id` from `ip` could enter the table now (its bucket has room, can split or holds a
    /// bad node): worth a ping to verify it.
    public func hasRoom(for id: NodeID, ip: DHTEndpoint.IP, at now: Instant) -> Bool {
        guard id != self.ownID, !self.contains(id) else { return false }
        if self.configuration.oneNodePerIP && !ip.isLocal && self.addresses[ip] != nil { return false }
        let b = self.bucketIndex(for: id)
        let bucket = self.buckets[b]
        if bucket.entries.count < self.configuration.k { return true }
        if b == self.buckets.count - 1 && self.buckets.count < NodeID.bitWidth { return true }
        return bucket.entries.contains { $0.status(at: now, self.configuration) == .bad }
    }

    // MARK: Updates

    /// Records that `node` answered one of our queries: it enters the table if there is room, refreshes its entry
    /// if it is there, or waits in the replacement cache.
    @discardableResult
    public mutating func heardFrom(_ node: NodeInfo, at now: Instant) -> InsertResult {
        guard node.id != self.ownID else { return .ignored }
        var b = self.bucketIndex(for: node.id)
        if let i = self.buckets[b].entries.firstIndex(where: { $0.node.id == node.id }) {
            var e = self.buckets[b].entries[i]
            if e.node.endpoint != node.endpoint {
                // The same ID from another address: believe it only if the known one has stopped answering.
                guard e.status(at: now, self.configuration) != .good else { return .ignored }
                self.forgetAddress(e.node)
                guard self.claimAddress(node) else { return .ignored }
                e.node = node
            }
            e.lastResponse = now
            e.failures = 0
            self.buckets[b].entries[i] = e
            self.buckets[b].lastChanged = now
            return .updated
        }
        if self.configuration.oneNodePerIP && !node.endpoint.ip.isLocal, let other = self.addresses[node.endpoint.ip],
            other != node.id
        {
            return .ignored
        }
        let fresh = Entry(node: node, firstSeen: now, lastResponse: now, lastQuery: nil, failures: 0, lastPinged: nil)
        while true {
            self.buckets[b].replacements.removeAll { $0.node.id == node.id }
            if self.buckets[b].entries.count < self.configuration.k {
                self.buckets[b].entries.append(fresh)
                self.buckets[b].lastChanged = now
                _ = self.claimAddress(node)
                return .added
            }
            guard b == self.buckets.count - 1 && self.buckets.count < NodeID.bitWidth else { break }
            self.split(at: now)
            b = self.bucketIndex(for: node.id)
        }
        // Full and cannot split: replace a bad node, or wait.
        let entries = self.buckets[b].entries
        if let worst = entries.indices.filter({ entries[$0].status(at: now, self.configuration) == .bad })
            .min(by: { entries[$0].lastSeen < entries[$1].lastSeen })
        {
            self.forgetAddress(entries[worst].node)
            self.buckets[b].entries[worst] = fresh
            self.buckets[b].lastChanged = now
            _ = self.claimAddress(node)
            return .added
        }
        self.cacheReplacement(fresh, bucket: b)
        if let q = entries.indices.filter({ self.isDueForPing(entries[$0], at: now, within: self.configuration.pingInterval) })
            .min(by: { entries[$0].lastSeen < entries[$1].lastSeen })
        {
            self.buckets[b].entries[q].lastPinged = now
            return .cached(ping: entries[q].node)
        }
        return .cached(ping: nil)
    }

    /// Records that a node in the table sent us a query (keeps a node that answered before good).
    public mutating func queried(by node: NodeInfo, at now: Instant) {
        let b = self.bucketIndex(for: node.id)
        if let i = self.buckets[b].entries.firstIndex(where: { $0.node == node }) {
            self.buckets[b].entries[i].lastQuery = now
        }
    }

    /// Records that `node` left a query unanswered. A node that turns bad gives its place to the freshest entry
    /// of the replacement cache, if there is one.
    public mutating func failed(_ node: NodeInfo, at now: Instant) {
        let b = self.bucketIndex(for: node.id)
        self.buckets[b].replacements.removeAll { $0.node == node }
        guard let i = self.buckets[b].entries.firstIndex(where: { $0.node == node }) else { return }
        self.buckets[b].entries[i].failures += 1
        guard self.buckets[b].entries[i].status(at: now, self.configuration) == .bad else { return }
        let replacements = self.buckets[b].replacements
        if let r = replacements.indices.max(by: {
            (replacements[$0].lastResponse ?? .zero) < (replacements[$1].lastResponse ?? .zero)
        }) {
            let promoted = replacements[r]
            self.buckets[b].replacements.remove(at: r)
            if !self.configuration.oneNodePerIP || promoted.node.endpoint.ip.isLocal
                || self.addresses[promoted.node.endpoint.ip] == nil
            {
                self.forgetAddress(self.buckets[b].entries[i].node)
                self.buckets[b].entries[i] = promoted
                _ = self.claimAddress(promoted.node)
                self.buckets[b].lastChanged = now
            }
        }
    }

    /// Removes `id` from the table (for example when BEP 42 enforcement is turned on).
    public mutating func remove(_ id: NodeID) {
        let b = self.bucketIndex(for: id)
        if let i = self.buckets[b].entries.firstIndex(where: { $0.node.id == id }) {
            self.forgetAddress(self.buckets[b].entries[i].node)
            self.buckets[b].entries.remove(at: i)
        }
        self.buckets[b].replacements.removeAll { $0.node.id == id }
    }

    /// Up to `limit` questionable nodes not pinged within `interval` (by default `pingInterval`), least recently
    /// seen first, marked as pinged at `now`. The node pings them so that the table keeps only live nodes.
    public mutating func questionableNodes(at now: Instant, limit: Int, notPingedWithin interval: Duration? = nil)
        -> [NodeInfo]
    {
        let interval = interval ?? self.configuration.pingInterval
        var found: [(bucket: Int, index: Int, seen: Instant)] = []
        for (b, bucket) in self.buckets.enumerated() {
            for (i, e) in bucket.entries.enumerated() where self.isDueForPing(e, at: now, within: interval) {
                found.append((b, i, e.lastSeen))
            }
        }
        found.sort { $0.seen < $1.seen }
        var out: [NodeInfo] = []
        for f in found.prefix(limit) {
            self.buckets[f.bucket].entries[f.index].lastPinged = now
            out.append(self.buckets[f.bucket].entries[f.index].node)
        }
        return out
    }

    /// Targets for refreshing every bucket unchanged for `refreshInterval`: a random ID in each such bucket's
    /// range. Each bucket returned counts as changed at `now`, so it is not returned again until it goes stale.
    public mutating func refreshTargets(at now: Instant, using rng: inout some RandomNumberGenerator) -> [NodeID] {
        var out: [NodeID] = []
        for i in self.buckets.indices where now - self.buckets[i].lastChanged >= self.configuration.refreshInterval {
            self.buckets[i].lastChanged = now
            out.append(self.randomID(inBucket: i, using: &rng))
        }
        return out
    }

    /// A random ID that falls in bucket `index`.
    public func randomID(inBucket index: Int, using rng: inout some RandomNumberGenerator) -> NodeID {
        precondition(index >= 0 && index < self.buckets.count)
        if index == self.buckets.count - 1 {
            return NodeID.random(sharingFirst: index, with: self.ownID, using: &rng)
        }
        let flipped = self.ownID ^ (NodeID.prefixMask(index + 1) & ~NodeID.prefixMask(index))
        return NodeID.random(sharingFirst: index + 1, with: flipped, using: &rng)
    }

    /// The bucket `id` belongs in.
    public func bucketIndex(for id: NodeID) -> Int {
        min(self.ownID.commonPrefixLength(with: id), self.buckets.count - 1)
    }

    // MARK: Internals

    private func isDueForPing(_ e: Entry, at now: Instant, within interval: Duration) -> Bool {
        e.status(at: now, self.configuration) == .questionable && (e.lastPinged.map { now - $0 >= interval } ?? true)
    }

    private mutating func split(at now: Instant) {
        let last = self.buckets.count - 1
        let old = self.buckets[last]
        var near = Bucket(lastChanged: old.lastChanged)
        var far = Bucket(lastChanged: old.lastChanged)
        for e in old.entries {
            if self.ownID.commonPrefixLength(with: e.node.id) > last { near.entries.append(e) } else { far.entries.append(e) }
        }
        for e in old.replacements {
            if self.ownID.commonPrefixLength(with: e.node.id) > last {
                near.replacements.append(e)
            } else {
                far.replacements.append(e)
            }
        }
        self.buckets[last] = far
        self.buckets.append(near)
        self.promoteReplacements(bucket: last)
        self.promoteReplacements(bucket: last + 1)
    }

    /// Fills free slots of a bucket from its replacement cache, freshest first.
    private mutating func promoteReplacements(bucket b: Int) {
        self.buckets[b].replacements.sort { ($0.lastResponse ?? .zero) > ($1.lastResponse ?? .zero) }
        while self.buckets[b].entries.count < self.configuration.k, !self.buckets[b].replacements.isEmpty {
            let e = self.buckets[b].replacements.removeFirst()
            if self.claimAddress(e.node) { self.buckets[b].entries.append(e) }
        }
    }

    private mutating func cacheReplacement(_ entry: Entry, bucket b: Int) {
        guard self.configuration.replacementCacheSize > 0 else { return }
        self.buckets[b].replacements.removeAll { $0.node.id == entry.node.id }
        if self.buckets[b].replacements.count >= self.configuration.replacementCacheSize {
            self.buckets[b].replacements.removeFirst()
        }
        self.buckets[b].replacements.append(entry)
    }

    /// Records `node`'s IP as taken; false if another ID holds it.
    private mutating func claimAddress(_ node: NodeInfo) -> Bool {
        guard self.configuration.oneNodePerIP && !node.endpoint.ip.isLocal else { return true }
        if let other = self.addresses[node.endpoint.ip], other != node.id { return false }
        self.addresses[node.endpoint.ip] = node.id
        return true
    }

    private mutating func forgetAddress(_ node: NodeInfo) {
        if self.addresses[node.endpoint.ip] == node.id { self.addresses[node.endpoint.ip] = nil }
    }
}
