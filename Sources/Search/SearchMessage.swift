// peer_search: keyword search between Peer nodes, a BEP 10 extension (docs/ARCHITECTURE.md, "Search").
import Bencode
import PeerBase

/// A claim one node makes of a torrent it holds: enough to show it, and to check it against the info
/// dictionary it names.
public struct RemoteHit: Sendable, Hashable {
    /// The v1 info-hash (20 bytes), or a v2-only torrent's hash (32).
    public var infoHash: [UInt8]
    public var name: String
    public var size: Int64
    public var files: Int
    public var seeders: Int?

    public init(infoHash: [UInt8], name: String, size: Int64, files: Int, seeders: Int? = nil) {
        self.infoHash = infoHash
        self.name = name
        self.size = size
        self.files = files
        self.seeders = seeders
    }
}

/// What went wrong decoding a peer_search message; the sender is dropped.
public struct SearchWireError: Error, Equatable, Sendable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// The messages of the `peer_search` extension, each a bencoded dictionary in one BEP 10 extended message.
///
/// - `{y: "q", t: <id>, q: <words, ≤ 512 bytes>, n: <at most this many hits, ≤ 50>}`: a query. Never relayed.
/// - `{y: "r", t, r: [{ih, n: name, s: size, f: files, se?: seeders}]}`: the answer, from the responder's own
///   torrents only (those whose info dictionary it holds and serves), at most 50.
/// - `{y: "b", t, w: <seconds>}`: busy; ask again after `w` seconds, or not at all.
/// - `{y: "m", t, ih, p: <piece>}`: send me 16 KiB piece `p` of this torrent's info dictionary.
/// - `{y: "d", t, ih, p, z: <total size>, v: <bytes>}`: a piece of it; `{y: "x", t, ih, p}`: I will not.
///
/// `t` is the asker's 64-bit id for the exchange, echoed back. A message over `maxSize` bytes, or that is not
/// one of these, ends the connection.
public enum SearchMessage: Sendable, Equatable {
    case query(id: UInt64, text: String, max: Int)
    case hits(id: UInt64, [RemoteHit])
    case busy(id: UInt64, retryAfter: Int)
    case metadataRequest(id: UInt64, infoHash: [UInt8], piece: Int)
    case metadata(id: UInt64, infoHash: [UInt8], piece: Int, total: Int, bytes: [UInt8])
    case metadataReject(id: UInt64, infoHash: [UInt8], piece: Int)

    /// The name in the BEP 10 handshake's `m`.
    public static let name = "peer_search"
    /// One piece of an info dictionary (as BEP 9's).
    public static let pieceSize = 16 << 10
    /// The largest info dictionary served or fetched (as libtorrent's default metadata limit).
    public static let maxMetadata = 4 << 20
    /// A message: a piece with its header, or 50 hits.
    public static let maxSize = 20 << 10
    /// Hits in one answer, and characters of a hit's name.
    public static let maxHits = 50
    public static let maxNameBytes = 200

