import PeerBase
import Bencode
import Metainfo
import Testing

/// What a malformed torrent must be refused with.
enum Expected: Sendable, CustomStringConvertible {
    case bencode
    case missingKey(String, at: [String])
    case wrongType(key: String, at: [String])
    /// `.invalid` whose message contains `text`, at the node `at` (nil: no offset).
    case invalid(_ text: String, at: [String]?)

    var description: String {
        switch self {
        case .bencode: "bencode error"
        case .missingKey(let k, let at): "missing \(k) at \(at)"
        case .wrongType(let k, let at): "wrong type of \(k) at \(at)"
        case .invalid(let t, let at): "invalid (\(t)) at \(String(describing: at))"
        }
    }
}

struct MalformedCase: Sendable, CustomTestStringConvertible {
    var name: String
    var bytes: [UInt8]
    var expected: Expected
    var testDescription: String { self.name }
}

// MARK: - Building blocks

let twentyZeros = [UInt8](repeating: 0, count: 20)

/// A valid v1 single-file info dictionary: 3 bytes in one piece.
let v1Info: BencodeValue = ["name": "a", "piece length": 16384, "length": 3, "pieces": .string(twentyZeros)]

/// A valid v1 multi-file info dictionary: two files of 1 byte.
let v1MultiInfo: BencodeValue = [
    "name": "d", "piece length": 16384, "pieces": .string(twentyZeros),
    "files": [["length": 1, "path": ["x"]], ["length": 1, "path": ["y"]]],
]

/// A valid v2 torrent of one file of 3 pieces (so with a piece layer), built with real hashes.
let v2Built = buildTorrent(
    name: "v2", pieceLength: 16384, version: .v2,
    files: [MemFile("big", length: 40000, seed: 1), MemFile("small", length: 10, seed: 2)])
let v2Root = v2Built.v2![0].root!

/// A valid hybrid of two files.
let hybridBuilt = buildTorrent(
    name: "h", pieceLength: 16384, version: .hybrid,
    files: [MemFile("one", length: 100, seed: 3), MemFile("two", length: 200, seed: 4)])

/// A valid single-file hybrid.
let hybridSingleBuilt = buildTorrent(
    name: "one.iso", pieceLength: 16384, version: .hybrid,
    files: [MemFile(["one.iso"], SeededGenerator.bytes(100, seed: 5))])

/// `built` with its v2 file tree's only entry moved to `path` (the v1 half still says `name`).
func renamedInV2(_ built: BuiltTorrent, to path: [String]) -> [UInt8] {
    let leaf = built.value.at(["info", "file tree", built.builder.name])!
    var tree: BencodeValue = .dictionary(BencodeDictionary())
    tree = tree.setting(path, to: leaf)
    return built.value.setting(["info", "file tree"], to: tree).encoded
}

func torrent(_ info: BencodeValue) -> [UInt8] { (["info": info] as BencodeValue).encoded }

