import Foundation
import Metainfo
import PeerBase

/// Where the node learned of a torrent. A row keeps every source it was seen from.
public struct IndexSource: OptionSet, Sendable, Hashable, Codable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }

    /// Created or shared by this node.
    public static let own = IndexSource(rawValue: 1 << 0)
    /// Added to this node by its user (a .torrent or a magnet link whose metadata arrived).
    public static let added = IndexSource(rawValue: 1 << 1)
    /// Metadata fetched for an info-hash seen on the DHT.
    public static let dht = IndexSource(rawValue: 1 << 2)
    /// A hit from a search neighbour.
    public static let peer = IndexSource(rawValue: 1 << 3)
    /// A hit from an index node.
    public static let indexNode = IndexSource(rawValue: 1 << 4)
    /// An item of a subscribed channel.
    public static let channel = IndexSource(rawValue: 1 << 5)

    static let names: [(IndexSource, String)] = [
        (.own, "own"), (.added, "added"), (.dht, "dht"), (.peer, "peer"), (.indexNode, "index"),
        (.channel, "channel"),
    ]

    /// The sources by name, for JSON and the terminal.
    public var names: [String] { Self.names.filter { self.contains($0.0) }.map(\.1) }

    public init(names: [String]) {
        self = Self.names.reduce(into: []) { set, pair in if names.contains(pair.1) { set.insert(pair.0) } }
    }
}

/// What the index keeps of one torrent.
public struct IndexEntry: Sendable, Hashable {
    /// The torrent's identifier: its v1 info-hash (20 bytes) when it has one, else its v2 hash (32 bytes).
    public var infoHash: [UInt8]
    public var name: String
    /// Bytes of payload (padding files excluded).
    public var size: Int64
    public var fileCount: Int
    /// The first few file paths (`IndexEntry.maxPaths`), `/`-joined; searched beside the name.
    public var paths: [String]
    public var source: IndexSource
    public var seeders: Int?
    public var leechers: Int?
    /// The metadata was checked against the info-hash (fetched, created or added here), not only claimed.
    public var verified: Bool
    /// Never evicted: the node's own torrents and those its user added.
    public var pinned: Bool
    public var seenAt: Date

    /// File paths kept per torrent, and characters kept of each.
    public static let maxPaths = 20
    public static let maxPathLength = 200
    /// Characters kept of a name.
    public static let maxNameLength = 400

    public init(
        infoHash: [UInt8], name: String, size: Int64, fileCount: Int, paths: [String] = [], source: IndexSource,
        seeders: Int? = nil, leechers: Int? = nil, verified: Bool, pinned: Bool = false, seenAt: Date = Date()
    ) {
        self.infoHash = infoHash
        self.name = name
        self.size = size
        self.fileCount = fileCount
        self.paths = paths
        self.source = source
        self.seeders = seeders
        self.leechers = leechers
        self.verified = verified
        self.pinned = pinned
        self.seenAt = seenAt
    }

    /// A torrent whose info dictionary the node holds: verified by construction.
    public init(metainfo t: TorrentMetainfo, source: IndexSource, pinned: Bool, seenAt: Date = Date()) {
        let files = t.files.filter { !$0.isPadding }
        self.init(
            infoHash: t.infoHashes.v1?.bytes ?? t.infoHashes.v2!.bytes, name: t.name, size: t.totalLength,
            fileCount: files.count, paths: t.isMultiFile ? files.prefix(Self.maxPaths).map(\.displayPath) : [],
            source: source, verified: true, pinned: pinned, seenAt: seenAt)
    }

    /// The entry as stored: NFC text (so decomposed accents index like composed ones), bounded lengths.
    var normalized: IndexEntry {
        var e = self
        e.name = Self.nfc(self.name, Self.maxNameLength)
        e.paths = self.paths.prefix(Self.maxPaths).map { Self.nfc($0, Self.maxPathLength) }
        e.size = max(0, self.size)
        e.fileCount = max(0, self.fileCount)
        return e
    }
}

