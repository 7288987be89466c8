// `peer search` and `peer index`: the node's keyword index, through the daemon when one runs, else read
// straight from STATE/index.sqlite.
import ArgumentParser
import Foundation
import PeerBase
import PeerKit
import Search

struct SearchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "search",
        abstract: "Find torrents by the words of their names and file paths.",
        discussion: """
            Searches the node's index: every torrent the daemon holds or has seen. Words are matched whole, \
            with case and accents folded (amelie finds Amélie); punctuation separates words (Big.Buck.Bunny is \
            three); every word must be there. Operators and quotes are words too: nothing is special syntax. \
            Results are ranked by how well the name matches, then seeders and freshness; VERIFIED says the \
            node checked the torrent's metadata itself rather than taking another node's word for it.

            With a daemon running it is asked; without one, its state folder's index is read directly.

            --remote also asks the daemon's search neighbours (other Peer nodes that found each other on the \
            DHT) and waits for them, at most 30 s: their hits are claims until the node fetched the torrent's \
            info dictionary from one of them and it matched (CHECK verified); hits that failed are not shown.

            Examples:
              peer search big buck bunny
              peer search ubuntu 24.04 --limit 5
              peer search sintel --remote
              peer search amelie --json | jq -r '.hits[0].magnet' | xargs peer add
            """)

    @Argument(help: "The words to look for.")
    var words: [String]

    @Option(help: "At most this many results (1 to 500).")
    var limit = 20

    @Flag(help: "Also ask the daemon's search neighbours (other Peer nodes) and its index node (--index-server); waits for their answers, at most 30 s.")
    var remote = false

    @OptionGroup var daemon: DaemonOptions

    func validate() throws {
        guard !self.words.isEmpty else { throw ValidationError("give the words to search for") }
        guard (1...500).contains(self.limit) else { throw ValidationError("--limit must be from 1 to 500") }
    }

    func run() async throws {
        let text = self.words.joined(separator: " ")
        if self.remote { return try await self.runRemote(text) }
        let results: SearchResults
        let bytes: [UInt8]
        do {
            (results, bytes) = try await Self.ask(text, limit: self.limit, state: self.daemon.state)
        } catch let failure {
            Terminal.error("search", String(describing: failure))
            throw ExitCode(1)
        }
        if self.daemon.json { return print(JSONText.pretty(bytes)) }
        if results.hits.isEmpty { return print("nothing found for \(results.terms.joined(separator: " "))") }
        var rows = [["#", "NAME", "SIZE", "SEEDS", "SOURCE", "VERIFIED", "HASH"]]
        for (i, h) in results.hits.enumerated() {
            rows.append([
                String(i + 1), Format.truncate(h.name, 50), ByteCount.format(h.size), h.seeders.map(String.init) ?? "?",
                h.sources.joined(separator: ","), h.verified ? "yes" : "claim", String(h.infoHash.prefix(8)),
            ])
        }
        print(Format.table(rows, rightAligned: [0, 2, 3]))
        print("\(results.hits.count) found in \(ByteCount.fixed(results.milliseconds, 1)) ms; "
            + "add one with: peer add '\(results.hits[0].magnet)'")
    }

    /// Local hits, then the neighbours' as they arrive and are checked; the last report decides.
    func runRemote(_ text: String) async throws {
        try await Daemon.run("search", self.daemon) { client in
            let local = try await client.search(text, limit: self.limit, remote: true).decode()
            guard let id = local.remote else { throw CommandFailure("the daemon started no remote search") }
            var answer = try await client.remoteSearch(id)
            let deadline = ContinuousClock.now + .seconds(30)
            while try !answer.decode().done, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(200))
                answer = try await client.remoteSearch(id)
            }
            if self.daemon.json { return print(JSONText.pretty(answer.bytes)) }
            let report = try answer.decode()
            if !local.hits.isEmpty {
                print("this node (\(local.hits.count)):")
                let rows = local.hits.map { h in
                    [Format.truncate(h.name, 50), ByteCount.format(h.size), h.sources.joined(separator: ","), String(h.infoHash.prefix(8))]
                }
                print(Format.table(rows, rightAligned: [1], indent: "  "))
            }
            print("neighbours (\(report.hits.count)):")
            var rows = [["#", "NAME", "SIZE", "NODES", "CHECK", "HASH"]]
            for (i, h) in report.hits.prefix(self.limit).enumerated() {
                rows.append([String(i + 1), Format.truncate(h.name, 50), ByteCount.format(h.size), String(h.responders),
                    h.check.rawValue, String(h.infoHash.prefix(8))])
            }
            print(Format.table(rows, rightAligned: [0, 2, 3], indent: "  "))
            if let index = report.index {
                print("index node \(index.server) (\(index.hits.count))" + (index.error.map { ": \($0)" } ?? ":"))
                var rows = [["#", "NAME", "SIZE", "PEERS", "CHECK", "HASH"]]
                for (i, h) in index.hits.prefix(self.limit).enumerated() {
                    rows.append([String(i + 1), Format.truncate(h.name, 50), ByteCount.format(h.size),
                        String(h.peers.count), h.check.rawValue, String(h.infoHash.prefix(8))])
                }
                if index.hits.count > 0 { print(Format.table(rows, rightAligned: [0, 2, 3], indent: "  ")) }
                if index.failed > 0 { print("  \(index.failed) hits failed their check") }
            }
            print("asked \(report.asked) of \(report.neighbours) neighbours, \(report.answered) answered, "
                + "\(report.refused) busy or gone; \(ByteCount.format(Int64(report.bytesReceived))) received; "
                + "\(report.failed) hits failed their check; stopped: \(report.stopped?.rawValue ?? "no")"
                + (report.done ? "" : " (still running after 30 s)"))
        }
    }

    /// The daemon's answer, or the index file's when no daemon runs on the state folder.
    static func ask(_ text: String, limit: Int, state: String?) async throws -> (SearchResults, [UInt8]) {
        do {
            let endpoint = try Daemon.endpoint(state)
            return try await DaemonClient.with(endpoint) { client in
                let answer = try await client.search(text, limit: limit)
                return (try answer.decode(), answer.bytes)
            }
        } catch let e as DaemonClientError where Self.noDaemon(e) {
            let results = try Self.local(text, limit: limit, state: state)
            return (results, Array(try APIJSON.encoder.encode(results)))
        }
    }

    static func noDaemon(_ e: DaemonClientError) -> Bool {
        switch e {
        case .noDaemon, .connectionRefused: true
        default: false
        }
    }

    static func local(_ text: String, limit: Int, state: String?) throws -> SearchResults {
        let path = stateDirectory(state) + "/index.sqlite"
        guard let index = try SearchIndex.openReadOnly(path: path) else {
            throw CommandFailure("no daemon runs and there is no index at \(path) yet: start one with `peer serve`")
        }
        let query: SearchQuery
        do { query = try SearchQuery(text) } catch { throw CommandFailure(error.description) }
        let start = ContinuousClock.now
        let hits = try index.search(query, limit: limit)
        let took = ContinuousClock.now - start
        return SearchResults(query: text, terms: query.terms, hits: hits, milliseconds: took.milliseconds)
    }
}

