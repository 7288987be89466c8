import ArgumentParser
import Foundation
import Metainfo
import PeerBase
import PeerKit
import Synchronization

struct Create: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make a .torrent from a file or folder.",
        discussion: """
            The torrent is hybrid by default: v1 clients and v2 (BEP 52) clients both accept it, with the \
            same files. Hashing runs on every core and reads each byte once, streaming (memory stays small \
            whatever the size). Files are taken in name order; symbolic links are skipped unless \
            --follow-symlinks is given.

            Prints the info-hash(es) and the magnet link. Each --tracker starts a new tier; put several \
            URLs in one tier by separating them with commas.

            Examples:
              peer create ~/Music/album
              peer create big.iso --v1 --piece-length 4M -o big.torrent --tracker http://t.example/announce
              peer create site/ --exclude '*.tmp' --exclude .git --private --comment 'build 42'
            """)

    @Argument(help: "The file or folder to share.", completion: .file())
    var path: String

    @Option(name: .shortAndLong, help: "Where to write the torrent (default: NAME.torrent here).")
    var output: String?

    @Flag(help: "Which hashes to include: v1 (SHA-1 pieces), v2 (BEP 52 Merkle trees) or both.")
    var version: VersionFlag = .hybrid

    @Option(help: "Piece length in bytes, a power of two of at least 16 KiB (suffixes K, M: 256K, 4M).")
    var pieceLength: ByteSize?

    @Option(name: .customLong("tracker"), help: "Tracker announce URL (repeat for more tiers; commas share a tier).")
    var trackers: [String] = []

    @Option(name: .customLong("web-seed"), help: "Web seed URL (BEP 19); repeatable.")
    var webSeeds: [String] = []

    @Flag(help: "Mark the torrent private (BEP 27): peers only from its trackers, no DHT, PEX or LSD.")
    var `private` = false

    @Option(help: "A comment stored in the torrent.")
    var comment: String?

    @Option(help: "The torrent's name (default: the file's or folder's name).")
    var name: String?

    @Option(help: "A source tag stored in the info dictionary (changes the info-hash; private trackers use it).")
    var source: String?

    @Flag(help: "Leave out the creation date, so that the same files always give the same .torrent.")
    var noDate = false

    @Option(name: .customLong("exclude"), help: "Leave out entries whose name or relative path matches this glob.")
    var excludes: [String] = []

    @Flag(help: "Follow symbolic links to files and folders.")
    var followSymlinks = false

    @Flag(name: .shortAndLong, help: "Overwrite the output file if it exists.")
    var force = false

    @Option(help: "Hashing threads (default: one per core).")
    var threads: Int = 0

    @Flag(help: "Print the result as JSON (the same shape as `peer info --json`, plus \"torrent_file\").")
    var json = false

    @Flag(name: .shortAndLong, help: "No progress bar.")
    var quiet = false

    enum VersionFlag: String, EnumerableFlag {
        case v1, v2, hybrid
        static func help(for value: Self) -> ArgumentHelp? {
            switch value {
            case .v1: "v1 only (SHA-1), for the oldest clients."
            case .v2: "v2 only (BEP 52); v1-only clients cannot use it."
            case .hybrid: "Both v1 and v2 (the default)."
            }
        }
    }

    func validate() throws {
        if let pl = self.pieceLength?.bytes {
            guard TorrentCreator.pieceLengthRange.contains(pl), pl & (pl - 1) == 0 else {
                throw ValidationError("--piece-length must be a power of two from 16 KiB to 256 MiB, got \(pl)")
            }
        }
        if self.threads < 0 { throw ValidationError("--threads must be 0 (one per core) or more") }
    }

    func run() throws {
        var options = TorrentCreator.Options()
        options.version = TorrentVersion(rawValue: self.version.rawValue)!
        options.pieceLength = self.pieceLength?.bytes
        options.trackers = self.trackers.map { $0.split(separator: ",").map(String.init) }.filter { !$0.isEmpty }
        options.webSeeds = self.webSeeds
        options.isPrivate = self.private
        options.comment = self.comment
        options.name = self.name
        options.source = self.source
        options.createdBy = "Peer/\(PeerVersion.current)"
        options.creationDate = self.noDate ? nil : Int64(Date().timeIntervalSince1970)
        options.excludes = self.excludes
        options.followSymlinks = self.followSymlinks
        options.threads = self.threads

        let bar = (Terminal.stderrIsTTY && !self.quiet) ? ProgressBar(label: "hashing") : nil
        let started = ContinuousClock.now
        let result: TorrentCreator.Output
        do {
            result = try TorrentCreator(options: options).create(path: self.path) { done, total in
                bar?.update(done: done, total: total)
            }
        } catch {
            bar?.finish()
            Terminal.error("create", error.description)
            throw ExitCode(1)
        }
        bar?.finish()
        let elapsed = ContinuousClock.now - started
        for s in result.skipped where s.reason != "excluded" { Terminal.warn("skipped \(s.path): \(s.reason)") }
        for w in result.metainfo.warnings { Terminal.warn(w.message) }

        let t = result.metainfo
        let out = self.output ?? "\(t.name).torrent"
        if !self.force && FileManager.default.fileExists(atPath: out) {
            Terminal.error("create", "\(out) already exists (use --force to overwrite)")
            throw ExitCode(1)
        }
        do {
            try Data(result.bytes).write(to: URL(fileURLWithPath: out), options: .atomic)
        } catch {
            Terminal.error("create", "cannot write \(out): \(error.localizedDescription)")
            throw ExitCode(1)
        }

        if self.json {
            var summary = CreatedJSON(TorrentSummary(t))
            summary.torrentFile = out
            print(try Terminal.json(summary))
            return
        }
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let rate = seconds > 0 ? " in \(ByteCount.fixed(seconds, 2)) s (\(ByteCount.format(Int64(Double(t.totalLength) / seconds)))/s)" : ""
        let realFiles = t.files.filter { !$0.isPadding }.count
        print("created \(out)\(rate)")
        print("  name       \(t.name) (\(realFiles) file\(realFiles == 1 ? "" : "s"), \(ByteCount.format(t.totalLength)))")
        print("  version    \(t.version.rawValue), \(t.pieceCount) pieces of \(ByteCount.format(Int64(t.pieceLength)))")
        if let v1 = t.infoHashes.v1 { print("  v1 hash    \(v1.hex)") }
        if let v2 = t.infoHashes.v2 { print("  v2 hash    \(v2.hex)") }
        print("  magnet     \(MagnetLink(t))")
    }
}

