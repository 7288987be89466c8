import Foundation
import Metainfo
import PeerBase
import SystemPackage
import Testing

@testable import Storage

@Suite("Part file for unselected files")
struct PartFileTests {
    @Test("an unselected file is never created; its bytes in shared pieces read back from the part file")
    func partFile() throws {
        let t = try awkwardTorrent(.v1)
        try withTemporaryFolder { folder in
            let a = t.fileIndex(["a.bin"])
            let part = folder.filePath.appending(".parts")
            let storage = try FileStorage(metainfo: t.metainfo, directory: folder.filePath, unselected: [a],
                partFile: part)
            defer { storage.close() }
            try writeAllBlocks(t, to: storage, seed: 3)
            try storage.createEmptyFiles()
            let verifier = PieceVerifier(metainfo: t.metainfo)
            for piece in storage.pieceMap.allPieces {
                #expect(try storage.readPiece(piece) == t.expectedPieces[piece.value])
                #expect(try storage.verify(piece: piece, with: verifier).passed)
            }
            let aPath = try storage.path(ofFile: a).string
            #expect(!FileManager.default.fileExists(atPath: aPath))
            #expect(FileManager.default.fileExists(atPath: part.string))
            // Its status is the part file's, so resume data notices when the part file changes.
            let statuses = try storage.fileStatuses()
            #expect(statuses[a] != nil)
            #expect(statuses[a]?.length == (try FileManager.default.attributesOfItem(atPath: part.string)[.size] as? Int64))
        }
    }

    // MARK: - A selection that changes

    /// x (50 000 bytes), y (100 000) and z (50 000), v1 without padding, 32 KiB pieces: piece 1 holds the
    /// end of x and the start of y, pieces 2 and 3 only y, piece 4 the end of y and the start of z.
    static func threeFiles() throws -> TestTorrent {
        try makeTorrent(pieceLength: 32 * 1024, version: .v1, files: [
            (["x"], SeededGenerator.bytes(50_000, seed: 11)),
            (["y"], SeededGenerator.bytes(100_000, seed: 12)),
            (["z"], SeededGenerator.bytes(50_000, seed: 13)),
        ])
    }

    /// What a download with y skipped writes: every piece holding bytes of x or z (y's share of pieces 1
    /// and 4 in the part file).
    static func downloadWithoutY(_ t: TestTorrent, into dir: URL, part: FilePath) throws {
        let storage = try FileStorage(metainfo: t.metainfo, directory: dir.filePath, unselected: [t.fileIndex(["y"])],
            partFile: part)
        defer { storage.close() }
        for piece in [0, 1, 4, 5, 6].map({ storage.pieceMap.index($0)! }) {
            try storage.write(piece: piece, offset: 0, bytes: t.expectedPieces[piece.value])
        }
        #expect(try storage.moveSharedPieces(verifier: PieceVerifier(metainfo: t.metainfo)) == 0)
    }

