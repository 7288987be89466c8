import Bencode
import Crypto
import DHT
import Foundation
import PeerBase
import Testing

@testable import Channels

/// Links, posts, metadata and the feed layout of issue 15: what a subscriber accepts and refuses, and that a new
/// revision leaves every old piece as it was.
@Suite struct ChannelTests {
    let key = Curve25519.Signing.PrivateKey()
    var link: ChannelLink {
        try! ChannelLink(publicKey: Array(self.key.publicKey.rawRepresentation), salt: ChannelLink.salt(forName: "news"))
    }

    // MARK: Links

    @Test func aLinkReadsBackAndNamesItsTarget() throws {
        let l = self.link
        #expect(l.description == "magnet:?xs=urn:btpk:\(Hex.encode(l.publicKey))&s=\(Hex.encode(Array("ch/news".utf8)))")
        #expect(try ChannelLink(parsing: l.description) == l)
        #expect(try ChannelLink(parsing: "  " + l.description.uppercased().replacingMagnet() + "\n") == l)
        #expect(l.target == MutableItem.target(publicKey: l.publicKey, salt: Array("ch/news".utf8)))
        #expect(l.id == Hex.encode(l.target.bytes))
        // A bare key is a channel with no salt.
        let bare = try ChannelLink(parsing: Hex.encode(l.publicKey))
        #expect(bare.salt.isEmpty && bare.publicKey == l.publicKey)
    }