/// `peer create --json`: the torrent's summary plus where it was written.
struct CreatedJSON: Encodable {
    var summary: TorrentSummary
    var torrentFile = ""
    init(_ s: TorrentSummary) { self.summary = s }

    enum CodingKeys: String, CodingKey { case torrentFile = "torrent_file" }

    func encode(to encoder: any Encoder) throws {
        try self.summary.encode(to: encoder)
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(self.torrentFile, forKey: .torrentFile)
    }
}

/// A byte count with an optional binary suffix: `16384`, `256K`, `4M`, `1MiB`.
struct ByteSize: ExpressibleByArgument {
    var bytes: Int

    init?(argument: String) {
        var text = argument.uppercased()
        for suffix in ["IB", "B"] where text.hasSuffix(suffix) && text.count > suffix.count {
            text.removeLast(suffix.count)
            break
        }
        var multiplier = 1
        if let last = text.last, let m = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30][String(last)] {
            multiplier = m
            text.removeLast()
        }
        guard let n = Int(text), n > 0, n <= Int.max / multiplier else { return nil }
        self.bytes = n * multiplier
    }
}

/// A one-line progress bar on stderr: percent, bytes, rate and ETA, redrawn at most ten times a second.
final class ProgressBar: Sendable {
    private let label: String
    private let started = ContinuousClock.now
    private let lastDraw = Mutex<ContinuousClock.Instant?>(nil)

    init(label: String) { self.label = label }

    func update(done: Int64, total: Int64) {
        let now = ContinuousClock.now
        let draw = self.lastDraw.withLock { last -> Bool in
            if let l = last, now - l < .milliseconds(100), done < total { return false }
            last = now
            return true
        }
        guard draw else { return }
        let elapsed = now - self.started
        let secs = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let rate = secs > 0 ? Double(done) / secs : 0
        let fraction = total > 0 ? Double(done) / Double(total) : 1
        let width = 30
        let filled = Int(fraction * Double(width))
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        let eta = rate > 0 ? Int(Double(total - done) / rate) : 0
        Terminal.stderr(
            "\r\(self.label) [\(bar)] \(Int(fraction * 100))% \(ByteCount.format(done))/\(ByteCount.format(total)) "
                + "\(ByteCount.format(Int64(rate)))/s ETA \(eta / 60):\(eta % 60 < 10 ? "0" : "")\(eta % 60) \u{1B}[K")
    }

    func finish() { Terminal.stderr("\r\u{1B}[K") }
}
