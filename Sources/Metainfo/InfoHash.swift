// Metainfo: .torrent files v1/v2/hybrid (BEP 3, 12, 19, 27, 47, 52), info-hashes, magnet links (BEP 9, 53),
// Merkle trees, path sanitizing and the pure half of torrent creation. No I/O: bytes in, values out.
import PeerBase

/// A v1 info-hash: the SHA-1 of the bencoded info dictionary.
public struct InfoHashV1: Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]

    /// - Precondition: `bytes.count == 20`.
    public init(_ bytes: [UInt8]) {
        precondition(bytes.count == 20, "a v1 info-hash has 20 bytes")
        self.bytes = bytes
    }

    /// Parses 40 hexadecimal digits.
    public init?(hex: some StringProtocol) {
        guard let b = Hex.decode(hex), b.count == 20 else { return nil }
        self.bytes = b
    }

    public var hex: String { Hex.encode(self.bytes) }
    public var description: String { self.hex }
}

/// A v2 info-hash: the SHA-256 of the bencoded info dictionary (BEP 52).
public struct InfoHashV2: Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]

    /// - Precondition: `bytes.count == 32`.
    public init(_ bytes: [UInt8]) {
        precondition(bytes.count == 32, "a v2 info-hash has 32 bytes")
        self.bytes = bytes
    }

    /// Parses 64 hexadecimal digits.
    public init?(hex: some StringProtocol) {
        guard let b = Hex.decode(hex), b.count == 32 else { return nil }
        self.bytes = b
    }

    /// The first 20 bytes: what v2 peers put in the handshake, the DHT and trackers.
    public var truncated: [UInt8] { Array(self.bytes.prefix(20)) }
    public var hex: String { Hex.encode(self.bytes) }
    public var description: String { self.hex }
}

/// The info-hashes of a torrent: v1, v2 or both (hybrid). At least one is present.
public struct InfoHashes: Hashable, Sendable {
    public var v1: InfoHashV1?
    public var v2: InfoHashV2?

    public init(v1: InfoHashV1?, v2: InfoHashV2?) {
        precondition(v1 != nil || v2 != nil, "a torrent has at least one info-hash")
        self.v1 = v1
        self.v2 = v2
    }

    /// The torrent's fixed identifier: the v1 hash in hex when there is one, else the full v2 hash in hex.
    public var id: String { self.v1?.hex ?? self.v2!.hex }
}

/// Which hash trees a torrent carries.
public enum TorrentVersion: String, Sendable, Codable, CaseIterable {
    case v1, v2, hybrid
}
