import Bencode
import Crypto
import PeerBase

/// A signed article, as in Usenet: a title, a body, its author's key, a time and the posts it answers (its
/// References, so that readers can thread). It names the channel or group it was posted to, so that it cannot
/// be replayed into another. Stored in a feed as `<id hex>.post`, the bencoding below:
///
///     {"a": author key (32), "b": body, "c": channel target (20), "l": licence (optional),
///      "r": [ids of the posts answered (20 each)], "t": title, "ts": seconds since 1970, "sig": ed25519 (64)}
///
/// The signature covers the dictionary's bencoding without `sig`; the post's id is the SHA-1 of all of it.
public struct Post: Hashable, Sendable {
    public var author: [UInt8]
    public var channel: [UInt8]
    public var title: String
    public var body: String
    public var time: Int64
    public var refs: [[UInt8]]
    /// An SPDX id or a licence's URL: what readers may do with it.
    public var license: String?
    public var signature: [UInt8]

    /// Signs a new post.
    public static func signed(
        title: String, body: String, channel: [UInt8], time: Int64, refs: [[UInt8]] = [], license: String? = nil,
        key: Curve25519.Signing.PrivateKey, limits: ChannelLimits = .default
    ) throws(ChannelRefusal) -> Post {
        var p = Post(
            author: Array(key.publicKey.rawRepresentation), channel: channel, title: title, body: body, time: time,
            refs: refs, license: license, signature: [])
        try p.checkLimits(limits)
        guard let sig = try? key.signature(for: p.signedBytes) else { throw .badPost("signing failed") }
        p.signature = Array(sig)
        return p
    }

    /// Reads and checks a post: its limits and its signature.
    public init(bytes: [UInt8], limits: ChannelLimits = .default) throws(ChannelRefusal) {
        let bencodeLimits = BencodeLimits(
            maxDepth: 4, maxItems: limits.maxRefs + 32, maxStringLength: limits.maxBodyBytes,
            maxInputLength: limits.maxBodyBytes + limits.maxTitleBytes + limits.maxLicenseBytes
                + 21 * limits.maxRefs + 512)
        let value: BencodeValue
        do { value = try BencodeDecoder(limits: bencodeLimits).decodeValue(bytes) } catch {
            throw .badPost("not a bencoded post: \(error)")
        }
        guard let d = value.dictionary else { throw .badPost("not a dictionary") }
        guard let author = d["a"]?.bytes, author.count == 32 else { throw .badPost("a: the author's 32-byte key") }
        guard let channel = d["c"]?.bytes, channel.count == 20 else { throw .badPost("c: the channel's 20-byte id") }
        guard let title = d["t"]?.utf8 else { throw .badPost("t: a UTF-8 title") }
        guard let body = d["b"]?.utf8 else { throw .badPost("b: a UTF-8 body") }
        guard let time = d["ts"]?.integer else { throw .badPost("ts: the time") }
        guard let sig = d["sig"]?.bytes, sig.count == 64 else { throw .badPost("sig: a 64-byte signature") }
        var refs: [[UInt8]] = []
        if let r = d["r"] {
            guard let list = r.list else { throw .badPost("r: a list of post ids") }
            for item in list {
                guard let id = item.bytes, id.count == 20 else { throw .badPost("r: each id is 20 bytes") }
                refs.append(id)
            }
        }
        var license: String?
        if let l = d["l"] {
            guard let text = l.utf8 else { throw .badPost("l: a UTF-8 licence") }
            license = text
        }
        self.init(
            author: author, channel: channel, title: title, body: body, time: time, refs: refs, license: license,
            signature: sig)
        try self.checkLimits(limits)
        // One bencoding per post, so that its id (the SHA-1 of its file) is the same everywhere.
        guard self.bytes == bytes else { throw .badPost("not in canonical bencoding (sorted keys, no extra keys)") }
        guard self.hasValidSignature else { throw .badPost("the signature does not verify under its author's key") }
    }

    init(author: [UInt8], channel: [UInt8], title: String, body: String, time: Int64, refs: [[UInt8]],
        license: String?, signature: [UInt8])
    {
        self.author = author
        self.channel = channel
        self.title = title
        self.body = body
        self.time = time
        self.refs = refs
        self.license = license
        self.signature = signature
    }

    private func checkLimits(_ limits: ChannelLimits) throws(ChannelRefusal) {
        guard self.title.utf8.count <= limits.maxTitleBytes else {
            throw .badPost("the title is \(self.title.utf8.count) bytes, over \(limits.maxTitleBytes)")
        }
        guard self.body.utf8.count <= limits.maxBodyBytes else {
            throw .badPost("the body is \(self.body.utf8.count) bytes, over \(limits.maxBodyBytes)")
        }
        guard (self.license?.utf8.count ?? 0) <= limits.maxLicenseBytes else {
            throw .badPost("the licence is over \(limits.maxLicenseBytes) bytes")
        }
        guard self.refs.count <= limits.maxRefs else {
            throw .badPost("it answers \(self.refs.count) posts, over \(limits.maxRefs)")
        }
        guard self.refs.allSatisfy({ $0.count == 20 }) else { throw .badPost("r: each id is 20 bytes") }
        guard self.channel.count == 20 else { throw .badPost("c: the channel's 20-byte id") }
    }

    private var unsigned: BencodeDictionary {
        var d = BencodeDictionary()
        d["a"] = .string(self.author)
        d["b"] = .text(self.body)
        d["c"] = .string(self.channel)
        if let l = self.license { d["l"] = .text(l) }
        if !self.refs.isEmpty { d["r"] = .list(self.refs.map { .string($0) }) }
        d["t"] = .text(self.title)
        d["ts"] = .integer(self.time)
        return d
    }

    /// The bytes the signature covers.
    public var signedBytes: [UInt8] { BencodeValue.dictionary(self.unsigned).encoded }

    /// The post as stored in a feed.
    public var bytes: [UInt8] {
        var d = self.unsigned
        d["sig"] = .string(self.signature)
        return BencodeValue.dictionary(d).encoded
    }

    /// SHA-1 of `bytes`: how other posts refer to this one, and its file name in a feed.
    public var id: [UInt8] { Array(Insecure.SHA1.hash(data: self.bytes)) }

    public var hasValidSignature: Bool {
        guard self.signature.count == 64, let key = try? Curve25519.Signing.PublicKey(rawRepresentation: self.author)
        else { return false }
        return key.isValidSignature(self.signature, for: self.signedBytes)
    }
}
