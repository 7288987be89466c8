import Bencode
import Crypto
import PeerBase

/// One revision of a channel: a BEP 49 feed torrent (v1, multi-file, `"bep49"` in its info dictionary).
///
/// Layout, as Peer writes it: the items in the order they were added, each a root file named after its id
/// (`<info-hash hex>.torrent` or `<post id hex>.post`) with a BEP 47 `sha1`; a padding file after each batch of
/// items so that the next batch starts on a piece boundary; then the metadata file (`meta/<sha1 hex>.bencode`)
/// and its padding. So revision N+1 has all of revision N's item pieces unchanged, at the same offsets, and a
/// subscriber fetches only the new items and the metadata's pieces. The torrent's name is the channel's id, so
/// every revision and archive of a channel shares one folder.
public struct FeedRevision: Sendable {
    public struct Entry: Hashable, Sendable {
        public enum Kind: String, Sendable { case torrent, post, meta, padding }
        public var kind: Kind
        /// Path below the torrent's root folder.
        public var path: [String]
        public var length: Int64
        public var offset: Int64
        /// BEP 47's SHA-1 of the file (nil for padding).
        public var sha1: [UInt8]?
        /// A torrent item's info-hash or a post's id, from its file name.
        public var id: [UInt8]?
    }

    public static let pieceLength = 16 * 1024

    /// The channel this revision names as its source (`"bep49": {"bep46 source": …}`); nil in an archive.
    public let link: ChannelLink?
    public let pieceLength: Int
    /// Every file, padding included, in torrent order.
    public let entries: [Entry]
    /// The v1 piece hashes.
    public let pieces: [UInt8]
    /// The next older archive (a magnet link), if items were retired.
    public let archiveNext: String?
    public let isArchive: Bool
    public let infoBytes: [UInt8]

    public var infoHash: [UInt8] { Array(Insecure.SHA1.hash(data: self.infoBytes)) }
    public var items: [Entry] { self.entries.filter { $0.kind == .torrent || $0.kind == .post } }
    public var meta: Entry? { self.entries.first { $0.kind == .meta } }
    /// Bytes a subscriber stores: every file but padding.
    public var storedBytes: Int64 { self.entries.reduce(0) { $0 + ($1.kind == .padding ? 0 : $1.length) } }
    public var totalLength: Int64 { self.entries.last.map { $0.offset + $0.length } ?? 0 }
    /// Where the item region ends: the metadata's offset (a piece boundary in feeds Peer writes).
    public var itemsEnd: Int64 { self.meta?.offset ?? self.totalLength }

