// BEP 5: the iterative lookup ("the original node iteratively queries nodes that are closer to the target
// infohash until it cannot find any closer nodes"), with Kademlia's alpha parallelism.

/// The state of one iterative lookup in one address family's DHT: which nodes to ask next, which answered,
/// and when it is over. It sends nothing itself; `DHTNode` asks it for the next nodes to query and tells it
/// how each query ended.
///
/// Candidates are kept sorted by distance to the target (at most `maxCandidates`). `next()` hands out fresh
/// candidates among the closest, keeping at most `alpha` queries in flight; a query slower than the node's
/// short timeout (about a round trip and a half) is *stalled*: it no longer holds a slot, and the lookup no
/// longer waits for it, so one lost datagram does not hold the lookup up. The lookup is over when the `k`
/// closest candidates that are still in the running have all answered, when nothing is left to ask, or after
/// `maxQueries` queries. Seeds (bootstrap routers, whose IDs are unknown) are asked first and are not
/// part of the result. With BEP 42 enforcement, nodes whose ID does not match their IP are still asked, but
/// do not count towards the k answers and are not offered as storage targets.
struct Traversal: Sendable {
    enum State: Equatable, Sendable { case fresh, inFlight, stalled, responded, failed }

    struct Candidate: Sendable {
        var node: NodeInfo
        var state: State
        var token: [UInt8]?
        var compliant: Bool
        /// BEP 44: the sequence number of the item this node holds, if its answer said.
        var sequence: Int64? = nil
    }

    let target: NodeID
    let family: DHTEndpoint.Family
    let k: Int
    let alpha: Int
    let maxQueries: Int
    let maxCandidates: Int
    private(set) var candidates: [Candidate] = []
    private var seeds: [(endpoint: DHTEndpoint, state: State)] = []
    private var seen: Set<DHTEndpoint> = []
    private(set) var queriesSent = 0
    /// Answers received (seeds included).
    private(set) var answers = 0

    init(target: NodeID, family: DHTEndpoint.Family, k: Int, alpha: Int, maxQueries: Int, maxCandidates: Int) {
        self.target = target
        self.family = family
        self.k = k
        self.alpha = alpha
        self.maxQueries = maxQueries
        self.maxCandidates = max(maxCandidates, k)
    }

    /// Adds endpoints whose IDs are unknown (routers, saved nodes); they are queried before any candidate.
    mutating func addSeeds(_ endpoints: [DHTEndpoint]) {
        for e in endpoints where e.family == self.family && !self.seen.contains(e) {
            self.seen.insert(e)
            self.seeds.append((e, .fresh))
        }
    }

