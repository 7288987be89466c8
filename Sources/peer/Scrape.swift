import ArgumentParser
import Metainfo
import PeerBase
import PeerKit

struct Scrape: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Ask a torrent's trackers how many seeders, completed downloads and leechers they count.",
        discussion: """
            Every tracker of the torrent (all tiers) and every --tracker is asked at once: HTTP and HTTPS \
            trackers at their scrape URL (BEP 48: the last path component "announce…" becomes "scrape…"), UDP \
            trackers with the scrape action (BEP 15). The torrent is asked about by the hash Peer announces: \
            its v1 info-hash, or for a v2-only torrent the first 20 bytes of its v2 hash.

            Prints one line per tracker: the counts on standard output, or why it failed on standard error. \
            Exits 0 when at least one tracker answered, 1 otherwise. --json prints one document (docs/json.md).

            HTTPS trackers are checked against the system's CA bundle, or the PEM file named by the \
            SSL_CERT_FILE environment variable instead.

            Examples:
              peer scrape album.torrent
              peer scrape 'magnet:?xt=urn:btih:…&tr=udp%3A%2F%2Ftracker.example%3A6969' --json
              peer scrape album.torrent --tracker http://127.0.0.30:6969/announce --bind 127.0.0.5
            """)

    @Argument(help: "A .torrent file or a magnet link.")
    var source: String

    @Option(name: .customLong("tracker"), help: "Also ask this tracker (announce URL); repeatable.")
    var trackers: [String] = []

    @Option(help: "Local address to send the requests from.")
    var bind: String?

    @Option(help: "Seconds to wait for each tracker.")
    var timeout: Int = 15

    @Flag(help: "Print JSON instead of text.")
    var json = false

    func validate() throws {
        guard (1...600).contains(self.timeout) else { throw ValidationError("--timeout must be 1 to 600 seconds") }
    }

    func run() async throws {
        let hashes: InfoHashes
        var urls: [String]
        let name: String?
        if self.source.lowercased().hasPrefix("magnet:") {
            let magnet: MagnetLink
            do { magnet = try MagnetLink(parsing: self.source) } catch {
                Terminal.error("scrape", error.description)
                throw ExitCode(1)
            }
            (hashes, urls, name) = (magnet.infoHashes, magnet.trackers, magnet.displayName)
        } else {
            let t = try loadTorrent(self.source, command: "scrape")
            (hashes, urls, name) = (t.infoHashes, t.trackers.flatMap { $0 }, t.name)
        }
        for url in self.trackers where !urls.contains(url) { urls.append(url) }
        var seen = Set<String>()
        urls = urls.filter { !$0.isEmpty && seen.insert($0).inserted }
        guard !urls.isEmpty else {
            Terminal.error("scrape", "\(self.source) names no tracker; give one with --tracker URL")
            throw ExitCode(1)
        }
        let hash = TrackerScrape.trackerHash(hashes)
        let entries = await TrackerScrape.scrape(urls: urls, infoHash: hash, bindHost: self.bind,
            timeout: .seconds(self.timeout))
        let report = ScrapeReport(id: hashes.id, infoHash: hash, name: name, trackers: entries)
        if self.json {
            print(try Terminal.json(report))
        } else {
            for e in entries {
                if e.ok {
                    let note = e.listed == false ? " (the tracker does not list this torrent)" : ""
                    print("\(e.tracker): seeders \(e.seeders ?? 0), completed \(e.completed ?? 0), "
                        + "leechers \(e.leechers ?? 0)\(note)")
                } else {
                    Terminal.stderr("peer scrape: \(e.tracker): \(e.error ?? "failed")\n")
                }
            }
        }
        if report.answered == 0 { throw ExitCode(1) }
    }
}
