import Bencode
import Crypto
import Foundation
import Metainfo
import Testing

func fixture(_ name: String) throws -> [UInt8] {
    let url = try #require(Bundle.module.url(forResource: "Fixtures/\(name)", withExtension: nil))
    return Array(try Data(contentsOf: url))
}

/// A v1 multi-file torrent of files of one byte each at the given raw paths.
func torrentWithPaths(_ paths: [[[UInt8]]], name: [UInt8] = bytes("t")) -> [UInt8] {
    let files = paths.map { p -> BencodeValue in ["length": 1, "path": .list(p.map { .string($0) })] }
    var info = BencodeDictionary()
    info["name"] = .string(name)
    info["piece length"] = 16384
    info["files"] = .list(files)
    info["pieces"] = .string([UInt8](repeating: 0, count: 20))
    return (["info": .dictionary(info)] as BencodeValue).encoded
}

@Suite("Path sanitizing")
struct SanitizeTests {
    /// Every component of every path is a safe single file name.
    func expectSafe(_ t: TorrentMetainfo) {
        for file in t.files where !file.isPadding {
            for c in file.path {
                #expect(!c.isEmpty && c != "." && c != "..", "\(file.path)")
                #expect(!c.contains("/") && !c.contains("\\") && !c.contains("\0"), "\(file.path)")
                #expect(c.utf8.count <= 255)
            }
        }
        #expect(Set(t.files.map(\.path)).count == t.files.count)
    }

    @Test(
        "hostile components load with a warning and only sanitized paths",
        arguments: [
            ([bytes(".."), bytes(".."), bytes("etc"), bytes("passwd")], ["etc", "passwd"]),
            ([bytes("/etc/passwd")], ["_etc_passwd"]),
            ([bytes("."), bytes("a")], ["a"]),
            ([bytes(""), bytes("b"), bytes("")], ["b"]),
            ([bytes("..")], ["_"]),
            ([bytes(".")], ["_"]),
            ([[UInt8]()], ["_"]),
            ([bytes("a\\b")], ["a_b"]),
            ([bytes("a\0b")], ["a_b"]),
            ([bytes("dir/"), bytes("f")], ["dir_", "f"]),
            ([[0xff, 0xfe, 0x61]], ["__a"]),
            ([[0x61, 0xc3]], ["a_"]),
            ([bytes("C:\\Windows"), bytes("x")], ["C:_Windows", "x"]),
        ] as [([[UInt8]], [String])])
    func hostile(_ raw: [[UInt8]], _ expected: [String]) throws {
        let t = try TorrentMetainfo(bytes: torrentWithPaths([raw]))
        #expect(t.files.map(\.path) == [["t"] + expected])
        #expect(t.warnings.count == 1)
        #expect(t.warnings.first?.message.contains("sanitized") == true)
        self.expectSafe(t)
    }

    @Test("a 300-byte name is shortened to 255 bytes, keeping its extension")
    func longName() throws {
        let long = String(repeating: "x", count: 296) + ".txt"
        let t = try TorrentMetainfo(bytes: torrentWithPaths([[bytes("dir"), bytes(long)]]))
        let name = try #require(t.files.first?.path.last)
        #expect(name.utf8.count == 255)
        #expect(name.hasSuffix(".txt"))
        #expect(name == String(repeating: "x", count: 251) + ".txt")
        #expect(t.files[0].path.count == 3)
        #expect(t.warnings.count == 1)
    }

    @Test("shortening never splits a multi-byte character")
    func longUnicodeName() throws {
        let long = String(repeating: "\u{e9}", count: 200) + ".flac"  // 405 bytes
        let t = try TorrentMetainfo(bytes: torrentWithPaths([[bytes(long)]]))
        let name = try #require(t.files.first?.path.last)
        #expect(name.utf8.count <= 255)
        #expect(name == String(repeating: "\u{e9}", count: 125) + ".flac")
        // An extension longer than 16 bytes is not kept.
        let longExt = String(repeating: "a", count: 250) + "." + String(repeating: "b", count: 40)
        #expect(PathSanitizer.component(bytes(longExt)) == String(repeating: "a", count: 250) + "." + "bbbb")
        // A name of exactly 255 bytes is left alone.
        let exact = String(repeating: "z", count: 255)
        #expect(PathSanitizer.component(bytes(exact)) == exact)
    }

