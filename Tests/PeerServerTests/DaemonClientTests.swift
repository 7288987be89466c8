import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

@testable import PeerKit
@testable import PeerServer

// PeerKit's `DaemonClient` (what `peer add|ls|show|…` call) against the server: the models it decodes are the
// ones the session handed the server, key for key and date for date.

@Suite("DaemonClient reads what PeerServer writes")
struct DaemonClientTests {
    func status(_ id: String, peers: Int = 0, complete: Bool = false) -> TorrentStatus {
        TorrentStatus(id: id, infoHashV1: id, infoHashV2: complete ? String(repeating: "ab", count: 32) : nil,
            name: "t/\(id) \"ü\"", state: complete ? .seeding : .downloading, progress: complete ? 1 : 0.1 + 0.2,
            size: 1 << 40, haveBytes: 12345, downloadRate: 7, uploadRate: 8, downloaded: 9, uploaded: 10, peers: peers,
            eta: complete ? nil : 4711, savePath: "/srv/a b", sequential: complete, paused: !complete,
            addedAt: Date(timeIntervalSince1970: 1_700_000_000),
            completedAt: complete ? Date(timeIntervalSince1970: 1_700_000_061) : nil, error: complete ? nil : "disk full")
    }

    func roundTrip<T: Codable & Equatable>(_ value: T) throws {
        let bytes = [UInt8](try JSON.encoder.encode(value))
        #expect(try DaemonClient.decode(T.self, bytes) == value, "\(String(decoding: bytes, as: UTF8.self))")
    }

    @Test("summaries, details, lists and figures: decode(encode(x)) == x")
    func models() async throws {
        try self.roundTrip(self.status("aa"))
        try self.roundTrip(self.status("bb", complete: true))
        try self.roundTrip(TorrentList(torrents: [self.status("aa"), self.status("bb", complete: true)]))
        let peers = [
            PeerStatus(address: "127.0.0.3:6881", client: "libtorrent 2.0.8", progress: 1, downloadRate: 100,
                outgoing: true, transport: .tcp),
            PeerStatus(address: "[::1]:51413", client: nil, progress: 0.25, downloadRate: 0, outgoing: false, transport: .utp),
        ]
        let files = [
            FileStatus(index: 0, path: "album/01.flac", length: 1234, priority: .high, progress: 0.5, padding: false,
                mime: "audio/flac"),
            FileStatus(index: 1, path: ".pad/5", length: 5, priority: .normal, progress: 1, padding: true,
                mime: "application/octet-stream"),
        ]
        // The detail's `peers` is the list; the summary's count is its length (docs/api.md).
        let full = TorrentDetail(summary: self.status("cc", peers: peers.count), files: files, peers: peers,
            trackers: [TrackerStatus(url: "udp://127.0.0.1:6969/announce", tier: 0)],
            pieces: PiecesStatus(count: 3, length: 16384, have: 1, bitfield: "gA=="), maxDownloadRate: 1000,
            maxUploadRate: nil, ratioLimit: 1.5, seedTimeLimit: 3600, queuePosition: 2, magnet: "magnet:?xt=urn:btih:cc")
        try self.roundTrip(full)
        let bare = TorrentDetail(summary: self.status("dd"), files: [], peers: [], trackers: [], pieces: nil,
            maxDownloadRate: nil, maxUploadRate: nil, ratioLimit: nil, seedTimeLimit: nil, queuePosition: 0, magnet: nil)
        try self.roundTrip(bare)
        try self.roundTrip(SessionStats(torrents: 2, active: 1, downloadRate: 3, uploadRate: 4, downloaded: 5,
            uploaded: 6, peers: 7, listenPort: 6881, dhtNodes: 8, uptime: 9, version: Session.version))
        // The list the cache writes decodes like the encoder's.
        let list = [self.status("aa"), self.status("bb", complete: true)]
        let box = CollectingWriter.Box()
        try await SummaryCache().listResponse(list).body.write(CollectingWriter(box: box))
        #expect(try DaemonClient.decode(TorrentList.self, Array(buffer: box.buffer)) == TorrentList(torrents: list))
        // The text `peer show` prints for a date is the one in the JSON.
        let date = Date(timeIntervalSince1970: 1_700_000_000)
        #expect(String(decoding: try JSON.encoder.encode([date]), as: UTF8.self) == "[\"\(APIJSON.format(date))\"]")
    }

