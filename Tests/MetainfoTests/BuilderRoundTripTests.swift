import PeerBase
import Bencode
import Crypto
import Metainfo
import Testing

/// Torrents built in memory with `TorrentBuilder` and parsed back with `TorrentMetainfo(bytes:)`.
@Suite("Build and parse")
struct BuilderRoundTripTests {
    /// Checks what every well-formed torrent must satisfy: the hashes of `infoBytes`, the byte-exact
    /// bencode round trip, and piece hashes equal to an independent computation.
    func checkCommon(_ built: BuiltTorrent, _ t: TorrentMetainfo) throws {
        // The bencode round trip.
        #expect(BencodeEncoder.encode(try BencodeDecoder().decodeValue(built.bytes)) == built.bytes)
        // infoBytes is the info dictionary as encoded.
        let info = try #require(built.value["info"])
        #expect(t.infoBytes == info.encoded)
        if t.version != .v2 {
            let v1 = try #require(t.infoHashes.v1)
            #expect(v1.bytes == Reference.sha1(t.infoBytes))
            #expect(t.infoHashes.id == v1.hex)
            #expect(t.pieceHashesV1 == Reference.v1Pieces(built.stream, pieceLength: built.builder.pieceLength))
            #expect(t.pieceCount == (built.stream.count + t.pieceLength - 1) / t.pieceLength)
        } else {
            #expect(t.infoHashes.v1 == nil)
            #expect(t.pieceHashesV1 == nil)
        }
        if t.version != .v1 {
            let v2 = try #require(t.infoHashes.v2)
            #expect(v2.bytes == Reference.sha256(t.infoBytes))
            #expect(v2.truncated == Array(v2.bytes[0..<20]))
            #expect(v2.truncated.count == 20)
            if t.version == .v2 { #expect(t.infoHashes.id == v2.hex) }
            // Every non-empty file's root is its BEP 52 root; files over one piece have their layer.
            for file in built.files where !file.data.isEmpty {
                let parsed = try #require(
                    t.files.first { !$0.isPadding && Array($0.path.dropFirst(t.isMultiFile ? 1 : 0)) == file.path })
                let root = Reference.fileRoot(file.data)
                #expect(parsed.piecesRoot == root)
                if file.data.count > t.pieceLength {
                    #expect(t.pieceLayers[root] == Reference.pieceLayer(file.data, pieceLength: t.pieceLength))
                } else {
                    #expect(t.pieceLayers[root] == nil)
                }
            }
        } else {
            #expect(t.infoHashes.v2 == nil)
            #expect(t.pieceLayers.isEmpty)
            #expect(t.files.allSatisfy { $0.piecesRoot == nil })
        }
        #expect(t.totalLength == Int64(built.files.reduce(0) { $0 + $1.data.count }))
        #expect(t.files.map(\.index) == Array(t.files.indices))
    }

