import PeerBase
import Foundation
import Metainfo
import PeerKit
import Testing

@Suite("TorrentSummary")
struct TorrentSummaryTests {
    @Test("the JSON shape of a hybrid torrent")
    func hybrid() throws {
        try withTempDir { dir in
            try dir.write("pack/a.txt", Array("hello".utf8))
            try dir.write("pack/b/c.bin", SeededGenerator.bytes(20000, seed: 1))
            let t = try create(dir.path + "/pack") {
                $0.trackers = [["http://t/a"]]
                $0.comment = "c"
            }.metainfo
            let s = TorrentSummary(t)
            #expect(s.kind == "torrent")
            #expect(s.name == "pack")
            #expect(s.version == "hybrid")
            #expect(s.totalSize == 20005)
            #expect(s.pieceLength == 16384)
            #expect(s.pieceCount == t.pieceCount)
            #expect(s.infoHashV1 == hex(Digest.sha1(t.infoBytes)))
            #expect(s.infoHashV2 == hex(Digest.sha256(t.infoBytes)))
            #expect(s.infoHashV2Truncated == String(hex(Digest.sha256(t.infoBytes)).prefix(40)))
            #expect(s.id == s.infoHashV1)
            #expect(s.multiFile && !s.isPrivate)
            #expect(s.files.map(\.path) == ["pack/a.txt", "pack/.pad/16379", "pack/b/c.bin", "pack/.pad/12768"])
            #expect(s.files.map(\.padding) == [false, true, false, true])
            #expect(s.files[0].piecesRoot == hex(Independent.fileRoot(Array("hello".utf8))))
            #expect(s.trackers == [["http://t/a"]])
            #expect(try MagnetLink(parsing: s.magnet).infoHashes == t.infoHashes)

            let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(s)) as? [String: Any]
            let keys = Set(try #require(json).keys)
            #expect(
                keys.isSuperset(of: [
                    "kind", "name", "version", "total_size", "piece_length", "piece_count", "info_hash_v1",
                    "info_hash_v2",
                    "info_hash_v2_truncated", "id", "private", "multi_file", "trackers", "web_seeds", "files", "magnet",
                    "warnings",
                ]))
            let decoded = try JSONDecoder().decode(TorrentSummary.self, from: JSONEncoder().encode(s))
            #expect(decoded == s)
        }
    }

    @Test("the JSON shape of a magnet link")
    func magnet() throws {
        let link = try MagnetLink(
            parsing: "magnet:?xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a&dn=x&so=1-3&xl=9&x.pe=1.2.3.4:5")
        let s = MagnetSummary(link)
        #expect(s.kind == "magnet")
        #expect(s.id == "c12fe1c06bba254a9dc9f519b335aa7c1367a88a")
        #expect(s.infoHashV2 == nil)
        #expect(s.displayName == "x")
        #expect(s.selectedFiles == [1, 2, 3])
        #expect(s.exactLength == 9)
        #expect(s.peers == ["1.2.3.4:5"])
        #expect(try MagnetLink(parsing: s.magnet) == link)
        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(s)) as? [String: Any]
        #expect(json?["selected_files"] as? [Int] == [1, 2, 3])
        #expect(json?["display_name"] as? String == "x")
    }
}