    @Test func badLinksAreRefusedWithTheirReason() {
        for (text, reason) in [
            ("magnet:?xt=urn:btih:" + String(repeating: "a", count: 40), "no xs=urn:btpk: key"),
            ("magnet:?xs=urn:btpk:1234", "xs must be urn:btpk: and 64 hex digits"),
            ("magnet:?xs=urn:btpk:" + String(repeating: "a", count: 64) + "&s=zz", "s must be hex"),
            ("https://example.com/feed", "expected magnet:?xs=urn:btpk:… or a 64-digit key"),
        ] {
            #expect(throws: ChannelRefusal.badLink(reason)) { try ChannelLink(parsing: text) }
        }
        #expect(throws: ChannelRefusal.self) {
            try ChannelLink(publicKey: Array(self.key.publicKey.rawRepresentation), salt: Array(repeating: 1, count: 65))
        }
    }

    @Test func aLongNameIsCutToTheSaltLimitOnACharacterBoundary() {
        let salt = ChannelLink.salt(forName: String(repeating: "é", count: 100))
        #expect(salt.count <= 64)
        #expect(String(validating: salt, as: UTF8.self) != nil)
    }

    // MARK: Posts

    @Test func aSignedPostReadsBackAndItsIdIsItsHash() throws {
        let p = try Post.signed(
            title: "Hello", body: "First post.\nŁódź", channel: self.link.target.bytes, time: 1_800_000_000,
            refs: [Array(repeating: 7, count: 20)], license: "CC-BY-4.0", key: self.key)
        let back = try Post(bytes: p.bytes)
        #expect(back == p)
        #expect(back.id == Array(Insecure.SHA1.hash(data: p.bytes)))
        #expect(back.license == "CC-BY-4.0" && back.refs.count == 1)
    }

    @Test func aForgedOrOversizedPostIsRefused() throws {
        var p = try Post.signed(title: "Hello", body: "x", channel: self.link.target.bytes, time: 1, key: self.key)
        p.body = "changed after signing"
        #expect(throws: ChannelRefusal.badPost("the signature does not verify under its author's key")) {
            try Post(bytes: p.bytes)
        }
        #expect(throws: ChannelRefusal.self) {
            try Post.signed(title: "t", body: String(repeating: "b", count: 65537), channel: self.link.target.bytes,
                time: 1, key: self.key)
        }
        // Someone else's key under the author's name.
        let other = Curve25519.Signing.PrivateKey()
        var q = try Post.signed(title: "Hello", body: "x", channel: self.link.target.bytes, time: 1, key: other)
        q.author = Array(self.key.publicKey.rawRepresentation)
        #expect(throws: ChannelRefusal.self) { try Post(bytes: q.bytes) }
        #expect(throws: ChannelRefusal.self) { try Post(bytes: Array("d1:ai1ee".utf8)) }
    }

    // MARK: Metadata

    @Test func metadataReadsBackAndItsListsAreBounded() throws {
        let member = Array(Curve25519.Signing.PrivateKey().publicKey.rawRepresentation)
        let m = ChannelMeta(
            title: "News", description: "d", kind: .group, links: [self.link], tombstones: [Array(repeating: 1, count: 20)],
            members: [member], open: true, vouches: [member], time: 5)
        #expect(try ChannelMeta(bytes: m.bytes) == m)
        var limits = ChannelLimits()
        limits.maxMembers = 0
        #expect(throws: ChannelRefusal.badRevision("metadata members: a list of at most 0")) {
            try ChannelMeta(bytes: m.bytes, limits: limits)
        }
    }

    // MARK: Feed revisions

    func post(_ n: Int) throws -> Post {
        try Post.signed(title: "Post \(n)", body: String(repeating: "body \(n) ", count: 50 + n),
            channel: self.link.target.bytes, time: Int64(n), key: self.key)
    }

    @Test func aNewRevisionKeepsEveryOldPieceAndAddsOnlyTheNewItemsAndTheMetadata() throws {
        let first = try (0..<30).map { try FeedBuilder.Item.post(self.post($0)) }
        let b1 = try FeedBuilder.build(link: self.link, previous: nil, added: first, meta: ChannelMeta(title: "News", time: 1))
        let (r1, files1) = (b1.revision, b1.files)
        #expect(r1.items.count == 30 && files1.count == 31)
        #expect(r1.meta!.offset % Int64(r1.pieceLength) == 0)
        #expect(r1.totalLength % Int64(r1.pieceLength) == 0)

        let more = try (30..<40).map { try FeedBuilder.Item.post(self.post($0)) }
        let b2 = try FeedBuilder.build(link: self.link, previous: r1, added: more, meta: ChannelMeta(title: "News", time: 2))
        let (r2, files2) = (b2.revision, b2.files)
        #expect(r2.items.count == 40 && files2.count == 11)
        // Every piece of the old item region is in the new revision, unchanged, at the same place.
        let oldItemPieces = Int(r1.itemsEnd) / r1.pieceLength
        #expect(Array(r2.pieces.prefix(oldItemPieces * 20)) == Array(r1.pieces.prefix(oldItemPieces * 20)))
        #expect(Array(r2.items.prefix(30)) == r1.items)
        // What a subscriber holding r1 fetches: at most the new bytes plus two pieces.
        let newBytes = files2.reduce(0) { $0 + $1.bytes.count }
        let fetched = r2.totalLength - r1.itemsEnd
        #expect(fetched <= Int64(newBytes + 2 * r2.pieceLength))
        // The hashes are the content's: rebuild the piece space from the files and check each piece.
        var space: [UInt8] = []
        let all = Dictionary(uniqueKeysWithValues: (files1 + files2).map { ($0.path, $0.bytes) })
        for e in r2.entries {
            space += e.kind == .padding ? [UInt8](repeating: 0, count: Int(e.length)) : all[e.path]!
            if let s = e.sha1 { #expect(Array(Insecure.SHA1.hash(data: all[e.path]!)) == s) }
        }
        for (i, start) in stride(from: 0, to: space.count, by: r2.pieceLength).enumerated() {
            let h = Array(Insecure.SHA1.hash(data: space[start..<min(start + r2.pieceLength, space.count)]))
            #expect(Array(r2.pieces[(i * 20)..<(i * 20 + 20)]) == h)
        }
        #expect(r2.link == self.link && r2.infoHash.count == 20)
    }

    @Test func aHeadOverItsLimitRetiresItsOldestChunksToAnArchiveWithTheSamePieces() throws {
        var limits = ChannelLimits()
        limits.maxHeadItems = 20
        let items = try (0..<45).map { try FeedBuilder.Item.post(self.post($0)) }
        // 45 items in one publish: chunks of at most `FeedBuilder.chunk`; with a head of 20, the first chunk goes.
        var all: [FeedBuilder.Item] = []
        var previous: FeedRevision?
        var archives: [FeedRevision] = []
        // Three publishes of 15: the head passes 20 on the second and the third.
        for batch in stride(from: 0, to: 45, by: 15) {
            let added = Array(items[batch..<batch + 15])
            all += added
            let b = try FeedBuilder.build(link: self.link, previous: previous, added: added,
                meta: ChannelMeta(title: "N", time: Int64(batch)), limits: limits)
            if let a = b.archive {
                #expect(a.isArchive && a.meta == nil && a.link == nil)
                // The archive's pieces are the ones those items had in the head before.
                let cut = Int(a.totalLength) / a.pieceLength
                #expect(Array(previous!.pieces.prefix(cut * 20)) == a.pieces || archives.count > 0)
                archives.append(a)
                #expect(b.revision.archiveNext == "magnet:?xt=urn:btih:\(Hex.encode(a.infoHash))")
            }
            #expect(b.revision.items.count <= 20)
            previous = b.revision
        }
        #expect(archives.count == 2)
        #expect(archives[1].archiveNext == "magnet:?xt=urn:btih:\(Hex.encode(archives[0].infoHash))")
        // Nothing lost, nothing twice: archives (oldest first) then the head hold every item in order.
        let held = (archives.flatMap(\.items) + previous!.items).compactMap(\.id)
        #expect(held == all.map(\.id))
    }

    @Test func aRevisionThatBreaksTheLimitsIsRefusedBeforeAnythingIsFetched() throws {
        let items = try (0..<5).map { try FeedBuilder.Item.post(self.post($0)) }
        let r = try FeedBuilder.build(link: self.link, previous: nil, added: items, meta: ChannelMeta(title: "N", time: 1))
            .revision
        var limits = ChannelLimits()
        limits.maxHeadItems = 4
        #expect(throws: ChannelRefusal.badRevision("more than 4 items (older ones belong in archives)")) {
            try FeedRevision(infoBytes: r.infoBytes, link: self.link, limits: limits)
        }
        limits = ChannelLimits()
        limits.maxItemBytes = 100
        #expect(throws: ChannelRefusal.self) { try FeedRevision(infoBytes: r.infoBytes, link: self.link, limits: limits) }
        limits = ChannelLimits()
        limits.maxInfoBytes = 100
        #expect(throws: ChannelRefusal.self) { try FeedRevision(infoBytes: r.infoBytes, link: self.link, limits: limits) }
        // Another channel's revision, reached through this channel's pointer.
        let other = try ChannelLink(
            publicKey: Array(Curve25519.Signing.PrivateKey().publicKey.rawRepresentation), salt: [])
        #expect(throws: ChannelRefusal.self) { try FeedRevision(infoBytes: r.infoBytes, link: other) }
    }

    @Test func aFileOutsideTheFeedLayoutIsRefused() throws {
        func info(_ files: [BencodeValue]) -> [UInt8] {
            let source: BencodeValue = ["bep46 source": .text(self.link.description)]
            let pairs: [(String, BencodeValue)] = [
                ("bep49", source), ("files", .list(files)), ("name", .text(self.link.id)), ("piece length", 16384),
                ("pieces", .string([UInt8](repeating: 0, count: 20))),
            ]
            return BencodeValue.dictionary(BencodeDictionary(pairs)).encoded
        }
        let sha: BencodeValue = .string([UInt8](repeating: 1, count: 20))
        #expect(throws: ChannelRefusal.badRevision("a file path that is not plain names")) {
            try FeedRevision(infoBytes: info([["length": 5, "path": ["..", "evil"], "sha1": sha]]), link: self.link)
        }
        #expect(throws: ChannelRefusal.badRevision("meta/x is neither an item nor the metadata")) {
            try FeedRevision(infoBytes: info([["length": 5, "path": ["meta", "x"], "sha1": sha]]), link: self.link)
        }
        #expect(throws: ChannelRefusal.badRevision("notes.txt is neither an item nor the metadata")) {
            try FeedRevision(infoBytes: info([["length": 5, "path": ["notes.txt"], "sha1": sha]]), link: self.link)
        }
        let item = Hex.encode([UInt8](repeating: 2, count: 20)) + ".torrent"
        #expect(throws: ChannelRefusal.badRevision("\(item) has no BEP 47 sha1")) {
            try FeedRevision(infoBytes: info([["length": 5, "path": [.text(item)]]]), link: self.link)
        }
        #expect(throws: ChannelRefusal.badRevision("no metadata file")) {
            try FeedRevision(infoBytes: info([["length": 5, "path": [.text(item)], "sha1": sha]]), link: self.link)
        }
    }
}

