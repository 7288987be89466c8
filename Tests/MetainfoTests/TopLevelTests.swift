import PeerBase
import Bencode
import Metainfo
import Testing

@Suite("Top-level keys")
struct TopLevelTests {
    func load(_ extra: [(String, BencodeValue)]) throws -> TorrentMetainfo {
        var top = BencodeDictionary(extra)
        top["info"] = v1Info
        return try TorrentMetainfo(bytes: BencodeValue.dictionary(top).encoded)
    }

    @Test("announce alone is one tier of one")
    func announceOnly() throws {
        #expect(try self.load([("announce", "http://a/announce")]).trackers == [["http://a/announce"]])
        #expect(try self.load([("announce", "")]).trackers == [])
        #expect(try self.load([]).trackers == [])
    }

    @Test("announce-list tiers: announce ignored, duplicates, empty strings and empty tiers dropped")
    func announceList() throws {
        let t = try self.load([
            ("announce", "http://ignored/announce"),
            (
                "announce-list",
                [
                    ["http://b", "http://c", "http://b"],
                    ["http://b", "udp://d:80"],
                    [],
                    [""],
                    ["http://c"],
                    ["http://e", 5, "http://f"],
                    "not a tier",
                ]
            ),
        ])
        #expect(t.trackers == [["http://b", "http://c"], ["udp://d:80"], ["http://e", "http://f"]])
    }

    @Test("an announce-list without usable trackers falls back to announce")
    func emptyAnnounceList() throws {
        let t = try self.load([("announce", "http://a"), ("announce-list", [[], [""]])])
        #expect(t.trackers == [["http://a"]])
    }

    @Test("url-list as a string and as a list")
    func urlList() throws {
        #expect(try self.load([("url-list", "http://seed/")]).webSeeds == ["http://seed/"])
        #expect(try self.load([("url-list", "")]).webSeeds == [])
        #expect(
            try self.load([("url-list", ["http://s1/", "", "http://s2/", 3])]).webSeeds == ["http://s1/", "http://s2/"])
        #expect(try self.load([]).webSeeds == [])
    }

    @Test("private flag")
    func privateFlag() throws {
        #expect(try TorrentMetainfo(bytes: torrent(v1Info.setting(["private"], to: 1))).isPrivate)
        #expect(try TorrentMetainfo(bytes: torrent(v1Info.setting(["private"], to: 0))).isPrivate == false)
        #expect(try TorrentMetainfo(bytes: torrent(v1Info)).isPrivate == false)
        // The flag is part of the info dictionary, so it changes the info-hash.
        #expect(
            try TorrentMetainfo(bytes: torrent(v1Info.setting(["private"], to: 1))).infoHashes
                != TorrentMetainfo(bytes: torrent(v1Info)).infoHashes)
        // A "private" at the top level is not the flag.
        #expect(try self.load([("private", 1)]).isPrivate == false)
    }

    @Test("comment, created by, creation date, source")
    func metadata() throws {
        let t = try self.load([("comment", "hello"), ("created by", "peer/1.0"), ("creation date", 1_700_000_000)])
        #expect(t.comment == "hello")
        #expect(t.createdBy == "peer/1.0")
        #expect(t.creationDate == 1_700_000_000)
        #expect(t.source == nil)
        let utf8 = try self.load([("comment", "plain"), ("comment.utf-8", "\u{e9}t\u{e9}")])
        #expect(utf8.comment == "\u{e9}t\u{e9}")
        let src = try TorrentMetainfo(bytes: torrent(v1Info.setting(["source"], to: "TRACKER")))
        #expect(src.source == "TRACKER")
        let negative = try self.load([("creation date", -1)])
        #expect(negative.creationDate == -1)
    }

    @Test("TorrentBuilder writes every top-level field and the parser reads them back")
    func builderFields() throws {
        let built = buildTorrent(
            name: "n", pieceLength: 16384, version: .hybrid, files: [MemFile(["n"], SeededGenerator.bytes(10, seed: 1))]
        ) { b in
            b.trackers = [["http://t1/announce"], ["http://t2/announce", "udp://t3:6969"]]
            b.webSeeds = ["http://w1/", "http://w2/"]
            b.isPrivate = true
            b.comment = "a comment"
            b.createdBy = "tests"
            b.creationDate = 1_234_567_890
            b.source = "SRC"
        }
        let t = try TorrentMetainfo(bytes: built.bytes)
        #expect(t.trackers == [["http://t1/announce"], ["http://t2/announce", "udp://t3:6969"]])
        #expect(built.value["announce"] == "http://t1/announce")
        #expect(t.webSeeds == ["http://w1/", "http://w2/"])
        #expect(t.isPrivate)
        #expect(t.comment == "a comment")
        #expect(t.createdBy == "tests")
        #expect(t.creationDate == 1_234_567_890)
        #expect(t.source == "SRC")
        #expect(BencodeEncoder.encode(try BencodeDecoder().decodeValue(built.bytes)) == built.bytes)

        // One tracker: announce only, no announce-list.
        let one = buildTorrent(
            name: "n", pieceLength: 16384, version: .v1, files: [MemFile(["n"], [1])]
        ) { $0.trackers = [["udp://only:1"]] }
        #expect(one.value["announce-list"] == nil)
        #expect(try TorrentMetainfo(bytes: one.bytes).trackers == [["udp://only:1"]])
    }
}
