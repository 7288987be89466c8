// The command-line client of a running `peer serve`: add, ls, show, pause, resume, rm and stats call the
// daemon's HTTP API (docs/api.md), found through STATE/api-address and STATE/api-token.
import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore
import PeerBase
import PeerKit

/// The subcommands that talk to a running daemon.
enum Client {
    static let commands: [any ParsableCommand.Type] = [
        AddCommand.self, ListCommand.self, ShowCommand.self, PauseCommand.self, ResumeCommand.self,
        RemoveCommand.self, StatsCommand.self,
    ]
}

/// Options every client command takes.
struct DaemonOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "The daemon's state folder, where it writes api-address and api-token (as given to `peer serve --state`); "
            + "default $PEER_HOME, else $XDG_DATA_HOME/peer, else ~/.local/share/peer.", valueName: "DIR"))
    var state: String?

    @Flag(help: "Print the API's JSON answer, pretty-printed, instead of text.")
    var json = false
}

// MARK: - Commands

struct AddCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add",
        abstract: "Add a torrent to the running daemon: a magnet link, an http(s) URL of a .torrent, or a .torrent file.",
        discussion: """
            A magnet link or URL is handed to the daemon as it is (the daemon fetches the URL); a .torrent file \
            is read here and its bytes are uploaded, so the daemon need not see this folder. --save-path is made \
            absolute against the current folder before it is sent.

            Examples:
              peer add 'magnet:?xt=urn:btih:…&dn=album'
              peer add ~/Downloads/album.torrent --save-path ~/Music --sequential
              peer add https://example.org/album.torrent --paused --json
            """)

    @Argument(help: "A magnet link, an http(s) URL of a .torrent, or the path of a .torrent file.")
    var source: String

    @Option(help: ArgumentHelp("Where the daemon saves the data (default: its download folder).", valueName: "DIR"))
    var savePath: String?

    @Flag(help: "Add it paused.")
    var paused = false

    @Flag(help: "Download pieces in order (to play a file while it arrives).")
    var sequential = false

    @OptionGroup var daemon: DaemonOptions

    func run() async throws {
        try await DaemonClient.run("add", self.daemon) { client in
            let savePath = self.savePath.map { absolute($0) }
            let lower = self.source.lowercased()
            let answer: [UInt8]
            if lower.hasPrefix("magnet:") || lower.hasPrefix("http://") || lower.hasPrefix("https://") {
                let isMagnet = lower.hasPrefix("magnet:")
                let body = AddRequest(magnet: isMagnet ? self.source : nil, url: isMagnet ? nil : self.source,
                    savePath: savePath, paused: self.paused ? true : nil, sequential: self.sequential ? true : nil)
                answer = try await client.send(.POST, "/api/torrents", json: body, timeout: .seconds(90))
            } else {
                let bytes: [UInt8]
                do { bytes = try Info.read(self.source, limit: 16 << 20) } catch {
                    throw ClientError("\(self.source): \(error)")
                }
                var query: [String] = []
                if let savePath { query.append("save_path=" + DaemonClient.escape(savePath)) }
                if self.paused { query.append("paused=true") }
                if self.sequential { query.append("sequential=true") }
                let path = "/api/torrents" + (query.isEmpty ? "" : "?" + query.joined(separator: "&"))
                answer = try await client.send(.POST, path, body: bytes, contentType: "application/x-bittorrent")
            }
            if self.daemon.json { return print(JSONText.pretty(answer)) }
            let t = try DaemonClient.decode(APITorrent.self, answer)
            print("added \(t.name)  [\(t.shortID)]  \(t.state)")
        }
    }
}

/// A path made absolute against the working folder, with `~` expanded.
func absolute(_ path: String) -> String {
    let expanded = (path as NSString).expandingTildeInPath
    if expanded.hasPrefix("/") { return expanded }
    return ((FileManager.default.currentDirectoryPath as NSString).appendingPathComponent(expanded) as NSString)
        .standardizingPath
}