@Suite("Malformed torrents")
struct MalformedTests {
    static let cases: [MalformedCase] = [
        .init(name: "not bencode", bytes: bytes("hello"), expected: .bencode),
        .init(
            name: "truncated torrent", bytes: Array(v2Built.bytes.prefix(v2Built.bytes.count / 2)), expected: .bencode),
        .init(name: "trailing garbage", bytes: torrent(v1Info) + bytes("x"), expected: .bencode),
        .init(
            name: "top level is a list", bytes: bytes("l4:infoe"), expected: .invalid("must be a dictionary", at: [])),
        .init(name: "top level is an integer", bytes: bytes("i1e"), expected: .invalid("must be a dictionary", at: [])),
        .init(name: "missing info", bytes: bytes("d8:announce3:urle"), expected: .missingKey("info", at: [])),
        .init(name: "info is a list", bytes: bytes("d4:infoli1eee"), expected: .wrongType(key: "info", at: ["info"])),
        .init(
            name: "info is a string", bytes: bytes("d1:ai0e4:info3:abce"),
            expected: .wrongType(key: "info", at: ["info"])),
        .init(
            name: "no pieces and no meta version", bytes: torrent(v1Info.setting(["pieces"], to: nil)),
            expected: .missingKey("pieces", at: ["info"])),
        .init(
            name: "pieces is not a string", bytes: torrent(v1Info.setting(["pieces"], to: 5)),
            expected: .wrongType(key: "pieces", at: ["info", "pieces"])),
        .init(
            name: "missing piece length", bytes: torrent(v1Info.setting(["piece length"], to: nil)),
            expected: .missingKey("piece length", at: ["info"])),
        .init(
            name: "piece length is a string", bytes: torrent(v1Info.setting(["piece length"], to: "16384")),
            expected: .wrongType(key: "piece length", at: ["info", "piece length"])),
        .init(
            name: "piece length 0", bytes: torrent(v1Info.setting(["piece length"], to: 0)),
            expected: .invalid("piece length 0", at: ["info", "piece length"])),
        .init(
            name: "negative piece length", bytes: torrent(v1Info.setting(["piece length"], to: -16384)),
            expected: .invalid("piece length -16384", at: ["info", "piece length"])),
        .init(
            name: "piece length too large",
            bytes: torrent(v1Info.setting(["piece length"], to: .integer((256 << 20) + 1))),
            expected: .invalid("out of range", at: ["info", "piece length"])),
        .init(
            name: "v2 piece length not a power of two",
            bytes: v2Built.value.setting(["info", "piece length"], to: 49152).encoded,
            expected: .invalid("power of two", at: ["info", "piece length"])),
        .init(
            name: "v2 piece length below 16 KiB",
            bytes: v2Built.value.setting(["info", "piece length"], to: 8192).encoded,
            expected: .invalid("power of two", at: ["info", "piece length"])),
        .init(
            name: "missing name", bytes: torrent(v1Info.setting(["name"], to: nil)),
            expected: .missingKey("name", at: ["info"])),
        .init(
            name: "pieces not a multiple of 20",
            bytes: torrent(v1Info.setting(["pieces"], to: .string([UInt8](repeating: 1, count: 30)))),
            expected: .invalid("not a multiple of 20", at: ["info", "pieces"])),
        .init(
            name: "too few pieces",
            bytes: torrent(
                v1Info.setting(["length"], to: 40000).setting(["pieces"], to: .string(twentyZeros + twentyZeros))),
            expected: .invalid("expected 3", at: ["info", "pieces"])),
        .init(
            name: "too many pieces", bytes: torrent(v1Info.setting(["pieces"], to: .string(twentyZeros + twentyZeros))),
            expected: .invalid("expected 1", at: ["info", "pieces"])),
        .init(
            name: "no pieces for data", bytes: torrent(v1Info.setting(["pieces"], to: .string([]))),
            expected: .invalid("expected 1", at: ["info", "pieces"])),
        .init(
            name: "both length and files", bytes: torrent(v1MultiInfo.setting(["length"], to: 2)),
            expected: .invalid("both", at: ["info"])),
        .init(
            name: "neither length nor files", bytes: torrent(v1Info.setting(["length"], to: nil)),
            expected: .missingKey("length", at: ["info"])),
        .init(
            name: "files is not a list", bytes: torrent(v1MultiInfo.setting(["files"], to: ["x": 1])),
            expected: .wrongType(key: "files", at: ["info", "files"])),
        .init(
            name: "empty files list", bytes: torrent(v1MultiInfo.setting(["files"], to: .list([]))),
            expected: .invalid("file list is empty", at: ["info", "files"])),
        .init(
            name: "a files entry is not a dictionary", bytes: torrent(v1MultiInfo.setting(["files", "#1"], to: 7)),
            expected: .wrongType(key: "files[1]", at: ["info", "files", "#1"])),
        .init(
            name: "file without length", bytes: torrent(v1MultiInfo.setting(["files", "#1", "length"], to: nil)),
            expected: .missingKey("length", at: ["info", "files", "#1"])),
        .init(
            name: "negative file length", bytes: torrent(v1MultiInfo.setting(["files", "#1", "length"], to: -1)),
            expected: .invalid("file length -1", at: ["info", "files", "#1", "length"])),
        .init(
            name: "file length over 2^50",
            bytes: torrent(v1MultiInfo.setting(["files", "#0", "length"], to: .integer((1 << 50) + 1))),
            expected: .invalid("out of range", at: ["info", "files", "#0", "length"])),
        .init(
            name: "negative single-file length", bytes: torrent(v1Info.setting(["length"], to: -3)),
            expected: .invalid("negative file length -3", at: ["info", "length"])),
        .init(
            name: "file without path", bytes: torrent(v1MultiInfo.setting(["files", "#0", "path"], to: nil)),
            expected: .missingKey("path", at: ["info", "files", "#0"])),
        .init(
            name: "path is not a list", bytes: torrent(v1MultiInfo.setting(["files", "#0", "path"], to: "x")),
            expected: .wrongType(key: "path", at: ["info", "files", "#0", "path"])),
        .init(
            name: "path element is not a string",
            bytes: torrent(v1MultiInfo.setting(["files", "#0", "path"], to: ["x", 1])),
            expected: .wrongType(key: "path", at: ["info", "files", "#0", "path", "#1"])),
        .init(
            name: "all files empty",
            bytes: torrent(
                v1MultiInfo.setting(["files", "#0", "length"], to: 0).setting(["files", "#1", "length"], to: 0)
                    .setting(["pieces"], to: .string([]))),
            expected: .invalid("no data", at: ["info"])),
        .init(
            name: "single empty file",
            bytes: torrent(v1Info.setting(["length"], to: 0).setting(["pieces"], to: .string([]))),
            expected: .invalid("no data", at: ["info"])),
        .init(
            name: "meta version 3", bytes: v2Built.value.setting(["info", "meta version"], to: 3).encoded,
            expected: .invalid("unsupported meta version 3", at: ["info", "meta version"])),
        .init(
            name: "meta version is a string", bytes: v2Built.value.setting(["info", "meta version"], to: "2").encoded,
            expected: .wrongType(key: "meta version", at: ["info", "meta version"])),
        .init(
            name: "v2 without file tree", bytes: v2Built.value.setting(["info", "file tree"], to: nil).encoded,
            expected: .missingKey("file tree", at: ["info"])),
        .init(
            name: "v2 empty file tree",
            bytes: v2Built.value.setting(["info", "file tree"], to: .dictionary(BencodeDictionary())).encoded,
            expected: .invalid("file tree is empty", at: ["info", "file tree"])),
        .init(
            name: "v2 file tree is a list", bytes: v2Built.value.setting(["info", "file tree"], to: .list([])).encoded,
            expected: .wrongType(key: "file tree", at: ["info", "file tree"])),
        .init(
            name: "v2 file without length",
            bytes: v2Built.value.setting(["info", "file tree", "small", "", "length"], to: nil).encoded,
            expected: .missingKey("length", at: ["info", "file tree", "small", ""])),
        .init(
            name: "v2 all files empty",
            bytes: ([
                "info": [
                    "name": "e", "piece length": 16384, "meta version": 2,
                    "file tree": ["x": ["": ["length": 0]]],
                ]
            ] as BencodeValue).encoded,
            expected: .invalid("no data", at: ["info", "file tree"])),
        .init(
            name: "v2 missing pieces root",
            bytes: v2Built.value.setting(["info", "file tree", "small", "", "pieces root"], to: nil).encoded,
            expected: .missingKey("pieces root", at: ["info", "file tree", "small", ""])),
        .init(
            name: "v2 pieces root of 31 bytes",
            bytes: v2Built.value.setting(
                ["info", "file tree", "small", "", "pieces root"], to: .string([UInt8](repeating: 1, count: 31))
            ).encoded,
            expected: .invalid("31 bytes, not 32", at: ["info", "file tree", "small", "", "pieces root"])),
        .init(
            name: "v2 file and folder at once",
            bytes: v2Built.value.setting(["info", "file tree", "small", "inner"], to: ["": ["length": 0]]).encoded,
            expected: .invalid("both a file and a folder", at: ["info", "file tree", "small"])),
        .init(
            name: "piece layers is a list", bytes: v2Built.value.setting(["piece layers"], to: .list([])).encoded,
            expected: .wrongType(key: "piece layers", at: ["piece layers"])),
        .init(
            name: "piece layer of the wrong length",
            bytes: v2Built.value.setting(
                ["piece layers"],
                to: .dictionary(
                    BencodeDictionary().merging(
                        v2Root, .string(Array(v2Built.v2![0].pieceLayer!.dropLast(32)))))
            ).encoded,
            expected: .invalid("has 2 hashes, expected 3", at: ["piece layers", "#root"])),
        .init(
            name: "piece layer that does not match its root",
            bytes: v2Built.value.setting(
                ["piece layers"],
                to: .dictionary(
                    BencodeDictionary().merging(
                        v2Root, .string(Array(v2Built.v2![0].pieceLayer!.reversed()))))
            ).encoded,
            expected: .invalid("does not match its pieces root", at: ["piece layers", "#root"])),
        .init(
            name: "piece layer is not a string",
            bytes: v2Built.value.setting(["piece layers"], to: .dictionary(BencodeDictionary().merging(v2Root, 1)))
                .encoded,
            expected: .wrongType(key: "piece layers", at: ["piece layers", "#root"])),
        .init(
            name: "hybrid whose v1 and v2 paths differ",
            bytes: hybridBuilt.value.setting(["info", "files", "#2", "path"], to: ["three"]).encoded,
            expected: .invalid("differ at", at: ["info"])),
        .init(
            name: "hybrid whose v1 and v2 lengths differ",
            bytes: hybridBuilt.value.setting(["info", "file tree", "two", "", "length"], to: 201).encoded,
            expected: .invalid("differ at", at: ["info"])),
        .init(
            name: "hybrid whose v2 tree lacks a file",
            bytes: hybridBuilt.value.setting(["info", "file tree", "two"], to: nil).encoded,
            expected: .invalid("list 2 and 1 files", at: ["info"])),
        .init(
            name: "a file that is also a folder",
            bytes: torrent(
                v1MultiInfo.setting(
                    ["files"], to: [["length": 1, "path": ["a"]], ["length": 1, "path": ["a", "b"]]])),
            expected: .invalid("no safe layout", at: nil)),
        .init(
            name: "a file that is also a folder after sanitizing",
            bytes: torrent(
                v1MultiInfo.setting(
                    ["files"], to: [["length": 1, "path": ["a"]], ["length": 1, "path": ["..", "a", ".", "b"]]])),
            expected: .invalid("no safe layout", at: nil)),
        .init(
            name: "comment is not a string", bytes: (["info": v1Info, "comment": 5] as BencodeValue).encoded,
            expected: .wrongType(key: "comment", at: ["comment"])),
        .init(
            name: "creation date is not an integer",
            bytes: (["info": v1Info, "creation date": "today"] as BencodeValue).encoded,
            expected: .wrongType(key: "creation date", at: ["creation date"])),
    ]

