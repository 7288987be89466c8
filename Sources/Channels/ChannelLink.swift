import Crypto
import DHT
import PeerBase

/// A channel's address: an ed25519 public key and a salt (BEP 46), written
/// `magnet:?xs=urn:btpk:<public key hex>&s=<salt hex>`. One key owns many channels, one per salt. There is no
/// directory of names: a channel is subscribed to by its link or its key alone.
public struct ChannelLink: Hashable, Sendable, CustomStringConvertible {
    public let publicKey: [UInt8]
    public let salt: [UInt8]

    public init(publicKey: [UInt8], salt: [UInt8]) throws(ChannelRefusal) {
        guard publicKey.count == 32, (try? Curve25519.Signing.PublicKey(rawRepresentation: publicKey)) != nil else {
            throw .badLink("the key must be 32 bytes of an ed25519 public key")
        }
        guard salt.count <= DHTItem.maxSaltLength else {
            throw .badLink("the salt is \(salt.count) bytes, more than \(DHTItem.maxSaltLength)")
        }
        self.publicKey = publicKey
        self.salt = salt
    }

    /// The salt of a channel named `name`: `ch/` and the name, cut to BEP 44's 64 bytes on a character boundary.
    /// (A live stream's is `live/` and its name.)
    public static func salt(forName name: String, prefix: String = "ch/") -> [UInt8] {
        var out = Array(prefix.utf8)
        for c in name.unicodeScalars {
            let u = Array(String(c).utf8)
            guard out.count + u.count <= DHTItem.maxSaltLength else { break }
            out += u
        }
        return out
    }

    /// Reads a `magnet:?xs=urn:btpk:…&s=…` link, or 64 hex digits of a key (a channel with no salt).
    public init(parsing text: String) throws(ChannelRefusal) {
        let s = text.trimmedWhitespace
        if s.count == 64, let key = Hex.decode(s) {
            try self.init(publicKey: key, salt: [])
            return
        }
        guard s.hasPrefix("magnet:?") else { throw .badLink("expected magnet:?xs=urn:btpk:… or a 64-digit key") }
        var key: [UInt8]?
        var salt: [UInt8] = []
        for part in s.dropFirst("magnet:?".count).split(separator: "&") {
            let kv = part.split(separator: "=", maxSplits: 1).map(String.init)
            guard kv.count == 2 else { continue }
            switch kv[0] {
            case "xs":
                let prefix = "urn:btpk:"
                guard kv[1].lowercased().hasPrefix(prefix), kv[1].utf8.count == prefix.utf8.count + 64,
                    let k = Hex.decode(kv[1].dropFirst(prefix.count))
                else {
                    throw .badLink("xs must be urn:btpk: and 64 hex digits")
                }
                key = k
            case "s":
                guard let v = Hex.decode(kv[1]) else { throw .badLink("s must be hex") }
                salt = v
            default: continue
            }
        }
        guard let key else { throw .badLink("no xs=urn:btpk: key") }
        try self.init(publicKey: key, salt: salt)
    }

    /// Where the pointer lives in the DHT: SHA-1 of the key and the salt.
    public var target: NodeID { MutableItem.target(publicKey: self.publicKey, salt: self.salt) }

    /// The channel's id in the API, paths and folder names: its target in hex.
    public var id: String { Hex.encode(self.target.bytes) }

    public var keyHex: String { Hex.encode(self.publicKey) }

    public var description: String {
        "magnet:?xs=urn:btpk:\(self.keyHex)" + (self.salt.isEmpty ? "" : "&s=\(Hex.encode(self.salt))")
    }
}

extension String {
    fileprivate var trimmedWhitespace: Substring {
        var s = self[...]
        while let f = s.first, f.isWhitespace { s = s.dropFirst() }
        while let l = s.last, l.isWhitespace { s = s.dropLast() }
        return s
    }
}
