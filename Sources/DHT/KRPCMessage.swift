// BEP 5: KRPC, bencoded dictionaries over UDP: queries (y=q), responses (y=r) and errors (y=e).
// With BEP 32 (nodes6, want), BEP 42 (ip), BEP 43 (ro), BEP 44 (get, put) and BEP 51 (sample_infohashes).
import Bencode

/// One KRPC message: the envelope every message has, and its query, response or error.
///
/// `decode(_:limits:)` reads a datagram within `KRPCLimits`; `encoded` writes canonical bencode (keys sorted),
/// so `decode(encoded) == self` for every message the decoder accepts.
public struct KRPCMessage: Equatable, Sendable {
    public enum Kind: Equatable, Sendable {
        case query(KRPCQuery)
        case response(KRPCResponse)
        /// An error: a code (`KRPCErrorCode` names the known ones) and a message.
        case error(code: Int, message: String)
    }

    /// `t`: chosen by the querying node, echoed in the answer (1 to 8 bytes).
    public var transactionID: [UInt8]
    public var kind: Kind
    /// `v`: the sender's client version (BEP 20 two-letter code and two version bytes), when it sent one.
    public var version: [UInt8]?
    /// `ro` (BEP 43): the sender is a read-only node; it is not added to routing tables and gets no queries.
    public var readOnly: Bool
    /// `ip` (BEP 42): in an answer, the querying node's address and port as the answering node saw them.
    public var requesterAddress: DHTEndpoint?

    public init(
        transactionID: [UInt8], kind: Kind, version: [UInt8]? = nil, readOnly: Bool = false,
        requesterAddress: DHTEndpoint? = nil
    ) {
        self.transactionID = transactionID
        self.kind = kind
        self.version = version
        self.readOnly = readOnly
        self.requesterAddress = requesterAddress
    }

    /// The message as canonical bencode.
    public var encoded: [UInt8] { BencodeEncoder.encode(self.bencodeValue) }

    /// The message as a bencode dictionary.
    public var bencodeValue: BencodeValue {
        var d = BencodeDictionary()
        d["t"] = .string(self.transactionID)
        if let v = self.version { d["v"] = .string(v) }
        if self.readOnly { d["ro"] = .integer(1) }
        if let ip = self.requesterAddress { d["ip"] = .string(ip.compact) }
        switch self.kind {
        case .query(let q):
            d["y"] = "q"
            d["q"] = .text(q.method.name)
            d["a"] = .dictionary(q.arguments)
        case .response(let r):
            d["y"] = "r"
            d["r"] = .dictionary(r.dictionary)
        case .error(let code, let message):
            d["y"] = "e"
            d["e"] = .list([.integer(Int64(code)), .text(message)])
        }
        return .dictionary(d)
    }
}

/// Error codes of BEP 5 and BEP 44.
public enum KRPCErrorCode {
    public static let generic = 201
    public static let server = 202
    /// A malformed packet, invalid arguments or a bad token.
    public static let protocolError = 203
    public static let methodUnknown = 204
    /// BEP 44: the `v` field is too big.
    public static let messageTooBig = 205
    /// BEP 44: the signature does not verify.
    public static let invalidSignature = 206
    /// BEP 44: the salt is longer than 64 bytes.
    public static let saltTooBig = 207
    /// BEP 44: `cas` does not match the stored sequence number.
    public static let casMismatch = 301
    /// BEP 44: the sequence number is lower than (or equal to) the stored one.
    public static let sequenceTooOld = 302
}

/// Which compact node lists a `find_node`, `get_peers`, `get` or `sample_infohashes` asks for (BEP 32 `want`).
public struct Want: OptionSet, Hashable, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// `n4`: IPv4 nodes (`nodes`).
    public static let n4 = Want(rawValue: 1)
    /// `n6`: IPv6 nodes (`nodes6`).
    public static let n6 = Want(rawValue: 2)
}

/// A query: who sends it (`a.id`), the method with its arguments, and BEP 32's `want`.
public struct KRPCQuery: Equatable, Sendable {
    public enum Method: Equatable, Sendable {
        case ping
        case findNode(target: NodeID)
        case getPeers(infoHash: NodeID)
        /// With `impliedPort`, the receiver uses the datagram's source port instead of `port` (BEP 5).
        case announcePeer(infoHash: NodeID, port: UInt16, impliedPort: Bool, token: [UInt8])
        /// BEP 44 `get`; `sequence` asks for a mutable item only if it is newer than that.
        case get(target: NodeID, sequence: Int64?)
        /// BEP 44 `put`; `cas` (mutable items only) is the sequence number the writer expects to replace.
        case put(token: [UInt8], item: DHTItem, cas: Int64?)
        /// BEP 51.
        case sampleInfohashes(target: NodeID)
        /// A method this node does not know. If it carried a `target` or `info_hash`, it is answered like
        /// `find_node` (libtorrent's forward compatibility rule, which BEP 51 relies on); otherwise with error 204.
        case unknown(name: String, target: NodeID?)

        /// The `q` value.
        public var name: String {
            switch self {
            case .ping: "ping"
            case .findNode: "find_node"
            case .getPeers: "get_peers"
            case .announcePeer: "announce_peer"
            case .get: "get"
            case .put: "put"
            case .sampleInfohashes: "sample_infohashes"
            case .unknown(let name, _): name
            }
        }

