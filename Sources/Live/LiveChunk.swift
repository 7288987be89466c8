// Issue 17: one chunk of a live stream, signed by the stream's source.
import Crypto
import PeerBase

/// The limits a live stream is held to.
public enum LiveLimits {
    /// The largest chunk: a second of a 2 Mbit/s stream. A bigger one is refused before its signature is checked.
    public static let maxPayload = 256 << 10
    /// An ed25519 signature.
    public static let signatureLength = 64
    /// Chunks a `have` message can describe below its newest (its bitmap's bits).
    public static let maxHaveWindow = 512
}

/// One chunk of a live stream: its number (0, 1, 2, … in the order the source cut them), the source's clock when it
/// cut it (microseconds since the Unix epoch, which is how a viewer measures its latency), the bytes, and the
/// source's ed25519 signature over all of them and the stream's id. Any viewer checks a chunk from anyone before
/// it plays or relays it; nobody but the source can make one.
public struct LiveChunk: Equatable, Sendable {
    /// What a player may do with a chunk. A stream whose source sends a `header` (a WebM file's EBML header, Info
    /// and Tracks) is joined at a `start` (a WebM cluster begins with the chunk's first byte), after the header:
    /// a player given bytes from the middle of a cluster, or no header, shows nothing. A stream without a header
    /// (raw bytes, MPEG-TS) is joined at any chunk.
    public enum Kind: UInt8, Sendable {
        case media = 0
        case start = 1
        case header = 2
    }

    public var number: UInt64
    public var time: UInt64
    public var kind: Kind
    public var payload: [UInt8]
    public var signature: [UInt8]

    public init(number: UInt64, time: UInt64, kind: Kind = .media, payload: [UInt8], signature: [UInt8]) {
        self.number = number
        self.time = time
        self.kind = kind
        self.payload = payload
        self.signature = signature
    }

    /// Cuts and signs a chunk of `stream` (its id: `LiveLink.streamID`).
    public init(number: UInt64, time: UInt64, kind: Kind = .media, payload: [UInt8], stream: [UInt8],
        signedBy key: Curve25519.Signing.PrivateKey) throws
    {
        self.number = number
        self.time = time
        self.kind = kind
        self.payload = payload
        self.signature = Array(try key.signature(for: Self.signed(stream: stream, number: number, time: time,
            kind: kind, payload: payload)))
    }

    /// Whether the source of `stream`, whose public key is `key`, signed this chunk.
    public func isSigned(by key: Curve25519.Signing.PublicKey, stream: [UInt8]) -> Bool {
        guard self.payload.count <= LiveLimits.maxPayload, self.signature.count == LiveLimits.signatureLength else {
            return false
        }
        return key.isValidSignature(self.signature,
            for: Self.signed(stream: stream, number: self.number, time: self.time, kind: self.kind, payload: self.payload))
    }

    /// What is signed: a tag for this use of the key, the stream's id, the number, the time, the kind and the
    /// payload's SHA-256 (the key may sign other things, such as a channel's DHT items: the tag keeps them apart).
    static func signed(stream: [UInt8], number: UInt64, time: UInt64, kind: Kind, payload: [UInt8]) -> [UInt8] {
        var out = Array("peer-live-1".utf8) + stream
        for v in [number, time] { for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: v >> UInt64(shift))) } }
        out.append(kind.rawValue)
        out += SHA256.hash(data: payload)
        return out
    }
}
