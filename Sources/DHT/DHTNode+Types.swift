// The values DHTNode takes and gives: configuration, commands, events, results and statistics.
import PeerBase

/// Names one command given to a `DHTNode`; its result comes back as `.finished` with the same ID.
public struct LookupID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: UInt64

    public init(rawValue: UInt64) { self.rawValue = rawValue }

    public static func < (a: LookupID, b: LookupID) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "lookup#\(self.rawValue)" }
}

/// A datagram to send: what `DHTNode.pollTransmit()` returns.
public struct DHTDatagram: Equatable, Sendable {
    public var bytes: [UInt8]
    public var destination: DHTEndpoint

    public init(bytes: [UInt8], destination: DHTEndpoint) {
        self.bytes = bytes
        self.destination = destination
    }
}

/// One of the closest nodes a lookup found, with the write token it gave (needed to announce or put there).
public struct ClosestNode: Equatable, Sendable {
    public var node: NodeInfo
    public var token: [UInt8]?

    public init(node: NodeInfo, token: [UInt8]?) {
        self.node = node
        self.token = token
    }
}

/// A node that answered an announce_peer or put with an error.
public struct StoreRefusal: Equatable, Sendable {
    public var node: NodeInfo
    public var code: Int
    public var message: String

    public init(node: NodeInfo, code: Int, message: String) {
        self.node = node
        self.code = code
        self.message = message
    }
}

/// What a BEP 51 `sample_infohashes` query returned.
public struct InfohashSamples: Equatable, Sendable {
    /// The node that answered.
    public var from: NodeInfo
    public var samples: [NodeID]
    /// `num`: how many info-hashes that node stores.
    public var available: Int64?
    /// `interval`: seconds before asking it again.
    public var interval: Int64?
    /// Nodes close to the target, for walking the key space.
    public var nodes: [NodeInfo]

    public init(from: NodeInfo, samples: [NodeID], available: Int64?, interval: Int64?, nodes: [NodeInfo]) {
        self.from = from
        self.samples = samples
        self.available = available
        self.interval = interval
        self.nodes = nodes
    }
}

/// Why a command produced nothing.
public enum LookupFailure: Equatable, Sendable, CustomStringConvertible {
    /// The routing table is empty and no router or known node was given: there was nobody to ask.
    case noNodes
    /// Nobody answered: the node asked (ping, sample) or every node a lookup asked.
    case timedOut
    /// The node asked answered with a KRPC error.
    case remoteError(code: Int, message: String)
    /// The endpoint's address family is not one of `Configuration.families` (there is no socket for it).
    case unsupportedFamily

    public var description: String {
        switch self {
        case .noNodes: "no DHT nodes to ask (bootstrap first)"
        case .timedOut: "no answer"
        case .remoteError(let code, let message): "error \(code): \(message)"
        case .unsupportedFamily: "no socket for that address family"
        }
    }
}

/// The result of a command.
public enum LookupOutcome: Equatable, Sendable {
    /// `.ping`: the node answered.
    case pong(NodeInfo)
    /// `.bootstrap` (target: our own ID) or `.findNode`: the k closest nodes that answered, closest first.
    case nodes(target: NodeID, closest: [NodeInfo])
    /// `.getPeers`: every peer found, and the k closest nodes that answered with their tokens.
    case peers(infoHash: NodeID, peers: [DHTEndpoint], closest: [ClosestNode])
    /// `.announce`: the peers found on the way, and the nodes that accepted the announce.
    case announced(infoHash: NodeID, peers: [DHTEndpoint], acceptedBy: [NodeInfo], refusals: [StoreRefusal])
    /// `.get`: the item (the one with the highest sequence number for a mutable item), verified against the
    /// target and its signature, or nil if no node had it; and the k closest nodes with their tokens.
    case item(target: NodeID, item: DHTItem?, closest: [ClosestNode])
    /// `.put`: the nodes that stored the item and those that refused it.
    case stored(target: NodeID, acceptedBy: [NodeInfo], refusals: [StoreRefusal])
    /// `.sampleInfohashes`.
    case samples(InfohashSamples)
    case failed(LookupFailure)
}

