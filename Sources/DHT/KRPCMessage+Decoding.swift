// BEP 5 (with 32, 42, 43, 44, 51): reading KRPC datagrams, bounded before anything is allocated.
import Bencode

/// Bounds on what the KRPC decoder accepts.
public struct KRPCLimits: Equatable, Sendable {
    /// Longest datagram decoded at all. BEP 32 asks nodes to send at most 1024 bytes and to receive more
    /// "in the interest of robustness"; the largest legitimate message (a BEP 44 `get` answer with a
    /// 1000-byte value and both node lists) stays under 2048.
    public var maxDatagramLength: Int
    /// Longest transaction id (`t`); longer ones are refused without an answer, since echoing them would let
    /// a sender inflate our replies.
    public var maxTransactionIDLength: Int
    /// Most entries in one `nodes` or `nodes6` string.
    public var maxNodes: Int
    /// Most entries in a `values` list.
    public var maxValues: Int
    /// Most info-hashes in a `samples` string.
    public var maxSamples: Int
    /// Longest `token`.
    public var maxTokenLength: Int

    public init(
        maxDatagramLength: Int = 2048, maxTransactionIDLength: Int = 8, maxNodes: Int = 64, maxValues: Int = 200,
        maxSamples: Int = 100, maxTokenLength: Int = 64
    ) {
        self.maxDatagramLength = maxDatagramLength
        self.maxTransactionIDLength = maxTransactionIDLength
        self.maxNodes = maxNodes
        self.maxValues = maxValues
        self.maxSamples = maxSamples
        self.maxTokenLength = maxTokenLength
    }

    public static let `default` = KRPCLimits()

    var bencode: BencodeLimits {
        BencodeLimits(
            maxDepth: 32, maxItems: self.maxDatagramLength, maxStringLength: self.maxDatagramLength,
            maxInputLength: self.maxDatagramLength)
    }
}

extension KRPCMessage {
    /// Decodes one datagram.
    ///
    /// Unknown keys are ignored. `t` must be 1 to `maxTransactionIDLength` bytes. A query with a known envelope
    /// but bad arguments throws `.invalidQuery` carrying its transaction id; anything else malformed throws the
    /// specific error. A `values` entry of the wrong length is skipped; a `nodes`, `nodes6` or `samples` string
    /// whose length is not a multiple of the entry size is refused.
    /// - Throws: `DHTError`.
    public static func decode(_ bytes: [UInt8], limits: KRPCLimits = .default) throws(DHTError) -> KRPCMessage {
        guard bytes.count <= limits.maxDatagramLength else {
            throw .datagramTooLong(length: bytes.count, limit: limits.maxDatagramLength)
        }
        let root: BencodeNode
        do {
            root = try BencodeDecoder(limits: limits.bencode).decode(bytes)
        } catch {
            throw .bencode(error)
        }
        let top = try Fields(root, context: "message")
        guard let t = try top.bytes("t") else { throw .missingKey("t") }
        guard !t.isEmpty && t.count <= limits.maxTransactionIDLength else { throw .transactionIDLength(t.count) }
        guard let y = try top.bytes("y") else { throw .missingKey("y") }
        // Envelope extras are advisory: a wrong type or length is ignored rather than refused.
        var version: [UInt8]? = nil
        if case .string(let v)? = top["v"]?.kind, v.count <= 16 { version = v }
        var readOnly = false
        if case .integer(let ro)? = top["ro"]?.kind { readOnly = ro == 1 }
        var ip: DHTEndpoint? = nil
        if case .string(let b)? = top["ip"]?.kind { ip = DHTEndpoint(compact: b) }

        let kind: Kind
        switch y {
        case [UInt8(ascii: "q")]:
            guard let q = try top.bytes("q") else { throw .missingKey("q") }
            let name = Self.text(q, limit: 32)
            do {
                kind = .query(try Self.query(name: name, top: top, limits: limits))
            } catch {
                throw .invalidQuery(transactionID: t, method: name, reason: error)
            }
        case [UInt8(ascii: "r")]:
            guard let r = top["r"] else { throw .missingKey("r") }
            kind = .response(try Self.response(try Fields(r, context: "r"), limits: limits))
        case [UInt8(ascii: "e")]:
            guard let e = top["e"] else { throw .missingKey("e") }
            let (code, message) = try Self.errorBody(e)
            kind = .error(code: code, message: message)
        default:
            throw .unknownMessageType(String(decoding: y.prefix(16), as: UTF8.self))
        }
        return KRPCMessage(transactionID: t, kind: kind, version: version, readOnly: readOnly, requesterAddress: ip)
    }

