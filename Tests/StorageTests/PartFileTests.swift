import Foundation
import Metainfo
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
}