    /// A single-file hybrid whose v2 file tree names another file than the v1 half: the parser replaces the
    /// v2 path by the torrent's name (`sanitizedPath(root: nil, ...)` returns `[single]`), so `merge` never
    /// sees the difference, while a v2-only client lays the file out under the v2 name.
    static let inconsistentSingleFileHybrids: [MalformedCase] = [
        .init(
            name: "hybrid single file whose v2 file has another name",
            bytes: renamedInV2(hybridSingleBuilt, to: ["other.iso"]),
            expected: .invalid("differ", at: ["info"])),
        .init(
            name: "hybrid single file whose v2 file lies in a folder",
            bytes: renamedInV2(hybridSingleBuilt, to: ["dir", "one.iso"]),
            expected: .invalid("differ", at: ["info"])),
    ]

    @Test("each is refused with its error and offset", arguments: Self.cases)
    func refused(_ c: MalformedCase) throws {
        try self.check(c)
    }

    @Test(
        "a single-file hybrid whose v2 file has another path is refused", arguments: Self.inconsistentSingleFileHybrids)
    func inconsistentSingleFileHybrid(_ c: MalformedCase) throws {
        try self.check(c)
    }

    func check(_ c: MalformedCase) throws {
        guard let error = loadError(c.bytes) else {
            Issue.record("\(c.name) loaded; expected \(c.expected)")
            return
        }
        /// The offset of the node at `path` ("#root" is the piece layer under the v2 test file's root).
        func offsetOf(_ path: [String]) -> Int? {
            offset(in: c.bytes) { root in
                if path.last == "#root" {
                    return root.at(Array(path.dropLast()))?.entries?.first { $0.key == v2Root }?.value
                }
                return root.at(path)
            }
        }
        switch c.expected {
        case .bencode:
            guard case .bencode(let inner) = error else {
                Issue.record("expected a bencode error, got \(error)")
                return
            }
            #expect(error.offset == inner.offset)
            #expect(inner.offset <= c.bytes.count)
            do {
                _ = try BencodeDecoder().decode(c.bytes)
                Issue.record("the decoder accepted \(c.name)")
            } catch {
                #expect(error == inner)
            }
        case .missingKey(let key, let path):
            let at = try #require(offsetOf(path))
            #expect(error == .missingKey(key, offset: at))
        case .wrongType(let key, let path):
            let at = try #require(offsetOf(path))
            guard case .wrongType(let k, _, _, let o) = error else {
                Issue.record("expected wrongType(\(key)), got \(error)")
                return
            }
            #expect(k == key)
            #expect(o == at)
        case .invalid(let text, let path):
            guard case .invalid(let message, let o) = error else {
                Issue.record("expected invalid(\(text)), got \(error)")
                return
            }
            #expect(message.contains(text), "\(message)")
            if let path {
                #expect(o == offsetOf(path))
                #expect(o != nil)
            } else {
                #expect(o == nil)
            }
        }
        #expect(!error.description.isEmpty)
    }