struct ListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ls",
        abstract: "List the daemon's torrents: id, name, state, progress, rates, peers and ETA.",
        discussion: """
            The id column shows the first 8 characters; every command takes any unique prefix of 4 or more.

            Examples:
              peer ls
              peer ls --json | jq -r '.torrents[] | select(.state == "seeding") | .id'
            """)

    @OptionGroup var daemon: DaemonOptions

    func run() async throws {
        try await DaemonClient.run("ls", self.daemon) { client in
            let answer = try await client.send(.GET, "/api/torrents")
            if self.daemon.json { return print(JSONText.pretty(answer)) }
            let list = try DaemonClient.decode(APITorrentList.self, answer).torrents
            if list.isEmpty { return print("no torrents (add one with `peer add`)") }
            var rows = [["ID", "NAME", "STATE", "DONE", "DOWN", "UP", "PEERS", "ETA"]]
            for t in list {
                rows.append([
                    t.shortID, Format.truncate(t.name, 40), t.state, Format.percent(t.progress),
                    Format.rate(t.downloadRate), Format.rate(t.uploadRate), t.peers?.value.map(String.init) ?? "-",
                    t.progress >= 1 ? "-" : Format.eta(t.eta),
                ])
            }
            print(Format.table(rows, rightAligned: [3, 4, 5, 6, 7]))
        }
    }
}

struct ShowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Show one of the daemon's torrents: state, sizes, rates, files, peers and trackers.",
        discussion: """
            Examples:
              peer show c9e1
              peer show c9e1a2b3 --json | jq '.files[] | {index, path, progress}'
            """)

    @Argument(help: "The torrent's id, or a unique prefix of it (4 characters or more).")
    var id: String

    @OptionGroup var daemon: DaemonOptions

    func run() async throws {
        try await DaemonClient.run("show", self.daemon) { client in
            let id = try await client.resolve(self.id)
            let answer = try await client.send(.GET, "/api/torrents/\(id)")
            if self.daemon.json { return print(JSONText.pretty(answer)) }
            let t = try DaemonClient.decode(APITorrent.self, answer)
            let d = try DaemonClient.decode(APIDetail.self, answer)
            Self.show(t, d)
        }
    }

    static func show(_ t: APITorrent, _ d: APIDetail) {
        func line(_ label: String, _ value: String) {
            print((label + ":").padding(toLength: 14, withPad: " ", startingAt: 0) + value)
        }
        line("name", t.name)
        line("id", t.id)
        if let v1 = t.infoHashV1, v1 != t.id { line("info-hash v1", v1) }
        if let v2 = t.infoHashV2, v2 != t.id { line("info-hash v2", v2) }
        line("state", t.state + (t.paused == true && t.state != "paused" ? " (paused)" : ""))
        line("progress", "\(Format.percent(t.progress)) of \(ByteCount.format(t.size))"
            + (t.haveBytes.map { " (have \(ByteCount.format($0)))" } ?? ""))
        line("rates", "↓ \(Format.rate(t.downloadRate))  ↑ \(Format.rate(t.uploadRate))")
        line("transferred", "↓ \(ByteCount.format(t.downloaded ?? 0))  ↑ \(ByteCount.format(t.uploaded ?? 0))")
        if t.progress < 1 { line("eta", Format.eta(t.eta)) }
        if let p = d.pieces { line("pieces", "\(p.have ?? 0) of \(p.count) × \(ByteCount.format(p.length))") }
        if let s = t.savePath { line("save path", s) }
        line("sequential", t.sequential == true ? "yes" : "no")
        if let a = t.addedAt { line("added", a) }
        if let c = t.completedAt { line("completed", c) }
        var limits: [String] = []
        if let r = d.maxDownloadRate, r > 0 { limits.append("down \(Format.rate(r))") }
        if let r = d.maxUploadRate, r > 0 { limits.append("up \(Format.rate(r))") }
        if let r = d.ratioLimit { limits.append("ratio \(ByteCount.fixed(r, 2))") }
        if let s = d.seedTimeLimit { limits.append("seed time \(Format.eta(s))") }
        if !limits.isEmpty { line("limits", limits.joined(separator: ", ")) }
        if let e = t.error { line("error", e) }
        let files = (d.files ?? []).filter { $0.padding != true }
        if files.isEmpty {
            line("files", t.state == "metadata" ? "not known yet (waiting for the metadata)" : "none")
        } else {
            print("files:")
            let rows = files.map {
                ["[\($0.index)]", $0.path, ByteCount.format($0.length), Format.percent($0.progress ?? 0), $0.priority ?? ""]
            }
            print(Format.table(rows, rightAligned: [2, 3], indent: "  "))
        }
        let peers = d.peers?.value ?? []
        if peers.isEmpty {
            line("peers", "none connected")
        } else {
            print("peers:")
            let rows = peers.map {
                [$0.address, $0.client ?? "?", Format.percent($0.progress ?? 0),
                 "↓ " + Format.rate($0.downloadRate ?? 0), "↑ " + Format.rate($0.uploadRate ?? 0)]
            }
            print(Format.table(rows, rightAligned: [2, 3, 4], indent: "  "))
        }
        let trackers = d.trackers ?? []
        if trackers.isEmpty {
            line("trackers", "none")
        } else {
            print("trackers:")
            let rows = trackers.map {
                ["tier \($0.tier ?? 0)", $0.url, ($0.status ?? "") + ($0.message.map { ": \($0)" } ?? "")]
            }
            print(Format.table(rows, rightAligned: [], indent: "  "))
        }
    }
}