extension DHTNode {
    /// Everything a node can be told to do. `handle(_:at:)` returns the `LookupID` its result will carry.
    public enum Command: Equatable, Sendable {
        /// Joins the DHT: a find_node lookup for our own ID that starts at `routers` (well-known bootstrap nodes,
        /// never put in the routing table) and `knownNodes` (for example nodes saved from a previous run), and at
        /// the routing table's nodes. The routers are remembered: an empty table is bootstrapped again from them.
        case bootstrap(routers: [DHTEndpoint], knownNodes: [DHTEndpoint] = [])
        /// Pings an endpoint (for example a peer's BEP 5 PORT message); a node that answers enters the table.
        case ping(DHTEndpoint)
        /// A find_node lookup.
        case findNode(NodeID)
        /// A get_peers lookup; peers are reported as they arrive (`.peersFound`) and in the result.
        case getPeers(infoHash: NodeID)
        /// A get_peers lookup, then announce_peer to the k closest nodes that gave a token. With `impliedPort`,
        /// the nodes store the port our datagrams come from (BEP 5), and `port` is only a fallback.
        case announce(infoHash: NodeID, port: UInt16, impliedPort: Bool = false)
        /// A BEP 44 get lookup for `target`; for a mutable item pass its salt, which the answers do not repeat
        /// but which the target check needs. With `newerThan` (the sequence number held), nodes answer without
        /// the value unless theirs is newer (BEP 44 `seq`), so a poll of an unchanged item carries no values, and
        /// the outcome has no item.
        case get(target: NodeID, salt: [UInt8] = [], newerThan: Int64? = nil)
        /// A BEP 44 get lookup for the item's target, then put to the k closest nodes that gave a token.
        /// `cas` (mutable items) is the sequence number this put expects to replace.
        case put(DHTItem, cas: Int64? = nil)
        /// A BEP 51 sample_infohashes query to one node.
        case sampleInfohashes(from: DHTEndpoint, target: NodeID)
    }

    /// What the node tells the application.
    public enum Event: Equatable, Sendable {
        /// A command is over.
        case finished(LookupID, LookupOutcome)
        /// A get_peers (or announce) lookup found peers it had not reported yet.
        case peersFound(LookupID, infoHash: NodeID, peers: [DHTEndpoint])
        /// Another node announced a peer to us (stored in the peer store).
        case peerAnnounced(infoHash: NodeID, peer: DHTEndpoint)
        /// Another node asked us for the peers of an info-hash (what a crawler may look into; the node answers
        /// as always).
        case infoHashAsked(NodeID)
        /// The nodes we ask agree on a new external address for us (BEP 42 `ip`). A node whose ID does not
        /// match it changes ID (`idChanged`) unless its ID was configured.
        case externalAddressChanged(DHTEndpoint.IP)
        /// BEP 42: the node took a new ID that matches its external address; the routing tables were rebuilt
        /// around it and a lookup of the new ID refills its neighbourhood.
        case idChanged(NodeID)
    }

