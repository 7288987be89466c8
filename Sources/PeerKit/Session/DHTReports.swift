import Bencode
import DHT
import Foundation
import PeerBase

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

extension DHTReport {
    /// The text of a string value that is valid UTF-8 (what `peer dht put` stores), else nil.
    static func text(of value: BencodeValue) -> String? {
        value.bytes.flatMap { String(validating: $0, as: UTF8.self) }
    }

    /// Where a BEP 44 item lives (`peer dht get`, `POST /api/dht/get`): `target` for an immutable item, or
    /// `public_key` (64 hex digits) and an optional `salt` (text) for a mutable one.
    public struct GetRequest: Codable, Sendable {
        public var target: String?
        public var publicKey: String?
        public var salt: String?

        public init(target: String? = nil, publicKey: String? = nil, salt: String? = nil) {
            (self.target, self.publicKey, self.salt) = (target, publicKey, salt)
        }

        /// The target and salt to look up.
        public func lookup() throws(SessionError) -> (target: NodeID, salt: [UInt8]) {
            switch (self.target, self.publicKey) {
            case (let hex?, nil):
                guard self.salt == nil else { throw .badRequest("salt: only a mutable item (public_key) has one") }
                guard hex.count == 40, let id = NodeID(hex: hex) else { throw .badRequest("target: expected 40 hex digits") }
                return (id, [])
            case (nil, let hex?):
                let key = try PutRequest.bytes(hex, count: 32, field: "public_key")
                let salt = try PutRequest.salt(self.salt)
                return (MutableItem.target(publicKey: key, salt: salt), salt)
            default:
                throw .badRequest("give target (an immutable item) or public_key (a mutable one)")
            }
        }

        enum CodingKeys: String, CodingKey {
            case target, salt
            case publicKey = "public_key"
        }
    }

    /// A BEP 44 item to store (`peer dht put`, `POST /api/dht/put`). The value is `value` (text) or
    /// `value_bencoded` (base64 of any bencoded value). A mutable item also carries `public_key`, `seq`, `salt`
    /// and the `signature` its publisher made; `cas` stores it only over that sequence number. The private key
    /// never leaves the publisher: the daemon checks the signature and stores what it was given.
    public struct PutRequest: Codable, Sendable {
        public var value: String?
        public var valueBencoded: String?
        public var publicKey: String?
        public var salt: String?
        public var seq: Int64?
        public var signature: String?
        public var cas: Int64?

        /// The request that stores `item`.
        public init(_ item: DHTItem, cas: Int64? = nil) {
            if let text = DHTReport.text(of: item.value) {
                self.value = text
            } else {
                self.valueBencoded = Data(item.value.encoded).base64EncodedString()
            }
            if case .mutable(let m) = item {
                self.publicKey = Hex.encode(m.publicKey)
                self.salt = m.salt.isEmpty ? nil : String(decoding: m.salt, as: UTF8.self)
                self.seq = m.sequence
                self.signature = Hex.encode(m.signature)
                self.cas = cas
            }
        }

        /// The item, checked: a value within BEP 44's 1000 bytes, and for a mutable item a valid signature.
        public func item() throws(SessionError) -> DHTItem {
            let value: BencodeValue
            switch (self.value, self.valueBencoded) {
            case (let text?, nil):
                value = .text(text)
            case (nil, let b64?):
                guard let data = Data(base64Encoded: b64), let decoded = try? BencodeDecoder().decodeValue(Array(data)) else {
                    throw .badRequest("value_bencoded: expected base64 of a bencoded value")
                }
                value = decoded
            default:
                throw .badRequest("give value (text) or value_bencoded (base64)")
            }
            guard value.encoded.count <= DHTItem.maxValueLength else {
                throw .badRequest("value: \(value.encoded.count) bytes bencoded, at most \(DHTItem.maxValueLength)")
            }
            guard let keyHex = self.publicKey else {
                guard self.seq == nil, self.signature == nil, self.salt == nil, self.cas == nil else {
                    throw .badRequest("seq, salt, signature and cas belong to a mutable item: give public_key too")
                }
                return .immutable(value)
            }
            let key = try Self.bytes(keyHex, count: 32, field: "public_key")
            guard let seq = self.seq, seq >= 0 else { throw .badRequest("seq: a mutable item needs a sequence number ≥ 0") }
            let signature = try Self.bytes(self.signature ?? "", count: 64, field: "signature")
            let item = MutableItem(publicKey: key, salt: try Self.salt(self.salt), sequence: seq, value: value,
                signature: signature)
            guard item.hasValidSignature else { throw .badRequest("signature: does not match the key, salt, seq and value") }
            return .mutable(item)
        }

