import PeerBase
import Metainfo
import Testing

@testable import Storage

@Suite struct PieceMapTests {
    @Test func v1PiecesStraddleFilesAndSkipEmptyOnes() throws {
        let t = try awkwardTorrent(.v1)
        let map = t.map
        #expect(map.pieceCount == 4)
        #expect(map.allPieces.map { map.pieceSize($0) } == [32768, 32768, 32768, 21696])
        let (a, empty, b, c) = (t.fileIndex(["a.bin"]), t.fileIndex(["empty.txt"]),
            t.fileIndex(["sub", "b.bin"]), t.fileIndex(["sub", "deeper", "c.bin"]))

        #expect(map.spans(piece: map.index(0)!) == [FileSpan(fileIndex: a, fileOffset: 0, length: 32768,
            isPadding: false, pieceOffset: 0)])
        #expect(map.spans(piece: map.index(1)!) == [
            FileSpan(fileIndex: a, fileOffset: 32768, length: 7232, isPadding: false, pieceOffset: 0),
            FileSpan(fileIndex: b, fileOffset: 0, length: 10000, isPadding: false, pieceOffset: 7232),
            FileSpan(fileIndex: c, fileOffset: 0, length: 15536, isPadding: false, pieceOffset: 17232),
        ])
        #expect(map.spans(piece: map.index(3)!) == [FileSpan(fileIndex: c, fileOffset: 48304, length: 21696,
            isPadding: false, pieceOffset: 0)])
        // A range inside a piece: from the middle of b into c.
        #expect(map.spans(piece: map.index(1)!, offset: 10000, length: 8000) == [
            FileSpan(fileIndex: b, fileOffset: 2768, length: 7232, isPadding: false, pieceOffset: 10000),
            FileSpan(fileIndex: c, fileOffset: 0, length: 768, isPadding: false, pieceOffset: 17232),
        ])
        #expect(map.spans(piece: map.index(1)!, offset: 5, length: 0) == [])

        #expect(map.pieces(ofFile: a) == 0..<2)
        #expect(map.pieces(ofFile: empty).isEmpty)
        #expect(map.pieces(ofFile: b) == 1..<2)
        #expect(map.pieces(ofFile: c) == 1..<4)
        #expect(map.files(inPiece: map.index(1)!) == [a, b, c])
        #expect(map.merkleLocation(map.index(0)!) == nil)
    }

    @Test func hybridPadsEveryFileToAPieceBoundary() throws {
        let t = try awkwardTorrent(.hybrid)
        let map = t.map
        #expect(map.pieceCount == 6)
        #expect(map.allPieces.allSatisfy { map.pieceSize($0) == 32768 })
        let a = t.fileIndex(["a.bin"])
        let b = t.fileIndex(["sub", "b.bin"])
        let c = t.fileIndex(["sub", "deeper", "c.bin"])
        let spans1 = map.spans(piece: map.index(1)!)
        #expect(spans1.count == 2)
        #expect(spans1[0] == FileSpan(fileIndex: a, fileOffset: 32768, length: 7232, isPadding: false, pieceOffset: 0))
        #expect(spans1[1].isPadding && spans1[1].length == 25536 && spans1[1].pieceOffset == 7232)
        #expect(map.files[spans1[1].fileIndex].isPadding)

        let spans5 = map.spans(piece: map.index(5)!)
        #expect(spans5.map(\.length) == [4464, 28304])
        #expect(spans5.map(\.isPadding) == [false, true])
        #expect(spans5[0].fileIndex == c && spans5[0].fileOffset == 65536)

        #expect(map.pieces(ofFile: b) == 2..<3)
        #expect(map.files(inPiece: map.index(2)!) == [b])
        #expect(map.merkleLocation(map.index(1)!)! == (a, 1, 7232))
        #expect(map.merkleLocation(map.index(2)!)! == (b, 0, 10000))
        #expect(map.merkleLocation(map.index(5)!)! == (c, 2, 4464))
    }

    @Test func v2FilesStartOnPiecesAndEndWithShortPieces() throws {
        let t = try awkwardTorrent(.v2)
        let map = t.map
        let a = t.fileIndex(["a.bin"])
        let empty = t.fileIndex(["empty.txt"])
        let b = t.fileIndex(["sub", "b.bin"])
        let c = t.fileIndex(["sub", "deeper", "c.bin"])
        #expect(map.pieceCount == 6)
        #expect(map.allPieces.map { map.pieceSize($0) } == [32768, 7232, 10000, 32768, 32768, 4464])
        #expect(map.pieces(ofFile: a) == 0..<2)
        #expect(map.pieces(ofFile: empty).isEmpty)
        #expect(map.pieces(ofFile: b) == 2..<3)
        #expect(map.pieces(ofFile: c) == 3..<6)
        #expect(map.spans(piece: map.index(1)!) == [FileSpan(fileIndex: a, fileOffset: 32768, length: 7232,
            isPadding: false, pieceOffset: 0)])
        #expect(map.spans(piece: map.index(4)!) == [FileSpan(fileIndex: c, fileOffset: 32768, length: 32768,
            isPadding: false, pieceOffset: 0)])
        #expect(map.merkleLocation(map.index(4)!)! == (c, 1, 32768))
        #expect(map.blockCount(map.index(1)!) == 1)
        #expect(map.blockRange(map.index(1)!, block: 0) == 0..<7232)
        #expect(map.blockCount(map.index(5)!) == 1)
    }

    /// Walking every piece's spans visits each real file's bytes exactly once, in order, for every layout.
    @Test(arguments: TorrentVersion.allCases)
    func spansCoverEveryFileOnce(version: TorrentVersion) throws {
        let t = try makeTorrent(pieceLength: 16384, version: version, files: [
            (["a"], SeededGenerator.bytes(1, seed: 1)), (["b"], SeededGenerator.bytes(16384, seed: 2)), (["c"], []),
            (["d"], SeededGenerator.bytes(50_001, seed: 3)), (["e"], SeededGenerator.bytes(16383, seed: 4)),
        ])
        let map = t.map
        var next = [Int: Int64]()
        var pieceBytes = 0
        for piece in map.allPieces {
            var inPiece = 0
            for span in map.spans(piece: piece) {
                #expect(span.pieceOffset == inPiece)
                inPiece += span.length
                if span.isPadding { continue }
                #expect(span.fileOffset == next[span.fileIndex, default: 0])
                next[span.fileIndex, default: 0] += Int64(span.length)
                #expect(map.pieces(ofFile: span.fileIndex).contains(piece.value))
            }
            #expect(inPiece == map.pieceSize(piece))
            pieceBytes += inPiece
        }
        for file in t.metainfo.files where !file.isPadding {
            #expect(next[file.index, default: 0] == file.length)
        }
        #expect(t.expectedPieces.map(\.count) == map.allPieces.map { map.pieceSize($0) })
        #expect(map.pieceCount == t.metainfo.pieceCount)
    }

    @Test func indicesAndBlocksAreValidated() throws {
        let map = try awkwardTorrent(.v1).map
        #expect(map.index(-1) == nil)
        #expect(map.index(4) == nil)
        let last = try #require(map.index(3))
        #expect(map.blockCount(last) == 2)
        #expect(map.blocks(last).map(\.length) == [16384, 5312])
        #expect(map.blocks(last).map(\.offset) == [0, 16384])
        #expect(map.blockRef(piece: 3, offset: 16384, length: 5312) != nil)
        #expect(map.blockRef(piece: 3, offset: 16384, length: 5313) == nil)  // past the piece
        #expect(map.blockRef(piece: 0, offset: 0, length: 16385) == nil)  // over 16 KiB
        #expect(map.blockRef(piece: 0, offset: 0, length: 0) == nil)
        #expect(map.blockRef(piece: 0, offset: -1, length: 1) == nil)
        #expect(map.blockRef(piece: 4, offset: 0, length: 1) == nil)
    }

    @Test func singleFileTorrent() throws {
        let t = try makeTorrent(name: "one.iso", pieceLength: 16384, version: .hybrid,
            files: [(["one.iso"], SeededGenerator.bytes(40_000, seed: 9))])
        let map = t.map
        #expect(map.files.count == 1)
        #expect(map.pieceCount == 3)
        #expect(map.pieceSize(map.index(2)!) == 40_000 - 32768)
        #expect(map.spans(piece: map.index(2)!) == [FileSpan(fileIndex: 0, fileOffset: 32768, length: 7232,
            isPadding: false, pieceOffset: 0)])
    }
}