    /// Tuning. The defaults follow the BEPs and libtorrent's figures.
    public struct Configuration: Sendable {
        /// Our node ID; nil: BEP 42-compliant for `externalIP` when that is known, else random.
        public var nodeID: NodeID?
        /// Our external IP, when the driver knows it.
        public var externalIP: DHTEndpoint.IP?
        /// The address families the driver has sockets for; each gets its own routing table (BEP 32).
        public var families: Set<DHTEndpoint.Family>
        /// BEP 43: answer no queries and mark ours `ro`, so that others leave us out of their tables.
        public var readOnly: Bool
        /// BEP 42: keep nodes whose ID does not match their IP out of the routing table, do not count their
        /// answers towards a lookup's k closest, and do not announce or put to them. Their queries are answered.
        public var enforceNodeIDs: Bool
        /// `v`: our client version (two letters, two bytes), sent in every message when set.
        public var version: [UInt8]?
        public var routing: RoutingTable.Configuration
        /// Queries in flight per lookup (Kademlia's alpha).
        public var alpha: Int
        /// How long to wait for an answer before resending (or giving up).
        public var queryTimeout: Duration
        /// Bounds of the adaptive wait after which a lookup stops waiting on a slow node and asks another
        /// (`DHTNode.shortTimeout`); a late answer still counts.
        public var shortTimeout: ClosedRange<Duration>
        /// How many times a query is resent after a timeout before the node counts as not answering.
        public var queryRetries: Int
        /// Most queries one lookup sends in one address family.
        public var maxQueriesPerLookup: Int
        /// How often the write-token secret changes (BEP 5: 5 minutes).
        public var tokenInterval: Duration
        public var peerStore: PeerStore.Limits
        public var itemStore: ItemStore.Limits
        /// Most peers in one get_peers answer (fewer when the datagram would grow past `maxReplyLength`).
        public var maxPeersPerReply: Int
        /// Most info-hashes in one sample_infohashes answer.
        public var maxSamplesPerReply: Int
        /// How long one sample is reused (BEP 51 `interval`, at most 6 hours).
        public var sampleInterval: Duration
        /// Largest datagram the node sends in answer to a query.
        public var maxReplyLength: Int
        /// Replies per source IP: burst size and tokens per second.
        public var replyBurst: Double
        public var repliesPerSecond: Double
        /// Source IPs whose reply rate is tracked at once.
        public var maxTrackedSources: Int
        /// Our own queries: burst size and queries per second over all destinations.
        public var queryBurst: Double
        public var queriesPerSecond: Double
        /// Pings to verify unknown nodes that queried us, in flight at once.
        public var maxVerificationPings: Int
        /// Period of housekeeping (token rotation, expiry, bucket refresh, pings of questionable nodes).
        public var maintenanceInterval: Duration
        /// Questionable nodes pinged per housekeeping round.
        public var pingsPerMaintenance: Int
        /// Distinct reporters that must agree before `externalIP` changes.
        public var externalAddressVotes: Int
        /// What the decoder accepts.
        public var krpcLimits: KRPCLimits

        public init(
            nodeID: NodeID? = nil, externalIP: DHTEndpoint.IP? = nil, families: Set<DHTEndpoint.Family> = [.ipv4],
            readOnly: Bool = false, enforceNodeIDs: Bool = false, version: [UInt8]? = nil
        ) {
            precondition(!families.isEmpty, "a node needs at least one address family")
            self.nodeID = nodeID
            self.externalIP = externalIP
            self.families = families
            self.readOnly = readOnly
            self.enforceNodeIDs = enforceNodeIDs
            self.version = version
            self.routing = RoutingTable.Configuration()
            self.alpha = 3
            self.queryTimeout = .seconds(2)
            self.shortTimeout = .milliseconds(300) ... .seconds(1)
            self.queryRetries = 1
            self.maxQueriesPerLookup = 128
            self.tokenInterval = .seconds(300)
            self.peerStore = PeerStore.Limits()
            self.itemStore = ItemStore.Limits()
            self.maxPeersPerReply = 100
            self.maxSamplesPerReply = 20
            self.sampleInterval = .seconds(21600)
            self.maxReplyLength = 1500
            self.replyBurst = 20
            self.repliesPerSecond = 5
            self.maxTrackedSources = 4096
            self.queryBurst = 100
            self.queriesPerSecond = 100
            self.maxVerificationPings = 32
            self.maintenanceInterval = .seconds(5)
            self.pingsPerMaintenance = 2
            self.externalAddressVotes = 4
            self.krpcLimits = .default
        }
    }

    /// Counters and sizes, for logs and the API.
    public struct Stats: Equatable, Sendable {
        public var id: NodeID
        public var ipv4Nodes = 0
        public var ipv6Nodes = 0
        public var goodNodes = 0
        public var buckets = 0
        public var lookups = 0
        public var pendingQueries = 0
        public var storedInfoHashes = 0
        public var storedPeers = 0
        public var storedItems = 0
        public var datagramsReceived = 0
        public var bytesReceived = 0
        public var datagramsSent = 0
        public var bytesSent = 0
        /// Queries we sent (first transmissions and retries).
        public var queriesSent = 0
        public var queriesReceived = 0
        public var responsesReceived = 0
        public var errorsReceived = 0
        /// Error replies we sent (bad token, bad put, malformed query, unknown method).
        public var errorsSent = 0
        /// Datagrams dropped as malformed, oversized, from port 0, or from our own ID.
        public var malformed = 0
        /// Answers whose transaction id or source did not match a query in flight.
        public var unmatched = 0
        /// Queries not answered because their source IP was over its rate.
        public var rateLimited = 0
        /// Queries that went unanswered after every retry.
        public var timeouts = 0
    }
}
