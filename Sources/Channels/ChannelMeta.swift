import Bencode
import PeerBase

/// A channel's metadata file (`meta/<sha1>.bencode` in each revision): what it is called, which other channels
/// it links to, which of its items were removed, and, for a group, who may post.
///
///     {"desc": text, "kind": "channel" | "group", "links": [channel links], "members": [32-byte keys],
///      "lic": {item id hex: licence}, "open": 1 (a group that also takes keys its members vouch for), "title": text,
///      "tomb": [20-byte item ids], "ts": seconds since 1970, "vouch": [32-byte keys]}
public struct ChannelMeta: Hashable, Sendable {
    public enum Kind: String, Sendable { case channel, group }

    public var title: String
    public var description: String
    public var kind: Kind
    /// Other channels this one recommends (feeds of feeds).
    public var links: [ChannelLink]
    /// Items removed: a torrent's info-hash or a post's id. State is head + archives − tombstones.
    public var tombstones: [[UInt8]]
    /// A group's authors (its founder's key is always one).
    public var members: [[UInt8]]
    /// A group that also accepts keys its members vouched for.
    public var open: Bool
    /// Keys this author vouches for, in an open group.
    public var vouches: [[UInt8]]
    /// Each torrent item's licence (an SPDX id or a URL), by the item's id in hex; posts carry their own.
    public var licenses: [String: String]
    public var time: Int64

    public init(
        title: String, description: String = "", kind: Kind = .channel, links: [ChannelLink] = [],
        tombstones: [[UInt8]] = [], members: [[UInt8]] = [], open: Bool = false, vouches: [[UInt8]] = [],
        licenses: [String: String] = [:], time: Int64
    ) {
        self.title = title
        self.description = description
        self.kind = kind
        self.links = links
        self.tombstones = tombstones
        self.members = members
        self.open = open
        self.vouches = vouches
        self.licenses = licenses
        self.time = time
    }

    public var bytes: [UInt8] {
        var d = BencodeDictionary()
        d["desc"] = .text(self.description)
        d["kind"] = .text(self.kind.rawValue)
        if !self.licenses.isEmpty {
            d["lic"] = .dictionary(BencodeDictionary(self.licenses.map { ($0.key, BencodeValue.text($0.value)) }))
        }
        if !self.links.isEmpty { d["links"] = .list(self.links.map { .text($0.description) }) }
        if !self.members.isEmpty { d["members"] = .list(self.members.map { .string($0) }) }
        if self.open { d["open"] = 1 }
        d["title"] = .text(self.title)
        if !self.tombstones.isEmpty { d["tomb"] = .list(self.tombstones.map { .string($0) }) }
        d["ts"] = .integer(self.time)
        if !self.vouches.isEmpty { d["vouch"] = .list(self.vouches.map { .string($0) }) }
        return BencodeValue.dictionary(d).encoded
    }

    public init(bytes: [UInt8], limits: ChannelLimits = .default) throws(ChannelRefusal) {
        guard Int64(bytes.count) <= limits.maxMetaBytes else {
            throw .badRevision("the metadata is \(bytes.count) bytes, over \(limits.maxMetaBytes)")
        }
        let value: BencodeValue
        do {
            value = try BencodeDecoder(limits: BencodeLimits(
                maxDepth: 4,
                maxItems: 2 * (limits.maxLinks + limits.maxMembers * 2 + limits.maxTombstones + limits.maxHeadItems) + 64,
                maxStringLength: Int(limits.maxMetaBytes), maxInputLength: Int(limits.maxMetaBytes))
            ).decodeValue(bytes)
        } catch { throw .badRevision("the metadata is not bencoded: \(error)") }
        guard let d = value.dictionary else { throw .badRevision("the metadata is not a dictionary") }
        func list(_ key: String, max: Int, length: Int) throws(ChannelRefusal) -> [[UInt8]] {
            guard let v = d[key] else { return [] }
            guard let l = v.list, l.count <= max else {
                throw .badRevision("metadata \(key): a list of at most \(max)")
            }
            var out: [[UInt8]] = []
            for e in l {
                guard let b = e.bytes, b.count == length else {
                    throw .badRevision("metadata \(key): each entry is \(length) bytes")
                }
                out.append(b)
            }
            return out
        }
        var links: [ChannelLink] = []
        if let v = d["links"] {
            guard let l = v.list, l.count <= limits.maxLinks else {
                throw .badRevision("metadata links: a list of at most \(limits.maxLinks)")
            }
            for e in l {
                guard let text = e.utf8, let link = try? ChannelLink(parsing: text) else {
                    throw .badRevision("metadata links: each is a channel link")
                }
                links.append(link)
            }
        }
        let kind = d["kind"]?.utf8.flatMap(Kind.init(rawValue:)) ?? .channel
        var licenses: [String: String] = [:]
        if let v = d["lic"] {
            guard let l = v.dictionary, l.count <= limits.maxHeadItems else {
                throw .badRevision("metadata lic: a dictionary of at most \(limits.maxHeadItems)")
            }
            for (k, value) in l {
                guard let text = value.utf8, text.utf8.count <= limits.maxLicenseBytes, k.count == 40 else {
                    throw .badRevision("metadata lic: item ids to licences of at most \(limits.maxLicenseBytes) bytes")
                }
                licenses[String(decoding: k, as: UTF8.self)] = text
            }
        }
        guard let title = d["title"]?.utf8, title.utf8.count <= limits.maxTitleBytes else {
            throw .badRevision("metadata title: UTF-8 of at most \(limits.maxTitleBytes) bytes")
        }
        guard let desc = d["desc"]?.utf8 ?? .some(""), desc.utf8.count <= limits.maxBodyBytes else {
            throw .badRevision("metadata desc: UTF-8 of at most \(limits.maxBodyBytes) bytes")
        }
        self.init(
            title: title, description: desc, kind: kind, links: links,
            tombstones: try list("tomb", max: limits.maxTombstones, length: 20),
            members: try list("members", max: limits.maxMembers, length: 32), open: d["open"]?.integer == 1,
            vouches: try list("vouch", max: limits.maxMembers, length: 32), licenses: licenses,
            time: d["ts"]?.integer ?? 0)
    }
}