struct PauseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pause",
        abstract: "Pause one of the daemon's torrents (no transfers until `peer resume`).",
        discussion: "Example:\n  peer pause c9e1")

    @Argument(help: "The torrent's id, or a unique prefix of it (4 characters or more).")
    var id: String

    @OptionGroup var daemon: DaemonOptions

    func run() async throws {
        try await DaemonClient.act("pause", self.id, self.daemon, done: "paused")
    }
}

struct ResumeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resume",
        abstract: "Resume a paused torrent of the daemon.",
        discussion: "Example:\n  peer resume c9e1")

    @Argument(help: "The torrent's id, or a unique prefix of it (4 characters or more).")
    var id: String

    @OptionGroup var daemon: DaemonOptions

    func run() async throws {
        try await DaemonClient.act("resume", self.id, self.daemon, done: "resumed")
    }
}

struct RemoveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rm",
        abstract: "Remove a torrent from the daemon; its data stays on disk unless --delete-data.",
        discussion: """
            The API answers a removal with no body; --json prints {"id": …, "removed": true, "delete_data": …}.

            Examples:
              peer rm c9e1
              peer rm c9e1a2b3 --delete-data
            """)

    @Argument(help: "The torrent's id, or a unique prefix of it (4 characters or more).")
    var id: String

    @Flag(help: "Also delete the downloaded files.")
    var deleteData = false

    @OptionGroup var daemon: DaemonOptions

    func run() async throws {
        try await DaemonClient.run("rm", self.daemon) { client in
            let t = try await client.torrent(matching: self.id)
            _ = try await client.send(.DELETE, "/api/torrents/\(t.id)" + (self.deleteData ? "?delete_data=true" : ""))
            if self.daemon.json {
                return print(try Terminal.json(RemoveAnswer(id: t.id, removed: true, deleteData: self.deleteData)))
            }
            print("removed \(t.name)  [\(t.shortID)]" + (self.deleteData ? "; its data was deleted" : "; its data was kept"))
        }
    }

    struct RemoveAnswer: Encodable {
        var id: String
        var removed: Bool
        var deleteData: Bool
        enum CodingKeys: String, CodingKey {
            case id, removed
            case deleteData = "delete_data"
        }
    }
}

struct StatsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Show the daemon's totals: torrents, rates, bytes moved, peers, DHT nodes, uptime.",
        discussion: "Examples:\n  peer stats\n  peer stats --json | jq .download_rate")

    @OptionGroup var daemon: DaemonOptions

    func run() async throws {
        try await DaemonClient.run("stats", self.daemon) { client in
            let answer = try await client.send(.GET, "/api/session")
            if self.daemon.json { return print(JSONText.pretty(answer)) }
            let s = try DaemonClient.decode(APISession.self, answer)
            func line(_ label: String, _ value: String) {
                print((label + ":").padding(toLength: 14, withPad: " ", startingAt: 0) + value)
            }
            line("torrents", "\(s.torrents ?? 0) (\(s.active ?? 0) active)")
            line("rates", "↓ \(Format.rate(s.downloadRate ?? 0))  ↑ \(Format.rate(s.uploadRate ?? 0))")
            line("transferred", "↓ \(ByteCount.format(s.downloaded ?? 0))  ↑ \(ByteCount.format(s.uploaded ?? 0))")
            line("peers", "\(s.peers ?? 0)")
            if let p = s.listenPort { line("listen port", "\(p)") }
            if let n = s.dhtNodes { line("dht nodes", "\(n)") }
            if let u = s.uptime { line("uptime", Format.eta(u)) }
            if let v = s.version { line("version", v) }
            line("api", client.base)
        }
    }
}

// MARK: - Talking to the daemon

/// A failure to report in one line; the command then exits 1.
struct ClientError: Error, CustomStringConvertible {
    var description: String
    /// The HTTP status of an error the daemon answered; nil when there was no answer.
    var status: UInt?
    init(_ description: String, status: UInt? = nil) {
        self.description = description
        self.status = status
    }
}