    /// Reads and checks a revision's info dictionary before any of its content is fetched.
    /// - Parameter link: the channel it was reached through; the revision must name it as its source.
    public init(infoBytes: [UInt8], link expected: ChannelLink?, limits: ChannelLimits = .default)
        throws(ChannelRefusal)
    {
        guard infoBytes.count <= limits.maxInfoBytes else {
            throw .badRevision("the info dictionary is \(infoBytes.count) bytes, over \(limits.maxInfoBytes)")
        }
        let value: BencodeValue
        do {
            value = try BencodeDecoder(limits: BencodeLimits(
                maxDepth: 8, maxItems: 16 * (2 * max(limits.maxHeadItems, limits.maxArchiveItems) + 8),
                maxStringLength: limits.maxInfoBytes,
                maxInputLength: limits.maxInfoBytes)
            ).decodeValue(infoBytes)
        } catch { throw .badRevision("the info dictionary is not bencoded: \(error)") }
        guard let info = value.dictionary else { throw .badRevision("the info dictionary is not a dictionary") }
        guard let bep49 = info["bep49"]?.dictionary else { throw .badRevision("not a BEP 49 feed (no \"bep49\" key)") }
        let isArchive = bep49["archive"]?.integer == 1
        var link: ChannelLink?
        if let source = bep49["bep46 source"] {
            guard let text = source.utf8 else { throw .badRevision("bep46 source is not text") }
            link = try? ChannelLink(parsing: text)
            guard link != nil else { throw .badRevision("bep46 source is not a channel link") }
        }
        if let expected {
            guard isArchive || link == expected else {
                throw .badRevision("it names another channel as its source (\(link?.description ?? "none"))")
            }
            guard info["name"]?.utf8 == expected.id else { throw .badRevision("its name is not the channel's id") }
        }
        guard let pl = info["piece length"]?.integer, pl >= 16 * 1024, pl <= 16 << 20, pl & (pl - 1) == 0 else {
            throw .badRevision("piece length must be a power of two from 16 KiB to 16 MiB")
        }
        guard let pieces = info["pieces"]?.bytes, pieces.count % 20 == 0 else {
            throw .badRevision("no v1 piece hashes (channel revisions are v1 torrents)")
        }
        guard let files = info["files"]?.list, !files.isEmpty else { throw .badRevision("not a multi-file torrent") }

        var entries: [Entry] = []
        var offset: Int64 = 0
        var itemCount = 0
        var stored: Int64 = 0
        var hasMeta = false
        for f in files {
            guard let d = f.dictionary, let length = d["length"]?.integer, length >= 0,
                let pathList = d["path"]?.list, !pathList.isEmpty
            else { throw .badRevision("a file entry without length or path") }
            var path: [String] = []
            for c in pathList {
                guard let s = c.utf8, !s.isEmpty, s != ".", s != "..", !s.contains("/"), !s.contains("\0") else {
                    throw .badRevision("a file path that is not plain names")
                }
                path.append(s)
            }
            let isPadding = d["attr"]?.utf8?.contains("p") ?? false
            let sha1 = d["sha1"]?.bytes
            var entry = Entry(kind: .padding, path: path, length: length, offset: offset, sha1: nil, id: nil)
            if isPadding {
                guard path.first == ".pad" else { throw .badRevision("a padding file outside .pad/") }
                guard length < pl else { throw .badRevision("a padding file of a whole piece or more") }
            } else {
                guard let sha1, sha1.count == 20 else {
                    throw .badRevision("\(path.joined(separator: "/")) has no BEP 47 sha1")
                }
                entry.sha1 = sha1
                if path.count == 1, let (kind, id) = Self.item(named: path[0]) {
                    guard !hasMeta else { throw .badRevision("an item after the metadata") }
                    entry.kind = kind
                    entry.id = id
                    itemCount += 1
                    guard itemCount <= (isArchive ? limits.maxArchiveItems : limits.maxHeadItems) else {
                        throw .badRevision(isArchive ? "an archive of more than \(limits.maxArchiveItems) items"
                            : "more than \(limits.maxHeadItems) items (older ones belong in archives)")
                    }
                    guard length <= limits.maxItemBytes else {
                        throw .badRevision("\(path[0]) is \(length) bytes, over \(limits.maxItemBytes)")
                    }
                } else if path.count == 2, path[0] == "meta", path[1].hasSuffix(".bencode") {
                    guard !hasMeta else { throw .badRevision("more than one metadata file") }
                    hasMeta = true
                    guard length <= limits.maxMetaBytes else {
                        throw .badRevision("the metadata is \(length) bytes, over \(limits.maxMetaBytes)")
                    }
                    entry.kind = .meta
                } else {
                    throw .badRevision("\(path.joined(separator: "/")) is neither an item nor the metadata")
                }
                stored += length
                guard stored <= (isArchive ? limits.maxArchiveBytes : limits.maxHeadBytes) else {
                    throw .badRevision("its files hold more than \(isArchive ? limits.maxArchiveBytes : limits.maxHeadBytes) bytes")
                }
            }
            entries.append(entry)
            offset += length
        }
        guard isArchive || hasMeta else {
            throw .badRevision("no metadata file")
        }
        let pieceCount = (offset + pl - 1) / pl
        guard Int64(pieces.count / 20) == pieceCount else {
            throw .badRevision("\(pieces.count / 20) piece hashes for \(pieceCount) pieces")
        }
        self.link = link
        self.pieceLength = Int(pl)
        self.entries = entries
        self.pieces = pieces
        self.archiveNext = bep49["archive next"]?.utf8
        self.isArchive = isArchive
        self.infoBytes = infoBytes
    }