    @Test("the valid bases of the corpus load")
    func basesLoad() throws {
        #expect(loadError(torrent(v1Info)) == nil)
        #expect(loadError(torrent(v1MultiInfo)) == nil)
        #expect(loadError(v2Built.bytes) == nil)
        #expect(loadError(hybridBuilt.bytes) == nil)
        #expect(loadError(hybridSingleBuilt.bytes) == nil)
        // The same v2 halves on their own are consistent torrents: what they name is what a v2 client uses.
        let v2Only = { (bytes: [UInt8]) throws -> TorrentMetainfo in
            let value = try BencodeDecoder().decodeValue(bytes)
            return try TorrentMetainfo(bytes: value.setting(["info", "pieces"], to: nil).encoded)
        }
        #expect(
            try v2Only(renamedInV2(hybridSingleBuilt, to: ["other.iso"])).files.map(\.path) == [
                ["one.iso", "other.iso"]
            ])
        #expect(
            try v2Only(renamedInV2(hybridSingleBuilt, to: ["dir", "one.iso"])).files.map(\.path)
                == [["one.iso", "dir", "one.iso"]])
        // Meta version 1 with v1 pieces is accepted as v1.
        #expect(try TorrentMetainfo(bytes: torrent(v1Info.setting(["meta version"], to: 1))).version == .v1)
    }

    @Test("a file and a folder of the same name in the other order is renamed, not refused")
    func folderThenFile() throws {
        let t = try TorrentMetainfo(
            bytes: torrent(
                v1MultiInfo.setting(
                    ["files"], to: [["length": 1, "path": ["a", "b"]], ["length": 1, "path": ["a"]]])))
        #expect(t.files.map(\.path) == [["d", "a", "b"], ["d", "a.1"]])
        #expect(t.warnings.count == 1)
    }
}

extension BencodeDictionary {
    func merging(_ key: [UInt8], _ value: BencodeValue) -> BencodeDictionary {
        var d = self
        d[key] = value
        return d
    }
}