    /// `e`: a list of an error code (within 32 bits) and, usually, a message.
    private static func errorBody(_ e: BencodeNode) throws(DHTError) -> (Int, String) {
        guard case .list(let list) = e.kind, !list.isEmpty, case .integer(let code) = list[0].kind,
            code >= Int64(Int32.min), code <= Int64(Int32.max)
        else { throw .wrongType(key: "e", expected: "a list [code, message]") }
        var message = ""
        if list.count > 1, case .string(let text) = list[1].kind { message = Self.text(text, limit: 256) }
        return (Int(code), message)
    }

    /// At most `limit` bytes of `bytes` as text (invalid UTF-8 replaced), never longer than `limit` in UTF-8, so
    /// that decoding the text's own encoding gives the same text.
    static func text(_ bytes: [UInt8], limit: Int) -> String {
        var s = String(decoding: bytes.prefix(limit), as: UTF8.self)
        while s.utf8.count > limit { s.removeLast() }
        return s
    }

    private static func query(name: String, top: Fields, limits: KRPCLimits) throws(DHTError) -> KRPCQuery {
        guard let aNode = top["a"] else { throw .missingKey("a") }
        let a = try Fields(aNode, context: "a")
        let sender = try a.id("id")
        var want: Want = []
        if let w = a["want"] {
            guard let items = w.list else { throw .wrongType(key: "want", expected: "a list of strings") }
            for item in items.prefix(8) {
                switch item.bytes {
                case Array("n4".utf8)?: want.insert(.n4)
                case Array("n6".utf8)?: want.insert(.n6)
                default: break  // BEP 32: other strings are silently ignored
                }
            }
        }
        let method: KRPCQuery.Method
        switch name {
        case "ping":
            method = .ping
        case "find_node":
            method = .findNode(target: try a.id("target"))
        case "get_peers":
            method = .getPeers(infoHash: try a.id("info_hash"))
        case "announce_peer":
            let infoHash = try a.id("info_hash")
            let implied = (try a.integer("implied_port") ?? 0) != 0
            guard let port = try a.integer("port") else { throw .missingKey("port") }
            guard port >= 0 && port <= 65535 && (implied || port > 0) else {
                throw .invalidValue(key: "port", reason: "\(port) is not a port")
            }
            method = .announcePeer(
                infoHash: infoHash, port: UInt16(port), impliedPort: implied, token: try a.token(limits))
        case "get":
            method = .get(target: try a.id("target"), sequence: try a.integer("seq"))
        case "put":
            let token = try a.token(limits)
            guard let v = a["v"] else { throw .missingKey("v") }
            guard v.isCanonicalDeep else { throw .invalidValue(key: "v", reason: "not canonical bencode") }
            let value = v.value
            if let k = try a.bytes("k") {
                guard k.count == 32 else { throw .badLength(key: "k", length: k.count, expected: "32") }
                guard let sig = try a.bytes("sig") else { throw .missingKey("sig") }
                guard sig.count == 64 else { throw .badLength(key: "sig", length: sig.count, expected: "64") }
                guard let seq = try a.integer("seq") else { throw .missingKey("seq") }
                guard seq >= 0 else { throw .invalidValue(key: "seq", reason: "negative") }
                let salt = try a.bytes("salt") ?? []
                let item = MutableItem(publicKey: k, salt: salt, sequence: seq, value: value, signature: sig)
                method = .put(token: token, item: .mutable(item), cas: try a.integer("cas"))
            } else {
                method = .put(token: token, item: .immutable(value), cas: nil)
            }
        case "sample_infohashes":
            method = .sampleInfohashes(target: try a.id("target"))
        default:
            var target = try a.optionalID("target")
            if target == nil { target = try a.optionalID("info_hash") }
            method = .unknown(name: name, target: target)
        }
        return KRPCQuery(sender: sender, method: method, want: want)
    }

