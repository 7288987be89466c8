import PeerBase
import Foundation
import Metainfo
import Testing

@testable import Storage

@Suite struct MemoryStorageTests {
    @Test(arguments: TorrentVersion.allCases)
    func roundTripAndVerify(version: TorrentVersion) throws {
        let t = try awkwardTorrent(version)
        let storage = MemoryStorage(metainfo: t.metainfo)
        try writeAllBlocks(t, to: storage, seed: 5)
        let verifier = PieceVerifier(metainfo: t.metainfo)
        for piece in storage.pieceMap.allPieces {
            #expect(try storage.readPiece(piece) == t.expectedPieces[piece.value])
            #expect(try storage.verify(piece: piece, with: verifier).passed)
        }
        let c = t.fileIndex(["sub", "deeper", "c.bin"])
        #expect(storage.corrupt(file: c, at: 100, with: 0xAA ^ t.data(of: t.metainfo.files[c])[100]))
        let broken = try #require(storage.pieceMap.index(storage.pieceMap.pieces(ofFile: c).lowerBound))
        #expect(try !storage.verify(piece: broken, with: verifier).passed)
    }

    /// The same operations on both storages give the same bytes, statuses (present or not, and lengths)
    /// and errors.
    @Test(arguments: TorrentVersion.allCases)
    func behavesLikeFileStorage(version: TorrentVersion) throws {
        let t = try awkwardTorrent(version, seed: 11)
        try withTemporaryFolder { folder in
            let disk = try FileStorage(metainfo: t.metainfo, directory: folder.filePath)
            defer { disk.close() }
            let memory = MemoryStorage(metainfo: t.metainfo)
            let map = disk.pieceMap
            var rng = SeededGenerator(seed: 99)
            let pieces = t.expectedPieces

            // Write a random half of the blocks, then compare random ranges, statuses and errors.
            let blocks = map.allPieces.flatMap { map.blocks($0) }.filter { _ in Bool.random(using: &rng) }
            for block in blocks {
                let (piece, offset, length) = (map.index(Int(block.piece))!, Int(block.offset), Int(block.length))
                let bytes = Array(pieces[piece.value][offset..<offset + length])
                try disk.write(piece: piece, offset: offset, bytes: bytes)
                try memory.write(piece: piece, offset: offset, bytes: bytes)
            }
            for _ in 0..<200 {
                let piece = map.allPieces.randomElement(using: &rng)!
                let size = map.pieceSize(piece)
                let offset = Int.random(in: 0...size, using: &rng)
                let length = Int.random(in: 0...(size - offset), using: &rng)
                let a = Result { () throws(StorageError) in try disk.read(piece: piece, offset: offset, length: length) }
                let b = Result { () throws(StorageError) in try memory.read(piece: piece, offset: offset, length: length) }
                switch (a, b) {
                case (.success(let x), .success(let y)): #expect(x == y)
                case (.failure(let x), .failure(let y)): #expect(kind(of: x) == kind(of: y))
                default: Issue.record("\(piece) [\(offset), +\(length)): disk \(a), memory \(b)")
                }
            }
            #expect(try disk.fileLengthsOnDisk() == memory.fileLengthsOnDisk())
            let bad = storageError { try disk.write(piece: map.index(0)!, offset: 1, bytes: [UInt8](repeating: 0, count: map.pieceSize(map.index(0)!))) }
            let bad2 = storageError { try memory.write(piece: map.index(0)!, offset: 1, bytes: [UInt8](repeating: 0, count: map.pieceSize(map.index(0)!))) }
            #expect(bad != nil && bad == bad2)
            disk.close()
            memory.close()
            #expect(storageError { _ = try disk.readPiece(map.index(0)!) } == .closed)
            #expect(storageError { _ = try memory.readPiece(map.index(0)!) } == .closed)
        }
    }

    @Test func paddingIsNeverStoredAndReadsAsZeros() throws {
        let t = try awkwardTorrent(.hybrid)
        let storage = MemoryStorage(metainfo: t.metainfo)
        let piece = try #require(storage.pieceMap.index(1))
        try storage.write(piece: piece, offset: 0, bytes: [UInt8](repeating: 0xFF, count: 32768))
        let back = try storage.readPiece(piece)
        #expect(back[..<7232].allSatisfy { $0 == 0xFF })
        #expect(back[7232...].allSatisfy { $0 == 0 })
        let statuses = try storage.fileStatuses()
        for file in t.metainfo.files where file.isPadding { #expect(statuses[file.index] == nil) }
    }
}