extension IndexEntry {
    /// NFC, at most `limit` characters; ASCII (most names) is already both.
    static func nfc(_ text: String, _ limit: Int) -> String {
        if text.utf8.count <= limit, text.utf8.allSatisfy({ $0 < 0x80 }) { return text }
        return String(text.precomposedStringWithCanonicalMapping.prefix(limit))
    }
}

/// One search result.
public struct SearchHit: Sendable, Hashable, Codable {
    /// The v1 info-hash in hex (40 digits), or the v2 hash (64) for a v2-only torrent.
    public var infoHash: String
    public var name: String
    public var size: Int64
    public var files: Int
    public var paths: [String]
    public var seeders: Int?
    public var leechers: Int?
    /// Where it was seen: "own", "added", "dht", "peer", "index", "channel".
    public var sources: [String]
    public var verified: Bool
    public var firstSeen: Date
    public var lastSeen: Date
    /// The rank's score, higher first (relevance, then health and freshness); comparable within one search.
    public var score: Double

    enum CodingKeys: String, CodingKey {
        case name, size, files, paths, seeders, leechers, sources, verified, score, magnet, peers
        case infoHash = "info_hash"
        case firstSeen = "first_seen"
        case lastSeen = "last_seen"
    }

    public init(
        infoHash: String, name: String, size: Int64, files: Int, paths: [String], seeders: Int? = nil,
        leechers: Int? = nil, sources: [String], verified: Bool, firstSeen: Date, lastSeen: Date, score: Double
    ) {
        self.infoHash = infoHash
        self.name = name
        self.size = size
        self.files = files
        self.paths = paths
        self.seeders = seeders
        self.leechers = leechers
        self.sources = sources
        self.verified = verified
        self.firstSeen = firstSeen
        self.lastSeen = lastSeen
        self.score = score
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            infoHash: try c.decode(String.self, forKey: .infoHash), name: try c.decode(String.self, forKey: .name),
            size: try c.decode(Int64.self, forKey: .size), files: try c.decode(Int.self, forKey: .files),
            paths: try c.decode([String].self, forKey: .paths), seeders: try c.decodeIfPresent(Int.self, forKey: .seeders),
            leechers: try c.decodeIfPresent(Int.self, forKey: .leechers),
            sources: try c.decode([String].self, forKey: .sources), verified: try c.decode(Bool.self, forKey: .verified),
            firstSeen: try c.decode(Date.self, forKey: .firstSeen), lastSeen: try c.decode(Date.self, forKey: .lastSeen),
            score: try c.decode(Double.self, forKey: .score))
    }

    /// Every field, and the magnet link, so a client adds a hit as it is.
    public func encode(to encoder: any Encoder) throws { try self.encode(to: encoder, magnet: self.magnet, peers: nil) }

    /// Every field, with this magnet link, and the peers that have it when known (an index node's hits).
    func encode(to encoder: any Encoder, magnet: String, peers: [String]?) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(self.infoHash, forKey: .infoHash)
        try c.encode(self.name, forKey: .name)
        try c.encode(self.size, forKey: .size)
        try c.encode(self.files, forKey: .files)
        try c.encode(self.paths, forKey: .paths)
        try c.encodeIfPresent(self.seeders, forKey: .seeders)
        try c.encodeIfPresent(self.leechers, forKey: .leechers)
        try c.encode(self.sources, forKey: .sources)
        try c.encode(self.verified, forKey: .verified)
        try c.encode(self.firstSeen, forKey: .firstSeen)
        try c.encode(self.lastSeen, forKey: .lastSeen)
        try c.encode(self.score, forKey: .score)
        try c.encode(magnet, forKey: .magnet)
        try c.encodeIfPresent(peers, forKey: .peers)
    }

    /// A magnet link with the hash and name.
    public var magnet: String {
        let xt = self.infoHash.count == 64 ? "urn:btmh:1220\(self.infoHash)" : "urn:btih:\(self.infoHash)"
        let dn = self.name.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed.subtracting(["&", "=", "+"]))
        return "magnet:?xt=\(xt)" + (dn.map { "&dn=\($0)" } ?? "")
    }
}