    private static func response(_ r: Fields, limits: KRPCLimits) throws(DHTError) -> KRPCResponse {
        var out = KRPCResponse(sender: try r.id("id"))
        out.nodes = try r.nodes("nodes", family: .ipv4, limit: limits.maxNodes)
        out.nodes6 = try r.nodes("nodes6", family: .ipv6, limit: limits.maxNodes)
        if r["token"] != nil { out.token = try r.token(limits) }
        if let values = r["values"] {
            guard let items = values.list else { throw .wrongType(key: "values", expected: "a list of strings") }
            guard items.count <= limits.maxValues else {
                throw .tooMany(key: "values", count: items.count, limit: limits.maxValues)
            }
            out.values = items.compactMap { $0.bytes.flatMap { DHTEndpoint(compact: $0) } }
        }
        if let v = r["v"] {
            guard v.isCanonicalDeep else { throw .invalidValue(key: "v", reason: "not canonical bencode") }
            out.value = v.value
        }
        if let k = try r.bytes("k") {
            guard k.count == 32 else { throw .badLength(key: "k", length: k.count, expected: "32") }
            out.publicKey = k
        }
        if let sig = try r.bytes("sig") {
            guard sig.count == 64 else { throw .badLength(key: "sig", length: sig.count, expected: "64") }
            out.signature = sig
        }
        out.sequence = try r.integer("seq")
        if let samples = try r.bytes("samples") {
            guard samples.count % 20 == 0 else {
                throw .badLength(key: "samples", length: samples.count, expected: "a multiple of 20")
            }
            guard samples.count / 20 <= limits.maxSamples else {
                throw .tooMany(key: "samples", count: samples.count / 20, limit: limits.maxSamples)
            }
            out.samples = stride(from: 0, to: samples.count, by: 20).map { NodeID(bytes: samples[$0..<$0 + 20])! }
        }
        out.sampleCount = try r.integer("num")
        out.interval = try r.integer("interval")
        return out
    }
}

/// Typed access to a decoded dictionary's keys, throwing `DHTError` with the key's name.
private struct Fields {
    let entries: [BencodeNode.Entry]

    init(_ node: BencodeNode, context: String) throws(DHTError) {
        guard let entries = node.entries else { throw .notADictionary(context) }
        self.entries = entries
    }

    subscript(key: String) -> BencodeNode? {
        let k = Array(key.utf8)
        return self.entries.first(where: { $0.key == k })?.value
    }

    func bytes(_ key: String) throws(DHTError) -> [UInt8]? {
        guard let node = self[key] else { return nil }
        guard let b = node.bytes else { throw .wrongType(key: key, expected: "a string") }
        return b
    }

    func integer(_ key: String) throws(DHTError) -> Int64? {
        guard let node = self[key] else { return nil }
        guard let v = node.integer else { throw .wrongType(key: key, expected: "an integer") }
        return v
    }

    func optionalID(_ key: String) throws(DHTError) -> NodeID? {
        guard let b = try self.bytes(key) else { return nil }
        guard let id = NodeID(bytes: b) else { throw .badLength(key: key, length: b.count, expected: "20") }
        return id
    }

    func id(_ key: String) throws(DHTError) -> NodeID {
        guard let id = try self.optionalID(key) else { throw .missingKey(key) }
        return id
    }

    func token(_ limits: KRPCLimits) throws(DHTError) -> [UInt8] {
        guard let t = try self.bytes("token") else { throw .missingKey("token") }
        guard t.count <= limits.maxTokenLength else {
            throw .badLength(key: "token", length: t.count, expected: "at most \(limits.maxTokenLength)")
        }
        return t
    }

    func nodes(_ key: String, family: DHTEndpoint.Family, limit: Int) throws(DHTError) -> [NodeInfo] {
        guard let b = try self.bytes(key) else { return [] }
        let size = family.compactNodeLength
        guard b.count % size == 0 else {
            throw .badLength(key: key, length: b.count, expected: "a multiple of \(size)")
        }
        guard b.count / size <= limit else { throw .tooMany(key: key, count: b.count / size, limit: limit) }
        return stride(from: 0, to: b.count, by: size).map { NodeInfo(compact: b[$0..<$0 + size])! }
    }
}
