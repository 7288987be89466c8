import Bencode
import Foundation
import Metainfo
import Testing

/// Torrents made by other clients (libtorrent 2.0.8 v1/v2/hybrid, mktorrent, transmission-create), with the
/// hashes, piece counts and file paths libtorrent reported for them in `client-made.json`.
@Suite("Torrents made by other clients")
struct ClientFixtureTests {
    struct Expected: Decodable {
        var v1: String?
        var v2: String?
        var pieces: Int
        var files: [String]
    }

    static let expected: [String: Expected] = {
        guard let url = Bundle.module.url(forResource: "Fixtures/client-made.json", withExtension: nil),
            let data = try? Data(contentsOf: url),
            let table = try? JSONDecoder().decode([String: Expected].self, from: data)
        else { return [:] }
        return table
    }()

    @Test("the fixture table is there")
    func tableLoads() {
        #expect(Self.expected.count == 6)
    }

    @Test("each reads as libtorrent reads it", arguments: Self.expected.keys.sorted())
    func readsTheSame(_ name: String) throws {
        let want = try #require(Self.expected[name])
        let t = try TorrentMetainfo(bytes: try fixture(name))
        #expect(t.infoHashes.v1?.hex == want.v1)
        #expect(t.infoHashes.v2?.hex == want.v2)
        #expect(t.pieceCount == want.pieces)
        #expect(t.files.filter { !$0.isPadding }.map(\.displayPath) == want.files)
        #expect(t.warnings.isEmpty, "\(t.warnings)")
    }

    @Test("decode then encode is byte-identical", arguments: Self.expected.keys.sorted())
    func roundTrip(_ name: String) throws {
        let bytes = try fixture(name)
        #expect(BencodeEncoder.encode(try BencodeDecoder().decodeValue(bytes)) == bytes)
    }
}
