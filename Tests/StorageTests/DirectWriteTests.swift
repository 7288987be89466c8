import Foundation
import Metainfo
import PeerBase
import Testing

#if canImport(Glibc)
import Glibc
#endif

@testable import Storage

@Suite("Direct writes (O_DIRECT)")
struct DirectWriteTests {
    /// Whether the file system under `folder` takes O_DIRECT (tmpfs does not).
    static func directSupported(in folder: URL) -> Bool {
        let probe = folder.appendingPathComponent("probe").path
        let fd = Glibc.open(probe, O_CREAT | O_WRONLY | FileStorage.directFlag, 0o644)
        defer { unlink(probe) }
        guard fd >= 0 else { return false }
        close(fd)
        return true
    }

    @Test("aligned spans are written past the page cache, the others the ordinary way; every byte reads back")
    func directWrites() throws {
        // a: three whole pieces and 1 000 bytes; b: 5 000 bytes. Pieces 0-2 lie in a, 4 KiB-aligned; piece 3
        // holds a's end (aligned start, unaligned length) and b (unaligned start).
        let t = try makeTorrent(pieceLength: 64 * 1024, version: .v1, files: [
            (["a"], SeededGenerator.bytes(3 * 65536 + 1000, seed: 21)),
            (["b"], SeededGenerator.bytes(5000, seed: 22)),
        ])
        try withTemporaryFolder { folder in
            let storage = try FileStorage(metainfo: t.metainfo, directory: folder.filePath, directWrites: true)
            defer { storage.close() }
            let pieces = storage.pieceMap.allPieces
            // Piece 0 in blocks: two aligned 16 KiB blocks, then the rest from an unaligned offset.
            let first = t.expectedPieces[0]
            try storage.write(piece: pieces[0], offset: 0, bytes: Array(first[0..<16384]))
            try storage.write(piece: pieces[0], offset: 16384, bytes: Array(first[16384..<32768]))
            try storage.write(piece: pieces[0], offset: 32768, bytes: Array(first[32768..<32868]))
            try storage.write(piece: pieces[0], offset: 32868, bytes: Array(first[32868...]))
            for piece in pieces.dropFirst() { try storage.write(piece: piece, offset: 0, bytes: t.expectedPieces[piece.value]) }
            let verifier = PieceVerifier(metainfo: t.metainfo)
            for piece in pieces {
                #expect(try storage.readPiece(piece) == t.expectedPieces[piece.value])
                #expect(try storage.verify(piece: piece, with: verifier).passed)
            }
            #expect(try Data(contentsOf: folder.appendingPathComponent("t/a")) == Data(t.payload[0].data))
            #expect(try Data(contentsOf: folder.appendingPathComponent("t/b")) == Data(t.payload[1].data))
            // Two aligned blocks of piece 0, pieces 1 and 2 whole: 4 direct writes, where the file system allows.
            let expected = Self.directSupported(in: folder) ? 4 : 0
            #expect(storage.directWriteCount.load(ordering: .relaxed) == expected)
        }
    }

    @Test("without directWrites nothing is written directly")
    func buffered() throws {
        let t = try makeTorrent(name: "a", pieceLength: 64 * 1024, version: .v1, files: [(["a"], SeededGenerator.bytes(131072, seed: 23))])
        try withTemporaryFolder { folder in
            let storage = try FileStorage(metainfo: t.metainfo, directory: folder.filePath)
            defer { storage.close() }
            for piece in storage.pieceMap.allPieces { try storage.write(piece: piece, offset: 0, bytes: t.expectedPieces[piece.value]) }
            #expect(storage.directWriteCount.load(ordering: .relaxed) == 0)
            #expect(try storage.readPiece(storage.pieceMap.allPieces[1]) == t.expectedPieces[1])
        }
    }
}
