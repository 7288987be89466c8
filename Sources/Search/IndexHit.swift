import Foundation
import Metainfo

/// One row of an index node's answer (`GET /search`): the torrent as `/api/search` shows it, with `seeders` and
/// `leechers` counted over the nodes that announced it, and their peer addresses. Its `magnet` names them
/// (`x.pe`), so a client that adds it finds them without a tracker or the DHT.
public struct IndexHit: Sendable, Equatable, Codable {
    public var hit: SearchHit
    /// Peer addresses ("host:port") of the announcers, seeders first.
    public var peers: [String]

    /// Peers named in a hit's magnet link.
    public static let magnetPeers = 5

    public init(hit: SearchHit, peers: [String]) {
        self.hit = hit
        self.peers = peers
    }

    /// The hit's magnet link with its first peers.
    public var magnet: String { self.hit.magnet(peers: Array(self.peers.prefix(Self.magnetPeers))) }

    public init(from decoder: any Decoder) throws {
        self.hit = try SearchHit(from: decoder)
        self.peers = try decoder.container(keyedBy: SearchHit.CodingKeys.self).decode([String].self, forKey: .peers)
    }

    /// The keys of `SearchHit`, with the magnet link naming peers, and `peers`.
    public func encode(to encoder: any Encoder) throws {
        try self.hit.encode(to: encoder, magnet: self.magnet, peers: self.peers)
    }
}

/// An index node's answer to `GET /search`: the hits, best first (newest first for an empty query).
public struct IndexAnswer: Sendable, Equatable, Codable {
    public var query: String
    public var hits: [IndexHit]

    public init(query: String, hits: [IndexHit]) {
        self.query = query
        self.hits = hits
    }
}

extension SearchHit {
    /// The magnet link with peer addresses (`x.pe`) besides the hash and name.
    public func magnet(peers: [String]) -> String {
        guard !peers.isEmpty, var link = try? MagnetLink(parsing: self.magnet) else { return self.magnet }
        link.peers = peers
        return link.description
    }
}