/// The daemon's address and token, read from the state folder, and the HTTP client that calls it.
struct DaemonClient: Sendable {
    let base: String
    let token: String
    let http: HTTPClient

    /// The methods the API uses (NIOHTTP1's `HTTPMethod` without depending on NIOHTTP1).
    enum Method: String {
        case GET, POST, PUT, DELETE
    }

    /// Runs one command's body against the daemon: reads the state folder, makes the HTTP client, shuts it
    /// down, and turns any failure into `peer COMMAND: error: …` and exit status 1.
    static func run(
        _ command: String, _ options: DaemonOptions, _ body: (DaemonClient) async throws -> Void
    ) async throws {
        let http = HTTPClient(eventLoopGroupProvider: .singleton)
        var failure: (any Error)?
        do {
            let client = try Self(state: stateDirectory(options.state), http: http)
            try await body(client)
        } catch {
            failure = error
        }
        try? await http.shutdown()
        guard let failure else { return }
        if failure is ExitCode || failure is CleanExit { throw failure }
        Terminal.error(command, (failure as? ClientError)?.description ?? String(describing: failure))
        throw ExitCode(1)
    }

    /// pause or resume: POSTs the action and prints the summary that comes back.
    static func act(_ action: String, _ given: String, _ options: DaemonOptions, done: String) async throws {
        try await Self.run(action, options) { client in
            let id = try await client.resolve(given)
            let answer = try await client.send(.POST, "/api/torrents/\(id)/\(action)")
            if options.json { return print(JSONText.pretty(answer)) }
            let t = try Self.decode(APITorrent.self, answer)
            print("\(done) \(t.name)  [\(t.shortID)]  \(t.state)")
        }
    }

