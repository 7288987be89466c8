import Foundation
import Hummingbird
import HummingbirdTesting
import PeerKit
import Testing

@testable import PeerServer

// Issue 13: save_path, move and download_dir accepted /etc, /, `..` out of the download folder, NUL bytes
// and 100 KB paths. Now they must lead into the download folder or a folder given with --allow-path.

@Suite("Save paths stay inside the allowed folders")
struct SavePathTests {
    /// Paths that lead outside `ROOT/downloads` (the session's download folder): by name, by `..`, by a
    /// symbolic link (also one whose target does not exist yet), or that no file system takes.
    static func hostile(_ api: API) throws -> [(path: String, mentioning: String)] {
        try FileManager.default.createDirectory(atPath: api.downloads, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: api.downloads + "/out", withDestinationPath: "/etc")
        try FileManager.default.createSymbolicLink(atPath: api.downloads + "/dangling",
            withDestinationPath: api.root + "/not-yet")
        return [
            ("/etc", "outside"), ("/", "outside"), (api.downloads + "/../elsewhere", "outside"),
            (api.downloads + "/a/../../..", "outside"), (api.downloads + "-other", "outside"),
            (api.downloads + "/out", "outside"), (api.downloads + "/out/cron.d", "outside"),
            (api.downloads + "/dangling/x", "outside"), (api.downloads + "/x\u{0}y", "NUL"),
            ("/" + String(repeating: "a", count: 100_000), "longer than 4096"),
        ]
    }

    static func json(_ path: String) throws -> String {
        String(decoding: try JSONEncoder().encode(path), as: UTF8.self)
    }

    @Test("add: save_path outside the download folder is 400 and adds nothing; inside is fine")
    func add() async throws {
        try await withAPI { api in
            for (path, mentioning) in try Self.hostile(api) {
                let r = try await api.call(.post, "/api/torrents",
                    json: #"{"magnet": "\#(magnet(randomHex(20), name: "x"))", "paused": true, "save_path": \#(try Self.json(path))}"#)
                expectError(r, .badRequest, "bad_request", mentioning: mentioning)
            }
            let raw = try await api.call(.post, "/api/torrents?save_path=%2Fetc", body: Array("d4:spami1ee".utf8),
                contentType: "application/x-bittorrent")
            expectError(raw, .badRequest, "bad_request", mentioning: "save_path")
            #expect(try await api.ids() == [])
            for path in [api.downloads, api.downloads + "/sub/dir", api.downloads + "/a/../b"] {
                let r = try await api.call(.post, "/api/torrents",
                    json: #"{"magnet": "\#(magnet(randomHex(20), name: "x"))", "paused": true, "save_path": \#(try Self.json(path))}"#)
                #expect(r.status == .created, "\(path): \(r.text)")
            }
        }
    }

    @Test("move and download_dir: the same rule; refused changes leave things as they were")
    func moveAndSettings() async throws {
        try await withAPI { api in
            let id = try await api.addMagnet(paused: true)
            for (path, mentioning) in try Self.hostile(api) {
                let moved = try await api.call(.post, "/api/torrents/\(id)/move", json: #"{"save_path": \#(try Self.json(path))}"#)
                expectError(moved, .badRequest, "bad_request", mentioning: mentioning)
                let set = try await api.call(.patch, "/api/settings", json: #"{"download_dir": \#(try Self.json(path))}"#)
                expectError(set, .badRequest, "bad_request", mentioning: mentioning)
            }
            #expect(try await api.detail(id)["save_path"]?.string == api.downloads)
            #expect(try await api.call(.get, "/api/settings").json()["download_dir"]?.string == api.downloads)
            #expect(FileManager.default.fileExists(atPath: "/etc/passwd"))
        }
    }

    @Test("--allow-path: another folder, and the folders below it")
    func allowed() async throws {
        try await withAPI(configure: { $0.allowedSavePaths = [$0.stateDirectory + "/../media"] }) { api in
            let r = try await api.call(.post, "/api/torrents",
                json: #"{"magnet": "\#(magnet(randomHex(20), name: "x"))", "save_path": "\#(api.root)/media/films"}"#)
            #expect(r.status == .created, "\(r.text)")
            let other = try await api.call(.post, "/api/torrents",
                json: #"{"magnet": "\#(magnet(randomHex(20), name: "x"))", "save_path": "\#(api.root)/mediaX"}"#)
            expectError(other, .badRequest, "bad_request", mentioning: "--allow-path")
        }
    }
}