    /// Adds nodes learnt from the routing table or from an answer. Known endpoints and IDs are skipped.
    mutating func add(_ nodes: [NodeInfo], isCompliant: (NodeInfo) -> Bool) {
        for n in nodes where n.endpoint.family == self.family && n.endpoint.port != 0 && !self.seen.contains(n.endpoint) {
            let d = n.id ^ self.target
            var lo = 0
            var hi = self.candidates.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if (self.candidates[mid].node.id ^ self.target) < d { lo = mid + 1 } else { hi = mid }
            }
            if lo < self.candidates.count && self.candidates[lo].node.id == n.id { continue }
            if lo >= self.maxCandidates { continue }
            self.seen.insert(n.endpoint)
            self.candidates.insert(Candidate(node: n, state: .fresh, token: nil, compliant: isCompliant(n)), at: lo)
            if self.candidates.count > self.maxCandidates,
                let drop = self.candidates.lastIndex(where: { $0.state == .fresh || $0.state == .failed })
            {
                self.candidates.remove(at: drop)
            }
        }
    }

    private var slotsInUse: Int {
        self.candidates.count(where: { $0.state == .inFlight }) + self.seeds.count(where: { $0.state == .inFlight })
    }

    /// The endpoints to query now (with the ID expected to answer, nil for seeds), marked in flight.
    mutating func next() -> [(endpoint: DHTEndpoint, id: NodeID?)] {
        var out: [(DHTEndpoint, NodeID?)] = []
        for i in self.seeds.indices where self.seeds[i].state == .fresh && self.queriesSent < self.maxQueries {
            self.seeds[i].state = .inFlight
            self.queriesSent += 1
            out.append((self.seeds[i].endpoint, nil))
        }
        var inUse = self.slotsInUse
        var answered = 0
        for i in self.candidates.indices {
            guard answered < self.k, inUse < self.alpha, self.queriesSent < self.maxQueries else { break }
            switch self.candidates[i].state {
            case .responded where self.candidates[i].compliant: answered += 1
            case .fresh:
                self.candidates[i].state = .inFlight
                inUse += 1
                self.queriesSent += 1
                out.append((self.candidates[i].node.endpoint, self.candidates[i].node.id))
            default: break
            }
        }
        return out
    }

    /// True when the lookup is over: the k closest live candidates answered, or nothing is left to wait for.
    var isFinished: Bool {
        if self.seeds.contains(where: {
            $0.state == .inFlight || $0.state == .stalled || ($0.state == .fresh && self.queriesSent < self.maxQueries)
        }) {
            return false
        }
        var answered = 0
        for c in self.candidates {
            if answered >= self.k { return true }
            switch c.state {
            case .responded where c.compliant: answered += 1
            case .fresh: if self.queriesSent < self.maxQueries { return false }
            case .inFlight: return false
            // A stalled node is passed over (the next ones are asked); if it answers before the end, it counts.
            default: break
            }
        }
        return true
    }

    /// Records an answer from `node` (for a seed, the ID it gave), with the nodes it named and its token.
    /// A seed that answered becomes a candidate like any other unless it is a `router` (a bootstrap service,
    /// which should neither be counted among the closest nor be asked to store anything).
    mutating func responded(
        _ node: NodeInfo, token: [UInt8]?, compliant: Bool, router: Bool = false, sequence: Int64? = nil
    ) {
        self.answers += 1
        if let s = self.seeds.firstIndex(where: { $0.endpoint == node.endpoint }) {
            self.seeds[s].state = .responded
            if !router && !self.candidates.contains(where: { $0.node.endpoint == node.endpoint }) {
                self.seen.remove(node.endpoint)
                self.add([node], isCompliant: { _ in compliant })
            }
        }
        guard let i = self.candidates.firstIndex(where: { $0.node.endpoint == node.endpoint }) else { return }
        self.candidates[i].state = .responded
        self.candidates[i].token = token
        self.candidates[i].compliant = compliant
        self.candidates[i].sequence = sequence
    }

    /// Records that a query to `endpoint` is slow (past the short timeout, or resent): it stops holding a slot
    /// and the lookup stops waiting for it.
    mutating func stalled(_ endpoint: DHTEndpoint) {
        if let s = self.seeds.firstIndex(where: { $0.endpoint == endpoint && $0.state == .inFlight }) {
            self.seeds[s].state = .stalled
        }
        if let i = self.candidates.firstIndex(where: { $0.node.endpoint == endpoint && $0.state == .inFlight }) {
            self.candidates[i].state = .stalled
        }
    }

    /// Records that `endpoint` did not answer (or answered with an error or the wrong ID).
    mutating func failed(_ endpoint: DHTEndpoint) {
        if let s = self.seeds.firstIndex(where: { $0.endpoint == endpoint }) { self.seeds[s].state = .failed }
        if let i = self.candidates.firstIndex(where: { $0.node.endpoint == endpoint }),
            self.candidates[i].state != .responded
        {
            self.candidates[i].state = .failed
        }
    }

    /// The k closest nodes that answered with a token (compliant ones only), closest first: where to announce
    /// or put.
    var closestWithTokens: [Candidate] {
        Array(self.candidates.lazy.filter { $0.state == .responded && $0.compliant && $0.token != nil }.prefix(self.k))
    }

    /// The k closest nodes that answered (compliant ones only), closest first, with their tokens.
    var closest: [Candidate] {
        Array(self.candidates.lazy.filter { $0.state == .responded && $0.compliant }.prefix(self.k))
    }
}
