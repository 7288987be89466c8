// peer-bench: benchmarks that are not tests. `scripts/bench-search.sh` runs this.
//
// The keyword index (Search.SearchIndex) at scale, one row per index size:
//   peer-bench search [--rows 1000000,10000000] [--vocabulary 200000] [--batch 5000] [--queries 300] [--seed 1]
//                     [--dir /tmp/peer-bench-search]
//
// Synthetic torrent names of 3 to 9 words drawn from a Zipf(1.1) vocabulary (made-up words), some with a year and
// a quality tag, each with up to three file paths. Inserts in batches (one transaction each), folds the WAL in,
// then runs `--queries` queries of each kind: rare, medium and common words, one to three of them, taken from
// names that were inserted where one has enough words of the kind. Prints a
// markdown table: insert rate, bytes on disk per torrent, and query latency percentiles for the top 50.
import Foundation
import PeerBase
import Search

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("peer-bench: \(message)\n".utf8))
    exit(2)
}

func parse<T: LosslessStringConvertible>(_ flag: String, _ value: String) -> T {
    guard let v = T(value) else { fail("\(flag): not a number: \(value)") }
    return v
}

var args = Array(CommandLine.arguments.dropFirst())
guard args.first == "search" else { fail("usage: peer-bench search [--rows N,N] [options] (see the top of Sources/peer-bench/main.swift)") }
args.removeFirst()
var rowCounts = [1_000_000]
var vocabularySize = 200_000
var batch = 5_000
var queriesPerKind = 300
var seed: UInt64 = 1
var dir = NSTemporaryDirectory() + "peer-bench-search"
while let flag = args.first {
    args.removeFirst()
    guard let value = args.first else { fail("\(flag) needs a value") }
    args.removeFirst()
    switch flag {
    case "--rows": rowCounts = value.split(separator: ",").map { parse(flag, String($0)) }
    case "--vocabulary": vocabularySize = parse(flag, value)
    case "--batch": batch = parse(flag, value)
    case "--queries": queriesPerKind = parse(flag, value)
    case "--seed": seed = parse(flag, value)
    case "--dir": dir = value
    default: fail("unknown option \(flag)")
    }
}

/// Made-up words: pronounceable, distinct, 3 to 10 letters.
func makeVocabulary(_ count: Int, rng: inout SeededGenerator) -> [String] {
    let onsets = ["b", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "st", "tr", "sh"]
    let vowels = ["a", "e", "i", "o", "u", "ai", "ou", "ea"]
    var seen = Set<String>()
    var out: [String] = []
    while out.count < count {
        var w = ""
        for _ in 0..<Int.random(in: 1...4, using: &rng) {
            w += onsets.randomElement(using: &rng)! + vowels.randomElement(using: &rng)!
        }
        if Bool.random(using: &rng) { w += ["n", "r", "s", "x", "th"].randomElement(using: &rng)! }
        if w.count >= 3, seen.insert(w).inserted { out.append(w) }
    }
    return out
}

/// Draws ranks 0..<n with probability proportional to 1/(rank+1)^s.
struct Zipf {
    let cdf: [Double]
    init(n: Int, s: Double) {
        var total = 0.0
        var cdf = [Double](repeating: 0, count: n)
        for i in 0..<n {
            total += 1 / pow(Double(i + 1), s)
            cdf[i] = total
        }
        self.cdf = cdf.map { $0 / total }
    }
    func draw(_ rng: inout SeededGenerator) -> Int {
        let u = Double.random(in: 0..<1, using: &rng)
        var lo = 0
        var hi = self.cdf.count - 1
        while lo < hi {
            let mid = (lo + hi) / 2
            if self.cdf[mid] < u { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return 0 }
    return sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1)]
}

func ms(_ d: Duration) -> Double { d.milliseconds }

var rng = SeededGenerator(seed: seed)
let vocabulary = makeVocabulary(vocabularySize, rng: &rng)
let zipf = Zipf(n: vocabulary.count, s: 1.1)
let tags = ["1080p", "720p", "2160p", "x264", "x265", "FLAC", "MP3", "WEB", "BluRay", "PROPER"]
let extensions = ["mkv", "mp4", "flac", "mp3", "pdf", "epub", "iso", "zip", "txt", "srt"]