    init(state: String, http: HTTPClient) throws {
        let addressFile = state + "/api-address"
        guard let address = FileManager.default.contents(atPath: addressFile) else {
            let option = state == stateDirectory(nil) ? "" : " --state \(state)"
            throw ClientError("no daemon: \(addressFile) is missing; start one with `peer serve\(option)`")
        }
        let tokenFile = state + "/api-token"
        guard let token = FileManager.default.contents(atPath: tokenFile) else {
            throw ClientError("cannot read \(tokenFile) (the daemon's API token): "
                + (FileManager.default.fileExists(atPath: tokenFile) ? "permission denied" : "no such file"))
        }
        self.base = String(decoding: address, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        self.token = String(decoding: token, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        self.http = http
        guard self.base.hasPrefix("http://") || self.base.hasPrefix("https://") else {
            throw ClientError("\(addressFile) holds \"\(self.base)\", not an http:// address")
        }
    }

    /// Sends a request with the token and returns the body of a 2xx answer; anything else throws a
    /// `ClientError` that says what went wrong (the API's own message where there is one).
    func send(
        _ method: Method, _ path: String, body: [UInt8]? = nil, contentType: String = "application/json",
        timeout: TimeAmount = .seconds(30)
    ) async throws -> [UInt8] {
        var request = HTTPClientRequest(url: self.base + path)
        request.method = .init(rawValue: method.rawValue)
        request.headers.add(name: "Authorization", value: "Bearer \(self.token)")
        request.headers.add(name: "Accept", value: "application/json")
        if let body {
            request.headers.add(name: "Content-Type", value: contentType)
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        let bytes: [UInt8]
        let status: (code: UInt, reason: String)
        do {
            let response = try await self.http.execute(request, timeout: timeout)
            status = (response.status.code, response.status.reasonPhrase)
            bytes = Array(buffer: try await response.body.collect(upTo: 64 << 20))
        } catch {
            throw ClientError(self.describe(error))
        }
        guard (200..<300).contains(status.code) else {
            throw ClientError(Self.apiError(status.code, status.reason, bytes), status: status.code)
        }
        return bytes
    }

    func send(
        _ method: Method, _ path: String, json: some Encodable, timeout: TimeAmount = .seconds(30)
    ) async throws -> [UInt8] {
        try await self.send(method, path, body: Array(try JSONEncoder().encode(json)), timeout: timeout)
    }

    /// The full id of the torrent that `text` names: a whole id is taken as it is, a shorter prefix is looked up.
    func resolve(_ text: String) async throws -> String {
        let lower = text.lowercased()
        if (lower.count == 40 || lower.count == 64) && lower.allSatisfy(\.isHexDigit) { return lower }
        return try await self.torrent(matching: text).id
    }

    /// The one torrent whose id (or other info-hash) starts with `text`.
    func torrent(matching text: String) async throws -> APITorrent {
        let prefix = text.lowercased()
        guard prefix.allSatisfy(\.isHexDigit), !prefix.isEmpty else {
            throw ClientError("\"\(text)\" is not a torrent id: ids are hexadecimal (see `peer ls`)")
        }
        let list = try Self.decode(APITorrentList.self, try await self.send(.GET, "/api/torrents")).torrents
        if prefix.count == 40 || prefix.count == 64, let exact = list.first(where: { $0.hashes.contains(prefix) }) {
            return exact
        }
        guard prefix.count >= 4 else {
            throw ClientError("\"\(text)\" is too short: give at least 4 characters of the id (see `peer ls`)")
        }
        let matches = list.filter { $0.hashes.contains { $0.hasPrefix(prefix) } }
        switch matches.count {
        case 1: return matches[0]
        case 0: throw ClientError("no torrent has an id starting with \(prefix) (see `peer ls`)")
        default:
            throw ClientError("\(prefix) matches \(matches.count) torrents ("
                + matches.map { "\($0.shortID) \($0.name)" }.joined(separator: ", ") + "); give more of the id")
        }
    }

    /// Says in one line why a request did not get an answer.
    func describe(_ error: any Error) -> String {
        let text = String(describing: error)
        if text.localizedCaseInsensitiveContains("refused") {
            return "cannot connect to the daemon at \(self.base): connection refused (is `peer serve` running? "
                + "api-address may be left over from a daemon that has stopped)"
        }
        if let e = error as? HTTPClientError, e == .deadlineExceeded || e == .connectTimeout || e == .readTimeout {
            return "the daemon at \(self.base) did not answer in time"
        }
        return "cannot talk to the daemon at \(self.base): \(text)"
    }

    /// The API's `{"error": {"code", "message"}}` as one line with the status.
    static func apiError(_ status: UInt, _ reason: String, _ body: [UInt8]) -> String {
        struct Envelope: Decodable {
            struct Inner: Decodable { var code: String?; var message: String? }
            var error: Inner
        }
        if let e = try? JSONDecoder().decode(Envelope.self, from: Data(body)), let message = e.error.message {
            var text = message + " (HTTP \(status)" + (e.error.code.map { " \($0)" } ?? "") + ")"
            if status == 401 { text += "; the token in api-token was refused" }
            return text
        }
        let raw = String(decoding: body.prefix(200), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return "the daemon answered HTTP \(status) \(reason)" + (raw.isEmpty ? "" : ": \(raw)")
    }

    /// - Parameter snakeCase: the type's keys are camelCase names for the API's snake_case ones (false for
    ///   PeerKit's types, whose coding keys spell the API's names).
    static func decode<T: Decodable>(_ type: T.Type, _ bytes: [UInt8], snakeCase: Bool = true) throws -> T {
        let decoder = JSONDecoder()
        if snakeCase { decoder.keyDecodingStrategy = .convertFromSnakeCase }
        do { return try decoder.decode(type, from: Data(bytes)) } catch {
            throw ClientError("the daemon's answer is not what docs/api.md describes: \(error)")
        }
    }

    /// Percent-encodes a query parameter value.
    static func escape(_ value: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~/")
        return value.addingPercentEncoding(withAllowedCharacters: allowed) ?? value
    }
}

// MARK: - The API's JSON (only what the text output shows; --json prints the answer as it came)

/// A value that decodes to nil instead of failing when it has another shape (the summary's `peers` is a
/// count, the detail's a list).
struct Lenient<Value: Decodable>: Decodable {
    var value: Value?
    init(from decoder: any Decoder) throws { self.value = try? Value(from: decoder) }
}

struct APITorrent: Decodable {
    var id: String
    var infoHashV1: String?
    var infoHashV2: String?
    var name: String
    var state: String
    var progress: Double
    var size: Int64
    var haveBytes: Int64?
    var downloadRate: Double
    var uploadRate: Double
    var downloaded: Int64?
    var uploaded: Int64?
    var peers: Lenient<Int>?
    var eta: Double?
    var savePath: String?
    var sequential: Bool?
    var paused: Bool?
    var addedAt: String?
    var completedAt: String?
    var error: String?

    var shortID: String { String(self.id.prefix(8)) }
    var hashes: [String] { [self.id, self.infoHashV1, self.infoHashV2].compactMap { $0?.lowercased() } }
}

struct APITorrentList: Decodable {
    var torrents: [APITorrent]
}

struct APIDetail: Decodable {
    struct File: Decodable {
        var index: Int
        var path: String
        var length: Int64
        var priority: String?
        var progress: Double?
        var padding: Bool?
    }
    struct Peer: Decodable {
        var address: String
        var client: String?
        var progress: Double?
        var downloadRate: Double?
        var uploadRate: Double?
    }
    struct Tracker: Decodable {
        var url: String
        var tier: Int?
        var status: String?
        var message: String?
    }
    struct Pieces: Decodable {
        var count: Int
        var length: Int64
        var have: Int?
    }
    var files: [File]?
    var peers: Lenient<[Peer]>?
    var trackers: [Tracker]?
    var pieces: Pieces?
    var maxDownloadRate: Double?
    var maxUploadRate: Double?
    var ratioLimit: Double?
    var seedTimeLimit: Double?
}

struct APISession: Decodable {
    var torrents: Int?
    var active: Int?
    var downloadRate: Double?
    var uploadRate: Double?
    var downloaded: Int64?
    var uploaded: Int64?
    var peers: Int?
    var listenPort: Int?
    var dhtNodes: Int?
    var uptime: Double?
    var version: String?
}

// MARK: - Text output

enum Format {
    static func rate(_ bytesPerSecond: Double) -> String {
        ByteCount.format(Int64(max(0, bytesPerSecond.rounded()))) + "/s"
    }

    /// Progress rounded down, so that 100% means complete: `42.0%`.
    static func percent(_ fraction: Double) -> String {
        ByteCount.fixed((max(0, min(1, fraction)) * 1000).rounded(.down) / 10, 1) + "%"
    }

    /// Seconds as `37s`, `5m 03s`, `2h 05m`, `3d 4h`; `-` when unknown.
    static func eta(_ seconds: Double?) -> String {
        guard let seconds, seconds.isFinite, seconds >= 0 else { return "-" }
        let s = Int(seconds.rounded())
        func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        if s < 60 { return "\(s)s" }
        if s < 3600 { return "\(s / 60)m \(two(s % 60))s" }
        if s < 86400 { return "\(s / 3600)h \(two(s % 3600 / 60))m" }
        return "\(s / 86400)d \(s % 86400 / 3600)h"
    }

    static func truncate(_ text: String, _ width: Int) -> String {
        text.count <= width ? text : String(text.prefix(width - 1)) + "…"
    }

    /// Columns padded to their widest cell, two spaces apart; the last column is not padded.
    static func table(_ rows: [[String]], rightAligned: Set<Int>, indent: String = "") -> String {
        let columns = rows.map(\.count).max() ?? 0
        let widths = (0..<columns).map { c in rows.map { c < $0.count ? $0[c].count : 0 }.max() ?? 0 }
        return rows.map { row in
            let cells = row.enumerated().map { c, cell in
                let pad = String(repeating: " ", count: widths[c] - cell.count)
                if rightAligned.contains(c) { return pad + cell }
                return c == row.count - 1 ? cell : cell + pad
            }
            return indent + cells.joined(separator: "  ")
        }.joined(separator: "\n")
    }
}

/// JSON text re-indented without being parsed into values, so that every number and string is printed
/// exactly as the daemon sent it.
enum JSONText {
    static func pretty(_ bytes: [UInt8]) -> String {
        let chars = Array(String(decoding: bytes, as: UTF8.self))
        var out = ""
        var depth = 0
        var i = 0
        func newline() { out += "\n" + String(repeating: "  ", count: depth) }
        func nextSignificant(after index: Int) -> Int {
            var j = index + 1
            while j < chars.count, chars[j].isWhitespace { j += 1 }
            return j
        }
        while i < chars.count {
            let c = chars[i]
            switch c {
            case "\"":
                var j = i + 1
                while j < chars.count, chars[j] != "\"" { j += chars[j] == "\\" ? 2 : 1 }
                out += String(chars[i...min(j, chars.count - 1)])
                i = j
            case "{", "[":
                let j = nextSignificant(after: i)
                if j < chars.count, chars[j] == (c == "{" ? "}" : "]") {
                    out += String([c, chars[j]])
                    i = j
                } else {
                    out.append(c)
                    depth += 1
                    newline()
                }
            case "}", "]":
                depth -= 1
                newline()
                out.append(c)
            case ",":
                out.append(c)
                newline()
            case ":":
                out += ": "
            default:
                if !c.isWhitespace { out.append(c) }
            }
            i += 1
        }
        return out
    }
}