    public init(decoding bytes: [UInt8]) throws(SearchWireError) {
        guard bytes.count <= Self.maxSize else { throw SearchWireError("a peer_search message of \(bytes.count) bytes") }
        let value: BencodeValue
        do { value = try BencodeDecoder(limits: .message).decodeValue(bytes) } catch {
            throw SearchWireError("peer_search: \(error)")
        }
        guard let d = value.dictionary, let y = d["y"]?.utf8, let tBytes = d["t"]?.bytes, tBytes.count == 8 else {
            throw SearchWireError("peer_search: no y or t")
        }
        let t = tBytes.reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        func hash() throws(SearchWireError) -> [UInt8] {
            guard let ih = d["ih"]?.bytes, ih.count == 20 || ih.count == 32 else { throw SearchWireError("peer_search: bad ih") }
            return ih
        }
        func piece() throws(SearchWireError) -> Int {
            guard let p = d["p"]?.integer, p >= 0, p < Int64(Self.maxMetadata / Self.pieceSize) else {
                throw SearchWireError("peer_search: bad piece")
            }
            return Int(p)
        }
        switch y {
        case "q":
            guard let q = d["q"]?.utf8, !q.isEmpty, q.utf8.count <= 512 else { throw SearchWireError("peer_search: bad query") }
            let n = d["n"]?.integer ?? Int64(Self.maxHits)
            self = .query(id: t, text: q, max: Int(max(1, min(n, Int64(Self.maxHits)))))
        case "r":
            guard let list = d["r"]?.list, list.count <= Self.maxHits else { throw SearchWireError("peer_search: bad hits") }
            var hits: [RemoteHit] = []
            for item in list {
                guard let h = item.dictionary, let ih = h["ih"]?.bytes, ih.count == 20 || ih.count == 32,
                    let name = h["n"]?.utf8, !name.isEmpty, name.utf8.count <= Self.maxNameBytes,
                    let size = h["s"]?.integer, size >= 0, let files = h["f"]?.integer, files >= 0, files <= 1 << 24
                else { throw SearchWireError("peer_search: a malformed hit") }
                let seeders = h["se"]?.integer.flatMap { $0 >= 0 && $0 <= 1 << 30 ? Int($0) : nil }
                hits.append(RemoteHit(infoHash: ih, name: name, size: size, files: Int(files), seeders: seeders))
            }
            self = .hits(id: t, hits)
        case "b":
            self = .busy(id: t, retryAfter: Int(max(0, min(d["w"]?.integer ?? 5, 3600))))
        case "m":
            self = .metadataRequest(id: t, infoHash: try hash(), piece: try piece())
        case "d":
            guard let z = d["z"]?.integer, z > 0, z <= Int64(Self.maxMetadata), let v = d["v"]?.bytes,
                v.count <= Self.pieceSize
            else { throw SearchWireError("peer_search: bad metadata piece") }
            self = .metadata(id: t, infoHash: try hash(), piece: try piece(), total: Int(z), bytes: v)
        case "x":
            self = .metadataReject(id: t, infoHash: try hash(), piece: try piece())
        default:
            throw SearchWireError("peer_search: unknown message \(y.debugDescription)")
        }
    }

    public func encoded() -> [UInt8] {
        var d = BencodeDictionary()
        func t(_ id: UInt64) -> BencodeValue { .string((0..<8).map { UInt8(truncatingIfNeeded: id >> (56 - 8 * $0)) }) }
        switch self {
        case .query(let id, let text, let max):
            d["y"] = .text("q")
            d["t"] = t(id)
            d["q"] = .text(text)
            d["n"] = .integer(Int64(max))
        case .hits(let id, let hits):
            d["y"] = .text("r")
            d["t"] = t(id)
            d["r"] = .list(hits.prefix(Self.maxHits).map { h in
                var e = BencodeDictionary()
                e["ih"] = .string(h.infoHash)
                e["n"] = .text(Self.clip(h.name))
                e["s"] = .integer(h.size)
                e["f"] = .integer(Int64(h.files))
                if let s = h.seeders { e["se"] = .integer(Int64(s)) }
                return .dictionary(e)
            })
        case .busy(let id, let retry):
            d["y"] = .text("b")
            d["t"] = t(id)
            d["w"] = .integer(Int64(retry))
        case .metadataRequest(let id, let ih, let piece):
            d["y"] = .text("m")
            d["t"] = t(id)
            d["ih"] = .string(ih)
            d["p"] = .integer(Int64(piece))
        case .metadata(let id, let ih, let piece, let total, let bytes):
            d["y"] = .text("d")
            d["t"] = t(id)
            d["ih"] = .string(ih)
            d["p"] = .integer(Int64(piece))
            d["z"] = .integer(Int64(total))
            d["v"] = .string(bytes)
        case .metadataReject(let id, let ih, let piece):
            d["y"] = .text("x")
            d["t"] = t(id)
            d["ih"] = .string(ih)
            d["p"] = .integer(Int64(piece))
        }
        return BencodeEncoder.encode(.dictionary(d))
    }

    /// A name cut to `maxNameBytes` at a character boundary.
    static func clip(_ name: String) -> String {
        guard name.utf8.count > Self.maxNameBytes else { return name }
        var out = ""
        for ch in name {
            if out.utf8.count + ch.utf8.count > Self.maxNameBytes { break }
            out.append(ch)
        }
        return out
    }
}