    /// Every regular file below `folder`, as paths relative to it.
    static func filesBelow(_ folder: URL) -> Set<String> {
        let walker = FileManager.default.enumerator(at: folder, includingPropertiesForKeys: [.isRegularFileKey])
        var out: Set<String> = []
        while let url = walker?.nextObject() as? URL {
            if (try? url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true {
                out.insert(String(url.standardizedFileURL.path.dropFirst(folder.standardizedFileURL.path.count + 1)))
            }
        }
        return out
    }

    /// The pieces that pass their hash check in `storage`.
    static func verified(_ storage: FileStorage, _ t: TestTorrent) -> Set<Int> {
        let verifier = PieceVerifier(metainfo: t.metainfo)
        let passed = storage.pieceMap.allPieces.filter { piece in
            (try? storage.verify(piece: piece, with: verifier))?.passed == true
        }
        return Set(passed.map(\.value))
    }

    @Test("skipping the middle file of a complete download keeps the pieces it shares; wanting it again too")
    func skipAndWantAgain() throws {
        let t = try Self.threeFiles()
        let (x, y, z) = (t.fileIndex(["x"]), t.fileIndex(["y"]), t.fileIndex(["z"]))
        let verifier = PieceVerifier(metainfo: t.metainfo)
        try withTemporaryFolder { folder in
            let dir = folder.appendingPathComponent("dl")
            let part = dir.filePath.appending(".parts")
            let complete = try FileStorage(metainfo: t.metainfo, directory: dir.filePath, partFile: part)
            try writeAllBlocks(t, to: complete, seed: 5)
            #expect(try complete.moveSharedPieces(verifier: verifier) == 0)
            let before = try complete.fileStatuses()
            complete.close()

            let skipping = try FileStorage(metainfo: t.metainfo, directory: dir.filePath, unselected: [y],
                partFile: part)
            #expect(try skipping.moveSharedPieces(verifier: verifier) == 2)
            // Every piece of x and z verifies; y's own pieces (2, 3) are nowhere this storage looks.
            #expect(Self.verified(skipping, t) == [0, 1, 4, 5, 6])
            // The part file holds y's bytes of pieces 1 and 4 at piece * pieceLength + offset (in a v1
            // torrent without padding, y's own offsets in the torrent: 50 000 and 131 072).
            let parts = try Data(contentsOf: URL(fileURLWithPath: part.string))
            let yData = t.payload[1].data
            #expect(Array(parts[50_000..<65_536]) == Array(yData[0..<15_536]))
            #expect(Array(parts[131_072..<150_000]) == Array(yData[81_072...]))
            // y stays on disk as it was; x and z were not written (their resume data still holds).
            #expect(Array(try Data(contentsOf: dir.appending(["t", "y"]))) == yData)
            let after = try skipping.fileStatuses()
            #expect(after[x] == before[x] && after[z] == before[z])
            #expect(after[y] != before[y])
            // A second start moves nothing.
            #expect(try skipping.moveSharedPieces(verifier: verifier) == 0)
            skipping.close()

            // y's own copy changed meanwhile: the part file's verified bytes are not overwritten with it.
            let handle = try FileHandle(forWritingTo: dir.appending(["t", "y"]))
            try handle.write(contentsOf: [yData[0] ^ 1])
            try handle.close()
            let again = try FileStorage(metainfo: t.metainfo, directory: dir.filePath, unselected: [y],
                partFile: part)
            #expect(try again.moveSharedPieces(verifier: verifier) == 0)
            #expect(Self.verified(again, t) == [0, 1, 4, 5, 6])
            again.close()
            let repair = try FileHandle(forWritingTo: dir.appending(["t", "y"]))
            try repair.write(contentsOf: [yData[0]])
            try repair.close()

            // Wanted again: y's own file is whole, the part file goes.
            let wanted = try FileStorage(metainfo: t.metainfo, directory: dir.filePath, partFile: part)
            defer { wanted.close() }
            #expect(try wanted.moveSharedPieces(verifier: verifier) == 0)
            #expect(Self.verified(wanted, t) == Set(0..<7))
            #expect(Self.filesBelow(folder) == ["dl/t/x", "dl/t/y", "dl/t/z"])
        }
    }

    @Test("a file skipped from the start and wanted later gets the bytes it shares from the part file")
    func wantedLater() throws {
        let t = try Self.threeFiles()
        let verifier = PieceVerifier(metainfo: t.metainfo)
        try withTemporaryFolder { folder in
            let dir = folder.appendingPathComponent("dl")
            let part = dir.filePath.appending(".parts")
            try Self.downloadWithoutY(t, into: dir, part: part)
            #expect(Self.filesBelow(folder) == ["dl/.parts", "dl/t/x", "dl/t/z"])

            let wanted = try FileStorage(metainfo: t.metainfo, directory: dir.filePath, partFile: part)
            defer { wanted.close() }
            #expect(try wanted.moveSharedPieces(verifier: verifier) == 2)
            // y's own pieces are still to download; the ones it shares are in its file now.
            #expect(Self.verified(wanted, t) == [0, 1, 4, 5, 6])
            let yData = t.payload[1].data
            let onDisk = Array(try Data(contentsOf: dir.appending(["t", "y"])))
            #expect(onDisk.count == yData.count)
            #expect(onDisk[..<15_536] == yData[..<15_536])
            #expect(onDisk[81_072...] == yData[81_072...])
            #expect(Self.filesBelow(folder) == ["dl/t/x", "dl/t/y", "dl/t/z"])
        }
    }

    @Test("a symbolic link in place of a file is neither read nor written through")
    func linkIsNotFollowed() throws {
        let t = try Self.threeFiles()
        let y = t.fileIndex(["y"])
        let verifier = PieceVerifier(metainfo: t.metainfo)
        try withTemporaryFolder { folder in
            let dir = folder.appendingPathComponent("dl")
            let part = dir.filePath.appending(".parts")
            try Self.downloadWithoutY(t, into: dir, part: part)
            // y's place is a link to a file outside the download folder.
            let outside = folder.appendingPathComponent("outside")
            try Data(count: 100_000).write(to: outside)
            try FileManager.default.createSymbolicLink(at: dir.appending(["t", "y"]), withDestinationURL: outside)

            // Wanted again: the bytes in the part file are not written through the link.
            let wanted = try FileStorage(metainfo: t.metainfo, directory: dir.filePath, partFile: part)
            #expect(try wanted.moveSharedPieces(verifier: verifier) == 0)
            wanted.close()
            #expect(try Data(contentsOf: outside) == Data(count: 100_000))

            // Skipped with the link holding y's bytes: they are not read through it into the part file.
            try Data(t.payload[1].data).write(to: outside)
            let skipped = try FileStorage(metainfo: t.metainfo, directory: dir.filePath, unselected: [y],
                partFile: part)
            defer { skipped.close() }
            #expect(try skipped.moveSharedPieces(verifier: verifier) == 0)
            #expect(Self.verified(skipped, t) == [0, 5, 6])
        }
    }
}
