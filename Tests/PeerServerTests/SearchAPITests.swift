import Foundation
import Hummingbird
import HummingbirdTesting
import PeerKit
import Testing

@testable import PeerServer

@Suite("GET /api/search and /api/index: the node's keyword index")
struct SearchAPITests {
    @Test("an added torrent is found by the words of its name and files; a bad query is a 400 that says why")
    func searchAddedTorrents() async throws {
        try await withAPI(configure: allowTestRoot) { api in
            let media = try Media(in: api.root, name: "Amélie.Poulain.2001-[GRP]")
            _ = try await api.addTorrent(media.bytes, savePath: api.root)
            let magnetHash = try await api.addMagnet(name: "no metadata yet")
            var hits: [JSONValue] = []
            try await poll("the torrent to be indexed", timeout: .seconds(5)) {
                let r = try await api.call(.get, "/api/search?q=amelie%20grp")
                #expect(r.status == .ok, "\(r.text)")
                hits = try r.json()["hits"]?.array ?? []
                return !hits.isEmpty
            }
            #expect(hits.count == 1)
            #expect(hits[0]["info_hash"]?.string == media.metainfo.infoHashes.v1?.hex)
            #expect(hits[0]["name"]?.string == "Amélie.Poulain.2001-[GRP]")
            #expect(hits[0]["verified"]?.bool == true)
            #expect(hits[0]["sources"] == .array([.string("added")]))
            #expect(hits[0]["files"]?.int == 3)
            #expect(hits[0]["magnet"]?.string?.hasPrefix("magnet:?xt=urn:btih:\(media.metainfo.infoHashes.v1!.hex)") == true)
            // File paths are searched too; a magnet link with no metadata yet has no words to index.
            #expect(try await api.call(.get, "/api/search?q=song%20mp3").json()["hits"]?.array?.count == 1)
            #expect(try await api.call(.get, "/api/search?q=metadata").json()["hits"]?.array?.isEmpty == true)
            _ = magnetHash

            try expectError(await api.call(.get, "/api/search"), .badRequest, "bad_request", mentioning: "?q=")
            try expectError(await api.call(.get, "/api/search?q=%2A%2A%2A"), .badRequest, "bad_request",
                mentioning: "no words")
            let long = String(repeating: "word%20", count: 2000)
            try expectError(await api.call(.get, "/api/search?q=\(long)"), .badRequest, "bad_request",
                mentioning: "at most 512 bytes")
            try expectError(await api.call(.get, "/api/search?q=x&limit=0"), .badRequest, "bad_request", mentioning: "limit")
            try expectError(await api.call(.get, "/api/search/deadbeef"), .notFound, "not_found", mentioning: "deadbeef")

            let stats = try await api.call(.get, "/api/index").json()
            #expect(stats["rows"]?.int == 1)
            #expect(stats["pinned"]?.int == 1)
            #expect(stats["sources"]?["added"]?.int == 1)
            #expect((stats["bytes_on_disk"]?.int ?? 0) > 0)

            // Removed, it stays findable, no longer pinned.
            let r = try await api.call(.delete, "/api/torrents/\(media.id)")
            #expect(r.status == .noContent)
            #expect(try await api.call(.get, "/api/index").json()["pinned"]?.int == 0)
            #expect(try await api.call(.get, "/api/search?q=amelie").json()["hits"]?.array?.count == 1)
        }
    }
}
