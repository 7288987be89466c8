// The signed announce a node sends an index node: the torrents it shares, under its ed25519 key (docs/api.md,
// "The index node"). Pure: no clock (the time is the caller's), no I/O.
import Bencode
import Crypto
import Foundation

/// Why an index node refuses an announce's bytes.
public enum IndexAnnounceError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The body is longer than `IndexAnnounce.maxBytes`.
    case tooLarge(limit: Int)
    /// It lists more than `IndexAnnounce.maxTorrents` torrents.
    case tooManyTorrents(count: Int, limit: Int)
    /// It is not an announce: what is wrong with it.
    case malformed(String)
    /// The signature is not the key's over the payload.
    case badSignature

    public var description: String {
        switch self {
        case .tooLarge(let limit): "an announce is at most \(limit) bytes"
        case .tooManyTorrents(let count, let limit): "an announce lists at most \(limit) torrents, not \(count)"
        case .malformed(let why): "not an announce: \(why)"
        case .badSignature: "the signature is not the key's over the payload"
        }
    }
}

/// What a node shares, as it tells an index node: its peer port and its torrents, signed with its ed25519 key.
///
/// On the wire (the body of `POST /announce`) an announce is a bencoded dictionary of two byte strings,
/// `{payload: <bencoded dictionary>, signature: <64 bytes>}`. The signature is ed25519 over the payload's bytes
/// exactly as sent: nothing is re-encoded or put in a canonical form to check it. The payload is
///
///     {key: <32-byte ed25519 public key>, port: <the node's peer port>, time: <Unix seconds>, v: 1,
///      torrents: [{info_hash: <20 bytes, or 32 for a v2-only torrent>, name: <UTF-8>, size: <bytes>,
///                  files: <count>, seed: <1 when the node has it all, else 0>}, …]}
///
/// The peer address is the port on the address the announce came from: an announce cannot send the index node's
/// checks (or searchers) to anyone else. `time` makes a replay stale (`AnnounceGate`).
public struct IndexAnnounce: Sendable, Equatable {
    public struct Torrent: Sendable, Hashable {
        public var infoHash: [UInt8]
        public var name: String
        /// Bytes of payload (as `IndexEntry.size` and `RemoteResults.matches` count them).
        public var size: Int64
        public var files: Int
        /// The announcer has every piece.
        public var seeding: Bool

        public init(infoHash: [UInt8], name: String, size: Int64, files: Int, seeding: Bool) {
            self.infoHash = infoHash
            self.name = name
            self.size = size
            self.files = files
            self.seeding = seeding
        }
    }

    /// The ed25519 public key (32 bytes): who announces.
    public var publicKey: [UInt8]
    public var port: Int
    /// Unix seconds when it was signed.
    public var time: Int64
    public var torrents: [Torrent]

    /// The largest body taken (checked before it is read) and the most torrents in one announce.
    public static let maxBytes = 256 << 10
    public static let maxTorrents = 1000
    /// Bytes kept of a torrent's name (longer ones are cut by the announcer, refused by the index node).
    public static let maxNameBytes = 1024
    public static let version: Int64 = 1

    public init(publicKey: [UInt8], port: Int, time: Int64, torrents: [Torrent]) {
        self.publicKey = publicKey
        self.port = port
        self.time = time
        self.torrents = torrents
    }

    /// The payload's bytes: what is signed.
    public var payload: [UInt8] {
        let rows: [BencodeValue] = self.torrents.map { t in
            .dictionary(BencodeDictionary([
                ("info_hash", .string(t.infoHash)), ("name", .text(t.name)), ("size", .integer(t.size)),
                ("files", .integer(Int64(t.files))), ("seed", .integer(t.seeding ? 1 : 0)),
            ]))
        }
        return BencodeEncoder.encode(.dictionary(BencodeDictionary([
            ("key", .string(self.publicKey)), ("port", .integer(Int64(self.port))), ("time", .integer(self.time)),
            ("torrents", .list(rows)), ("v", .integer(Self.version)),
        ])))
    }

    /// The body of `POST /announce`: the payload and `key`'s signature of it.
    public func signed(with key: Curve25519.Signing.PrivateKey) throws -> [UInt8] {
        let payload = self.payload
        let signature = Array(try key.signature(for: payload))
        return BencodeEncoder.encode(.dictionary(BencodeDictionary([
            ("payload", .string(payload)), ("signature", .string(signature)),
        ])))
    }