    /// `PathSanitizer.component` checks for "", "." and ".." before it shortens a long name, and `shorten`
    /// cuts at grapheme-cluster boundaries: a name made of a dot or two and one huge cluster (a letter with
    /// hundreds of combining marks) shortens to "..", "." or "".
    @Test(
        "shortening a long name never yields an empty, \".\" or \"..\" component",
        arguments: [
            LongName(prefix: ".."), LongName(prefix: "."), LongName(prefix: ""), LongName(prefix: "", base: ""),
        ])
    func shortenedToDots(_ long: LongName) throws {
        let name = long.text
        #expect(name.utf8.count > 255)
        let component = try #require(PathSanitizer.component(bytes(name)))
        #expect(
            component != "" && component != "." && component != "..", "\(name.utf8.count) bytes became \"\(component)\""
        )
        #expect(component.utf8.count <= 255)
    }

    /// The same through a torrent: two such components climb out of the torrent's folder and the download folder.
    @Test("a path cannot climb out of the download folder through shortened names")
    func traversalThroughShortening() throws {
        let climb = bytes(".." + "x" + String(repeating: "\u{301}", count: 200))
        let t = try TorrentMetainfo(bytes: torrentWithPaths([[climb, climb, bytes("etc"), bytes("passwd")]]))
        #expect(!t.files[0].path.contains(".."), "\(t.files[0].path)")
        self.expectSafe(t)
    }

    @Test("PathSanitizer on single components")
    func components() {
        #expect(PathSanitizer.component(bytes("ok.txt")) == "ok.txt")
        #expect(PathSanitizer.component(bytes("..")) == nil)
        #expect(PathSanitizer.component(bytes(".")) == nil)
        #expect(PathSanitizer.component([]) == nil)
        #expect(PathSanitizer.component(bytes("...")) == "...")
        #expect(PathSanitizer.component(bytes(".hidden")) == ".hidden")
        #expect(PathSanitizer.component(bytes("a/../b")) == "a_.._b")
        #expect(PathSanitizer.component(bytes("/")) == "_")
        #expect(PathSanitizer.component(bytes("\u{FFFD}")) == "_")
        #expect(PathSanitizer.components([bytes(".."), bytes("x"), bytes("."), bytes("y")]) == ["x", "y"])
        #expect(PathSanitizer.maxComponentBytes == 255)
    }

    @Test("paths that collide after sanitizing are renamed, keeping the extension")
    func duplicates() throws {
        let t = try TorrentMetainfo(
            bytes: torrentWithPaths([
                [bytes("a/b")], [bytes("a_b")], [bytes("x.txt")], [bytes("x.txt")], [bytes("x.txt")],
                [bytes("."), bytes("x.txt")],
            ]))
        #expect(t.files.map(\.displayPath) == ["t/a_b", "t/a_b.1", "t/x.txt", "t/x.1.txt", "t/x.2.txt", "t/x.3.txt"])
        #expect(t.warnings.filter { $0.message.contains("appears twice") }.count == 4)
        self.expectSafe(t)
    }

    @Test("a renamed file does not take the name of a later file")
    func renameAvoidsTakenNames() throws {
        let t = try TorrentMetainfo(bytes: torrentWithPaths([[bytes("f")], [bytes("f.1")], [bytes("f")]]))
        #expect(t.files.map(\.displayPath) == ["t/f", "t/f.1", "t/f.2"])
        self.expectSafe(t)
    }

    @Test(
        "torrent names are sanitized",
        arguments: [
            (bytes(".."), "_"), (bytes("."), "_"), (bytes(""), "_"), (bytes("a/b"), "a_b"), (bytes(".pad"), "_pad"),
            ([0xff], "_"), (bytes("fine"), "fine"),
        ] as [([UInt8], String)])
    func names(_ raw: [UInt8], _ expected: String) throws {
        let multi = try TorrentMetainfo(bytes: torrentWithPaths([[bytes("f")]], name: raw))
        #expect(multi.name == expected)
        #expect(multi.files[0].path == [expected, "f"])
        if raw != bytes("fine") && raw != bytes(".pad") { #expect(multi.warnings.count == 1) }
        let single = try TorrentMetainfo(bytes: torrent(v1Info.setting(["name"], to: .string(raw))))
        #expect(single.name == expected)
        #expect(single.files[0].path == [expected])
    }

    @Test("v2 file-tree names are sanitized too")
    func v2Tree() throws {
        let built = buildTorrent(
            name: "v", pieceLength: 16384, version: .v2, files: [MemFile("ok", length: 5, seed: 1)])
        let root = try #require(built.v2?[0].root)
        let leaf: BencodeValue = ["": ["length": 5, "pieces root": .string(root)]]
        var tree = BencodeDictionary()
        tree[bytes("..")] = .dictionary(BencodeDictionary([("evil\\name", leaf)]))
        tree[[0xff]] = leaf
        let bytes = built.value.setting(["info", "file tree"], to: .dictionary(tree)).encoded
        let t = try TorrentMetainfo(bytes: bytes)
        #expect(t.files.map(\.path) == [["v", "evil_name"], ["v", "_"]])
        #expect(t.warnings.count == 2)
        self.expectSafe(t)
    }

    @Test("the hostile-paths fixture: only safe paths, a warning for each change")
    func hostileFixture() throws {
        let data = try fixture("hostile-paths.torrent")
        let t = try TorrentMetainfo(bytes: data)
        #expect(t.name == "_")
        #expect(t.infoHashes.v1?.hex == "4cf1fcb158508ce7c8ad4b354c50c6c1c08ea169")
        #expect(
            t.files.map(\.path) == [
                ["_", "etc", "passwd"],
                ["_", "_etc_passwd"],
                ["_", "back_slash"],
                ["_", "nul_byte"],
                ["_", "__bad"],
                ["_", String(repeating: "x", count: 251) + ".txt"],
                ["_", "dup"],
                ["_", "dup.1"],
                ["_", "a_b"],
                ["_", "a_b.1"],
                ["_", "_"],
                ["_", "sub", "con_tains", "file.txt"],
            ])
        // The name, nine sanitized paths and two renames.
        #expect(t.warnings.count == 12)
        #expect(t.createdBy == "fixture generator")
        self.expectSafe(t)
    }

    @Test("a non-canonical info dictionary loads with a warning and is hashed from its raw bytes")
    func nonCanonical() throws {
        let data = try fixture("noncanonical.torrent")
        let t = try TorrentMetainfo(bytes: data)
        #expect(t.warnings.count == 1)
        #expect(t.warnings[0].message.contains("canonical"))
        // Computed with sha1sum/sha256sum over bytes 51..<134 of the file.
        #expect(t.infoBytes == Array(data[51..<134]))
        #expect(t.infoHashes.v1?.hex == "7f3d281aa3b99f5dc8fbd52de7a75dd7c2b9cc74")
        #expect(t.infoHashes.v1?.bytes == Reference.sha1(data[51..<134]))
        // Not the hash of the re-encoded (sorted) dictionary.
        let reencoded = try BencodeDecoder().decodeValue(t.infoBytes).encoded
        #expect(reencoded != t.infoBytes)
        #expect(Reference.sha1(reencoded) != t.infoHashes.v1?.bytes)
        #expect(InfoHashV1(Reference.sha1(reencoded)).hex == "0eb2d544ef0c9ae3c0fbba90a71cd742a44aa81d")
        #expect(t.name == "hello.txt")
        #expect(t.files == [TorrentFile(index: 0, path: ["hello.txt"], length: 5, offset: 0)])
        #expect(t.pieceHashesV1 == Reference.sha1(bytes("hello")))
        #expect(t.trackers == [["http://tracker.example/announce"]])
        #expect(t.comment == "out of order")
        // The same info dictionary given alone (BEP 9) hashes the same.
        #expect(try TorrentMetainfo(infoBytes: t.infoBytes).infoHashes == t.infoHashes)
    }

    @Test("a non-canonical dictionary nested in the info dictionary also warns")
    func nestedNonCanonical() throws {
        // files[0] has "path" before "length".
        let info =
            bytes("d5:filesld4:pathl1:xe6:lengthi1eee4:name1:d12:piece lengthi16384e6:pieces20:")
            + [UInt8](repeating: 7, count: 20) + bytes("e")
        let data = bytes("d4:info") + info + bytes("e")
        let t = try TorrentMetainfo(bytes: data)
        #expect(t.warnings.count == 1)
        #expect(t.infoBytes == info)
        #expect(t.infoHashes.v1?.bytes == Reference.sha1(info))
        #expect(t.files.map(\.path) == [["d", "x"]])
    }
}

/// `prefix`, then `base` followed by 200 combining acute accents (one grapheme cluster of 401 bytes).
struct LongName: Sendable, CustomTestStringConvertible {
    var prefix: String
    var base = "x"
    var text: String { self.prefix + self.base + String(repeating: "\u{301}", count: 200) }
    var testDescription: String { "\"\(self.prefix)\" + \"\(self.base)\" + 200 combining marks" }
}
