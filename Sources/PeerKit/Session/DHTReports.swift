import DHT

/// What `peer dht` prints and the daemon's `/api/dht` endpoints answer: one shape for both, so the command
/// reads the same whether it ran on a temporary node or on the running daemon's.
public enum DHTReport {
    /// The routing table and the traffic (`peer dht stats`, `GET /api/dht`).
    public struct Stats: Codable, Sendable {
        public var nodeID: String
        public var ipv4Nodes, ipv6Nodes, goodNodes, buckets: Int
        public var queriesSent, queriesReceived, responsesReceived: Int
        public var bytesIn, bytesOut: Int

        public init(_ s: DHTNode.Stats) {
            self.nodeID = "\(s.id)"
            (self.ipv4Nodes, self.ipv6Nodes, self.goodNodes, self.buckets) = (s.ipv4Nodes, s.ipv6Nodes, s.goodNodes, s.buckets)
            (self.queriesSent, self.queriesReceived, self.responsesReceived) = (s.queriesSent, s.queriesReceived, s.responsesReceived)
            (self.bytesIn, self.bytesOut) = (s.bytesReceived, s.bytesSent)
        }

        /// The figures as a two-column table.
        public var rows: [(String, String)] {
            [("node id", self.nodeID), ("IPv4 nodes", "\(self.ipv4Nodes)"), ("IPv6 nodes", "\(self.ipv6Nodes)"),
             ("good nodes", "\(self.goodNodes)"), ("buckets", "\(self.buckets)"), ("queries sent", "\(self.queriesSent)"),
             ("queries received", "\(self.queriesReceived)"), ("responses received", "\(self.responsesReceived)"),
             ("bytes in", "\(self.bytesIn)"), ("bytes out", "\(self.bytesOut)")]
        }

        enum CodingKeys: String, CodingKey {
            case buckets
            case nodeID = "node_id"
            case ipv4Nodes = "ipv4_nodes"
            case ipv6Nodes = "ipv6_nodes"
            case goodNodes = "good_nodes"
            case queriesSent = "queries_sent"
            case queriesReceived = "queries_received"
            case responsesReceived = "responses_received"
            case bytesIn = "bytes_in"
            case bytesOut = "bytes_out"
        }
    }

    /// Peers of an info-hash (`peer dht peers`, `POST /api/dht/peers`).
    public struct Peers: Codable, Sendable {
        public var peers: [String]
        public var closestNodes: [String]
        public init(peers: [String], closestNodes: [String]) {
            self.peers = peers
            self.closestNodes = closestNodes
        }
        enum CodingKeys: String, CodingKey {
            case peers
            case closestNodes = "closest_nodes"
        }
    }

    /// A node's answer to a ping (`peer dht ping`, `POST /api/dht/ping`).
    public struct Pong: Codable, Sendable {
        public var id: String
        public var node: String
        public init(id: String, node: String) {
            self.id = id
            self.node = node
        }
    }

    /// A sample of the info-hashes a node stores (`peer dht sample`, `POST /api/dht/sample`).
    public struct Samples: Codable, Sendable {
        public var samples: [String]
        public var available: Int64?
        public init(samples: [String], available: Int64?) {
            self.samples = samples
            self.available = available
        }
    }
}

extension Session {
    /// Runs a DHT command on the session's node; `.conflict` when the DHT is off.
    public func runDHT(_ command: DHTNode.Command, joinFirst: Bool) async throws(SessionError) -> LookupOutcome {
        guard let dht = self.dht else { throw .conflict("the daemon's DHT is off (--no-dht)") }
        let outcome: LookupOutcome
        do { outcome = try await dht.run(command, joinFirst: joinFirst) } catch {
            throw .unavailable("the DHT did not answer: \(error)")
        }
        if case .failed(let f) = outcome { throw .unavailable(f.description) }
        return outcome
    }

    public func dhtStats() async throws(SessionError) -> DHTReport.Stats {
        guard let dht = self.dht, let stats = await dht.stats() else { throw .conflict("the daemon's DHT is off (--no-dht)") }
        return DHTReport.Stats(stats)
    }
}