    /// An announce of `key`'s torrents: the first of `torrents` (at most `maxTorrents`, names cut to
    /// `maxNameBytes`) whose signed body fits in `maxBytes`.
    public static func fitting(_ torrents: [Torrent], key: Curve25519.Signing.PrivateKey, port: Int, time: Int64)
        throws -> (announce: IndexAnnounce, body: [UInt8])
    {
        var rows = torrents.prefix(Self.maxTorrents).map { t in
            var t = t
            if t.name.utf8.count > Self.maxNameBytes {
                t.name = String(decoding: t.name.utf8.prefix(Self.maxNameBytes), as: UTF8.self)
                // A cut through a character leaves a replacement character: drop it.
                while t.name.utf8.count > Self.maxNameBytes || t.name.hasSuffix("\u{FFFD}") { t.name.removeLast() }
            }
            return t
        }
        while true {
            let a = IndexAnnounce(publicKey: Array(key.publicKey.rawRepresentation), port: port, time: time,
                torrents: Array(rows))
            let body = try a.signed(with: key)
            if body.count <= Self.maxBytes || rows.isEmpty { return (a, body) }
            // Cut by the share of bytes over, and at least one row.
            let keep = max(0, min(rows.count - 1, rows.count * Self.maxBytes / body.count))
            rows = Array(rows.prefix(keep))
        }
    }

    /// Reads an announce's body and checks its signature.
    /// - Throws: `IndexAnnounceError`: too large, too many torrents, malformed, or a bad signature.
    public init(verifying body: [UInt8]) throws(IndexAnnounceError) {
        guard body.count <= Self.maxBytes else { throw .tooLarge(limit: Self.maxBytes) }
        let limits = BencodeLimits(maxDepth: 4, maxItems: 8 + 12 * Self.maxTorrents + 64,
            maxStringLength: Self.maxBytes, maxInputLength: Self.maxBytes)
        let envelope: BencodeValue
        do { envelope = try BencodeDecoder(limits: limits).decodeValue(body) } catch {
            throw .malformed("the body is not bencoded: \(error)")
        }
        guard let payload = envelope["payload"]?.bytes, let signature = envelope["signature"]?.bytes else {
            throw .malformed("expected a dictionary of payload and signature (byte strings)")
        }
        guard signature.count == 64 else { throw .malformed("the signature is \(signature.count) bytes, not 64") }
        let p: BencodeValue
        do { p = try BencodeDecoder(limits: limits).decodeValue(payload) } catch {
            throw .malformed("the payload is not bencoded: \(error)")
        }
        guard p["v"]?.integer == Self.version else { throw .malformed("v must be \(Self.version)") }
        guard let key = p["key"]?.bytes, key.count == 32 else { throw .malformed("key: expected 32 bytes") }
        guard let port = p["port"]?.integer, (1...65535).contains(port) else {
            throw .malformed("port: expected 1 to 65535")
        }
        guard let time = p["time"]?.integer else { throw .malformed("time: expected Unix seconds") }
        guard let list = p["torrents"]?.list else { throw .malformed("torrents: expected a list") }
        guard list.count <= Self.maxTorrents else {
            throw .tooManyTorrents(count: list.count, limit: Self.maxTorrents)
        }
        var torrents: [Torrent] = []
        var seen: Set<[UInt8]> = []
        for (i, row) in list.enumerated() {
            guard let ih = row["info_hash"]?.bytes, ih.count == 20 || ih.count == 32 else {
                throw .malformed("torrents[\(i)].info_hash: expected 20 or 32 bytes")
            }
            guard let raw = row["name"]?.bytes, !raw.isEmpty, raw.count <= Self.maxNameBytes,
                let name = String(validating: raw, as: UTF8.self)
            else { throw .malformed("torrents[\(i)].name: expected 1 to \(Self.maxNameBytes) bytes of UTF-8") }
            guard let size = row["size"]?.integer, size >= 0, size < 1 << 53 else {
                throw .malformed("torrents[\(i)].size: expected a number of bytes")
            }
            guard let files = row["files"]?.integer, (1...10_000_000).contains(files) else {
                throw .malformed("torrents[\(i)].files: expected 1 to 10000000")
            }
            let seed = row["seed"]?.integer ?? 0
            guard seed == 0 || seed == 1 else { throw .malformed("torrents[\(i)].seed: expected 0 or 1") }
            // The first row of a hash counts; a repeat is ignored.
            guard seen.insert(ih).inserted else { continue }
            torrents.append(Torrent(infoHash: ih, name: name, size: size, files: Int(files), seeding: seed == 1))
        }
        let publicKey: Curve25519.Signing.PublicKey
        do { publicKey = try Curve25519.Signing.PublicKey(rawRepresentation: key) } catch {
            throw .malformed("key: not an ed25519 public key")
        }
        guard publicKey.isValidSignature(signature, for: payload) else { throw .badSignature }
        self.init(publicKey: key, port: Int(port), time: time, torrents: torrents)
    }
}