/// `peer serve`'s options for search among peers.
struct SearchOptions: ParsableArguments {
    @Flag(name: .customLong("no-search"), help: "Do not join the search overlay: neither answer nor ask other nodes' searches.")
    var noSearch = false

    @Option(name: .customLong("search-peer"), help: ArgumentHelp(
        "A search neighbour to connect to besides those the DHT names; repeatable.", valueName: "HOST:PORT"))
    var searchPeers: [String] = []

    @Option(name: .customLong("search-prefix-bits"), help: ArgumentHelp(
        "Hits vouched for by more networks rank higher; a network is this many leading bits of an IPv4 address "
            + "(default 24; 32 counts every address, for tests on one loopback network).", valueName: "BITS"))
    var prefixBits = 24

    func validate() throws {
        guard (8...32).contains(self.prefixBits) else { throw ValidationError("--search-prefix-bits must be from 8 to 32") }
        guard self.harvestRate >= 1, self.harvestRate <= 1000 else { throw ValidationError("--harvest-rate must be from 1 to 1000") }
        guard (1...64).contains(self.harvestFetches) else { throw ValidationError("--harvest-fetches must be from 1 to 64") }
        for p in self.searchPeers where PeerNode.splitHostPort(p) == nil {
            throw ValidationError("--search-peer \(p): expected HOST:PORT")
        }
    }

