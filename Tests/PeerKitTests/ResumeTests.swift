import Foundation
import Metainfo
import PeerBase
import Storage
import SystemPackage
import Testing

@testable import PeerKit

@Suite("Resume data and the data check")
struct ResumeTests {
    /// A v1 torrent of the sample folder, with storage over the folder that holds it.
    func setUp(_ dir: TempDir) throws -> (TorrentMetainfo, FileStorage, ResumeStore) {
        let (root, _) = try makeSample(in: dir)
        let t = try create(root) { $0.version = .v1 }.metainfo
        let storage = try FileStorage(metainfo: t, directory: FilePath(dir.path))
        return (t, storage, ResumeStore(stateDirectory: dir.path + "/state", metainfo: t))
    }

    @Test("with no resume data every piece is read; with fresh resume data none is")
    func trusted() throws {
        try withTempDir { dir in
            let (t, storage, store) = try self.setUp(dir)
            defer { storage.close() }
            #expect(store.load(map: storage.pieceMap) == .failure(.missing))
            let first = DataCheck.check(metainfo: t, storage: storage)
            #expect(first.have.allSet)
            #expect(first.checked == storage.pieceMap.pieceCount)
            try store.save(pieces: first.have, storage: storage)
            let saved = try store.load(map: storage.pieceMap).get()
            let second = DataCheck.check(metainfo: t, storage: storage, resume: saved)
            #expect(second.have.allSet)
            #expect(second.checked == 0)
            #expect(second.trusted == storage.pieceMap.pieceCount)
        }
    }

    @Test("a file changed since the save is checked again, and only its pieces")
    func changedFile() throws {
        try withTempDir { dir in
            let (t, storage, store) = try self.setUp(dir)
            defer { storage.close() }
            try store.save(pieces: DataCheck.check(metainfo: t, storage: storage).have, storage: storage)
            let saved = try store.load(map: storage.pieceMap).get()
            // Change one byte of one file behind our back (its time changes too).
            let index = t.files.firstIndex { $0.path == ["share", "sub", "odd.bin"] }!
            let path = dir.path + "/share/sub/odd.bin"
            var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
            bytes[100] ^= 0xFF
            Thread.sleep(forTimeInterval: 0.02)
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            let check = DataCheck.check(metainfo: t, storage: storage, resume: saved)
            let pieces = storage.pieceMap.pieces(ofFile: index)
            #expect(check.checked == pieces.count)
            #expect(check.have.setCount == storage.pieceMap.pieceCount - 1)
            #expect(!check.have[pieces.lowerBound])
        }
    }

    @Test("missing pieces of unchanged files stay missing without a read; a deleted file loses its pieces")
    func missing() throws {
        try withTempDir { dir in
            let (t, storage, store) = try self.setUp(dir)
            defer { storage.close() }
            var have = DataCheck.check(metainfo: t, storage: storage).have
            have[0] = false
            try store.save(pieces: have, storage: storage)
            try FileManager.default.removeItem(atPath: dir.path + "/share/piece.bin")
            let index = t.files.firstIndex { $0.path == ["share", "piece.bin"] }!
            let check = DataCheck.check(metainfo: t, storage: storage, resume: try store.load(map: storage.pieceMap).get())
            #expect(check.checked == 0)
            #expect(!check.have[0])
            for p in storage.pieceMap.pieces(ofFile: index) { #expect(!check.have[p]) }
        }
    }

    @Test("resume data that is damaged or another torrent's is refused with a reason")
    func refused() throws {
        try withTempDir { dir in
            let (t, storage, store) = try self.setUp(dir)
            defer { storage.close() }
            try store.save(pieces: Bitfield(count: storage.pieceMap.pieceCount), storage: storage)
            try Data("garbage".utf8).write(to: URL(fileURLWithPath: store.location))
            guard case .failure(.invalid) = store.load(map: storage.pieceMap) else {
                Issue.record("garbage accepted")
                return
            }
            let other = try create(dir.path + "/share") { $0.version = .v1; $0.comment = "x"; $0.isPrivate = true }
            let otherStore = ResumeStore(stateDirectory: dir.path + "/state", metainfo: other.metainfo)
            try otherStore.save(pieces: Bitfield(count: storage.pieceMap.pieceCount), storage: storage)
            try FileManager.default.removeItem(atPath: store.location)
            try FileManager.default.copyItem(atPath: otherStore.location, toPath: store.location)
            #expect(store.load(map: storage.pieceMap) == .failure(.invalid("it is another torrent's")))
            _ = t
        }
    }
}