    @Test("v1 single file")
    func v1Single() throws {
        let built = buildTorrent(
            name: "file.bin", pieceLength: 16384, version: .v1,
            files: [MemFile(["file.bin"], SeededGenerator.bytes(40000, seed: 1))])
        let t = try TorrentMetainfo(bytes: built.bytes)
        #expect(t.version == .v1)
        #expect(t.name == "file.bin")
        #expect(!t.isMultiFile)
        #expect(t.pieceLength == 16384)
        #expect(t.pieceCount == 3)
        #expect(t.files == [TorrentFile(index: 0, path: ["file.bin"], length: 40000, offset: 0)])
        #expect(t.warnings.isEmpty)
        #expect(t.trackers.isEmpty && t.webSeeds.isEmpty)
        #expect(t.comment == nil && t.createdBy == nil && t.creationDate == nil && t.source == nil)
        #expect(!t.isPrivate)
        // The info dictionary is exactly what BEP 3 asks for.
        let info = try #require(built.value["info"])
        #expect(
            info.dictionary?.map { String(decoding: $0.key, as: UTF8.self) } == [
                "length", "name", "piece length", "pieces",
            ])
        try self.checkCommon(built, t)
    }

    @Test("v1 multi-file: paths below the name, contiguous offsets, empty files kept")
    func v1Multi() throws {
        let files = [
            MemFile("cd1/01.flac", length: 20000, seed: 2),
            MemFile("cd1/02.flac", length: 0),
            MemFile("cover.jpg", length: 5000, seed: 3),
            MemFile("notes.txt", length: 1, seed: 4),
        ]
        let built = buildTorrent(name: "album", pieceLength: 16384, version: .v1, files: files)
        let t = try TorrentMetainfo(bytes: built.bytes)
        #expect(t.version == .v1)
        #expect(t.name == "album")
        #expect(t.isMultiFile)
        #expect(
            t.files.map(\.path) == [
                ["album", "cd1", "01.flac"], ["album", "cd1", "02.flac"], ["album", "cover.jpg"],
                ["album", "notes.txt"],
            ])
        #expect(
            t.files.map(\.displayPath) == [
                "album/cd1/01.flac", "album/cd1/02.flac", "album/cover.jpg", "album/notes.txt",
            ])
        #expect(t.files.map(\.offset) == [0, 20000, 20000, 25000])
        #expect(t.files.map(\.length) == [20000, 0, 5000, 1])
        #expect(t.files.map(\.index) == [0, 1, 2, 3])
        #expect(t.files.allSatisfy { !$0.isPadding })
        #expect(t.pieceCount == 2)
        #expect(t.totalLength == 25001)
        try self.checkCommon(built, t)
    }

    @Test("v2 multi-file: file-tree order, piece-aligned offsets, roots and layers")
    func v2Multi() throws {
        let pl = 32768
        // Given out of order: the torrent's order is the file tree's (byte-wise) order.
        let files = [
            MemFile("z/big.bin", length: 3 * pl + 5, seed: 5),
            MemFile("a.txt", length: 1, seed: 6),
            MemFile("B-empty", length: 0),
            MemFile("m/block.bin", length: 16384, seed: 7),
            MemFile("m/exact.bin", length: 2 * pl, seed: 8),
            MemFile("m/\u{e9}t\u{e9}.txt", length: 20000, seed: 9),
        ]
        let built = buildTorrent(name: "root", pieceLength: pl, version: .v2, files: files)
        let t = try TorrentMetainfo(bytes: built.bytes)
        #expect(t.version == .v2)
        #expect(t.isMultiFile)
        #expect(
            t.files.map(\.displayPath) == [
                "root/B-empty", "root/a.txt", "root/m/block.bin", "root/m/exact.bin", "root/m/\u{e9}t\u{e9}.txt",
                "root/z/big.bin",
            ])
        #expect(t.files.map(\.index) == [0, 1, 2, 3, 4, 5])
        #expect(t.files.map(\.length) == [0, 1, 16384, Int64(2 * pl), 20000, Int64(3 * pl + 5)])
        let p = Int64(pl)
        #expect(t.files.map(\.offset) == [0, 0, p, 2 * p, 4 * p, 5 * p])
        #expect(t.pieceCount == 0 + 1 + 1 + 2 + 1 + 4)
        #expect(t.files[0].piecesRoot == nil)
        #expect(t.pieceLayers.count == 2)  // exact.bin and big.bin span more than one piece
        #expect(t.warnings.isEmpty)
        try self.checkCommon(built, t)
    }

    @Test("v2 single file")
    func v2Single() throws {
        let built = buildTorrent(
            name: "movie.mkv", pieceLength: 16384, version: .v2,
            files: [MemFile(["movie.mkv"], SeededGenerator.bytes(50000, seed: 10))])
        let t = try TorrentMetainfo(bytes: built.bytes)
        #expect(t.version == .v2)
        #expect(!t.isMultiFile)
        #expect(t.files.count == 1)
        #expect(t.files[0].path == ["movie.mkv"])
        #expect(t.files[0].offset == 0)
        #expect(t.pieceCount == 4)
        #expect(t.files[0].piecesRoot == Reference.fileRoot(built.files[0].data))
        try self.checkCommon(built, t)
    }

    @Test("hybrid multi-file: padding files in the v1 list and its indices, the last file padded too")
    func hybridMulti() throws {
        let files = [
            MemFile("a.bin", length: 1000, seed: 11),
            MemFile("b.empty", length: 0),
            MemFile("c.bin", length: 40000, seed: 12),
            MemFile("d.bin", length: 16384, seed: 13),
            MemFile("e.bin", length: 5, seed: 14),
        ]
        let built = buildTorrent(name: "mix", pieceLength: 16384, version: .hybrid, files: files)
        let t = try TorrentMetainfo(bytes: built.bytes)
        #expect(t.version == .hybrid)
        #expect(t.isMultiFile)
        #expect(
            t.files.map(\.displayPath) == [
                "mix/a.bin", "mix/.pad/15384", "mix/b.empty", "mix/c.bin", "mix/.pad/9152", "mix/d.bin", "mix/e.bin",
                "mix/.pad/16379",
            ])
        #expect(t.files.map(\.isPadding) == [false, true, false, false, true, false, false, true])
        #expect(t.files.map(\.index) == Array(0..<8))
        #expect(t.files.map(\.offset) == [0, 1000, 16384, 16384, 56384, 65536, 81920, 81925])
        #expect(t.files.filter(\.isPadding).allSatisfy { $0.attributes == "p" && $0.piecesRoot == nil })
        #expect(
            t.files.filter { !$0.isPadding && $0.length > 0 }.allSatisfy {
                $0.offset % 16384 == 0 && $0.piecesRoot != nil
            })
        #expect(t.files[2].piecesRoot == nil)  // the empty file
        #expect(t.pieceCount == 6)
        #expect(t.totalLength == 1000 + 40000 + 16384 + 5)
        #expect(t.warnings.isEmpty)
        try self.checkCommon(built, t)
    }

    @Test("hybrid single file: never padded")
    func hybridSingle() throws {
        let built = buildTorrent(
            name: "one.iso", pieceLength: 16384, version: .hybrid,
            files: [MemFile(["one.iso"], SeededGenerator.bytes(70000, seed: 15))])
        let t = try TorrentMetainfo(bytes: built.bytes)
        #expect(t.version == .hybrid)
        #expect(!t.isMultiFile)
        #expect(
            t.files == [
                TorrentFile(
                    index: 0, path: ["one.iso"], length: 70000, offset: 0,
                    piecesRoot: Reference.fileRoot(built.files[0].data))
            ])
        #expect(t.pieceCount == 5)
        #expect(built.stream.count == 70000)
        try self.checkCommon(built, t)
    }

    @Test("a folder holding one file is multi-file")
    func folderOfOne() throws {
        for version in TorrentVersion.allCases {
            let built = buildTorrent(
                name: "dir", pieceLength: 16384, version: version, files: [MemFile("only.txt", length: 100, seed: 16)],
                multiFile: true)
            let t = try TorrentMetainfo(bytes: built.bytes)
            #expect(t.version == version)
            #expect(t.isMultiFile)
            #expect(t.files.map(\.path) == [["dir", "only.txt"]])
            try self.checkCommon(built, t)
        }
    }

    @Test("attributes are carried into both file lists")
    func attributes() throws {
        let files = [
            MemFile(["run.sh"], SeededGenerator.bytes(10, seed: 17), attributes: "x"), MemFile("z", length: 3, seed: 18),
        ]
        let built = buildTorrent(name: "tools", pieceLength: 16384, version: .hybrid, files: files)
        let t = try TorrentMetainfo(bytes: built.bytes)
        #expect(t.files[0].isExecutable)
        #expect(!t.files[0].isHidden && !t.files[0].isSymlink && !t.files[0].isPadding)
        #expect(built.value.at(["info", "file tree", "run.sh", "", "attr"]) == "x")
        #expect(built.value.at(["info", "files", "#0", "attr"]) == "x")
        try self.checkCommon(built, t)
    }

    @Test("identical files share one pieces root and one piece layer")
    func identicalFiles() throws {
        let data = SeededGenerator.bytes(50000, seed: 21)
        let built = buildTorrent(
            name: "twins", pieceLength: 16384, version: .hybrid,
            files: [MemFile(["a.bin"], data), MemFile(["b.bin"], data), MemFile(["c.bin"], [1])])
        let t = try TorrentMetainfo(bytes: built.bytes)
        let real = t.files.filter { !$0.isPadding }
        #expect(real[0].piecesRoot == real[1].piecesRoot)
        #expect(real[0].piecesRoot == Reference.fileRoot(data))
        #expect(t.pieceLayers.count == 1)
        #expect(t.warnings.isEmpty)
        try self.checkCommon(built, t)
    }

    @Test("a bare info dictionary parses to the same torrent (BEP 9 metadata)")
    func bareInfo() throws {
        let built = buildTorrent(
            name: "mix", pieceLength: 16384, version: .hybrid,
            files: [MemFile("a", length: 20000, seed: 19), MemFile("b", length: 300, seed: 20)])
        let full = try TorrentMetainfo(bytes: built.bytes)
        let bare = try TorrentMetainfo(infoBytes: full.infoBytes)
        #expect(bare.infoHashes == full.infoHashes)
        #expect(bare.files == full.files)
        #expect(bare.pieceLayers.isEmpty)  // piece layers live outside the info dictionary
        #expect(bare.warnings.isEmpty)
        // The full torrent without its piece layers loads, with a warning.
        let stripped = built.value.setting(["piece layers"], to: nil).encoded
        let t = try TorrentMetainfo(bytes: stripped)
        #expect(t.pieceLayers.isEmpty)
        #expect(t.warnings.count == 1)
        #expect(t.infoHashes == full.infoHashes)
    }
}
