import Foundation
import Metainfo
import SystemPackage
import Testing

@testable import Storage

@Suite struct PathResolverTests {
    @Test func resolvesUnderTheRoot() throws {
        let resolver = try PathResolver(root: "/downloads/peer")
        #expect(try resolver.resolve(["album", "cd1", "01.flac"]) == "/downloads/peer/album/cd1/01.flac")
        #expect(try resolver.resolve(["..."]) == "/downloads/peer/...")  // an odd but ordinary name
    }

    @Test(arguments: [
        ["a", "..", "b"], [".."], ["a", "."], ["a", "", "b"], ["a/b"], ["/etc"], ["a\u{0}b"], [],
    ])
    func refusesComponentsThatCouldEscape(path: [String]) throws {
        let resolver = try PathResolver(root: "/downloads")
        let error = storageError { _ = try resolver.resolve(path) }
        guard case .unsafePath = error else {
            Issue.record("\(path): \(String(describing: error))")
            return
        }
    }

    @Test func refusesARelativeRoot() {
        #expect(storageError { _ = try PathResolver(root: "downloads") } == .relativeDownloadFolder("downloads"))
    }

    /// A folder of the torrent replaced by a symbolic link to somewhere else: the write fails and nothing
    /// appears at the link's target.
    @Test func refusesASymlinkedFolder() throws {
        let t = try awkwardTorrent(.v1)
        try withTemporaryFolder { folder in
            let downloads = folder.appendingPathComponent("downloads")
            let outside = folder.appendingPathComponent("outside")
            try FileManager.default.createDirectory(at: downloads.appending(["t"]), withIntermediateDirectories: true)
            try FileManager.default.createDirectory(at: outside, withIntermediateDirectories: true)
            try FileManager.default.createSymbolicLink(at: downloads.appending(["t", "sub"]), withDestinationURL: outside)

            let storage = try FileStorage(metainfo: t.metainfo, directory: downloads.filePath)
            defer { storage.close() }
            let b = t.fileIndex(["sub", "b.bin"])
            let piece = try #require(storage.pieceMap.index(storage.pieceMap.pieces(ofFile: b).lowerBound))
            let error = storageError { try storage.write(piece: piece, offset: 0, bytes: t.expectedPieces[piece.value]) }
            #expect(error == .symbolicLink(path: downloads.appending(["t", "sub"]).path))
            #expect(try FileManager.default.contentsOfDirectory(atPath: outside.path).isEmpty)
            #expect(storageError { try storage.resolver.checkOnDisk(["t", "sub", "b.bin"]) } != nil)
            #expect(storageError { _ = try storage.fileStatuses() } == .symbolicLink(path: downloads.appending(["t", "sub"]).path))
        }
    }

    /// The torrent's own folder is a link to somewhere else: refused too (only the download folder itself
    /// may be a link).
    @Test func refusesASymlinkedTorrentFolder() throws {
        let t = try makeTorrent(pieceLength: 16384, version: .v1, files: [(["d", "f"], [1, 2, 3]), (["g"], [4])])
        try withTemporaryFolder { folder in
            let outside = folder.appendingPathComponent("outside")
            try FileManager.default.createDirectory(at: outside, withIntermediateDirectories: true)
            try FileManager.default.createSymbolicLink(at: folder.appendingPathComponent("t"), withDestinationURL: outside)
            let storage = try FileStorage(metainfo: t.metainfo, directory: folder.filePath)
            defer { storage.close() }
            let error = storageError { try writeAllBlocks(t, to: storage, seed: 0) }
            #expect(error == .symbolicLink(path: folder.appending(["t"]).path))
            #expect(try FileManager.default.contentsOfDirectory(atPath: outside.path).isEmpty)
        }
    }

    @Test func refusesASymlinkInPlaceOfTheFile() throws {
        let t = try makeTorrent(pieceLength: 16384, version: .v1, files: [(["f"], [1, 2, 3]), (["g"], [4])])
        try withTemporaryFolder { folder in
            let target = folder.appendingPathComponent("precious")
            try Data([9, 9, 9, 9]).write(to: target)
            try FileManager.default.createDirectory(at: folder.appending(["dl", "t"]), withIntermediateDirectories: true)
            try FileManager.default.createSymbolicLink(at: folder.appending(["dl", "t", "f"]), withDestinationURL: target)
            let storage = try FileStorage(metainfo: t.metainfo, directory: folder.appendingPathComponent("dl").filePath)
            defer { storage.close() }
            let error = storageError { try storage.write(piece: storage.pieceMap.index(0)!, offset: 0, bytes: [1, 2, 3, 4]) }
            #expect(error == .symbolicLink(path: folder.appending(["dl", "t", "f"]).path))
            #expect(try Data(contentsOf: target) == Data([9, 9, 9, 9]))
        }
    }

    @Test func refusesAFileInPlaceOfAFolder() throws {
        let t = try awkwardTorrent(.v2)
        try withTemporaryFolder { folder in
            try FileManager.default.createDirectory(at: folder.appending(["t"]), withIntermediateDirectories: true)
            try Data([1]).write(to: folder.appending(["t", "sub"]))
            let storage = try FileStorage(metainfo: t.metainfo, directory: folder.filePath)
            defer { storage.close() }
            let b = t.fileIndex(["sub", "b.bin"])
            let piece = try #require(storage.pieceMap.index(storage.pieceMap.pieces(ofFile: b).lowerBound))
            #expect(storageError { try storage.write(piece: piece, offset: 0, bytes: [1]) }
                == .notAFolder(path: folder.appending(["t", "sub"]).path))
        }
    }

    @Test func unsafeTorrentPathsAreRefusedOnWrite() throws {
        // A layout made by hand (not through the parser, which would have sanitized it).
        let files = [TorrentFile(index: 0, path: ["t", "..", "escape"], length: 10, offset: 0)]
        let map = PieceMap(pieceLength: 16384, version: .v1, files: files)
        try withTemporaryFolder { folder in
            let disk = try FileStorage(pieceMap: map, directory: folder.appendingPathComponent("dl").filePath)
            let memory = MemoryStorage(pieceMap: map)
            let piece = try #require(map.index(0))
            #expect(storageError { try disk.write(piece: piece, offset: 0, bytes: [1]) }
                == .unsafePath(path: "t/../escape", component: ".."))
            #expect(storageError { try memory.write(piece: piece, offset: 0, bytes: [1]) }
                == .unsafePath(path: "t/../escape", component: ".."))
            #expect(!exists(folder.appendingPathComponent("escape")))
            #expect(!exists(folder.appendingPathComponent("dl")))
        }
    }
}