    @Test("a whole session over a real socket: add, list, detail, pause, resume, stats, remove")
    func live() async throws {
        try await LiveTests().withLiveAPI { port, session in
            let endpoint = DaemonClient.Endpoint(base: "http://127.0.0.1:\(port)", token: testToken)
            try await DaemonClient.with(endpoint) { client in
                // In the download folder: the daemon saves nowhere else.
                let root = await session.configuration.downloadDirectory + "/peer-dc-\(UUID().uuidString)"
                defer { try? FileManager.default.removeItem(atPath: root) }
                let media = try Media(in: root, trackers: [["udp://127.0.0.1:6969/announce"]])
                let added = try await client.add(.torrentFile(media.bytes),
                    options: AddOptions(savePath: root, paused: true)).decode()
                #expect(added == (try await session.status(media.id)))
                #expect(added.addedAt.timeIntervalSince1970.rounded(.down) == added.addedAt.timeIntervalSince1970)
                let hash = randomHex(20)
                let magnetAdded = try await client.add(.magnet(magnet(hash, name: "later")),
                    options: AddOptions(paused: true)).decode()
                #expect(magnetAdded.id == hash && magnetAdded.state == .paused)

                #expect(try await client.torrents().decode() == TorrentList(torrents: await session.list()))
                #expect(try await client.detail(media.id).decode() == (try await session.detail(media.id)))
                #expect(try await client.stats().decode().torrents == 2)
                #expect(try await client.resolve(String(media.id.prefix(6))) == media.id)
                #expect(try await client.resolve(media.id.uppercased()) == media.id)

                #expect(try await client.pause(hash).decode() == (try await session.status(hash)))
                let resumed = try await client.resume(hash).decode()
                #expect(resumed.id == hash && !resumed.paused)
                try await client.remove(hash)
                #expect(try await client.torrents().decode().torrents.map(\.id) == [media.id])

                await #expect(throws: DaemonClientError.api(status: 404, code: "not_found", message: "no torrent \(hash)")) {
                    _ = try await client.detail(hash)
                }
                await #expect(throws: DaemonClientError.noMatch(prefix: "ffff")) { _ = try await client.resolve("ffff") }
                await #expect(throws: DaemonClientError.idTooShort("abc")) { _ = try await client.resolve("abc") }
                await #expect(throws: DaemonClientError.notATorrentID("album")) { _ = try await client.resolve("album") }
            }
            let wrong = DaemonClient.Endpoint(base: "http://127.0.0.1:\(port)", token: String(repeating: "0", count: 64))
            try await DaemonClient.with(wrong) { client in
                let error = await #expect(throws: DaemonClientError.self) { _ = try await client.torrents() }
                #expect(error?.status == 401)
                #expect(error?.description.hasSuffix("(HTTP 401 unauthorized); the token in api-token was refused") == true)
            }
        }
    }

    @Test("the endpoint comes from STATE/api-address and STATE/api-token, and says what is missing")
    func endpointFromState() throws {
        let state = FileManager.default.temporaryDirectory.appendingPathComponent("peer-dc-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: state) }
        #expect(throws: DaemonClientError.noDaemon(addressFile: state + "/api-address", state: state)) {
            try DaemonClient.Endpoint(state: state)
        }
        #expect(DaemonClientError.noDaemon(addressFile: "/x/api-address", state: nil).description
            == "no daemon: /x/api-address is missing; start one with `peer serve`")
        try write(state + "/api-address", Array("http://127.0.0.1:9091\n".utf8))
        #expect(throws: DaemonClientError.unreadableToken(path: state + "/api-token", exists: false)) {
            try DaemonClient.Endpoint(state: state)
        }
        try write(state + "/api-token", Array("\(testToken)\n".utf8))
        #expect(try DaemonClient.Endpoint(state: state) == .init(base: "http://127.0.0.1:9091", token: testToken))
        try write(state + "/api-address", Array("127.0.0.1:9091".utf8))
        #expect(throws: DaemonClientError.badAddress(file: state + "/api-address", contents: "127.0.0.1:9091")) {
            try DaemonClient.Endpoint(state: state)
        }
    }
}
