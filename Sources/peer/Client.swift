// The command-line client of a running `peer serve`: add, ls, show, pause, resume, rm and stats call the
// daemon's HTTP API (docs/api.md), found through STATE/api-address and STATE/api-token.
import ArgumentParser
import Foundation
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
              peer add 'magnet:?xt=urn:btih:…' --category music --tag flac --tag live
            A category names the folder its torrents are saved in (set with the API's POST /api/categories); one \
            not known yet is made with no folder of its own.
            """)

    @Argument(help: "A magnet link, an http(s) URL of a .torrent, or the path of a .torrent file.")
    var source: String

    @Option(help: ArgumentHelp("Where the daemon saves the data (default: its download folder).", valueName: "DIR"))
    var savePath: String?

    @Flag(help: "Add it paused.")
    var paused = false

    @Flag(help: "Download pieces in order (to play a file while it arrives).")
    var sequential = false

    @Option(help: ArgumentHelp("File it under this category (its folder is the default save path).", valueName: "NAME"))
    var category: String?

    @Option(name: .customLong("tag"), help: ArgumentHelp("Label it (repeat for more).", valueName: "TAG"))
    var tags: [String] = []

    @OptionGroup var daemon: DaemonOptions

    func run() async throws {
        try await Daemon.run("add", self.daemon) { client in
            let lower = self.source.lowercased()
            let source: TorrentSource
            if lower.hasPrefix("magnet:") {
                source = .magnet(self.source)
            } else if lower.hasPrefix("http://") || lower.hasPrefix("https://") {
                source = .url(self.source)
            } else {
                do { source = .torrentFile(try Info.read(self.source, limit: 16 << 20)) } catch {
                    throw CommandFailure("\(self.source): \(error)")
                }
            }
            let options = AddOptions(savePath: self.savePath.map { absolute($0) }, paused: self.paused,
                sequential: self.sequential, category: self.category, tags: self.tags)
            let answer = try await client.add(source, options: options)
            if self.daemon.json { return print(JSONText.pretty(answer.bytes)) }
            let t = try answer.decode()
            print("added \(t.name)  [\(t.shortID)]  \(t.state.rawValue)")
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
              peer ls --category music --tag flac
              peer ls --json | jq -r '.torrents[] | select(.state == "seeding") | .id'
            """)

    @Option(help: ArgumentHelp("Only the torrents of this category (\"\" for those with none).", valueName: "NAME"))
    var category: String?

    @Option(help: ArgumentHelp("Only the torrents with this tag.", valueName: "TAG"))
    var tag: String?

    @OptionGroup var daemon: DaemonOptions

    func run() async throws {
        try await Daemon.run("ls", self.daemon) { client in
            let answer = try await client.torrents(category: self.category, tag: self.tag)
            if self.daemon.json { return print(JSONText.pretty(answer.bytes)) }
            let list = try answer.decode().torrents
            if list.isEmpty {
                return print(self.category == nil && self.tag == nil ? "no torrents (add one with `peer add`)"
                    : "no torrents of that category or tag")
            }
            var rows = [["ID", "NAME", "STATE", "DONE", "DOWN", "UP", "PEERS", "ETA"]]
            for t in list {
                rows.append([
                    t.shortID, Format.truncate(t.name, 40), t.state.rawValue, Format.percent(t.progress),
                    Format.rate(t.downloadRate), Format.rate(t.uploadRate), String(t.peers),
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
        try await Daemon.run("show", self.daemon) { client in
            let answer = try await client.detail(try await client.resolve(self.id))
            if self.daemon.json { return print(JSONText.pretty(answer.bytes)) }
            Self.show(try answer.decode())
        }
    }

    static func show(_ d: TorrentDetail) {
        let t = d.summary
        func line(_ label: String, _ value: String) {
            print((label + ":").padding(toLength: 14, withPad: " ", startingAt: 0) + value)
        }
        line("name", t.name)
        line("id", t.id)
        if let v1 = t.infoHashV1, v1 != t.id { line("info-hash v1", v1) }
        if let v2 = t.infoHashV2, v2 != t.id { line("info-hash v2", v2) }
        line("state", t.state.rawValue + (t.paused && t.state != .paused ? " (paused)" : ""))
        line("progress", "\(Format.percent(t.progress)) of \(ByteCount.format(t.size)) (have \(ByteCount.format(t.haveBytes)))")
        line("rates", "↓ \(Format.rate(t.downloadRate))  ↑ \(Format.rate(t.uploadRate))")
        line("transferred", "↓ \(ByteCount.format(t.downloaded))  ↑ \(ByteCount.format(t.uploaded))")
        if t.progress < 1 { line("eta", Format.eta(t.eta)) }
        if let p = d.pieces { line("pieces", "\(p.have) of \(p.count) × \(ByteCount.format(Int64(p.length)))") }
        line("save path", t.savePath)
        line("sequential", t.sequential ? "yes" : "no")
        line("added", APIJSON.format(t.addedAt))
        if let c = t.completedAt { line("completed", APIJSON.format(c)) }
        var limits: [String] = []
        if let r = d.maxDownloadRate, r > 0 { limits.append("down \(Format.rate(r))") }
        if let r = d.maxUploadRate, r > 0 { limits.append("up \(Format.rate(r))") }
        if let r = d.ratioLimit { limits.append("ratio \(ByteCount.fixed(r, 2))") }
        if let s = d.seedTimeLimit { limits.append("seed time \(Format.eta(s))") }
        if !limits.isEmpty { line("limits", limits.joined(separator: ", ")) }
        if let e = t.error { line("error", e) }
        let files = d.files.filter { !$0.padding }
        if files.isEmpty {
            line("files", t.state == .metadata ? "not known yet (waiting for the metadata)" : "none")
        } else {
            print("files:")
            let rows = files.map {
                ["[\($0.index)]", $0.path, ByteCount.format($0.length), Format.percent($0.progress), $0.priority.rawValue]
            }
            print(Format.table(rows, rightAligned: [2, 3], indent: "  "))
        }
        if d.peers.isEmpty {
            line("peers", "none connected")
        } else {
            print("peers:")
            // The API has no upload rate per peer: the column shows 0, as it always has.
            let rows = d.peers.map {
                [$0.address, $0.transport.rawValue, $0.client ?? "?", Format.percent($0.progress),
                 "↓ " + Format.rate($0.downloadRate), "↑ " + Format.rate(0)]
            }
            print(Format.table(rows, rightAligned: [3, 4, 5], indent: "  "))
        }
        if d.trackers.isEmpty {
            line("trackers", "none")
        } else {
            print("trackers:")
            // The API has no tracker status yet: the last column stays, empty, as it always has been.
            let rows = d.trackers.map { ["tier \($0.tier)", $0.url, ""] }
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
        try await Daemon.act("pause", self.id, self.daemon, done: "paused") { try await $0.pause($1) }
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
        try await Daemon.act("resume", self.id, self.daemon, done: "resumed") { try await $0.resume($1) }
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
        try await Daemon.run("rm", self.daemon) { client in
            let t = try await client.torrent(matching: self.id)
            try await client.remove(t.id, deleteData: self.deleteData)
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
        try await Daemon.run("stats", self.daemon) { client in
            let answer = try await client.stats()
            if self.daemon.json { return print(JSONText.pretty(answer.bytes)) }
            let s = try answer.decode()
            func line(_ label: String, _ value: String) {
                print((label + ":").padding(toLength: 14, withPad: " ", startingAt: 0) + value)
            }
            line("torrents", "\(s.torrents) (\(s.active) active)")
            line("rates", "↓ \(Format.rate(s.downloadRate))  ↑ \(Format.rate(s.uploadRate))")
            line("transferred", "↓ \(ByteCount.format(s.downloaded))  ↑ \(ByteCount.format(s.uploaded))")
            line("peers", "\(s.peers)")
            line("listen port", "\(s.listenPort)")
            line("dht nodes", "\(s.dhtNodes)")
            line("uptime", Format.eta(s.uptime))
            line("version", s.version)
            line("api", client.base)
        }
    }
}

// MARK: - Running a command against the daemon

/// A failure of the command itself (not of a call to the daemon), told in one line.
struct CommandFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

enum Daemon {
    /// The daemon of a state folder (`--state`, else the default one).
    static func endpoint(_ state: String?) throws(DaemonClientError) -> DaemonClient.Endpoint {
        let folder = stateDirectory(state)
        return try DaemonClient.Endpoint(state: folder, isDefault: folder == stateDirectory(nil))
    }

    /// Runs one command's body against the daemon, and turns any failure into `peer COMMAND: error: …` and
    /// exit status 1.
    static func run(
        _ command: String, _ options: DaemonOptions, _ body: (DaemonClient) async throws -> Void
    ) async throws {
        do {
            try await DaemonClient.with(try Self.endpoint(options.state), body)
        } catch let failure {
            if failure is ExitCode || failure is CleanExit { throw failure }
            Terminal.error(command, String(describing: failure))
            throw ExitCode(1)
        }
    }

    /// pause or resume: sends the action and prints the summary that comes back.
    static func act(
        _ action: String, _ given: String, _ options: DaemonOptions, done: String,
        _ call: @escaping (DaemonClient, String) async throws -> DaemonClient.Answer<TorrentStatus>
    ) async throws {
        try await Self.run(action, options) { client in
            let answer = try await call(client, try await client.resolve(given))
            if options.json { return print(JSONText.pretty(answer.bytes)) }
            let t = try answer.decode()
            print("\(done) \(t.name)  [\(t.shortID)]  \(t.state.rawValue)")
        }
    }
}

// MARK: - Text output

enum Format {
    static func rate(_ bytesPerSecond: Int64) -> String {
        ByteCount.format(max(0, bytesPerSecond)) + "/s"
    }

    /// Progress rounded down, so that 100% means complete: `42.0%`.
    static func percent(_ fraction: Double) -> String {
        ByteCount.fixed((max(0, min(1, fraction)) * 1000).rounded(.down) / 10, 1) + "%"
    }

    /// Seconds as `37s`, `5m 03s`, `2h 05m`, `3d 4h`; `-` when unknown.
    static func eta(_ seconds: Int64?) -> String {
        guard let seconds, seconds >= 0 else { return "-" }
        let s = Int(seconds)
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