extension String {
    /// Upper-cases the hex of a link but keeps its `magnet:?xs=urn:btpk:` and `&s=` spelling.
    fileprivate func replacingMagnet() -> String {
        self.replacingOccurrences(of: "MAGNET:?XS=URN:BTPK:", with: "magnet:?xs=urn:btpk:")
            .replacingOccurrences(of: "&S=", with: "&s=")
    }
}

/// The pointer a subscriber checks before it fetches anything, and the auto-download rule.
@Suite struct ChannelPointerAndRuleTests {
    let key = Curve25519.Signing.PrivateKey()
    var link: ChannelLink {
        try! ChannelLink(publicKey: Array(self.key.publicKey.rawRepresentation), salt: ChannelLink.salt(forName: "n"))
    }
    let ih = [UInt8](repeating: 9, count: 20)

    @Test func aSignedPointerIsAcceptedOnceAndOnlyWhenNewer() throws {
        let p = try ChannelPointer.signed(link: self.link, infoHash: self.ih, sequence: 3, key: self.key)
        #expect(p.infoHash == self.ih && p.sequence == 3)
        #expect(try ChannelPointer(item: p.item, link: self.link, newerThan: 2) == p)
        #expect(throws: ChannelRefusal.staleSequence(got: 3, have: 3)) {
            try ChannelPointer(item: p.item, link: self.link, newerThan: 3)
        }
    }

    @Test func aForgedOversizedOrMisplacedPointerIsRefused() throws {
        var forged = try ChannelPointer.signed(link: self.link, infoHash: self.ih, sequence: 3, key: self.key).item
        forged.sequence = 4
        #expect(throws: ChannelRefusal.badSignature) { try ChannelPointer(item: forged, link: self.link) }
        // Signed by the key, but not a BEP 46 value.
        let text = try MutableItem.signed(value: "hello", sequence: 1, salt: self.link.salt, privateKey: self.key)
        #expect(throws: ChannelRefusal.badPointer("its value is not {\"ih\": <20-byte info-hash>}")) {
            try ChannelPointer(item: text, link: self.link)
        }
        var big = text
        big.value = .string([UInt8](repeating: 1, count: 1200))
        #expect(throws: ChannelRefusal.badPointer("its value is 1205 bytes, over BEP 44's 1000")) {
            try ChannelPointer(item: big, link: self.link)
        }
        let other = try ChannelLink(publicKey: self.link.publicKey, salt: Array("ch/other".utf8))
        #expect(throws: ChannelRefusal.badPointer("it is under another key or salt")) {
            try ChannelPointer(item: text, link: other)
        }
    }

    @Test func aRuleMatchesWholeWordsCaseAndAccentsFoldedAndSizeBounds() {
        let r = FeedRule(mustContain: ["amelie", "1080p"], mustNotContain: ["CAM"], minSize: 100, maxSize: 1000)
        #expect(r.matches(name: "Amélie.2001.1080p-[x]", size: 500))
        #expect(!r.matches(name: "Amélie.2001.1080p.CAM", size: 500))
        #expect(!r.matches(name: "Amélie.2001.720p", size: 500))
        #expect(!r.matches(name: "Amélie.2001.1080p", size: 5000))
        #expect(!r.matches(name: "Amélie.2001.1080p", size: 50))
        #expect(FeedRule().matches(name: "anything", size: nil))
    }
}