    @Flag(help: "Fill the index from the DHT: info-hashes other nodes announce or ask about, and BEP 51 samples (each node only as often as it asks); their metadata is fetched and checked. Off unless given.")
    var harvest = false

    @Option(name: .customLong("harvest-rate"), help: ArgumentHelp("At most this many harvesting DHT queries a second.", valueName: "N"))
    var harvestRate = 20.0

    @Option(name: .customLong("harvest-fetches"), help: ArgumentHelp("At most this many metadata fetches at once (one per address).", valueName: "N"))
    var harvestFetches = 4

    func apply(to config: inout Session.Configuration) {
        config.harvest = self.harvest
        config.harvestQueriesPerSecond = self.harvestRate
        config.harvestConcurrentFetches = self.harvestFetches
        config.search = !self.noSearch
        config.searchNeighbours = self.searchPeers
        config.searchOverlay.prefix = NetworkPrefix(v4Bits: self.prefixBits)
    }
}

struct IndexCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "index",
        abstract: "What the node's keyword index holds: rows, their sources, and its size on disk.",
        discussion: """
            Examples:
              peer index
              peer index --json | jq .rows
            """)

    @OptionGroup var daemon: DaemonOptions

    func run() async throws {
        let stats: SearchIndex.Statistics
        let bytes: [UInt8]
        do {
            do {
                let endpoint = try Daemon.endpoint(self.daemon.state)
                (stats, bytes) = try await DaemonClient.with(endpoint) { client in
                    let answer = try await client.indexStatistics()
                    return (try answer.decode(), answer.bytes)
                }
            } catch let e as DaemonClientError where SearchCommand.noDaemon(e) {
                let path = stateDirectory(self.daemon.state) + "/index.sqlite"
                guard let index = try SearchIndex.openReadOnly(path: path) else {
                    throw CommandFailure("no daemon runs and there is no index at \(path) yet: start one with `peer serve`")
                }
                stats = try index.statistics()
                bytes = Array(try APIJSON.encoder.encode(stats))
            }
        } catch let failure {
            Terminal.error("index", String(describing: failure))
            throw ExitCode(1)
        }
        if self.daemon.json { return print(JSONText.pretty(bytes)) }
        print("rows:         \(stats.rows) (at most \(stats.maxRows))")
        print("verified:     \(stats.verified)")
        print("pinned:       \(stats.pinned) (the daemon's own torrents, never evicted)")
        let sources = stats.sources.filter { $0.value > 0 }.sorted { $0.value > $1.value }
        print("sources:      " + (sources.isEmpty ? "none" : sources.map { "\($0.key) \($0.value)" }.joined(separator: ", ")))
        if let b = stats.bytesOnDisk {
            print("on disk:      \(ByteCount.format(b))" + (stats.rows > 0 ? " (\(b / Int64(stats.rows)) bytes a torrent)" : ""))
        }
        if let n = stats.neighbours { print("neighbours:   \(n) search neighbours connected") }
        if let h = stats.harvest {
            print("harvest:      \(h.fetched) fetched, \(h.failed) failed, \(h.fetching) fetching, \(h.waiting) waiting; "
                + "\(h.samplesAsked) samples asked, \(h.lookups) lookups")
            print("              at most \(ByteCount.fixed(h.maxQueriesPerSecond, 0)) queries in a second (budget "
                + "\(ByteCount.fixed(h.queriesPerSecond, 0))), \(h.maxConcurrentFetches) fetches at once (budget "
                + "\(h.concurrentFetches)), \(h.maxFetchesPerAddress) per address")
        }
    }
}
