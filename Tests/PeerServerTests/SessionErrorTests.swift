import Hummingbird
import Metainfo
import Testing

@testable import PeerKit
@testable import PeerServer

@Suite("SessionError: the lower error it carries, its words, and its status")
struct SessionErrorTests {
    static let bencode = MetainfoError.missingKey("info", offset: 0)
    static let disk = SessionError.storage(.diskFull(path: "/srv/album/01.flac"), folder: nil)
    static let diskText: String = {
        guard case .storage(let e, _) = disk else { return "" }
        return e.description
    }()

    /// Every case: the HTTP status and code the API answers with, and the message (the same words the API
    /// and `peer` printed before the cases carried the lower errors).
    static let table: [(SessionError, HTTPResponse.Status, String, String)] = [
        (.torrentNotFound(id: "ab12"), .notFound, "not_found", "no torrent ab12"),
        (.fileNotFound(index: 3, torrent: "ab12"), .notFound, "not_found", "no file 3 in ab12"),
        (.trackerNotFound(url: "udp://t:1", torrent: "ab12"), .notFound, "not_found", "udp://t:1 is not a tracker of ab12"),
        (.itemNotFound(target: "cd34"), .notFound, "not_found", "no node has cd34"),
        (.badRequest("save_path must be an absolute path"), .badRequest, "bad_request", "save_path must be an absolute path"),
        (.notAMagnetLink(.magnet("no xt")), .badRequest, "bad_request",
            "not a magnet link: \(MetainfoError.magnet("no xt"))"),
        (.fetchFailed(url: "http://h/t", .status(404, "Not Found")), .badRequest, "bad_request",
            "cannot fetch http://h/t: \(HTTPFetchError.status(404, "Not Found"))"),
        (.moveFailed(from: "/a/x", to: "/b", reason: "no room"), .badRequest, "bad_request", "cannot move /a/x to /b: no room"),
        (.metadata(bencode, from: .upload), .badRequest, "bad_request", "not a torrent file: \(bencode)"),
        (.metadata(bencode, from: .url("http://h/t")), .badRequest, "bad_request", "http://h/t is not a torrent file: \(bencode)"),
        (.alreadyAdded(id: "ab12"), .conflict, "conflict", "the torrent ab12 is already there"),
        (.alreadyATracker(url: "udp://t:1", torrent: "ab12"), .conflict, "conflict", "udp://t:1 is already a tracker of ab12"),
        (.noMetadataYet(id: "ab12", what: "no files to choose"), .conflict, "conflict",
            "the metadata of ab12 has not arrived yet: no files to choose"),
        (.noMetadataYet(id: "ab12", what: nil), .conflict, "conflict", "the metadata of ab12 has not arrived yet"),
        (.conflict("file 1 is skipped; set its priority to stream it"), .conflict, "conflict",
            "file 1 is skipped; set its priority to stream it"),
        (.dhtOff, .conflict, "conflict", "the daemon's DHT is off (--no-dht)"),
        (.unavailable("the DHT did not answer"), .serviceUnavailable, "unavailable", "the DHT did not answer"),
        (.metadata(bencode, from: .peers), .internalServerError, "internal", "the metadata peers sent is not usable: \(bencode)"),
        (.metadata(bencode, from: .database), .internalServerError, "internal", "the saved torrent cannot be read: \(bencode)"),
        (disk, .internalServerError, "internal", diskText),
        (.storage(.diskFull(path: "/srv/album/01.flac"), folder: "/srv"), .internalServerError, "internal", "/srv: \(diskText)"),
        (.database(action: "save the torrent", reason: "disk I/O error"), .internalServerError, "internal",
            "cannot save the torrent: disk I/O error"),
        (.noMetadataSource, .internalServerError, "internal", "no metadata and no magnet link to fetch it with"),
        (.engine("the thread pool stopped"), .internalServerError, "internal", "the thread pool stopped"),
        (.internalError("unexpected answer"), .internalServerError, "internal", "unexpected answer"),
    ]

    @Test("each case maps to one status and code, and says what it carries", arguments: 0..<Self.table.count)
    func mapping(_ row: Int) {
        let (error, status, code, message) = Self.table[row]
        #expect(error.description == message)
        let api = APIError(any: error)
        #expect(api.status == status, "\(error)")
        #expect(api.code == code, "\(error)")
        #expect(api.message == message)
    }

    @Test("the lower error comes through the session as it was thrown")
    func carriesTheLowerError() async throws {
        let junk: [UInt8] = Array("this is not a torrent".utf8)
        let notTorrent = try #require(Self.failure { () throws(MetainfoError) in _ = try TorrentMetainfo(bytes: junk) })
        let link = "magnet:?dn=nothing"
        let notMagnet = try #require(Self.failure { () throws(MetainfoError) in _ = try MagnetLink(parsing: link) })
        try await withSession { session, _ in
            await #expect(throws: SessionError.metadata(notTorrent, from: .upload)) {
                _ = try await session.add(.torrentFile(junk))
            }
            await #expect(throws: SessionError.notAMagnetLink(notMagnet)) { _ = try await session.add(.magnet(link)) }
            await #expect(throws: SessionError.torrentNotFound(id: "ab12")) { _ = try await session.detail("ab12") }
        }
    }

    static func failure(_ body: () throws(MetainfoError) -> Void) -> MetainfoError? {
        do { try body() } catch { return error }
        return nil
    }
}