print("| rows | insert rows/s | bytes/torrent | query kind | queries | p50 ms | p95 ms | p99 ms | max ms | mean hits |")
print("|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|")
for rows in rowCounts {
    try? FileManager.default.removeItem(atPath: dir)
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let path = dir + "/index.sqlite"
    var config = SearchIndex.Configuration()
    config.maxRows = rows + 1
    let index = try SearchIndex(path: path, configuration: config)
    var nameRNG = SeededGenerator(seed: seed &+ UInt64(rows))
    let now = Date()
    let clock = ContinuousClock()
    var inserting = Duration.zero
    var written = 0
    // Word ranks of every 100th name: queries are drawn from names that exist, so most of them have hits.
    var sampled: [[Int]] = []
    while written < rows {
        let n = min(batch, rows - written)
        var entries: [IndexEntry] = []
        entries.reserveCapacity(n)
        for i in written..<(written + n) {
            let ranks = (0..<Int.random(in: 3...9, using: &nameRNG)).map { _ in zipf.draw(&nameRNG) }
            if i % 100 == 0 { sampled.append(ranks) }
            var words = ranks.map { vocabulary[$0] }
            if Int.random(in: 0..<3, using: &nameRNG) == 0 { words.append(String(Int.random(in: 1950...2026, using: &nameRNG))) }
            if Bool.random(using: &nameRNG) { words.append(tags.randomElement(using: &nameRNG)!) }
            let name = words.joined(separator: ".")
            let fileCount = Int.random(in: 1...3, using: &nameRNG)
            let paths = fileCount == 1 ? [] : (0..<fileCount).map { f in
                "\(vocabulary[zipf.draw(&nameRNG)])_\(f + 1).\(extensions.randomElement(using: &nameRNG)!)"
            }
            var hash = [UInt8](repeating: 0, count: 20)
            withUnsafeBytes(of: UInt64(i).bigEndian) { hash.replaceSubrange(0..<8, with: $0) }
            withUnsafeBytes(of: nameRNG.next()) { hash.replaceSubrange(8..<16, with: $0) }
            entries.append(IndexEntry(
                infoHash: hash, name: name, size: Int64.random(in: 1 << 20...1 << 34, using: &nameRNG),
                fileCount: fileCount, paths: paths, source: .dht,
                seeders: Int.random(in: 0...200, using: &nameRNG), verified: true,
                seenAt: now.addingTimeInterval(-Double.random(in: 0...(90 * 86_400), using: &nameRNG))))
        }
        let start = clock.now
        try index.write(entries)
        inserting += clock.now - start
        written += n
        if written % (batch * 100) == 0 || written == rows {
            FileHandle.standardError.write(Data("  \(written) rows, \(Int(Double(written) / (ms(inserting) / 1000))) rows/s\n".utf8))
        }
    }
    try index.checkpoint()
    let stats = try index.statistics()
    let perTorrent = Double(stats.bytesOnDisk ?? 0) / Double(max(1, stats.rows))
    let insertRate = Double(rows) / (ms(inserting) / 1000)

    // Query kinds by word rank: common (the top 20 words), medium (ranks 200 to 2 000), rare (20 000 and beyond).
    let kinds: [(String, ClosedRange<Int>)] = [
        ("common", 0...19), ("medium", 200...1_999), ("rare", 20_000...(vocabulary.count - 1)),
    ]
    var queryRNG = SeededGenerator(seed: seed &* 7 &+ 3)
    var all: [Double] = []
    var lines: [String] = []
    for (kind, ranks) in kinds {
        var latencies: [Double] = []
        var hits = 0
        for q in 0..<queriesPerKind {
            // Words of the kind from one existing name when one has enough of them, else random words of the kind.
            let count = 1 + q % 3
            var words = (0..<count).map { _ in vocabulary[Int.random(in: ranks, using: &queryRNG)] }
            for _ in 0..<200 {
                let inKind = Set(sampled.randomElement(using: &queryRNG)!.filter { ranks.contains($0) })
                if inKind.count >= count {
                    words = inKind.shuffled(using: &queryRNG).prefix(count).map { vocabulary[$0] }
                    break
                }
            }
            let query = try SearchQuery(words.joined(separator: " "))
            let start = clock.now
            hits += try index.search(query, limit: 50, now: now).count
            latencies.append(ms(clock.now - start))
        }
        latencies.sort()
        all += latencies
        lines.append(String(format: "| %d | %.0f | %.0f | %@ | %d | %.2f | %.2f | %.2f | %.2f | %.1f |", rows, insertRate,
            perTorrent, kind, latencies.count, percentile(latencies, 0.5), percentile(latencies, 0.95),
            percentile(latencies, 0.99), latencies.last ?? 0, Double(hits) / Double(latencies.count)))
    }
    all.sort()
    lines.append(String(format: "| %d | %.0f | %.0f | **all** | %d | %.2f | %.2f | %.2f | %.2f | |", rows, insertRate,
        perTorrent, all.count, percentile(all, 0.5), percentile(all, 0.95), percentile(all, 0.99), all.last ?? 0))
    lines.forEach { print($0) }
}