    /// Whether an info dictionary is a BEP 49 feed's (else a BEP 46 pointer names a plain torrent).
    public static func isFeed(infoBytes: [UInt8]) -> Bool {
        (try? BencodeDecoder().decodeValue(infoBytes))?["bep49"] != nil
    }

    /// A root file's kind and id: `<40 hex>.torrent` or `<40 hex>.post`.
    public static func item(named name: String) -> (Entry.Kind, [UInt8])? {
        for kind in [Entry.Kind.torrent, .post] {
            let suffix = "." + kind.rawValue
            if name.hasSuffix(suffix), name.utf8.count == 40 + suffix.utf8.count,
                let id = Hex.decode(name.dropLast(suffix.count))
            {
                return (kind, id)
            }
        }
        return nil
    }

    public static func fileName(kind: Entry.Kind, id: [UInt8]) -> String { "\(Hex.encode(id)).\(kind.rawValue)" }
}

/// Writes the next revision of a channel (the publisher's side).
///
/// New items go in chunks of at most `chunk`, each followed by padding to a piece boundary, so that the head can
/// always be cut on a piece boundary. When the head would hold more than `maxHeadItems`, its oldest chunks are
/// retired to an archive torrent (BEP 49 `"archive": 1`): the same files at the same offsets, so the archive's
/// piece hashes are the head's, and a subscriber that held them in the head holds them in the archive (one
/// folder per channel). The head names the newest archive (`archive next`), each archive the one before it.
public enum FeedBuilder {
    /// A new item: a .torrent file's bytes (its id the info-hash) or a post's (its id the post's).
    public struct Item: Sendable {
        public var kind: FeedRevision.Entry.Kind
        public var id: [UInt8]
        public var bytes: [UInt8]
        public init(kind: FeedRevision.Entry.Kind, id: [UInt8], bytes: [UInt8]) {
            self.kind = kind
            self.id = id
            self.bytes = bytes
        }
        public static func post(_ p: Post) -> Item { Item(kind: .post, id: p.id, bytes: p.bytes) }
    }

    /// What `build` made.
    public struct Built: Sendable {
        public var revision: FeedRevision
        /// The files it adds (the new items and the metadata), to write to the channel's folder.
        public var files: [(path: [String], bytes: [UInt8])]
        /// The archive its oldest items went to, if the head was over its limit.
        public var archive: FeedRevision?
    }

    /// Items between two paddings.
    public static let chunk = 500

