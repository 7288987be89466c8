import Foundation
import Hummingbird
import HummingbirdTesting
import Metainfo
import PeerKit
import Testing

#if canImport(Glibc)
import Glibc
#endif

@testable import PeerServer

// The HTTP API of docs/api.md, endpoint by endpoint: each answer on good input, and on bad input the JSON
// error with its status, and no change to the session. Requests go straight to the router (no sockets);
// the session behind it is real, on a temporary folder, with the DHT and local discovery off and every
// socket on 127.0.0.1.

let testToken = String(repeating: "0123456789abcdef", count: 4)

// MARK: - The session and the API around a test

/// A session on a fresh temporary folder (`ROOT/state`, downloads in `ROOT/downloads`), shut down and
/// removed afterwards, also when `body` throws.
func withSession<R>(configure: (inout Session.Configuration) -> Void = { _ in },
    _ body: (Session, String) async throws -> R) async throws -> R
{
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("peer-api-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: root) }
    var configuration = Session.Configuration.quiet(state: root + "/state", downloads: root + "/downloads")
    configure(&configuration)
    let session = try Session(configuration: configuration)
    do {
        try await session.start()
        let result = try await body(session, root)
        await session.shutdown()
        return result
    } catch {
        await session.shutdown()
        throw error
    }
}

extension Session.Configuration {
    /// No DHT, no local discovery, a free port on 127.0.0.1: nothing leaves the machine.
    static func quiet(state: String, downloads: String) -> Session.Configuration {
        var c = Session.Configuration(stateDirectory: state, downloadDirectory: downloads)
        c.dht = false
        c.localDiscovery = false
        c.bindHost = "127.0.0.1"
        c.port = 0
        return c
    }
}

/// The router of `peer serve` in front of a session, and calls to it.
struct API: Sendable {
    let client: any TestClientProtocol
    let session: Session
    let auth: APIAuth
    /// The test's temporary folder.
    let root: String
    var downloads: String { self.root + "/downloads" }

    /// Sends a request, with the token unless `token` is false or `headers` carry their own.
    @discardableResult
    func call(_ method: HTTPRequest.Method, _ uri: String, json: String? = nil, body: [UInt8]? = nil,
        contentType: String? = nil, headers: HTTPFields = [:], token withToken: Bool = true) async throws -> TestResponse
    {
        var h = headers
        if withToken && h[.authorization] == nil && h[.cookie] == nil { h[.authorization] = "Bearer \(testToken)" }
        var buffer: ByteBuffer?
        if let json {
            h[.contentType] = contentType ?? "application/json"
            buffer = ByteBuffer(string: json)
        } else if let body {
            if let contentType { h[.contentType] = contentType }
            buffer = ByteBuffer(bytes: body)
        }
        return try await self.client.execute(uri: uri, method: method, headers: h, body: buffer)
    }

    /// `GET /api/torrents`, as ids in list order.
    func ids() async throws -> [String] {
        let r = try await self.call(.get, "/api/torrents")
        #expect(r.status == .ok)
        return try r.json()["torrents"]?.array?.compactMap { $0["id"]?.string } ?? []
    }

    func detail(_ id: String) async throws -> JSONValue {
        let r = try await self.call(.get, "/api/torrents/\(id)")
        #expect(r.status == .ok, "GET /api/torrents/\(id): \(r.text)")
        return try r.json()
    }

    /// Adds a magnet link of a made-up info-hash (no trackers, no peers: it never leaves the machine).
    func addMagnet(name: String = "nothing", paused: Bool = false) async throws -> String {
        let hash = randomHex(20)
        let r = try await self.call(.post, "/api/torrents",
            json: #"{"magnet": "\#(magnet(hash, name: name))", "paused": \#(paused)}"#)
        #expect(r.status == .created, "\(r.text)")
        return hash
    }

    /// Adds a .torrent file (raw body); with `seeding`, waits for its check to find it complete.
    func addTorrent(_ bytes: [UInt8], savePath: String? = nil, paused: Bool = false, seeding: Bool = false)
        async throws -> JSONValue
    {
        var query = "?paused=\(paused)"
        if let savePath { query += "&save_path=\(savePath)" }
        let r = try await self.call(.post, "/api/torrents\(query)", body: bytes, contentType: "application/x-bittorrent")
        #expect(r.status == .created, "\(r.text)")
        let summary = try r.json()
        if seeding, let id = summary["id"]?.string { try await self.waitFor(id, .seeding) }
        return summary
    }

    /// Waits (at most 20 s) for a torrent to reach `state`; an error state ends the wait at once.
    func waitFor(_ id: String, _ state: TorrentState, timeout: Duration = .seconds(20)) async throws {
        try await poll("\(id) to be \(state)", timeout: timeout) {
            let status = try await self.session.status(id)
            if status.state == .error && state != .error {
                throw TimedOut(description: "\(id) failed while waiting to be \(state): \(status.error ?? "")")
            }
            return status.state == state
        }
    }
}

/// For tests that save outside `ROOT/downloads`: all of `ROOT` allowed, as `peer serve --allow-path ROOT` would.
func allowTestRoot(_ c: inout Session.Configuration) {
    c.allowedSavePaths = [(c.stateDirectory as NSString).deletingLastPathComponent]
}

/// A session and its API for one test.
func withAPI<R: Sendable>(allowedHosts: [String] = [], configure: (inout Session.Configuration) -> Void = { _ in },
    _ body: @escaping @Sendable (API) async throws -> R) async throws -> R
{
    try await withSession(configure: configure) { session, root in
        let auth = APIAuth(token: testToken, allowedHosts: allowedHosts)
        let app = Application(router: PeerServer.router(session: session, auth: auth))
        return try await app.test(.router) { client in
            try await body(API(client: client, session: session, auth: auth, root: root))
        }
    }
}

struct TimedOut: Error, CustomStringConvertible {
    var description: String
}

/// Checks `condition` every 20 ms until it holds; fails after `timeout`.
func poll(_ what: String, timeout: Duration = .seconds(20), _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while try await !condition() {
        guard ContinuousClock.now < deadline else { throw TimedOut(description: "timed out waiting for \(what)") }
        try await Task.sleep(for: .milliseconds(20))
    }
}

// MARK: - JSON answers

/// Any JSON value, to look into answers without a type per endpoint.
enum JSONValue: Decodable, Equatable, Sendable {
    case null, bool(Bool), number(Double), string(String), array([JSONValue]), object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let n = try? c.decode(Double.self) { self = .number(n) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    subscript(key: String) -> JSONValue? {
        if case .object(let o) = self { o[key] } else { nil }
    }
    subscript(index: Int) -> JSONValue? {
        if case .array(let a) = self, a.indices.contains(index) { a[index] } else { nil }
    }
    var string: String? { if case .string(let s) = self { s } else { nil } }
    var double: Double? { if case .number(let n) = self { n } else { nil } }
    var int: Int? { self.double.flatMap { $0 == $0.rounded() ? Int($0) : nil } }
    var bool: Bool? { if case .bool(let b) = self { b } else { nil } }
    var array: [JSONValue]? { if case .array(let a) = self { a } else { nil } }
    var isNull: Bool { self == .null }
    var keys: Set<String> { if case .object(let o) = self { Set(o.keys) } else { [] } }
}

extension TestResponse {
    var text: String { String(buffer: self.body) }
    var bytes: [UInt8] { Array(buffer: self.body) }
    func json() throws -> JSONValue { try JSONDecoder().decode(JSONValue.self, from: Data(buffer: self.body)) }
}

/// The API's error: `status`, JSON `{"error": {"code", "message"}}` and nothing else, the message
/// mentioning `mentioning` when given.
func expectError(_ r: TestResponse, _ status: HTTPResponse.Status, _ code: String, mentioning: String? = nil,
    sourceLocation: SourceLocation = #_sourceLocation)
{
    #expect(r.status == status, "\(r.text)", sourceLocation: sourceLocation)
    #expect(r.headers[.contentType]?.hasPrefix("application/json") == true, sourceLocation: sourceLocation)
    guard let body = try? r.json() else {
        Issue.record("not JSON: \(r.text)", sourceLocation: sourceLocation)
        return
    }
    #expect(body.keys == ["error"], sourceLocation: sourceLocation)
    #expect(body["error"]?.keys == ["code", "message"], sourceLocation: sourceLocation)
    #expect(body["error"]?["code"]?.string == code, sourceLocation: sourceLocation)
    let message = body["error"]?["message"]?.string ?? ""
    #expect(!message.isEmpty, sourceLocation: sourceLocation)
    if let mentioning {
        #expect(message.contains(mentioning), "\"\(message)\" should mention \(mentioning)", sourceLocation: sourceLocation)
    }
}

/// A detail's trackers as "TIER URL", in order.
func tiers(_ detail: JSONValue) -> [String] {
    (detail["trackers"]?.array ?? []).map { "\($0["tier"]?.int ?? -1) \($0["url"]?.string ?? "?")" }
}

/// The keys of every summary (docs/api.md).
let summaryKeys: Set<String> = [
    "id", "info_hash_v1", "info_hash_v2", "name", "state", "progress", "size", "have_bytes", "download_rate",
    "upload_rate", "downloaded", "uploaded", "peers", "eta", "save_path", "sequential", "paused", "added_at",
    "completed_at", "error", "category", "tags", "force_start", "first_last_piece_priority",
]

/// The keys a detail adds to the summary (`peers` is in both: a count there, a list here).
let detailKeys: Set<String> = summaryKeys.union([
    "files", "trackers", "pieces", "max_download_rate", "max_upload_rate", "ratio_limit", "seed_time_limit",
    "queue_position", "magnet", "seeding_seconds",
])

// MARK: - Torrents to add

func randomHex(_ bytes: Int) -> String {
    (0..<bytes).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
}

func magnet(_ hash: String, name: String) -> String {
    "magnet:?xt=urn:btih:\(hash)&dn=\(name.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)"
}

/// Bytes that differ from offset to offset (so a wrong range shows).
func pattern(_ count: Int, seed: UInt32) -> [UInt8] {
    var x = seed | 1
    return (0..<count).map { _ in
        x ^= x << 13
        x ^= x >> 17
        x ^= x << 5
        return UInt8(truncatingIfNeeded: x)
    }
}

/// A folder `FOLDER/NAME` of three files and a hybrid (or other) torrent of it, pieces of 16 KiB.
struct Media {
    static let files: [(name: String, length: Int)] = [("clip.webm", 40000), ("notes.txt", 100), ("song.mp3", 3000)]

    let folder: String
    let name: String
    let bytes: [UInt8]
    let metainfo: TorrentMetainfo
    let data: [String: [UInt8]]
    var id: String { self.metainfo.infoHashes.id }

    init(in folder: String, name: String = "media", version: TorrentVersion = .hybrid, trackers: [[String]] = [])
        throws
    {
        self.folder = folder
        self.name = name
        var data: [String: [UInt8]] = [:]
        for (i, f) in Self.files.enumerated() {
            let bytes = pattern(f.length, seed: UInt32(i + 1) * 7919)
            let path = folder + "/" + name + "/" + f.name
            try FileManager.default.createDirectory(atPath: folder + "/" + name, withIntermediateDirectories: true)
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            data[f.name] = bytes
        }
        self.data = data
        var options = TorrentCreator.Options()
        options.version = version
        options.pieceLength = 16384
        options.trackers = trackers
        let out = try TorrentCreator(options: options).create(path: folder + "/" + name)
        self.bytes = out.bytes
        self.metainfo = out.metainfo
    }

    /// The file index of `name` (padding files have theirs too).
    func index(_ file: String) -> Int { self.metainfo.files.firstIndex { $0.path == [self.name, file] }! }
    var paddingIndex: Int? { self.metainfo.files.firstIndex { $0.isPadding } }
    func path(_ file: String, in folder: String? = nil) -> String { (folder ?? self.folder) + "/" + self.name + "/" + file }
}

// MARK: - A little bencode, to write hostile torrents by hand

indirect enum Bencoded {
    case int(Int)
    case bytes([UInt8])
    case list([Bencoded])
    case dict([(String, Bencoded)])

    static func text(_ s: String) -> Bencoded { .bytes(Array(s.utf8)) }

    var encoded: [UInt8] {
        switch self {
        case .int(let i): Array("i\(i)e".utf8)
        case .bytes(let b): Array("\(b.count):".utf8) + b
        case .list(let l): Array("l".utf8) + l.flatMap(\.encoded) + Array("e".utf8)
        case .dict(let d):
            Array("d".utf8) + d.sorted { Array($0.0.utf8).lexicographicallyPrecedes(Array($1.0.utf8)) }
                .flatMap { Bencoded.text($0.0).encoded + $0.1.encoded } + Array("e".utf8)
        }
    }
}

/// SHA-1 of each `pieceLength` slice of `stream` (through Metainfo's hasher).
func v1Pieces(_ stream: [UInt8], pieceLength: Int) -> [UInt8] {
    var hasher = PieceHasher(pieceLength: pieceLength, v1: true, v2: false)
    var out: [UInt8] = []
    stream.withUnsafeBytes { hasher.update($0) { p in p.sha1!.withUnsafeBytes { out += $0 } } }
    hasher.finish(padToPieceLength: false) { p in p.sha1!.withUnsafeBytes { out += $0 } }
    return out
}

/// Writes `bytes` at `path`, making its folders.
func write(_ path: String, _ bytes: [UInt8]) throws {
    try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
        withIntermediateDirectories: true)
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

func read(_ path: String) -> [UInt8]? { FileManager.default.contents(atPath: path).map { [UInt8]($0) } }

/// Every regular file under `folder`, as paths relative to it.
func filesUnder(_ folder: String) -> Set<String> {
    var out: Set<String> = []
    guard let e = FileManager.default.enumerator(atPath: folder) else { return out }
    while let relative = e.nextObject() as? String {
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: folder + "/" + relative, isDirectory: &isFolder), !isFolder.boolValue {
            out.insert(relative)
        }
    }
    return out
}

// MARK: - Adding

@Suite("POST /api/torrents")
struct AddTests {
    @Test("a magnet link: 201 and the summary; a second time: 409 and still one torrent")
    func magnetLink() async throws {
        try await withAPI { api in
            let hash = randomHex(20)
            let r = try await api.call(.post, "/api/torrents", json: #"{"magnet": "\#(magnet(hash, name: "film"))"}"#)
            #expect(r.status == .created, "\(r.text)")
            #expect(r.headers[.contentType]?.hasPrefix("application/json") == true)
            let s = try r.json()
            #expect(s.keys == summaryKeys)
            #expect(s["id"]?.string == hash)
            #expect(s["info_hash_v1"]?.string == hash)
            #expect(s["info_hash_v2"]?.isNull == true)
            #expect(s["name"]?.string == "film")
            #expect(s["state"]?.string == "metadata")
            #expect(s["size"]?.int == 0)
            #expect(s["progress"]?.double == 0)
            #expect(s["paused"]?.bool == false)
            #expect(s["sequential"]?.bool == false)
            #expect(s["save_path"]?.string == api.downloads)
            #expect(s["completed_at"]?.isNull == true)
            #expect(s["error"]?.isNull == true)
            #expect(s["added_at"]?.string.flatMap { ISO8601DateFormatter().date(from: $0) } != nil)
            #expect(try await api.ids() == [hash])

            // The same hash in capitals is the same torrent.
            let again = try await api.call(.post, "/api/torrents",
                json: #"{"magnet": "\#(magnet(hash.uppercased(), name: "other"))"}"#)
            expectError(again, .conflict, "conflict", mentioning: hash)
            #expect(try await api.ids() == [hash])
        }
    }

    @Test("a .torrent as base64 JSON, with save_path, paused and sequential")
    func base64() async throws {
        try await withAPI(configure: allowTestRoot) { api in
            let media = try Media(in: api.root + "/source")
            let r = try await api.call(.post, "/api/torrents", json: """
                {"torrent": "\(Data(media.bytes).base64EncodedString())", "save_path": "\(api.root)/elsewhere",
                 "paused": true, "sequential": true}
                """)
            #expect(r.status == .created, "\(r.text)")
            let s = try r.json()
            #expect(s.keys == summaryKeys)
            #expect(s["id"]?.string == media.metainfo.infoHashes.v1?.hex)
            #expect(s["info_hash_v2"]?.string == media.metainfo.infoHashes.v2?.hex)
            #expect(s["name"]?.string == "media")
            #expect(s["state"]?.string == "paused")
            #expect(s["paused"]?.bool == true)
            #expect(s["sequential"]?.bool == true)
            #expect(s["save_path"]?.string == api.root + "/elsewhere")
            #expect(s["size"]?.int == Media.files.reduce(0) { $0 + $1.length })
            #expect(try await api.ids() == [media.id])
            let again = try await api.call(.post, "/api/torrents",
                json: #"{"torrent": "\#(Data(media.bytes).base64EncodedString())"}"#)
            expectError(again, .conflict, "conflict")
            #expect(try await api.ids() == [media.id])
        }
    }

    @Test("raw application/x-bittorrent with ?paused=true&save_path=/abs; again: 409")
    func raw() async throws {
        try await withAPI(configure: allowTestRoot) { api in
            let media = try Media(in: api.root + "/source", version: .v1)
            let r = try await api.call(.post, "/api/torrents?paused=true&save_path=\(api.root)/raw",
                body: media.bytes, contentType: "application/x-bittorrent")
            #expect(r.status == .created, "\(r.text)")
            let s = try r.json()
            #expect(s["id"]?.string == media.id)
            #expect(s["info_hash_v2"]?.isNull == true)
            #expect(s["state"]?.string == "paused")
            #expect(s["paused"]?.bool == true)
            #expect(s["save_path"]?.string == api.root + "/raw")
            let again = try await api.call(.post, "/api/torrents", body: media.bytes,
                contentType: "application/x-bittorrent")
            expectError(again, .conflict, "conflict")
            #expect(try await api.ids() == [media.id])
        }
    }

    @Test("bad input is a 400 that says what is wrong, and adds nothing")
    func badInput() async throws {
        try await withAPI { api in
            let media = try Media(in: api.root + "/source", version: .v1)
            let good = magnet(randomHex(20), name: "x")
            let notBencode = Data("this is not a torrent".utf8).base64EncodedString()
            let cases: [(body: String, mentioning: String)] = [
                ("{not json", "not valid JSON"),
                ("", "not valid JSON"),
                ("[1, 2]", "object"),
                (#"{"magnet": 5}"#, "magnet"),
                (#"{"magnet": "\#(good)", "paused": "yes"}"#, "paused"),
                (#"{"magnet": "\#(good)", "sequential": 1}"#, "sequential"),
                (#"{"magnet": "\#(good)", "save_path": 7}"#, "save_path"),
                (#"{"magnet": null}"#, "exactly one"),
                ("{}", "exactly one"),
                (#"{"magnet": "\#(good)", "url": "http://127.0.0.1:1/a.torrent"}"#, "exactly one"),
                (#"{"magnet": "\#(good)", "torrent": "\#(notBencode)"}"#, "exactly one"),
                (#"{"torrent": "abc"}"#, "base64"),
                (#"{"torrent": "\#(notBencode)"}"#, "not a torrent"),
                (#"{"magnet": "magnet:?dn=no-hash"}"#, "magnet"),
                (#"{"magnet": "http://example.com/"}"#, "magnet"),
                (#"{"magnet": "\#(good)", "save_path": "relative/dir"}"#, "save_path"),
                (#"{"url": "ftp://127.0.0.1/a.torrent"}"#, "http"),
                // Refused before anything is fetched (port 1: nothing listens there anyway).
                (#"{"url": "http://127.0.0.1:1/a.torrent", "save_path": "relative"}"#, "save_path"),
                (#"{"url": "file:///etc/passwd"}"#, "http"),
            ]
            for c in cases {
                let r = try await api.call(.post, "/api/torrents", json: c.body)
                expectError(r, .badRequest, "bad_request", mentioning: c.mentioning)
            }
            // Raw uploads: not bencode, and a relative save path.
            let junk = try await api.call(.post, "/api/torrents", body: Array("d4:spam".utf8),
                contentType: "application/x-bittorrent")
            expectError(junk, .badRequest, "bad_request", mentioning: "not a torrent")
            let relative = try await api.call(.post, "/api/torrents?save_path=relative", body: media.bytes,
                contentType: "application/x-bittorrent")
            expectError(relative, .badRequest, "bad_request", mentioning: "save_path")
            #expect(try await api.ids() == [])
            #expect(!FileManager.default.fileExists(atPath: api.downloads))
        }
    }

    @Test("a body over the limit is 413 payload_too_large")
    func tooLarge() async throws {
        try await withAPI { api in
            let raw = try await api.call(.post, "/api/torrents",
                body: [UInt8](repeating: 0x64, count: Session.maxTorrentBytes + 1), contentType: "application/x-bittorrent")
            expectError(raw, .contentTooLarge, "payload_too_large")
            let json = try await api.call(.post, "/api/torrents",
                json: #"{"torrent": ""# + String(repeating: "A", count: 23 << 20) + #""}"#)
            expectError(json, .contentTooLarge, "payload_too_large")
            let patch = try await api.call(.patch, "/api/settings",
                json: #"{"download_dir": ""# + String(repeating: "a", count: 9 << 20) + #""}"#)
            expectError(patch, .contentTooLarge, "payload_too_large")
            #expect(try await api.ids() == [])
        }
    }
}

// MARK: - Hostile file paths

@Suite("File paths from a torrent stay under its save path")
struct PathTests {
    @Test("'..', absolute and '/'-holding components are sanitized on disk, in the detail, and for a peer that downloads it")
    func hostilePaths() async throws {
        try await withAPI(configure: allowTestRoot) { api in
            let tag = randomHex(6)
            // Each file: the path the torrent gives, and where PathSanitizer's rules put it under the name.
            let files: [(raw: [String], safe: String, length: Int)] = [
                (["..", "..", "escape-\(tag).txt"], "escape-\(tag).txt", 10000),
                (["", "abs-\(tag)", "x.txt"], "abs-\(tag)/x.txt", 20000),
                (["a/b", "c.txt"], "a_b/c.txt", 5000),
                (["/etc", ".", "passwd-\(tag)"], "_etc/passwd-\(tag)", 3000),
                (["..", ""], "_", 10),
            ]
            var stream: [UInt8] = []
            var data: [String: [UInt8]] = [:]
            for (i, f) in files.enumerated() {
                let bytes = pattern(f.length, seed: UInt32(100 + i))
                data[f.safe] = bytes
                stream += bytes
            }
            let info = Bencoded.dict([
                ("name", .text("evil")),
                ("piece length", .int(16384)),
                ("pieces", .bytes(v1Pieces(stream, pieceLength: 16384))),
                ("files", .list(files.map { f in
                    .dict([("length", .int(f.length)), ("path", .list(f.raw.map { .text($0) }))])
                })),
            ])
            let torrent = Bencoded.dict([("info", info)]).encoded
            let metainfo = try TorrentMetainfo(bytes: torrent)
            let id = metainfo.infoHashes.id

            // The data, where the sanitized paths say, under the save path: a check must find all of it.
            let seed = api.root + "/seed"
            for (path, bytes) in data { try write(seed + "/evil/" + path, bytes) }
            let before = filesUnder(api.root)
            _ = try await api.addTorrent(torrent, savePath: seed, seeding: true)
            let detail = try await api.detail(id)
            #expect(detail["files"]?.array?.compactMap { $0["path"]?.string } == files.map { "evil/" + $0.safe })
            #expect(detail["progress"]?.double == 1)
            #expect(detail["name"]?.string == "evil")

            // A second session downloads it from the first over 127.0.0.1 (metadata first, BEP 9): what it
            // writes, it writes under its own save path.
            let port = await api.session.listenPort
            let leech = api.root + "/leech"
            let other = try Session(configuration: .quiet(state: api.root + "/leech-state", downloads: leech))
            do {
                try await other.start()
                _ = try await other.add(.magnet("magnet:?xt=urn:btih:\(id)&x.pe=127.0.0.1:\(port)"))
                try await poll("the download", timeout: .seconds(30)) {
                    try await other.status(id).state == .seeding
                }
                await other.shutdown()
            } catch {
                await other.shutdown()
                throw error
            }
            for (path, bytes) in data { #expect(read(leech + "/evil/" + path) == bytes, "\(path)") }
            let created = filesUnder(api.root).subtracting(before)
            for path in created {
                #expect(path.hasPrefix("leech/evil/") || path.hasPrefix("leech-state/") || path.hasPrefix("state/")
                    || path.hasPrefix("leech/.") || path.hasPrefix("seed/."), "unexpected file \(path)")
            }
            #expect(filesUnder(leech + "/evil") == Set(files.map(\.safe)))
            // Nothing named by the torrent next to the test folder, or at the root of the file system.
            let outside = [api.root, (api.root as NSString).deletingLastPathComponent, "/"]
            for folder in outside {
                for name in ["escape-\(tag).txt", "abs-\(tag)", "passwd-\(tag)", "etc/passwd-\(tag)"] {
                    #expect(!FileManager.default.fileExists(atPath: folder + "/" + name), "\(folder)/\(name)")
                }
            }
            #expect(filesUnder(seed + "/evil") == Set(files.map(\.safe)))

            // A single-file torrent named "../../escape-TAG" is one file, under the save path.
            let lone = pattern(5000, seed: 7)
            let single = Bencoded.dict([("info", .dict([
                ("name", .text("../../escape-\(tag)")), ("length", .int(lone.count)), ("piece length", .int(16384)),
                ("pieces", .bytes(v1Pieces(lone, pieceLength: 16384))),
            ]))]).encoded
            let singleID = try TorrentMetainfo(bytes: single).infoHashes.id
            try write(seed + "/.._.._escape-\(tag)", lone)
            _ = try await api.addTorrent(single, savePath: seed, seeding: true)
            #expect(try await api.detail(singleID)["files"]?[0]?["path"]?.string == ".._.._escape-\(tag)")
            #expect(try await api.detail(singleID)["name"]?.string == ".._.._escape-\(tag)")
            for folder in outside { #expect(!FileManager.default.fileExists(atPath: folder + "/escape-\(tag)")) }
            #expect(try await api.call(.delete, "/api/torrents/\(singleID)?delete_data=true").status == .noContent)
            #expect(!FileManager.default.fileExists(atPath: seed + "/.._.._escape-\(tag)"))

            // Deleting with its data removes those files, and only those.
            let kept = filesUnder(api.root).filter { !$0.hasPrefix("seed/evil/") && !$0.hasPrefix("state/") }
            #expect(try await api.call(.delete, "/api/torrents/\(id)?delete_data=true").status == .noContent)
            #expect(!FileManager.default.fileExists(atPath: seed + "/evil"))
            #expect(FileManager.default.fileExists(atPath: seed))
            #expect(filesUnder(api.root).filter { !$0.hasPrefix("state/") } == kept)
        }
    }
}

// MARK: - Reading

@Suite("GET /api/torrents and /api/torrents/{id}")
struct ReadTests {
    @Test("the list: empty, then every torrent in the order added")
    func list() async throws {
        try await withAPI { api in
            let empty = try await api.call(.get, "/api/torrents")
            #expect(empty.status == .ok)
            #expect(try empty.json() == .object(["torrents": .array([])]))
            let a = try await api.addMagnet(name: "a")
            let b = try await api.addMagnet(name: "b")
            let r = try await api.call(.get, "/api/torrents")
            let items = try r.json()["torrents"]?.array ?? []
            #expect(items.compactMap { $0["id"]?.string } == [a, b])
            #expect(items.compactMap { $0["name"]?.string } == ["a", "b"])
            #expect(items.allSatisfy { $0.keys == summaryKeys })
        }
    }

    @Test("the detail of a hybrid torrent: files with mime and padding, pieces, trackers; the v2 hash is an alias")
    func detail() async throws {
        try await withAPI { api in
            let trackers = [["udp://127.0.0.1:6969/announce"], ["http://127.0.0.1:6970/announce"]]
            let media = try Media(in: api.root + "/source", trackers: trackers)
            let v2 = try #require(media.metainfo.infoHashes.v2?.hex)
            _ = try await api.addTorrent(media.bytes, paused: true)
            let d = try await api.detail(media.id)
            #expect(d.keys == detailKeys)
            #expect(d["id"]?.string == media.id)
            #expect(d["info_hash_v2"]?.string == v2)
            let files = try #require(d["files"]?.array)
            #expect(files.count == media.metainfo.files.count)
            #expect(files.count > Media.files.count, "a hybrid torrent pads its files")
            for (i, f) in media.metainfo.files.enumerated() {
                #expect(files[i]["index"]?.int == i)
                #expect(files[i]["path"]?.string == f.path.joined(separator: "/"))
                #expect(files[i]["length"]?.int == Int(f.length))
                #expect(files[i]["padding"]?.bool == f.isPadding)
                #expect(files[i]["priority"]?.string == "normal")
                #expect(files[i].keys == ["index", "path", "length", "priority", "progress", "padding", "mime"])
            }
            #expect(files[media.index("clip.webm")]["mime"]?.string == "video/webm")
            #expect(files[media.index("song.mp3")]["mime"]?.string == "audio/mpeg")
            #expect(files[media.index("notes.txt")]["mime"]?.string == "text/plain; charset=utf-8")
            #expect(d["pieces"]?["count"]?.int == media.metainfo.pieceCount)
            #expect(d["pieces"]?["length"]?.int == 16384)
            #expect(d["pieces"]?["have"]?.int == 0)
            let bitfield = try #require(d["pieces"]?["bitfield"]?.string.flatMap { Data(base64Encoded: $0) })
            #expect(bitfield.count == (media.metainfo.pieceCount + 7) / 8)
            #expect(tiers(d) == ["0 \(trackers[0][0])", "1 \(trackers[1][0])"])
            #expect(d["peers"] == .array([]))
            #expect(d["queue_position"]?.int == 0)
            for key in ["max_download_rate", "max_upload_rate", "ratio_limit", "seed_time_limit", "magnet"] {
                #expect(d[key]?.isNull == true, "\(key)")
            }
            // The v2 hash and capitals find the same torrent.
            #expect(try await api.detail(v2)["id"]?.string == media.id)
            #expect(try await api.detail(media.id.uppercased())["id"]?.string == media.id)
            let paused = try await api.call(.post, "/api/torrents/\(v2)/pause")
            #expect(paused.status == .ok)
            #expect(try paused.json()["id"]?.string == media.id)
            #expect(try await api.ids() == [media.id])
            // Its v2 hash as a magnet link (BEP 52 btmh) is the same torrent: 409.
            let btmh = try await api.call(.post, "/api/torrents", json: #"{"magnet": "magnet:?xt=urn:btmh:1220\#(v2)"}"#)
            expectError(btmh, .conflict, "conflict")
            #expect(try await api.ids() == [media.id])
        }
    }

    @Test("an unknown id is 404 not_found on every torrent path, and changes nothing")
    func unknownID() async throws {
        try await withAPI { api in
            let known = try await api.addMagnet()
            let unknown = randomHex(20)
            let calls: [(HTTPRequest.Method, String, String?)] = [
                (.get, "/api/torrents/\(unknown)", nil),
                (.get, "/api/torrents/\(randomHex(32))", nil),
                (.get, "/api/torrents/not-a-hash", nil),
                (.delete, "/api/torrents/\(unknown)", nil),
                (.delete, "/api/torrents/\(unknown)?delete_data=true", nil),
                (.post, "/api/torrents/\(unknown)/pause", nil),
                (.post, "/api/torrents/\(unknown)/resume", nil),
                (.post, "/api/torrents/\(unknown)/recheck", nil),
                (.post, "/api/torrents/\(unknown)/move", #"{"save_path": "\#(api.root)/x"}"#),
                (.patch, "/api/torrents/\(unknown)", #"{"sequential": true}"#),
                (.put, "/api/torrents/\(unknown)/files", #"{"priorities": []}"#),
                (.post, "/api/torrents/\(unknown)/trackers", #"{"url": "udp://127.0.0.1:1/announce"}"#),
                (.delete, "/api/torrents/\(unknown)/trackers?url=udp://127.0.0.1:1/announce", nil),
                (.get, "/api/torrents/\(unknown)/files/0/stream", nil),
            ]
            for (method, uri, json) in calls {
                let r = try await api.call(method, uri, json: json)
                expectError(r, .notFound, "not_found")
            }
            #expect(try await api.ids() == [known])
            #expect(!FileManager.default.fileExists(atPath: api.root + "/x"))
        }
    }
}

// MARK: - Changing a torrent

@Suite("Pause, resume, recheck, move, PATCH, DELETE")
struct ChangeTests {
    @Test("pause: 200 and paused; resume: back to fetching metadata")
    func pauseResume() async throws {
        try await withAPI { api in
            let id = try await api.addMagnet()
            let paused = try await api.call(.post, "/api/torrents/\(id)/pause")
            #expect(paused.status == .ok)
            #expect(try paused.json()["state"]?.string == "paused")
            #expect(try paused.json()["paused"]?.bool == true)
            #expect(try await api.detail(id)["state"]?.string == "paused")
            // The list too (it keeps the JSON of summaries that did not change).
            func listed() async throws -> String? {
                try await api.call(.get, "/api/torrents").json()["torrents"]?[0]?["state"]?.string
            }
            #expect(try await listed() == "paused")
            let resumed = try await api.call(.post, "/api/torrents/\(id)/resume")
            #expect(resumed.status == .ok)
            #expect(try resumed.json()["state"]?.string == "metadata")
            #expect(try resumed.json()["paused"]?.bool == false)
            #expect(try await api.detail(id)["paused"]?.bool == false)
            #expect(try await listed() == "metadata")
        }
    }

    @Test("recheck: 202, and the files are read again (a changed byte loses its piece)")
    func recheck() async throws {
        try await withAPI { api in
            let media = try Media(in: api.downloads, version: .v1)
            _ = try await api.addTorrent(media.bytes, seeding: true)
            #expect(try await api.detail(media.id)["progress"]?.double == 1)
            // Change a byte of the first piece behind the session's back.
            let path = media.path("clip.webm")
            var bytes = try #require(read(path))
            bytes[5] ^= 0xFF
            try write(path, bytes)
            let r = try await api.call(.post, "/api/torrents/\(media.id)/recheck")
            #expect(r.status == .accepted)
            #expect(try r.json()["id"]?.string == media.id)
            #expect(try r.json().keys == summaryKeys)
            try await api.waitFor(media.id, .downloading)
            let d = try await api.detail(media.id)
            #expect(d["pieces"]?["have"]?.int == media.metainfo.pieceCount - 1)
            #expect((d["progress"]?.double ?? 1) < 1)
        }
    }

    @Test("move: the files go to the new folder; a relative path is 400 and moves nothing")
    func move() async throws {
        try await withAPI(configure: allowTestRoot) { api in
            let media = try Media(in: api.downloads)
            _ = try await api.addTorrent(media.bytes, seeding: true)
            for bad in [#"{"save_path": "relative/dir"}"#, #"{"save_path": 5}"#, "{}", "nonsense"] {
                let r = try await api.call(.post, "/api/torrents/\(media.id)/move", json: bad)
                expectError(r, .badRequest, "bad_request")
            }
            #expect(try await api.detail(media.id)["save_path"]?.string == api.downloads)
            #expect(read(media.path("clip.webm")) == media.data["clip.webm"])

            let target = api.root + "/moved"
            let r = try await api.call(.post, "/api/torrents/\(media.id)/move", json: #"{"save_path": "\#(target)"}"#)
            #expect(r.status == .ok, "\(r.text)")
            #expect(try r.json()["save_path"]?.string == target)
            for (name, bytes) in media.data {
                #expect(read(media.path(name, in: target)) == bytes, "\(name)")
                #expect(!FileManager.default.fileExists(atPath: media.path(name)), "\(name) is still in the old folder")
            }
            try await api.waitFor(media.id, .seeding)
            #expect(try await api.detail(media.id)["save_path"]?.string == target)
            #expect(try await api.detail(media.id)["progress"]?.double == 1)

            // Moving to where it is already (however written) changes nothing.
            for path in [target, target + "/", api.root + "/./moved"] {
                let here = try await api.call(.post, "/api/torrents/\(media.id)/move", json: #"{"save_path": "\#(path)"}"#)
                #expect(here.status == .ok, "\(path): \(here.text)")
                #expect(read(media.path("clip.webm", in: target)) == media.data["clip.webm"])
            }
            try await api.waitFor(media.id, .seeding)
            #expect(try await api.detail(media.id)["progress"]?.double == 1)

            // A folder of that name at the target already: refused, and the files stay where they are.
            let occupied = api.root + "/occupied"
            try write(occupied + "/media/other.txt", [1])
            let clash = try await api.call(.post, "/api/torrents/\(media.id)/move", json: #"{"save_path": "\#(occupied)"}"#)
            expectError(clash, .badRequest, "bad_request")
            #expect(try await api.detail(media.id)["save_path"]?.string == api.root + "/./moved")
            #expect(read(media.path("clip.webm", in: target)) == media.data["clip.webm"])
            #expect(filesUnder(occupied) == ["media/other.txt"])
        }
    }

    @Test("PATCH: sequential, rate limits (null and 0 clear them), seeding limits; wrong types are 400 and change nothing")
    func patch() async throws {
        try await withAPI { api in
            let id = try await api.addMagnet(paused: true)
            let r = try await api.call(.patch, "/api/torrents/\(id)", json: """
                {"sequential": true, "max_download_rate": 1000, "max_upload_rate": 2000, "ratio_limit": 1.5,
                 "seed_time_limit": 60}
                """)
            #expect(r.status == .ok, "\(r.text)")
            #expect(try r.json().keys == summaryKeys)
            #expect(try r.json()["sequential"]?.bool == true)
            var d = try await api.detail(id)
            #expect(d["sequential"]?.bool == true)
            #expect(d["max_download_rate"]?.int == 1000)
            #expect(d["max_upload_rate"]?.int == 2000)
            #expect(d["ratio_limit"]?.double == 1.5)
            #expect(d["seed_time_limit"]?.int == 60)

            let bad: [(String, String)] = [
                (#"{"sequential": "yes"}"#, "sequential"),
                (#"{"max_download_rate": "fast"}"#, "max_download_rate"),
                // Foundation's JSONDecoder (Linux) reports a number that does not fit as "not valid JSON",
                // without the key, so only the status is certain here.
                (#"{"max_upload_rate": 1.5}"#, ""),
                (#"{"ratio_limit": "high"}"#, "ratio_limit"),
                (#"{"seed_time_limit": true}"#, "seed_time_limit"),
                (#"{"queue_position": "first"}"#, "queue_position"),
                (#"{"sequential": false, "max_download_rate": -5}"#, "max_download_rate"),
                (#"{"sequential": false, "ratio_limit": -1}"#, "ratio_limit"),
                ("[]", "object"),
                ("{", "JSON"),
            ]
            for (body, field) in bad {
                expectError(try await api.call(.patch, "/api/torrents/\(id)", json: body), .badRequest, "bad_request",
                    mentioning: field.isEmpty ? nil : field)
            }
            #expect(try await api.detail(id) == d)

            let cleared = try await api.call(.patch, "/api/torrents/\(id)",
                json: #"{"max_download_rate": null, "max_upload_rate": 0, "ratio_limit": null}"#)
            #expect(cleared.status == .ok)
            d = try await api.detail(id)
            #expect(d["max_download_rate"]?.isNull == true)
            #expect(d["max_upload_rate"]?.isNull == true)
            #expect(d["ratio_limit"]?.isNull == true)
            #expect(d["seed_time_limit"]?.int == 60, "a key left out is left alone")
            #expect(d["sequential"]?.bool == true)
        }
    }

    @Test("PATCH queue_position reorders the list")
    func queuePosition() async throws {
        try await withAPI { api in
            let a = try await api.addMagnet(name: "a", paused: true)
            let b = try await api.addMagnet(name: "b", paused: true)
            let c = try await api.addMagnet(name: "c", paused: true)
            #expect(try await api.ids() == [a, b, c])
            #expect(try await api.call(.patch, "/api/torrents/\(c)", json: #"{"queue_position": 0}"#).status == .ok)
            #expect(try await api.ids() == [c, a, b])
            #expect(try await api.call(.patch, "/api/torrents/\(c)", json: #"{"queue_position": 99}"#).status == .ok)
            #expect(try await api.ids() == [a, b, c])
            #expect(try await api.call(.patch, "/api/torrents/\(a)", json: #"{"queue_position": 1}"#).status == .ok)
            #expect(try await api.ids() == [b, a, c])
            for (i, id) in [b, a, c].enumerated() {
                #expect(try await api.detail(id)["queue_position"]?.int == i)
            }
        }
    }

    @Test("max_active_downloads queues the others; queue_position decides which one runs")
    func queueing() async throws {
        try await withAPI { api in
            #expect(try await api.call(.patch, "/api/settings", json: #"{"max_active_downloads": 1}"#).status == .ok)
            let a = try await api.addMagnet(name: "a")
            let b = try await api.addMagnet(name: "b")
            #expect(try await api.detail(a)["state"]?.string == "metadata")
            #expect(try await api.detail(b)["state"]?.string == "queued")
            #expect(try await api.call(.patch, "/api/torrents/\(b)", json: #"{"queue_position": 0}"#).status == .ok)
            try await api.waitFor(a, .queued, timeout: .seconds(5))
            #expect(try await api.detail(b)["state"]?.string == "metadata")
            #expect(try await api.call(.patch, "/api/settings", json: #"{"max_active_downloads": 2}"#).status == .ok)
            try await api.waitFor(a, .metadata, timeout: .seconds(5))
        }
    }

    @Test("force_start runs a torrent past the queue and takes no place in it; pause and resume clear it")
    func forceStart() async throws {
        try await withAPI { api in
            #expect(try await api.call(.patch, "/api/settings", json: #"{"max_active_downloads": 1}"#).status == .ok)
            let a = try await api.addMagnet(name: "a")
            let b = try await api.addMagnet(name: "b")
            let c = try await api.addMagnet(name: "c")
            #expect(try await api.detail(b)["state"]?.string == "queued")
            let forced = try await api.call(.patch, "/api/torrents/\(c)", json: #"{"force_start": true}"#)
            #expect(try forced.json()["force_start"] == .bool(true))
            try await api.waitFor(c, .metadata, timeout: .seconds(5))
            #expect(try await api.detail(a)["state"]?.string == "metadata")
            #expect(try await api.detail(b)["state"]?.string == "queued")
            _ = try await api.call(.post, "/api/torrents/\(c)/pause")
            let resumed = try await api.call(.post, "/api/torrents/\(c)/resume")
            #expect(try resumed.json()["force_start"] == .bool(false))
            try await api.waitFor(c, .queued, timeout: .seconds(5))
        }
    }

    @Test("DELETE: 204; the files stay unless delete_data=true")
    func delete() async throws {
        try await withAPI { api in
            let kept = try Media(in: api.downloads, name: "kept", version: .v1)
            let gone = try Media(in: api.downloads, name: "gone", version: .v1)
            let other = api.downloads + "/unrelated.txt"
            try write(other, [1, 2, 3])
            _ = try await api.addTorrent(kept.bytes, seeding: true)
            _ = try await api.addTorrent(gone.bytes, seeding: true)

            let r1 = try await api.call(.delete, "/api/torrents/\(kept.id)")
            #expect(r1.status == .noContent)
            #expect(r1.body.readableBytes == 0)
            #expect(try await api.ids() == [gone.id])
            for (name, bytes) in kept.data { #expect(read(kept.path(name)) == bytes) }

            let r2 = try await api.call(.delete, "/api/torrents/\(gone.id)?delete_data=true")
            #expect(r2.status == .noContent)
            #expect(try await api.ids() == [])
            #expect(!FileManager.default.fileExists(atPath: api.downloads + "/gone"))
            for (name, bytes) in kept.data { #expect(read(kept.path(name)) == bytes) }
            #expect(read(other) == [1, 2, 3])
            expectError(try await api.call(.get, "/api/torrents/\(gone.id)"), .notFound, "not_found")
            expectError(try await api.call(.delete, "/api/torrents/\(gone.id)"), .notFound, "not_found")
        }
    }
}

@Suite("PUT /api/torrents/{id}/files and the trackers")
struct FilesAndTrackersTests {
    @Test("priorities skip, high and normal; an unknown or padding index is 404, a bad priority 400, both change nothing")
    func priorities() async throws {
        try await withAPI { api in
            let media = try Media(in: api.root + "/source")
            _ = try await api.addTorrent(media.bytes, paused: true)
            let (clip, notes, song) = (media.index("clip.webm"), media.index("notes.txt"), media.index("song.mp3"))
            let r = try await api.call(.put, "/api/torrents/\(media.id)/files", json: """
                {"priorities": [{"index": \(clip), "priority": "skip"}, {"index": \(song), "priority": "high"}]}
                """)
            #expect(r.status == .ok, "\(r.text)")
            let d = try r.json()
            #expect(d.keys == detailKeys)
            #expect(d["files"]?[clip]?["priority"]?.string == "skip")
            #expect(d["files"]?[song]?["priority"]?.string == "high")
            #expect(d["files"]?[notes]?["priority"]?.string == "normal")
            #expect(d["size"]?.int == 100 + 3000, "a skipped file is not wanted")
            #expect(try await api.detail(media.id) == d)

            let pad = try #require(media.paddingIndex)
            let bad: [(String, HTTPResponse.Status, String, String)] = [
                (#"{"priorities": [{"index": 99, "priority": "high"}]}"#, .notFound, "not_found", "99"),
                (#"{"priorities": [{"index": \#(pad), "priority": "high"}]}"#, .notFound, "not_found", "\(pad)"),
                (#"{"priorities": [{"index": -1, "priority": "skip"}]}"#, .notFound, "not_found", "-1"),
                (#"{"priorities": [{"index": \#(notes), "priority": "skip"}, {"index": 99, "priority": "skip"}]}"#,
                    .notFound, "not_found", "99"),
                (#"{"priorities": [{"index": \#(notes), "priority": "urgent"}]}"#, .badRequest, "bad_request", "priority"),
                (#"{"priorities": [{"index": "0", "priority": "skip"}]}"#, .badRequest, "bad_request", "index"),
                (#"{"priorities": {"0": "skip"}}"#, .badRequest, "bad_request", "priorities"),
                ("{}", .badRequest, "bad_request", "priorities"),
            ]
            for (body, status, code, mentioning) in bad {
                let r = try await api.call(.put, "/api/torrents/\(media.id)/files", json: body)
                expectError(r, status, code, mentioning: mentioning)
            }
            #expect(try await api.detail(media.id) == d)

            let back = try await api.call(.put, "/api/torrents/\(media.id)/files",
                json: #"{"priorities": [{"index": \#(clip), "priority": "normal"}]}"#)
            #expect(back.status == .ok)
            #expect(try back.json()["files"]?[clip]?["priority"]?.string == "normal")
            #expect(try back.json()["files"]?[song]?["priority"]?.string == "high")
        }
    }

    @Test("skipping a file of a complete torrent leaves the other files complete")
    func skipKeepsOthersComplete() async throws {
        try await withAPI { api in
            // v1 without padding: notes.txt shares its piece with the ends of clip.webm and song.mp3.
            let media = try Media(in: api.downloads, version: .v1)
            _ = try await api.addTorrent(media.bytes, seeding: true)
            let r = try await api.call(.put, "/api/torrents/\(media.id)/files",
                json: #"{"priorities": [{"index": \#(media.index("notes.txt")), "priority": "skip"}]}"#)
            #expect(r.status == .ok)
            try await poll("the check after the change") { try await api.session.status(media.id).state != .checking }
            let d = try await api.detail(media.id)
            #expect(d["files"]?[media.index("notes.txt")]?["priority"]?.string == "skip")
            #expect(d["files"]?[media.index("clip.webm")]?["progress"]?.double == 1)
            #expect(d["state"]?.string == "seeding")
            #expect(d["progress"]?.double == 1)
            // The skipped file stays on disk; the bytes of the piece it shares are in the part file too.
            #expect(FileManager.default.contents(atPath: media.path("notes.txt")) == Data(media.data["notes.txt"]!))
            let parts = media.folder + "/.\(media.id).parts"
            #expect(FileManager.default.fileExists(atPath: parts))

            // Wanted again: complete at once, and the part file is gone.
            let back = try await api.call(.put, "/api/torrents/\(media.id)/files",
                json: #"{"priorities": [{"index": \#(media.index("notes.txt")), "priority": "normal"}]}"#)
            #expect(back.status == .ok)
            try await poll("the second check") { try await api.session.status(media.id).state != .checking }
            let again = try await api.detail(media.id)
            #expect(again["files"]?[media.index("notes.txt")]?["progress"]?.double == 1)
            #expect(again["state"]?.string == "seeding")
            #expect(again["progress"]?.double == 1)
            #expect(!FileManager.default.fileExists(atPath: parts))
        }
    }

    @Test("a magnet link without its metadata has no files to choose: 409")
    func prioritiesWithoutMetadata() async throws {
        try await withAPI { api in
            let id = try await api.addMagnet()
            let r = try await api.call(.put, "/api/torrents/\(id)/files",
                json: #"{"priorities": [{"index": 0, "priority": "skip"}]}"#)
            expectError(r, .conflict, "conflict")
            #expect(try await api.detail(id)["files"] == .array([]))
        }
    }

    @Test("trackers: add (200 detail), duplicate 409, bad scheme 400, remove, unknown 404")
    func trackers() async throws {
        try await withAPI { api in
            let id = try await api.addMagnet(paused: true)
            let udp = "udp://127.0.0.1:6969/announce", http = "http://127.0.0.1:6970/announce"
            let r = try await api.call(.post, "/api/torrents/\(id)/trackers", json: #"{"url": "\#(udp)"}"#)
            #expect(r.status == .ok, "\(r.text)")
            #expect(try r.json().keys == detailKeys)
            #expect(tiers(try r.json()) == ["0 \(udp)"])
            let same = try await api.call(.post, "/api/torrents/\(id)/trackers", json: #"{"url": "\#(http)", "tier": 0}"#)
            #expect(tiers(try same.json()) == ["0 \(udp)", "0 \(http)"])
            let next = "https://127.0.0.1:6971/announce"
            let r3 = try await api.call(.post, "/api/torrents/\(id)/trackers", json: #"{"url": "\#(next)", "tier": 7}"#)
            let expected = ["0 \(udp)", "0 \(http)", "1 \(next)"]
            #expect(tiers(try r3.json()) == expected)

            expectError(try await api.call(.post, "/api/torrents/\(id)/trackers", json: #"{"url": "\#(udp)"}"#),
                .conflict, "conflict")
            for body in [#"{"url": "ftp://127.0.0.1/announce"}"#, #"{"url": "wss://127.0.0.1/announce"}"#,
                #"{"url": "not a url"}"#, #"{"url": 5}"#, #"{"url": "\#(udp)x", "tier": "one"}"#, "{}"]
            {
                expectError(try await api.call(.post, "/api/torrents/\(id)/trackers", json: body), .badRequest,
                    "bad_request")
            }
            expectError(try await api.call(.delete, "/api/torrents/\(id)/trackers?url=udp://127.0.0.1:1/nothing"),
                .notFound, "not_found")
            expectError(try await api.call(.delete, "/api/torrents/\(id)/trackers"), .badRequest, "bad_request")
            #expect(tiers(try await api.detail(id)) == expected)

            let encoded = udp.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
            let removed = try await api.call(.delete, "/api/torrents/\(id)/trackers?url=\(encoded)")
            #expect(removed.status == .ok, "\(removed.text)")
            #expect(tiers(try removed.json()) == ["0 \(http)", "1 \(next)"])
            #expect(tiers(try await api.detail(id)) == ["0 \(http)", "1 \(next)"])
        }
    }
}

// MARK: - Streaming

@Suite("GET /api/torrents/{id}/files/{index}/stream")
struct StreamTests {
    @Test("200 without Range, 206 for bytes=A-B, -N and A-, 416 past the end, 404 for a bad index")
    func ranges() async throws {
        try await withAPI { api in
            let media = try Media(in: api.downloads)
            _ = try await api.addTorrent(media.bytes, seeding: true)
            let clip = media.index("clip.webm")
            let data = try #require(media.data["clip.webm"])
            let uri = "/api/torrents/\(media.id)/files/\(clip)/stream"

            let whole = try await api.call(.get, uri)
            #expect(whole.status == .ok)
            #expect(whole.bytes == data)
            #expect(whole.headers[.contentType] == "video/webm")
            #expect(whole.headers[.acceptRanges] == "bytes")
            #expect(whole.headers[.contentRange] == nil)

            let ranges: [(header: String, range: ClosedRange<Int>)] = [
                ("bytes=100-199", 100...199),
                ("bytes=16000-17000", 16000...17000),  // across a piece boundary
                ("bytes=0-0", 0...0),
                ("bytes=39990-50000", 39990...39999),  // an end past the end is cut
                ("bytes=-500", 39500...39999),
                ("bytes=-50000", 0...39999),
                ("bytes=39000-", 39000...39999),
                ("bytes=0-", 0...39999),
            ]
            for (header, range) in ranges {
                let r = try await api.call(.get, uri, headers: [.range: header])
                #expect(r.status == .partialContent, "\(header)")
                #expect(r.headers[.contentRange] == "bytes \(range.lowerBound)-\(range.upperBound)/\(data.count)", "\(header)")
                #expect(r.bytes == Array(data[range]), "\(header)")
                #expect(r.headers[.contentType] == "video/webm")
            }
            for header in ["bytes=40000-", "bytes=40000-40010", "bytes=500-100", "bytes=-0"] {
                let r = try await api.call(.get, uri, headers: [.range: header])
                expectError(r, .rangeNotSatisfiable, "range_not_satisfiable")
                #expect(r.headers[.contentRange] == "bytes */\(data.count)", "\(header)")
            }

            let song = try await api.call(.get, "/api/torrents/\(media.id)/files/\(media.index("song.mp3"))/stream")
            #expect(song.status == .ok)
            #expect(song.headers[.contentType] == "audio/mpeg")
            #expect(song.bytes == media.data["song.mp3"])

            let pad = try #require(media.paddingIndex)
            for index in ["99", "\(pad)", "-1", "one"] {
                expectError(try await api.call(.get, "/api/torrents/\(media.id)/files/\(index)/stream"), .notFound,
                    "not_found")
            }

            // A skipped file, and any file of a paused torrent, cannot be streamed: 409.
            let skip = try await api.call(.put, "/api/torrents/\(media.id)/files",
                json: #"{"priorities": [{"index": \#(clip), "priority": "skip"}]}"#)
            #expect(skip.status == .ok)
            try await api.waitFor(media.id, .seeding)
            expectError(try await api.call(.get, uri), .conflict, "conflict", mentioning: "skipped")
            #expect(try await api.call(.post, "/api/torrents/\(media.id)/pause").status == .ok)
            expectError(try await api.call(.get, "/api/torrents/\(media.id)/files/\(media.index("song.mp3"))/stream"),
                .conflict, "conflict", mentioning: "paused")
        }
    }
}

extension StreamTests {
    @Test("a piece that does not come in time is unavailable (503), after the whole wait")
    func pieceTimeout() async throws {
        try await withAPI { api in
            // The data is elsewhere and no peer has it: the torrent downloads, and nothing arrives.
            let media = try Media(in: api.root + "/source", version: .v1)
            _ = try await api.addTorrent(media.bytes)
            try await api.waitFor(media.id, .downloading)
            let start = ContinuousClock.now
            do {
                _ = try await api.session.read(media.id, index: 0, offset: 0, maxLength: 100, timeout: .milliseconds(400))
                Issue.record("a missing piece was read")
            } catch let error as SessionError {
                guard case .unavailable = error else { throw error }
            }
            #expect(ContinuousClock.now - start >= .milliseconds(350), "the wait is the one asked for")
            let e = APIError(any: SessionError.unavailable("no piece"))
            #expect(e.status == .serviceUnavailable)
            #expect(e.code == "unavailable")
        }
    }
}

// MARK: - The session

@Suite("Session, settings, metrics, OpenAPI, unknown paths")
struct SessionTests {
    @Test("GET /api/session")
    func session() async throws {
        try await withAPI { api in
            _ = try await api.addMagnet(paused: true)
            let r = try await api.call(.get, "/api/session")
            #expect(r.status == .ok)
            let s = try r.json()
            #expect(s.keys == ["torrents", "active", "download_rate", "upload_rate", "downloaded", "uploaded", "peers",
                "listen_port", "dht_nodes", "utp_connections", "port_mapping", "uptime", "version"])
            // A node bound to loopback maps no port: null, not left out.
            #expect(s["port_mapping"] == .null)
            #expect(s["utp_connections"]?.int == 0)
            #expect(s["torrents"]?.int == 1)
            #expect(s["active"]?.int == 0)
            #expect(s["listen_port"]?.int == (await api.session.listenPort))
            #expect((s["listen_port"]?.int ?? 0) > 0)
            #expect(s["dht_nodes"]?.int == 0)
            #expect(s["version"]?.string == Session.version)
            #expect((s["uptime"]?.int ?? -1) >= 0)
        }
    }

    @Test("GET and PATCH /api/settings; bad values are 400 and change nothing")
    func settings() async throws {
        try await withAPI(configure: allowTestRoot) { api in
            let r = try await api.call(.get, "/api/settings")
            #expect(r.status == .ok)
            let initial = try r.json()
            #expect(initial == .object([
                "download_dir": .string(api.downloads), "max_download_rate": .null, "max_upload_rate": .null,
                "max_active_downloads": .number(5), "seed_ratio_limit": .null, "seed_time_limit": .null,
            ]))
            let changed = try await api.call(.patch, "/api/settings", json: """
                {"download_dir": "\(api.root)/new", "max_download_rate": 1000, "max_upload_rate": 2000,
                 "max_active_downloads": 2, "seed_ratio_limit": 2.5, "seed_time_limit": 3600}
                """)
            #expect(changed.status == .ok, "\(changed.text)")
            let expected: JSONValue = .object([
                "download_dir": .string(api.root + "/new"), "max_download_rate": .number(1000),
                "max_upload_rate": .number(2000), "max_active_downloads": .number(2), "seed_ratio_limit": .number(2.5),
                "seed_time_limit": .number(3600),
            ])
            #expect(try changed.json() == expected)
            #expect(try await api.call(.get, "/api/settings").json() == expected)

            let bad: [(String, String)] = [
                (#"{"max_active_downloads": 0}"#, "max_active_downloads"),
                (#"{"max_active_downloads": "many"}"#, "max_active_downloads"),
                (#"{"download_dir": "relative"}"#, "download_dir"),
                (#"{"download_dir": 5}"#, "download_dir"),
                (#"{"max_download_rate": "fast"}"#, "max_download_rate"),
                (#"{"seed_ratio_limit": "x"}"#, "seed_ratio_limit"),
                // A negative rate used to be saved, and stopped the process at the next torrent's start.
                (#"{"max_download_rate": -5}"#, "max_download_rate"),
                (#"{"max_upload_rate": -1}"#, "max_upload_rate"),
                (#"{"seed_ratio_limit": -1}"#, "seed_ratio_limit"),
                (#"{"seed_time_limit": -1}"#, "seed_time_limit"),
                (#"{"max_active_downloads": 3, "download_dir": "relative"}"#, "download_dir"),
                ("{", "JSON"),
            ]
            for (body, field) in bad {
                expectError(try await api.call(.patch, "/api/settings", json: body), .badRequest, "bad_request",
                    mentioning: field)
            }
            #expect(try await api.call(.get, "/api/settings").json() == expected)

            let cleared = try await api.call(.patch, "/api/settings",
                json: #"{"max_download_rate": null, "max_upload_rate": 0, "seed_ratio_limit": null}"#)
            #expect(try cleared.json()["max_download_rate"]?.isNull == true)
            #expect(try cleared.json()["max_upload_rate"]?.isNull == true)
            #expect(try cleared.json()["seed_ratio_limit"]?.isNull == true)
            #expect(try cleared.json()["seed_time_limit"]?.int == 3600)
            #expect(await api.session.currentSettings().maxActiveDownloads == 2)
            // Session callers get the same meaning of 0: no limit (an engine cannot run at 0 bytes/s).
            var direct = await api.session.currentSettings()
            direct.maxUploadRate = 0
            #expect(try await api.session.updateSettings(direct).maxUploadRate == nil)
        }
    }

    @Test("GET /metrics: Prometheus text, with the token only")
    func metrics() async throws {
        try await withAPI { api in
            let id = try await api.addMagnet(name: "a \"quoted\" name", paused: true)
            expectError(try await api.call(.get, "/metrics", token: false), .unauthorized, "unauthorized")
            let r = try await api.call(.get, "/metrics")
            #expect(r.status == .ok)
            #expect(r.headers[.contentType]?.hasPrefix("text/plain; version=0.0.4") == true)
            let lines = r.text.split(separator: "\n", omittingEmptySubsequences: false)
            #expect(lines.last == "", "ends with a newline")
            var typed: Set<String> = []
            for line in lines.dropLast() {
                if line.hasPrefix("# HELP ") { continue }
                if line.hasPrefix("# TYPE ") {
                    let parts = line.split(separator: " ")
                    #expect(parts.count == 4 && ["gauge", "counter"].contains(parts[3]), "\(line)")
                    typed.insert(String(parts[2]))
                    continue
                }
                // name{labels} value
                let space = try #require(line.lastIndex(of: " "), "\(line)")
                #expect(Double(line[line.index(after: space)...]) != nil, "\(line)")
                let name = line[..<space].prefix { $0 != "{" }
                #expect(typed.contains(String(name)), "\(line) has no # TYPE before it")
            }
            #expect(lines.contains("peer_torrents 1"))
            #expect(lines.contains("peer_torrents_by_state{state=\"paused\"} 1"))
            #expect(lines.contains("peer_torrent_progress{id=\"\(id)\",name=\"a \\\"quoted\\\" name\"} 0.0"))
        }
    }

    @Test("GET /api/openapi.json: JSON, no token needed")
    func openAPI() async throws {
        try await withAPI { api in
            let r = try await api.call(.get, "/api/openapi.json", token: false)
            #expect(r.status == .ok)
            #expect(r.headers[.contentType]?.hasPrefix("application/json") == true)
            let doc = try r.json()
            #expect(doc["openapi"]?.string?.hasPrefix("3.1") == true)
            #expect(!(doc["paths"]?.keys.isEmpty ?? true))
        }
    }

    @Test("/api/live: a stream is added by its link, listed, and removed; bad links and unknown ids are errors")
    func live() async throws {
        try await withAPI { api in
            #expect(try await api.call(.get, "/api/live").json().array?.isEmpty == true)
            expectError(try await api.call(.post, "/api/live", json: #"{"link": "magnet:?xt=urn:btih:0"}"#), .badRequest,
                "bad_request", mentioning: "live")
            expectError(try await api.call(.post, "/api/live", json: "{}"), .badRequest, "bad_request", mentioning: "link")
            let key = String(repeating: "ab", count: 32)
            let link = "magnet:?xs=urn:btpk:\(key)&s=6c6976652f74616c6b&dn=talk&x.live=1"
            expectError(try await api.call(.post, "/api/live", json: #"{"link": "\#(link)", "peers": ["nowhere"]}"#),
                .badRequest, "bad_request", mentioning: "HOST:PORT")
            let r = try await api.call(.post, "/api/live", json: #"{"link": "\#(link)"}"#)
            #expect(r.status == .created, "\(r.text)")
            let added = try r.json()
            let id = added["stream"]?.string ?? ""
            #expect(id.count == 40 && added["name"]?.string == "talk")
            #expect(try await api.call(.get, "/api/live").json().array?.count == 1)
            #expect(try await api.call(.get, "/api/live/\(id)").json()["played"]?.int == 0)
            #expect(try await api.call(.delete, "/api/live/\(id)").status == .noContent)
            expectError(try await api.call(.get, "/api/live/\(id)"), .notFound, "not_found")
            expectError(try await api.call(.get, "/api/live/\(id)/stream"), .notFound, "not_found")
        }
    }

    @Test("the web UI's pages need no token, and carry a content security policy")
    func webUI() async throws {
        try await withAPI { api in
            for (uri, type) in [("/", "text/html"), ("/login", "text/html"), ("/app.js", "text/javascript"),
                ("/style.css", "text/css")]
            {
                let r = try await api.call(.get, uri, token: false)
                #expect(r.status == .ok, "\(uri)")
                #expect(r.headers[.contentType]?.hasPrefix(type) == true, "\(uri)")
                #expect(r.headers[.contentSecurityPolicy]?.contains("frame-ancestors 'none'") == true, "\(uri)")
                #expect(r.headers[.xContentTypeOptions] == "nosniff", "\(uri)")
                #expect(r.body.readableBytes > 0, "\(uri)")
            }
        }
    }

    @Test("an unknown path is 404 and a wrong method 405, both as JSON")
    func unknownPathsAndMethods() async throws {
        try await withAPI { api in
            for uri in ["/api/nothing", "/api/torrents/\(randomHex(20))/nothing", "/nothing.html", "/a/b/c"] {
                expectError(try await api.call(.get, uri), .notFound, "not_found")
            }
            let wrong: [(HTTPRequest.Method, String)] = [
                (.post, "/api/session"), (.delete, "/api/settings"), (.put, "/api/torrents"), (.get, "/api/login"),
                (.post, "/metrics"),
            ]
            for (method, uri) in wrong {
                let r = try await api.call(method, uri, json: "{}")
                expectError(r, .methodNotAllowed, "method_not_allowed")
                #expect(r.headers[.allow]?.isEmpty == false, "\(method) \(uri)")
            }
            #expect(try await api.call(.delete, "/api/torrents/\(randomHex(20))/pause").headers[.allow] == "POST")
            #expect(try await api.call(.post, "/api/torrents/\(randomHex(20))").headers[.allow] == "DELETE, GET, PATCH")
            // The guard comes first: without the token it is 401 whatever the method.
            expectError(try await api.call(.post, "/api/session", token: false), .unauthorized, "unauthorized")
            #expect(try await api.ids() == [])
        }
    }
}

// MARK: - Who may call

@Suite("The token, the login, Host and Origin")
struct SecurityTests {
    @Test("no token, a wrong one, or a wrong cookie: 401 with WWW-Authenticate; the cookie peer_token works")
    func tokenRequired() async throws {
        try await withAPI { api in
            // The router skips empty path components, so the guard must not be fooled by them either.
            for uri in ["/api/torrents", "/api/session", "/api/settings", "/api/events", "/api/nothing", "/metrics",
                "//api/torrents", "///api/session", "/api//torrents", "/api/torrents/", "/metrics/", "//metrics", "/api"]
            {
                let r = try await api.call(.get, uri, token: false)
                expectError(r, .unauthorized, "unauthorized")
                #expect(r.headers[.wwwAuthenticate] == "Bearer")
            }
            let wrong: [HTTPFields] = [
                [.authorization: "Bearer wrong"],
                [.authorization: "Bearer \(testToken)0"],
                [.authorization: "Bearer \(testToken.dropLast())"],
                [.authorization: "Basic \(testToken)"],
                [.authorization: testToken],
                [.cookie: "peer_token=wrong"],
                [.cookie: "other_token=\(testToken)"],
            ]
            for headers in wrong {
                expectError(try await api.call(.get, "/api/torrents", headers: headers), .unauthorized, "unauthorized")
            }
            // Nothing is added without the token.
            let add = try await api.call(.post, "/api/torrents", json: #"{"magnet": "\#(magnet(randomHex(20), name: "x"))"}"#,
                token: false)
            expectError(add, .unauthorized, "unauthorized")
            #expect(try await api.ids() == [])

            #expect(try await api.call(.get, "//api/torrents").status == .ok, "the same handler, with the token")
            for cookie in ["peer_token=\(testToken)", "theme=dark; peer_token=\(testToken)"] {
                let r = try await api.call(.get, "/api/torrents", headers: [.cookie: cookie])
                #expect(r.status == .ok, "\(cookie)")
            }
        }
    }

    @Test("POST /api/login: the right token sets an HttpOnly, SameSite=Strict cookie; a wrong one is 401")
    func login() async throws {
        try await withAPI { api in
            let r = try await api.call(.post, "/api/login", json: #"{"token": "\#(testToken)"}"#, token: false)
            #expect(r.status == .noContent)
            let cookie = try #require(r.headers[.setCookie])
            let attributes = Set(cookie.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) })
            #expect(attributes.contains("peer_token=\(testToken)"))
            #expect(attributes.contains("HttpOnly"))
            #expect(attributes.contains("SameSite=Strict"))
            #expect(attributes.contains("Path=/"))

            let wrong = try await api.call(.post, "/api/login", json: #"{"token": "wrong"}"#, token: false)
            expectError(wrong, .unauthorized, "unauthorized")
            #expect(wrong.headers[.setCookie] == nil)
            for body in [#"{"token": 5}"#, "{}", "nonsense"] {
                let r = try await api.call(.post, "/api/login", json: body, token: false)
                expectError(r, .badRequest, "bad_request")
                #expect(r.headers[.setCookie] == nil)
            }

            let out = try await api.call(.post, "/api/logout")
            #expect(out.status == .noContent)
            #expect(out.headers[.setCookie]?.contains("peer_token=;") == true)
            #expect(out.headers[.setCookie]?.contains("Max-Age=0") == true)
        }
    }

    @Test("GET /login?code=: the one-time code logs in once, then is 401")
    func loginCode() async throws {
        try await withAPI { api in
            let code = api.auth.makeLoginCode()
            let r = try await api.call(.get, "/login?code=\(code)", token: false)
            #expect(r.status == .seeOther)
            #expect(r.headers[.location] == "/")
            let cookie = try #require(r.headers[.setCookie])
            #expect(cookie.contains("peer_token=\(testToken)"))
            #expect(cookie.contains("HttpOnly"))
            #expect(cookie.contains("SameSite=Strict"))

            let again = try await api.call(.get, "/login?code=\(code)", token: false)
            expectError(again, .unauthorized, "unauthorized")
            #expect(again.headers[.setCookie] == nil)
            let made = api.auth.makeLoginCode()
            expectError(try await api.call(.get, "/login?code=\(made)x", token: false), .unauthorized, "unauthorized")
            expectError(try await api.call(.get, "/login?code=", token: false), .unauthorized, "unauthorized")
            // A wrong guess does not spend the real code.
            #expect(try await api.call(.get, "/login?code=\(made)", token: false).status == .seeOther)
        }
    }

    @Test("an Origin other than the daemon's own is 403, even with the token (and for the login)")
    func origin() async throws {
        try await withAPI { api in
            // Router-mode requests name "localhost" (no port) as their authority.
            #expect(try await api.call(.get, "/api/torrents", headers: [.origin: "http://localhost"]).status == .ok)
            let foreign = ["http://evil.example", "http://localhost.evil.example", "https://localhost", "http://127.0.0.1",
                "http://localhost:9091", "http://localhost@evil.example"]
            for origin in foreign {
                let r = try await api.call(.get, "/api/torrents", headers: [.origin: origin])
                expectError(r, .forbidden, "forbidden")
                let add = try await api.call(.post, "/api/torrents",
                    json: #"{"magnet": "\#(magnet(randomHex(20), name: "x"))"}"#, headers: [.origin: origin])
                expectError(add, .forbidden, "forbidden")
            }
            let login = try await api.call(.post, "/api/login", json: #"{"token": "\#(testToken)"}"#,
                headers: [.origin: "http://evil.example"], token: false)
            expectError(login, .forbidden, "forbidden")
            #expect(login.headers[.setCookie] == nil)
            let code = api.auth.makeLoginCode()
            let link = try await api.call(.get, "/login?code=\(code)", headers: [.origin: "http://evil.example"],
                token: false)
            expectError(link, .forbidden, "forbidden")
            #expect(try await api.ids() == [])
        }
    }

    @Test("Host: IP addresses and localhost with any port, --allow-host names; other names refused")
    func host() {
        let auth = APIAuth(token: testToken, allowedHosts: ["My-NAS.lan"])
        for host in ["127.0.0.1:9091", "127.0.0.1", "localhost:9091", "LOCALHOST", "[::1]:9091", "[::1]",
            "192.168.1.20:9091", "my-nas.lan:9091", "MY-NAS.LAN"]
        {
            #expect(auth.refusal(hosts: [host], origin: nil) == nil, "\(host)")
        }
        for host in ["evil.example:9091", "evil.example", "localhost.evil.example:9091", "127.0.0.1.nip.io:9091",
            "nas.lan:9091", "[evil.example]:9091", "", ":9091"]
        {
            #expect(auth.refusal(hosts: [host], origin: nil)?.message.contains("Host") == true, "\(host)")
        }
        // Origin: the scheme http, and exactly the host and port the request names.
        #expect(auth.refusal(hosts: ["127.0.0.1:9091"], origin: "http://127.0.0.1:9091") == nil)
        #expect(auth.refusal(hosts: ["localhost:9091"], origin: "http://LOCALHOST:9091") == nil)
        #expect(auth.refusal(hosts: ["[::1]:9091"], origin: "http://[::1]:9091") == nil)
        #expect(auth.refusal(hosts: ["my-nas.lan:9091"], origin: "http://my-nas.lan:9091") == nil)
        for (host, origin) in [("127.0.0.1:9091", "http://127.0.0.1:9092"), ("127.0.0.1:9091", "http://localhost:9091"),
            ("127.0.0.1:9091", "https://127.0.0.1:9091"), ("127.0.0.1:9091", "http://evil.example"),
            ("localhost:9091", "http://localhost:9091.evil.example")]
        {
            #expect(auth.refusal(hosts: [host], origin: origin) != nil, "\(host) from \(origin)")
        }
        #expect(auth.refusal(hosts: [], origin: "http://127.0.0.1:9091") != nil, "an Origin needs a Host to match")
    }

    @Test("host(ofAuthority:): the host of NAME[:PORT] and [IPv6][:PORT], nil for anything else")
    func hostOfAuthority() {
        #expect(APIAuth.host(ofAuthority: "127.0.0.1:9091") == "127.0.0.1")
        #expect(APIAuth.host(ofAuthority: "localhost") == "localhost")
        #expect(APIAuth.host(ofAuthority: "[::1]:9091") == "::1")
        #expect(APIAuth.host(ofAuthority: "[::1]") == "::1")
        #expect(APIAuth.host(ofAuthority: "name:x") == nil)
        #expect(APIAuth.host(ofAuthority: "name:65536") == nil)
    }
}

// MARK: - Live events

/// Keeps what a response body writes, for a body that does not end by itself.
final class Captured: ResponseBodyWriter, @unchecked Sendable {
    private let lock = NSLock()
    private var buffer = ""
    private(set) var finished = false

    var text: String { self.lock.withLock { self.buffer } }
    func write(_ buffer: ByteBuffer) async throws { self.lock.withLock { self.buffer += String(buffer: buffer) } }
    func finish(_ trailingHeaders: HTTPFields?) async throws { self.lock.withLock { self.finished = true } }
}

@Suite("GET /api/events")
struct EventTests {
    // The router test client collects a whole body before it answers, and this one never ends, so the
    // stream is read from the route's response directly; through the router only its guard is checked
    // (SecurityTests.tokenRequired).
    @Test("a snapshot first, then added, torrent and removed events as they happen")
    func stream() async throws {
        try await withAPI { api in
            let first = try await api.addMagnet(name: "first", paused: true)
            let response = PeerServer.events(api.session)
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == "text/event-stream")
            let out = Captured()
            let reader = Task { try await response.body.write(out) }
            defer { reader.cancel() }
            try await poll("the snapshot", timeout: .seconds(5)) { out.text.contains("\n\n") }
            let snapshot = try #require(out.text.components(separatedBy: "\n\n").first)
            #expect(snapshot.hasPrefix("event: snapshot\ndata: {\"torrents\":[{"))
            let data = try JSONDecoder().decode(JSONValue.self, from: Data(snapshot.dropFirst("event: snapshot\ndata: ".count).utf8))
            #expect(data["torrents"]?.array?.compactMap { $0["id"]?.string } == [first])

            let second = try await api.addMagnet(name: "second", paused: true)
            try await poll("the added event", timeout: .seconds(5)) { out.text.contains("event: added\n") }
            #expect(try await api.call(.post, "/api/torrents/\(second)/resume").status == .ok)
            #expect(try await api.call(.delete, "/api/torrents/\(second)").status == .noContent)
            try await poll("the removed event", timeout: .seconds(5)) { out.text.contains("event: removed\n") }
            let events = out.text.components(separatedBy: "\n\n").filter { !$0.isEmpty }
            #expect(events.allSatisfy { $0.hasPrefix("event: ") && $0.contains("\ndata: {") })
            let names = events.map { $0.dropFirst(7).prefix { $0 != "\n" } }
            #expect(names.first == "snapshot")
            #expect(names.filter { $0 == "snapshot" }.count == 1)
            #expect(names.contains("torrent"))
            let added = try #require(events.firstIndex { $0.hasPrefix("event: added\n") })
            #expect(events[added].contains("\"id\":\"\(second)\""))
            #expect(events[added].contains("\"name\":\"second\""))
            let removed = try #require(events.firstIndex(of: "event: removed\ndata: {\"id\":\"\(second)\"}"))
            #expect(added < removed)

            // A torrent that checks complete is announced as completed.
            let media = try Media(in: api.downloads)
            _ = try await api.addTorrent(media.bytes)
            try await poll("the completed event", timeout: .seconds(10)) { out.text.contains("event: completed\n") }
            let completed = try #require(out.text.components(separatedBy: "\n\n").first { $0.hasPrefix("event: completed\n") })
            #expect(completed.contains("\"id\":\"\(media.id)\""))
            #expect(completed.contains("\"progress\":1"))

            reader.cancel()
            try await poll("the stream to end", timeout: .seconds(5)) { out.finished }
        }
    }

    @Test("event formatting: one event, one data line of JSON, a blank line")
    func format() {
        #expect(PeerServer.format(.removed(id: "abc")) == "event: removed\ndata: {\"id\":\"abc\"}\n\n")
        #expect(PeerServer.format(.error(id: "abc", message: "disk \"full\"\nnow"))
            == "event: error\ndata: {\"id\":\"abc\",\"message\":\"disk \\\"full\\\"\\nnow\"}\n\n")
        #expect(PeerServer.event("snapshot", TorrentList(torrents: [])) == "event: snapshot\ndata: {\"torrents\":[]}\n\n")
    }
}

// MARK: - Over a real socket

/// Sends `request` to 127.0.0.1:`port` and reads until `done` holds for what came, the server closes, or 5 s pass.
/// The blocking calls run on a thread of their own: on Swift's few cooperative threads they would starve the
/// server they wait for.
func rawHTTP(port: Int, _ request: String, until done: @escaping @Sendable (String) -> Bool = { _ in false }) async throws
    -> String
{
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try blockingHTTP(port: port, request, until: done) }) }
    }
}

private func blockingHTTP(port: Int, _ request: String, until done: (String) -> Bool) throws -> String {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw POSIXError(.EIO) }
    defer { close(fd) }
    var timeout = timeval(tv_sec: 5, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    inet_pton(AF_INET, "127.0.0.1", &address.sin_addr)
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else { throw POSIXError(.ECONNREFUSED) }
    let bytes = Array(request.utf8)
    guard bytes.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == bytes.count else { throw POSIXError(.EIO) }
    var received: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while !done(String(decoding: received, as: UTF8.self)) {
        let n = read(fd, &buffer, buffer.count)
        if n <= 0 { break }
        received += buffer[0..<n]
    }
    return String(decoding: received, as: UTF8.self)
}

final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { self.lock.withLock { self.value } }
    func set() { self.lock.withLock { self.value = true } }
}

@Suite("The API over a real socket")
struct LiveTests {
    /// The server on 127.0.0.1 (a free port), and its port.
    func withLiveAPI(_ body: @escaping @Sendable (Int, Session) async throws -> Void) async throws {
        try await withSession { session, _ in
            let auth = APIAuth(token: testToken, allowedHosts: ["nas.lan"])
            let app = Application(router: PeerServer.router(session: session, auth: auth), server: PeerServer.http1,
                configuration: PeerServer.configuration(host: "127.0.0.1", port: 0))
            try await app.test(.live) { client in try await body(try #require(client.port), session) }
        }
    }

    func get(_ port: Int, _ path: String, host: String? = nil, _ headers: [String] = []) async throws -> String {
        let lines = ["GET \(path) HTTP/1.1", "Host: \(host ?? "127.0.0.1:\(port)")", "Connection: close"] + headers
        return try await rawHTTP(port: port, lines.joined(separator: "\r\n") + "\r\n\r\n")
    }

    @Test("Host and Origin as a browser sends them")
    func hostAndOrigin() async throws {
        try await withLiveAPI { port, _ in
            let bearer = "Authorization: Bearer \(testToken)"
            #expect(try await self.get(port, "/api/session", [bearer]).hasPrefix("HTTP/1.1 200"))
            #expect(try await self.get(port, "/api/session", host: "localhost:\(port)", [bearer]).hasPrefix("HTTP/1.1 200"))
            #expect(try await self.get(port, "/api/session", host: "nas.lan:\(port)", [bearer]).hasPrefix("HTTP/1.1 200"))
            let rebound = try await self.get(port, "/api/session", host: "evil.example:\(port)", [bearer])
            #expect(rebound.hasPrefix("HTTP/1.1 403"))
            #expect(rebound.contains(#""code":"forbidden""#))
            let own = try await self.get(port, "/api/session", [bearer, "Origin: http://127.0.0.1:\(port)"])
            #expect(own.hasPrefix("HTTP/1.1 200"))
            for origin in ["http://localhost:\(port)", "http://127.0.0.1:\(port + 1)", "http://evil.example"] {
                let r = try await self.get(port, "/api/session", [bearer, "Origin: \(origin)"])
                #expect(r.hasPrefix("HTTP/1.1 403"), "\(origin)")
            }
            #expect(try await self.get(port, "//api/session").hasPrefix("HTTP/1.1 401"))
            #expect(try await self.get(port, "/metrics/").hasPrefix("HTTP/1.1 401"))
        }
    }

    @Test("GET /api/events: headers and the snapshot arrive while the stream stays open")
    func events() async throws {
        try await withLiveAPI { port, session in
            _ = try await session.add(.magnet(magnet(randomHex(20), name: "x")), options: AddOptions(paused: true))
            let request = "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nCookie: peer_token=\(testToken)\r\n\r\n"
            let snapshotSeen = Flag()
            async let reading = rawHTTP(port: port, request) { text in
                if text.contains("event: snapshot\ndata: ") { snapshotSeen.set() }
                return text.contains("event: added\n")
            }
            // Added once the stream has its snapshot, so that it must come as an event.
            try await poll("the snapshot", timeout: .seconds(5)) { snapshotSeen.isSet }
            let added = randomHex(20)
            _ = try await session.add(.magnet(magnet(added, name: "later")), options: AddOptions(paused: true))
            let text = try await reading
            #expect(text.hasPrefix("HTTP/1.1 200"), "\(text.prefix(200))")
            #expect(text.lowercased().contains("content-type: text/event-stream"))
            #expect(text.contains("event: snapshot\ndata: {\"torrents\":[{"))
            #expect(text.contains("event: added\ndata: {"))
            #expect(text.contains("\"id\":\"\(added)\""))
        }
    }
}
