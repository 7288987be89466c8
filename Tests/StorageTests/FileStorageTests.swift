import PeerBase
import Foundation
import Metainfo
import SystemPackage
import Testing

@testable import Storage

@Suite struct FileStorageTests {
    /// Every block written in random order reads back equal, every piece verifies, the files on disk hold
    /// the payload, and no padding file is created.
    @Test(arguments: TorrentVersion.allCases)
    func randomOrderRoundTrip(version: TorrentVersion) throws {
        let t = try awkwardTorrent(version)
        try withTemporaryFolder { folder in
            let storage = try FileStorage(metainfo: t.metainfo, directory: folder.filePath)
            defer { storage.close() }
            try writeAllBlocks(t, to: storage, seed: 42)

            let verifier = PieceVerifier(metainfo: t.metainfo)
            for piece in storage.pieceMap.allPieces {
                #expect(try storage.readPiece(piece) == t.expectedPieces[piece.value])
                let check = try storage.verify(piece: piece, with: verifier)
                #expect(check.passed, "\(piece): \(check)")
                #expect(check.v1 == (version == .v2 ? .notApplicable : .passed))
                #expect(check.v2 == (version == .v1 ? .notApplicable : .passed))
            }
            for file in t.metainfo.files where !file.isPadding && file.length > 0 {
                let onDisk = try Data(contentsOf: folder.appending(file.path))
                #expect(Array(onDisk) == t.data(of: file), "\(file.displayPath)")
            }
            #expect(!exists(folder.appending([t.metainfo.name, ".pad"])))
            // Nothing is ever written to an empty file, so it is not created (the engine makes those at the end).
            #expect(!exists(folder.appending([t.metainfo.name, "empty.txt"])))

            let lengths = try storage.fileLengthsOnDisk()
            for file in t.metainfo.files {
                #expect(lengths[file.index] == (file.isPadding || file.length == 0 ? nil : file.length))
            }
        }
    }

    /// Files of pieces never written are not created; reading them is an error, not zeros.
    @Test func unselectedFilesAreNotCreated() throws {
        let t = try awkwardTorrent(.v2)
        let c = t.fileIndex(["sub", "deeper", "c.bin"])
        try withTemporaryFolder { folder in
            let storage = try FileStorage(metainfo: t.metainfo, directory: folder.appendingPathComponent("dl").filePath)
            let map = storage.pieceMap
            let piece = try #require(map.index(map.pieces(ofFile: c).lowerBound + 1))
            try storage.write(piece: piece, offset: 0, bytes: t.expectedPieces[piece.value])

            let root = folder.appendingPathComponent("dl")
            #expect(!exists(root.appending(["t", "a.bin"])))
            #expect(!exists(root.appending(["t", "sub", "b.bin"])))
            #expect(exists(root.appending(["t", "sub", "deeper", "c.bin"])))
            // Created sparse at its full length; the unwritten start reads as zeros.
            let statuses = try storage.fileStatuses()
            #expect(statuses[c]?.length == 70_000)
            #expect(statuses.enumerated().allSatisfy { $0.offset == c || $0.element == nil })
            #expect(try storage.readPiece(map.index(map.pieces(ofFile: c).lowerBound)!) == [UInt8](repeating: 0, count: 32768))

            let error = storageError { _ = try storage.readPiece(map.index(0)!) }
            #expect(error == .missingFile(path: root.appending(["t", "a.bin"]).path))
        }
    }

    @Test(arguments: TorrentVersion.allCases)
    func aFlippedByteFailsVerification(version: TorrentVersion) throws {
        let t = try awkwardTorrent(version)
        try withTemporaryFolder { folder in
            let storage = try FileStorage(metainfo: t.metainfo, directory: folder.filePath)
            defer { storage.close() }
            try writeAllBlocks(t, to: storage, seed: 1)
            let verifier = PieceVerifier(metainfo: t.metainfo)
            let map = storage.pieceMap
            // One piece in the middle of a file, one holding a file's tail (padding after it in a hybrid).
            let c = t.fileIndex(["sub", "deeper", "c.bin"])
            for p in [map.pieces(ofFile: c).lowerBound + 1, map.pieces(ofFile: c).upperBound - 1] {
                let piece = try #require(map.index(p))
                // A byte of file data (in a hybrid, the tail piece ends with padding, which is never stored).
                let at = map.spans(piece: piece)[0].length / 3
                let original = try storage.read(piece: piece, offset: at, length: 1)
                try storage.write(piece: piece, offset: at, bytes: [original[0] ^ 0x01])

                let check = try storage.verify(piece: piece, with: verifier)
                #expect(!check.passed)
                #expect(check.v1 == (version == .v2 ? .notApplicable : .failed))
                #expect(check.v2 == (version == .v1 ? .notApplicable : .failed))
                try storage.write(piece: piece, offset: at, bytes: original)
                #expect(try storage.verify(piece: piece, with: verifier).passed)
            }
        }
    }

