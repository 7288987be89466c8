import PeerBase
import Bencode
import Foundation
import Metainfo
import SystemPackage
import Testing

@testable import Storage

@Suite struct ResumeDataTests {
    @Test func roundTrips() throws {
        var pieces = Bitfield(count: 13)
        pieces[0] = true
        pieces[12] = true
        let data = ResumeData(infoHash: [UInt8](repeating: 7, count: 20), pieces: pieces,
            files: [FileStatus(length: 5, modificationTime: 1_700_000_000_123_456_789), nil, FileStatus(length: 0, modificationTime: -1)])
        let decoded = try ResumeData(bytes: data.encoded, pieceCount: 13, fileCount: 3)
        #expect(decoded == data)
        // Canonical bencode, so the same data always gives the same bytes.
        #expect(try BencodeDecoder().decodeValue(data.encoded).encoded == data.encoded)
    }

    @Test func refusesDataOfAnotherShape() throws {
        let data = ResumeData(infoHash: [UInt8](repeating: 1, count: 32), pieces: Bitfield(count: 9), files: [nil])
        #expect(storageError { _ = try ResumeData(bytes: data.encoded, pieceCount: 10, fileCount: 1) } != nil)
        #expect(storageError { _ = try ResumeData(bytes: data.encoded, pieceCount: 9, fileCount: 2) } != nil)
        #expect(storageError { _ = try ResumeData(bytes: Array("d3:fooi1ee".utf8), pieceCount: 9, fileCount: 1) }
            == .invalidResumeData("not peer resume data"))
        #expect(storageError { _ = try ResumeData(bytes: Array("garbage".utf8), pieceCount: 9, fileCount: 1) } != nil)
        // A bitfield with a spare bit set.
        var value = try BencodeDecoder().decodeValue(data.encoded).dictionary!
        value["pieces"] = .string([0x00, 0x01])
        let tampered = BencodeValue.dictionary(value).encoded
        #expect(storageError { _ = try ResumeData(bytes: tampered, pieceCount: 9, fileCount: 1) }
            == .invalidBitfield("spare bits after piece 8 are set"))
    }

    /// Pieces are trusted after a restart only if every file they touch has the size and time recorded.
    @Test func trustsOnlyUnchangedFiles() throws {
        let t = try awkwardTorrent(.v1)
        let storage = MemoryStorage(metainfo: t.metainfo)
        try writeAllBlocks(t, to: storage, seed: 2)
        let map = storage.pieceMap
        let saved = ResumeData(infoHash: t.metainfo.infoHashes.v1!.bytes, pieces: Bitfield(count: map.pieceCount, allSet: true),
            files: try storage.fileStatuses())
        #expect(saved.trustedPieces(current: try storage.fileStatuses(), map: map).allSet)

        // b.bin changes (its write counter moves): pieces touching it are no longer trusted.
        let b = t.fileIndex(["sub", "b.bin"])
        storage.corrupt(file: b, at: 0, with: 0)
        let trusted = saved.trustedPieces(current: try storage.fileStatuses(), map: map)
        #expect(trusted.setIndices == [0, 2, 3])
        #expect(saved.unchangedFiles(current: try storage.fileStatuses())[b] == false)
    }

    @Test func fileStatusesComeFromTheDisk() throws {
        let t = try awkwardTorrent(.v2)
        try withTemporaryFolder { folder in
            let storage = try FileStorage(metainfo: t.metainfo, directory: folder.filePath)
            defer { storage.close() }
            try writeAllBlocks(t, to: storage, seed: 4)
            let before = try storage.fileStatuses()
            let saved = ResumeData(infoHash: t.metainfo.infoHashes.v2!.bytes,
                pieces: Bitfield(count: storage.pieceMap.pieceCount, allSet: true), files: before)
            let reloaded = try ResumeData(bytes: saved.encoded, pieceCount: storage.pieceMap.pieceCount,
                fileCount: t.metainfo.files.count)
            #expect(reloaded.trustedPieces(current: try storage.fileStatuses(), map: storage.pieceMap).allSet)

            // Another program truncates a.bin: its size no longer matches.
            let a = t.fileIndex(["a.bin"])
            let handle = try FileHandle(forWritingTo: folder.appending(t.metainfo.files[a].path))
            try handle.truncate(atOffset: 100)
            try handle.close()
            let trusted = reloaded.trustedPieces(current: try storage.fileStatuses(), map: storage.pieceMap)
            #expect(trusted.setIndices == Array(storage.pieceMap.pieces(ofFile: a).upperBound..<storage.pieceMap.pieceCount))
            // And reading past its new end says so rather than returning zeros.
            let error = storageError { _ = try storage.readPiece(storage.pieceMap.index(1)!) }
            guard case .unexpectedEndOfFile = error else {
                Issue.record("expected unexpectedEndOfFile, got \(String(describing: error))")
                return
            }
        }
    }
}

@Suite struct StorageErrorTests {
    @Test func errnoMapping() {
        #expect(StorageError(errno: .noSpace, operation: .write, path: "/d/f") == .diskFull(path: "/d/f"))
        #expect(StorageError(errno: .diskQuotaExceeded, operation: .resize, path: "/d/f") == .diskFull(path: "/d/f"))
        #expect(StorageError(errno: .tooManySymbolicLinkLevels, operation: .open, path: "/d/l") == .symbolicLink(path: "/d/l"))
        #expect(StorageError(errno: .noSuchFileOrDirectory, operation: .open, path: "/d/f") == .missingFile(path: "/d/f"))
        let other = StorageError(errno: .permissionDenied, operation: .write, path: "/d/f")
        #expect(other == .system(operation: .write, path: "/d/f", errno: .permissionDenied))
        #expect(other.description.hasPrefix("cannot write \"/d/f\": "))
        #expect(other.description.contains("errno \(Errno.permissionDenied.rawValue)"))
        #expect(StorageError.diskFull(path: "/d/f").description.contains("no space left"))
    }
}