    /// The next revision: `previous`'s items unchanged (their piece hashes reused, not recomputed), then `added`
    /// in chunks, then `meta` and its padding; the oldest chunks retired to an archive if the head is over
    /// `limits.maxHeadItems`.
    public static func build(
        link: ChannelLink, previous: FeedRevision?, added: [Item], meta: ChannelMeta,
        limits: ChannelLimits = .default
    ) throws(ChannelRefusal) -> Built {
        let pl = Int64(previous?.pieceLength ?? FeedRevision.pieceLength)
        // The item region as entries (offsets from 0) and its piece hashes.
        var entries: [FeedRevision.Entry] = []
        var pieces: [UInt8] = []
        var end: Int64 = 0
        if let previous {
            end = previous.itemsEnd
            guard end % pl == 0 else { throw .badRevision("the previous revision's items do not end on a piece") }
            entries = previous.entries.filter { $0.offset + $0.length <= end && $0.kind != .meta }
            pieces = Array(previous.pieces.prefix(Int(end / pl) * 20))
        }
        var out: [(path: [String], bytes: [UInt8])] = []
        var start = 0
        while start < added.count {
            var region: [UInt8] = []
            for item in added[start..<min(start + Self.chunk, added.count)] {
                let name = FeedRevision.fileName(kind: item.kind, id: item.id)
                entries.append(FeedRevision.Entry(
                    kind: item.kind, path: [name], length: Int64(item.bytes.count), offset: end + Int64(region.count),
                    sha1: Array(Insecure.SHA1.hash(data: item.bytes)), id: item.id))
                out.append(([name], item.bytes))
                region += item.bytes
            }
            Self.pad(&region, &entries, base: end, pieceLength: pl)
            pieces += Self.hashes(region, pieceLength: pl)
            end += Int64(region.count)
            start += Self.chunk
        }
        // Retire the oldest items, up to a piece boundary, if the head holds too many.
        var archive: FeedRevision?
        var archiveNext = previous?.archiveNext
        let count = entries.filter { $0.kind != .padding }.count
        if count > limits.maxHeadItems {
            var seen = 0
            var cut: Int64?
            for e in entries {
                if e.kind != .padding { seen += 1 }
                let after = e.offset + e.length
                if seen >= count - limits.maxHeadItems, after % pl == 0 {
                    cut = after
                    break
                }
            }
            guard let cut, cut < end else { throw .badRevision("the head cannot be cut on a piece boundary") }
            let retired = entries.filter { $0.offset + $0.length <= cut }
            var bep49 = BencodeDictionary()
            bep49["archive"] = 1
            if let next = archiveNext { bep49["archive next"] = .text(next) }
            let info = Self.info(link: link, bep49: bep49, entries: retired, pieceLength: pl,
                pieces: Array(pieces.prefix(Int(cut / pl) * 20)))
            let a = try FeedRevision(infoBytes: info, link: link, limits: limits)
            archive = a
            archiveNext = "magnet:?xt=urn:btih:\(Hex.encode(a.infoHash))"
            entries = entries.filter { $0.offset >= cut }.map { e in
                var e = e
                e.offset -= cut
                return e
            }
            pieces.removeFirst(Int(cut / pl) * 20)
            end -= cut
        }
        let metaBytes = meta.bytes
        let metaPath = ["meta", Hex.encode(Insecure.SHA1.hash(data: metaBytes)) + ".bencode"]
        entries.append(FeedRevision.Entry(kind: .meta, path: metaPath, length: Int64(metaBytes.count), offset: end,
            sha1: Array(Insecure.SHA1.hash(data: metaBytes)), id: nil))
        out.append((metaPath, metaBytes))
        var region = metaBytes
        Self.pad(&region, &entries, base: end, pieceLength: pl)
        pieces += Self.hashes(region, pieceLength: pl)
        var bep49 = BencodeDictionary()
        bep49["bep46 source"] = .text(link.description)
        if let archiveNext { bep49["archive next"] = .text(archiveNext) }
        let info = Self.info(link: link, bep49: bep49, entries: entries, pieceLength: pl, pieces: pieces)
        return Built(revision: try FeedRevision(infoBytes: info, link: link, limits: limits), files: out, archive: archive)
    }

    private static func info(
        link: ChannelLink, bep49: BencodeDictionary, entries: [FeedRevision.Entry], pieceLength: Int64, pieces: [UInt8]
    ) -> [UInt8] {
        var info = BencodeDictionary()
        info["bep49"] = .dictionary(bep49)
        info["files"] = .list(entries.map(Self.fileEntry))
        info["name"] = .text(link.id)
        info["piece length"] = .integer(pieceLength)
        info["pieces"] = .string(pieces)
        return BencodeValue.dictionary(info).encoded
    }

    private static func hashes(_ region: [UInt8], pieceLength pl: Int64) -> [UInt8] {
        var out: [UInt8] = []
        var i = 0
        while i < region.count {
            out += Insecure.SHA1.hash(data: region[i..<min(i + Int(pl), region.count)])
            i += Int(pl)
        }
        return out
    }

    private static func pad(
        _ region: inout [UInt8], _ entries: inout [FeedRevision.Entry], base: Int64, pieceLength pl: Int64
    ) {
        let rest = Int64(region.count) % pl
        guard rest != 0 else { return }
        let pad = pl - rest
        entries.append(FeedRevision.Entry(kind: .padding, path: [".pad", String(pad)], length: pad,
            offset: base + Int64(region.count), sha1: nil, id: nil))
        region += [UInt8](repeating: 0, count: Int(pad))
    }

    private static func fileEntry(_ e: FeedRevision.Entry) -> BencodeValue {
        var d = BencodeDictionary()
        d["length"] = .integer(e.length)
        d["path"] = .list(e.path.map { .text($0) })
        if e.kind == .padding { d["attr"] = "p" }
        if let s = e.sha1 { d["sha1"] = .string(s) }
        return .dictionary(d)
    }
}