    @Test func outOfRangeAndClosed() throws {
        let t = try awkwardTorrent(.v1)
        try withTemporaryFolder { folder in
            let storage = try FileStorage(metainfo: t.metainfo, directory: folder.filePath)
            let last = try #require(storage.pieceMap.index(3))
            #expect(storageError { try storage.write(piece: last, offset: 21000, bytes: [UInt8](repeating: 1, count: 697)) }
                == .outOfRange(piece: 3, offset: 21000, length: 697, pieceSize: 21696))
            #expect(storageError { _ = try storage.read(piece: last, offset: -1, length: 1) } != nil)
            // An index made by a map of a larger torrent.
            let bigger = try awkwardTorrent(.hybrid).map
            #expect(storageError { _ = try storage.read(piece: bigger.index(5)!, offset: 0, length: 1) } != nil)
            try storage.write(piece: last, offset: 0, bytes: [1, 2, 3])
            storage.close()
            #expect(storageError { _ = try storage.read(piece: last, offset: 0, length: 3) } == .closed)
            #expect(storageError { try storage.write(piece: last, offset: 0, bytes: [1]) } == .closed)
            #expect(storageError { _ = try storage.fileStatuses() } == .closed)
        }
    }

    /// With room for two descriptors and many files, writes still land and the cache stays bounded.
    @Test func descriptorCacheIsBounded() throws {
        let files = (0..<6).map { (path: ["f\($0)"], data: SeededGenerator.bytes(20_000 + $0, seed: UInt64($0))) }
        let t = try makeTorrent(pieceLength: 16384, version: .v1, files: files)
        try withTemporaryFolder { folder in
            let storage = try FileStorage(metainfo: t.metainfo, directory: folder.filePath, maxOpenFiles: 2)
            defer { storage.close() }
            try writeAllBlocks(t, to: storage, seed: 3)
            #expect(storage.openFileCount <= 2)
            let verifier = PieceVerifier(metainfo: t.metainfo)
            for piece in storage.pieceMap.allPieces {
                #expect(try storage.verify(piece: piece, with: verifier).passed)
            }
            #expect(storage.openFileCount <= 2)
        }
    }

    /// Reads and writes from several threads at once (the engine's disk pool) give the same files.
    @Test func concurrentWrites() async throws {
        let t = try awkwardTorrent(.v1)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("peer-storage-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let storage = try FileStorage(metainfo: t.metainfo, directory: folder.filePath, maxOpenFiles: 1)
        let pieces = t.expectedPieces
        let map = storage.pieceMap
        try await withThrowingTaskGroup(of: Void.self) { group in
            for piece in map.allPieces {
                group.addTask {
                    for block in map.blocks(piece) {
                        let (offset, length) = (Int(block.offset), Int(block.length))
                        try storage.write(piece: piece, offset: offset,
                            bytes: Array(pieces[piece.value][offset..<offset + length]))
                    }
                }
            }
            try await group.waitForAll()
        }
        let verifier = PieceVerifier(metainfo: t.metainfo)
        for piece in map.allPieces { #expect(try storage.verify(piece: piece, with: verifier).passed) }
        storage.close()
    }

    @Test func executableFilesGetTheExecuteBit() throws {
        var t = try makeTorrent(pieceLength: 16384, version: .v1, files: [(["run.sh"], Array("#!/bin/sh\n".utf8)),
            (["data"], [1, 2, 3])])
        t.metainfo.files[0].attributes = "x"
        try withTemporaryFolder { folder in
            let storage = try FileStorage(metainfo: t.metainfo, directory: folder.filePath)
            defer { storage.close() }
            try writeAllBlocks(t, to: storage, seed: 0)
            let script = try FileManager.default.attributesOfItem(atPath: folder.appending(["t", "run.sh"]).path)
            let data = try FileManager.default.attributesOfItem(atPath: folder.appending(["t", "data"]).path)
            #expect(((script[.posixPermissions] as? Int) ?? 0) & 0o100 != 0)
            #expect(((data[.posixPermissions] as? Int) ?? 0) & 0o100 == 0)
        }
    }
}