/// BEP 36 feeds: what a followed RSS feed's items become.
@Suite struct RSSFeedTests {
    @Test func itemsTakeTheEnclosureElseTheLinkAndTheGuidElseTheLinkAsId() throws {
        let xml = """
            <?xml version="1.0"?><rss version="2.0"><channel><title>Shows &amp; films</title>
            <item><title><![CDATA[Show.S01E01.1080p]]></title><guid>a1</guid>
              <enclosure url="http://x/1.torrent" length="1234" type="application/x-bittorrent"/></item>
            <item><title>Film.720p</title><link>magnet:?xt=urn:btih:0000000000000000000000000000000000000000</link></item>
            <item><title>No torrent here</title></item>
            <item><link>magnet:?xt=urn:btih:1111111111111111111111111111111111111111</link></item>
            </channel></rss>
            """
        let feed = try RSSFeed(data: Data(xml.utf8))
        #expect(feed.title == "Shows & films")
        #expect(feed.items == [
            RSSFeed.Item(id: "a1", title: "Show.S01E01.1080p", torrent: "http://x/1.torrent", size: 1234),
            RSSFeed.Item(id: "magnet:?xt=urn:btih:0000000000000000000000000000000000000000", title: "Film.720p",
                torrent: "magnet:?xt=urn:btih:0000000000000000000000000000000000000000", size: nil),
        ])
    }

    @Test func somethingElseIsRefused() {
        #expect(throws: ChannelRefusal.self) { try RSSFeed(data: Data("<html><body>".utf8)) }
        #expect(throws: ChannelRefusal.self) { try RSSFeed(data: Data("not xml at all".utf8)) }
    }
}