        static func bytes(_ hex: String, count: Int, field: String) throws(SessionError) -> [UInt8] {
            guard hex.count == 2 * count, let bytes = Hex.decode(hex) else {
                throw .badRequest("\(field): expected \(2 * count) hex digits")
            }
            return bytes
        }

        static func salt(_ text: String?) throws(SessionError) -> [UInt8] {
            let salt = Array((text ?? "").utf8)
            guard salt.count <= DHTItem.maxSaltLength else {
                throw .badRequest("salt: \(salt.count) bytes, at most \(DHTItem.maxSaltLength)")
            }
            return salt
        }

        enum CodingKeys: String, CodingKey {
            case value, salt, seq, signature, cas
            case valueBencoded = "value_bencoded"
            case publicKey = "public_key"
        }
    }

    /// What a put did (`peer dht put`, `POST /api/dht/put`).
    public struct Stored: Codable, Sendable {
        public var target: String
        public var storedOn: Int
        public var refusedBy: Int
        /// The first refusal's message, if any node refused (an older seq, a failed CAS).
        public var refusal: String?

        public init(target: NodeID, acceptedBy: [NodeInfo], refusals: [StoreRefusal]) {
            self.target = "\(target)"
            self.storedOn = acceptedBy.count
            self.refusedBy = refusals.count
            self.refusal = refusals.first?.message
        }

        enum CodingKeys: String, CodingKey {
            case target, refusal
            case storedOn = "stored_on"
            case refusedBy = "refused_by"
        }
    }

    /// A BEP 44 item found (`peer dht get`, `POST /api/dht/get`), already checked against its target and, if
    /// mutable, its signature. `value` is the text of a string value, else its bencoding as text;
    /// `value_bencoded` is always the exact bencoding in base64.
    public struct Item: Codable, Sendable {
        public var target: String
        public var value: String
        public var valueBencoded: String
        public var seq: Int64?
        public var publicKey: String?
        public var signature: String?

        public init(_ item: DHTItem) {
            self.target = "\(item.target)"
            let encoded = item.value.encoded
            self.value = DHTReport.text(of: item.value) ?? String(decoding: encoded, as: UTF8.self)
            self.valueBencoded = Data(encoded).base64EncodedString()
            if case .mutable(let m) = item {
                (self.seq, self.publicKey, self.signature) = (m.sequence, Hex.encode(m.publicKey), Hex.encode(m.signature))
            }
        }

        enum CodingKeys: String, CodingKey {
            case target, value, seq, signature
            case valueBencoded = "value_bencoded"
            case publicKey = "public_key"
        }
    }
}

extension Session {
    /// Runs a DHT command on the session's node; `.dhtOff` when the DHT is off.
    public func runDHT(_ command: DHTNode.Command, joinFirst: Bool) async throws(SessionError) -> LookupOutcome {
        guard let dht = self.dht else { throw .dhtOff }
        let outcome: LookupOutcome
        do { outcome = try await dht.run(command, joinFirst: joinFirst) } catch {
            throw .unavailable(error is DHTService.NotJoined ? "\(error)" : "the DHT did not answer: \(error)")
        }
        if case .failed(let f) = outcome { throw .unavailable(f.description) }
        return outcome
    }

    /// Fetches a BEP 44 item; `.itemNotFound` when no node has it.
    public func dhtGet(_ request: DHTReport.GetRequest) async throws(SessionError) -> DHTReport.Item {
        let (target, salt) = try request.lookup()
        guard case .item(_, let item, _) = try await self.runDHT(.get(target: target, salt: salt), joinFirst: true) else {
            throw .internalError("unexpected answer")
        }
        guard let item else { throw .itemNotFound(target: "\(target)") }
        return DHTReport.Item(item)
    }

    /// Stores a BEP 44 item the caller made (and signed, if mutable) on the nodes closest to its target.
    public func dhtPut(_ request: DHTReport.PutRequest) async throws(SessionError) -> DHTReport.Stored {
        let item = try request.item()
        guard case .stored(let target, let accepted, let refusals) = try await self.runDHT(.put(item, cas: request.cas),
            joinFirst: true)
        else { throw .internalError("unexpected answer") }
        return DHTReport.Stored(target: target, acceptedBy: accepted, refusals: refusals)
    }

    public func dhtStats() async throws(SessionError) -> DHTReport.Stats {
        guard let dht = self.dht, let stats = await dht.stats() else { throw .dhtOff }
        return DHTReport.Stats(stats)
    }
}
