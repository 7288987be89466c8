// Issue 17: a live stream's address.
import Channels
import Crypto
import Metainfo
import PeerBase

/// A live stream's address: its source's ed25519 public key and a salt made from its name, written as a BEP 46
/// link that says it is live: `magnet:?xs=urn:btpk:<key hex>&s=<salt hex>&dn=<name>&x.live=1`. (A channel's link
/// has the same key and salt parts; `x.live=1` tells a stream's apart.)
///
/// The stream's id (`streamID`) is the SHA-1 of key and salt, BEP 46's DHT target: it is the info-hash its viewers
/// give in the BitTorrent handshake, the key its swarm announces to the DHT, and part of what every chunk's
/// signature covers.
public struct LiveLink: Hashable, Sendable, CustomStringConvertible {
    /// The key and salt, parsed and checked as a channel's are.
    public let key: ChannelLink
    public let name: String

    /// The link of the stream `name` published with `publicKey`.
    public init(publicKey: [UInt8], name: String) throws(LiveError) {
        do { self.key = try ChannelLink(publicKey: publicKey, salt: ChannelLink.salt(forName: name, prefix: "live/")) } catch {
            throw .badLink("\(error)")
        }
        self.name = name
    }

    /// Reads a link as `description` writes it; `x.live=1` must be there.
    public init(parsing text: String) throws(LiveError) {
        let s = String(text.filter { !$0.isWhitespace })  // a link has none: its name is percent-encoded
        guard s.hasPrefix("magnet:?") else { throw .badLink("a live stream's link starts magnet:?xs=urn:btpk:") }
        var live = false
        var name: String?
        for part in s.dropFirst("magnet:?".count).split(separator: "&") {
            let kv = part.split(separator: "=", maxSplits: 1).map(String.init)
            guard kv.count == 2 else { continue }
            if kv[0] == "x.live" { live = kv[1] == "1" }
            if kv[0] == "dn" { name = MagnetLink.percentDecode(kv[1], plusIsSpace: true) }
        }
        guard live else { throw .badLink("not a live stream's link (no x.live=1): a channel's, perhaps") }
        do { self.key = try ChannelLink(parsing: s) } catch { throw .badLink("\(error)") }
        self.name = name ?? ""
    }

    public var streamID: [UInt8] { self.key.target.bytes }

    public var publicKey: Curve25519.Signing.PublicKey {
        // ChannelLink checked that the bytes are an ed25519 key.
        try! Curve25519.Signing.PublicKey(rawRepresentation: self.key.publicKey)
    }

    public var description: String {
        "\(self.key)&dn=\(MagnetLink.percentEncode(self.name))&x.live=1"
    }
}

/// Why a live stream's link or message was refused.
public enum LiveError: Error, Equatable, Sendable, CustomStringConvertible {
    case badLink(String)
    case badMessage(String)

    public var description: String {
        switch self {
        case .badLink(let why): "bad live link: \(why)"
        case .badMessage(let why): "bad live message: \(why)"
        }
    }
}
