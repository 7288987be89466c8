import Foundation
import Hummingbird
import HummingbirdTesting
import PeerKit
import Testing

@testable import PeerServer

// Categories and tags through the API: a category names the default save path of its torrents, tags are free
// labels; both filter the list, both change with PATCH, and a removed category leaves its torrents in place.
@Suite("Categories and tags")
struct CategoryAPITests {
    @Test("a category's folder is the save path; tags and category filter the list, change, and go")
    func categoriesAndTags() async throws {
        try await withAPI(configure: allowTestRoot) { api in
            let music = api.root + "/music"
            let made = try await api.call(.post, "/api/categories", json: #"{"name": "music", "save_path": "\#(music)"}"#)
            #expect(made.status == .created, "\(made.text)")
            #expect(try made.json() == .object(["name": .string("music"), "save_path": .string(music)]))

            let media = try Media(in: api.root + "/source")
            let added = try await api.call(.post, "/api/torrents", json: """
                {"torrent": "\(Data(media.bytes).base64EncodedString())", "paused": true, "category": "music",
                 "tags": ["flac", " live ", "flac"]}
                """)
            #expect(added.status == .created, "\(added.text)")
            let s = try added.json()
            #expect(s["category"]?.string == "music")
            #expect(s["tags"] == .array([.string("flac"), .string("live")]))
            #expect(s["save_path"]?.string == music)

            // A magnet with a category not known yet: the category is made, with no folder of its own.
            let other = try await api.call(.post, "/api/torrents",
                json: #"{"magnet": "\#(magnet(randomHex(20), name: "film"))", "paused": true, "category": "films/old"}"#)
            #expect(other.status == .created, "\(other.text)")
            #expect(try other.json()["save_path"]?.string == api.downloads)
            let categories = try await api.call(.get, "/api/categories").json()
            #expect(categories.array?.compactMap { $0["name"]?.string } == ["films/old", "music"])

            func names(_ query: String) async throws -> [String] {
                try await api.call(.get, "/api/torrents" + query).json()["torrents"]?.array?.compactMap { $0["name"]?.string } ?? []
            }
            #expect(try await names("?category=music") == ["media"])
            #expect(try await names("?category=films/old") == ["film"])
            #expect(try await names("?tag=live") == ["media"])
            #expect(try await names("?tag=none") == [])
            #expect(try await api.call(.get, "/api/tags").json() == .array([.string("flac"), .string("live")]))

            let id = try #require(s["id"]?.string)
            let patched = try await api.call(.patch, "/api/torrents/\(id)", json: #"{"tags": ["lossless"], "category": null}"#)
            #expect(patched.status == .ok, "\(patched.text)")
            #expect(try patched.json()["tags"] == .array([.string("lossless")]))
            #expect(try patched.json()["category"]?.isNull == true)
            #expect(try await names("?category=") == ["media"])

            // Bad names say why and change nothing.
            expectError(try await api.call(.post, "/api/categories", json: #"{"name": "a//b"}"#), .badRequest, "bad_request")
            expectError(try await api.call(.patch, "/api/torrents/\(id)", json: #"{"tags": ["a,b"]}"#), .badRequest,
                "bad_request", mentioning: "comma")
            #expect(try await api.session.status(id).tags == ["lossless"])

            let film = try #require(try other.json()["id"]?.string)
            // A name with a / goes in the query.
            #expect(try await api.call(.delete, "/api/categories?name=films/old").status == .noContent)
            #expect(try await api.session.status(film).category == nil)
            expectError(try await api.call(.delete, "/api/categories/nothing"), .notFound, "not_found")
            #expect(try await api.call(.delete, "/api/categories/music").status == .noContent)
            #expect(try await api.call(.get, "/api/categories").json() == .array([]))
        }
    }
}