        /// The ID whose neighbourhood the answer describes (nil for ping, announce_peer and put).
        public var target: NodeID? {
            switch self {
            case .findNode(let t), .getPeers(let t), .get(let t, _), .sampleInfohashes(let t): t
            case .unknown(_, let t): t
            case .ping, .announcePeer, .put: nil
            }
        }
    }

    /// `a.id`: the querying node's ID.
    public var sender: NodeID
    public var method: Method
    /// BEP 32 `want`; empty when absent.
    public var want: Want

    public init(sender: NodeID, method: Method, want: Want = []) {
        self.sender = sender
        self.method = method
        self.want = want
    }

    var arguments: BencodeDictionary {
        var a = BencodeDictionary()
        a["id"] = .string(self.sender.bytes)
        if !self.want.isEmpty {
            var w: [BencodeValue] = []
            if self.want.contains(.n4) { w.append("n4") }
            if self.want.contains(.n6) { w.append("n6") }
            a["want"] = .list(w)
        }
        switch self.method {
        case .ping: break
        case .findNode(let target), .sampleInfohashes(let target):
            a["target"] = .string(target.bytes)
        case .getPeers(let infoHash):
            a["info_hash"] = .string(infoHash.bytes)
        case .announcePeer(let infoHash, let port, let implied, let token):
            a["info_hash"] = .string(infoHash.bytes)
            a["port"] = .integer(Int64(port))
            if implied { a["implied_port"] = .integer(1) }
            a["token"] = .string(token)
        case .get(let target, let seq):
            a["target"] = .string(target.bytes)
            if let seq { a["seq"] = .integer(seq) }
        case .put(let token, let item, let cas):
            a["token"] = .string(token)
            a["v"] = item.value
            if case .mutable(let m) = item {
                a["k"] = .string(m.publicKey)
                a["seq"] = .integer(m.sequence)
                a["sig"] = .string(m.signature)
                if !m.salt.isEmpty { a["salt"] = .string(m.salt) }
                if let cas { a["cas"] = .integer(cas) }
            }
        case .unknown(_, let target):
            if let target { a["target"] = .string(target.bytes) }
        }
        return a
    }
}

/// A response's return values (`r`). Which keys are present depends on the query it answers, which the
/// message itself does not name, so every known key is optional here.
public struct KRPCResponse: Equatable, Sendable {
    /// `id`: the answering node's ID.
    public var sender: NodeID
    /// `nodes`: IPv4 compact node info.
    public var nodes: [NodeInfo]
    /// `nodes6` (BEP 32): IPv6 compact node info.
    public var nodes6: [NodeInfo]
    /// `token`: the write token for a later announce_peer or put.
    public var token: [UInt8]?
    /// `values`: peers (get_peers). Entries that are neither 6 nor 18 bytes are skipped when decoding.
    public var values: [DHTEndpoint]
    /// BEP 44 `v`: the item's value (canonical bencode).
    public var value: BencodeValue?
    /// BEP 44 `k`: a mutable item's ed25519 public key (32 bytes).
    public var publicKey: [UInt8]?
    /// BEP 44 `sig`: a mutable item's signature (64 bytes).
    public var signature: [UInt8]?
    /// BEP 44 `seq`: a mutable item's sequence number.
    public var sequence: Int64?
    /// BEP 51 `samples`: info-hashes the node stores.
    public var samples: [NodeID]?
    /// BEP 51 `num`: how many info-hashes the node stores.
    public var sampleCount: Int64?
    /// BEP 51 `interval`: seconds before asking this node for samples again.
    public var interval: Int64?

    public init(
        sender: NodeID, nodes: [NodeInfo] = [], nodes6: [NodeInfo] = [], token: [UInt8]? = nil,
        values: [DHTEndpoint] = [], value: BencodeValue? = nil, publicKey: [UInt8]? = nil, signature: [UInt8]? = nil,
        sequence: Int64? = nil, samples: [NodeID]? = nil, sampleCount: Int64? = nil, interval: Int64? = nil
    ) {
        self.sender = sender
        self.nodes = nodes
        self.nodes6 = nodes6
        self.token = token
        self.values = values
        self.value = value
        self.publicKey = publicKey
        self.signature = signature
        self.sequence = sequence
        self.samples = samples
        self.sampleCount = sampleCount
        self.interval = interval
    }

    var dictionary: BencodeDictionary {
        var r = BencodeDictionary()
        r["id"] = .string(self.sender.bytes)
        if !self.nodes.isEmpty { r["nodes"] = .string(Self.compact(self.nodes)) }
        if !self.nodes6.isEmpty { r["nodes6"] = .string(Self.compact(self.nodes6)) }
        if let token = self.token { r["token"] = .string(token) }
        if !self.values.isEmpty { r["values"] = .list(self.values.map { .string($0.compact) }) }
        if let v = self.value { r["v"] = v }
        if let k = self.publicKey { r["k"] = .string(k) }
        if let sig = self.signature { r["sig"] = .string(sig) }
        if let seq = self.sequence { r["seq"] = .integer(seq) }
        if let samples = self.samples {
            var bytes: [UInt8] = []
            bytes.reserveCapacity(samples.count * 20)
            for s in samples { s.append(to: &bytes) }
            r["samples"] = .string(bytes)
        }
        if let num = self.sampleCount { r["num"] = .integer(num) }
        if let interval = self.interval { r["interval"] = .integer(interval) }
        return r
    }

    static func compact(_ nodes: [NodeInfo]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(nodes.count * 38)
        for n in nodes { n.appendCompact(to: &out) }
        return out
    }
}
