import Dispatch
import Foundation
import GRDB
import PeerBase
import Synchronization

/// What the DHT harvester has done, and its budget (`peer index`, `GET /api/index`).
public struct HarvestStatistics: Sendable, Codable, Equatable {
    /// Info-hashes waiting for their metadata, remembered as done, and being fetched.
    public var waiting: Int
    public var known: Int
    public var fetching: Int
    public var samplesAsked: Int
    public var lookups: Int
    public var fetchesStarted: Int
    public var fetched: Int
    public var failed: Int
    /// The most fetches at once, and at once from one address, since the start.
    public var maxConcurrentFetches: Int
    public var maxFetchesPerAddress: Int
    /// The most crawler queries within any one second, and all of them.
    public var maxQueriesPerSecond: Double
    public var queriesCharged: Double
    /// The budget.
    public var queriesPerSecond: Double
    public var concurrentFetches: Int
    public var fetchTimeoutSeconds: Double

    public init(
        waiting: Int, known: Int, fetching: Int, samplesAsked: Int, lookups: Int, fetchesStarted: Int, fetched: Int,
        failed: Int, maxConcurrentFetches: Int, maxFetchesPerAddress: Int, maxQueriesPerSecond: Double,
        queriesCharged: Double, queriesPerSecond: Double, concurrentFetches: Int, fetchTimeoutSeconds: Double
    ) {
        self.waiting = waiting
        self.known = known
        self.fetching = fetching
        self.samplesAsked = samplesAsked
        self.lookups = lookups
        self.fetchesStarted = fetchesStarted
        self.fetched = fetched
        self.failed = failed
        self.maxConcurrentFetches = maxConcurrentFetches
        self.maxFetchesPerAddress = maxFetchesPerAddress
        self.maxQueriesPerSecond = maxQueriesPerSecond
        self.queriesCharged = queriesCharged
        self.queriesPerSecond = queriesPerSecond
        self.concurrentFetches = concurrentFetches
        self.fetchTimeoutSeconds = fetchTimeoutSeconds
    }

    enum CodingKeys: String, CodingKey {
        case waiting, known, fetching, lookups, fetched, failed
        case samplesAsked = "samples_asked"
        case fetchesStarted = "fetches_started"
        case maxConcurrentFetches = "max_concurrent_fetches"
        case maxFetchesPerAddress = "max_fetches_per_address"
        case maxQueriesPerSecond = "max_queries_per_second"
        case queriesCharged = "queries_charged"
        case queriesPerSecond = "queries_per_second"
        case concurrentFetches = "concurrent_fetches"
        case fetchTimeoutSeconds = "fetch_timeout_seconds"
    }
}

/// The node's keyword index of torrents: SQLite FTS5 over each torrent's name and first file paths.
///
/// - **Words.** `unicode61` with diacritics folded: `Amélie.2001.1080p-[x]` is the words `amelie 2001 1080p x`.
///   Queries are cut the same way (`SearchQuery`), so FTS5 syntax in a query is only words.
/// - **Rank, bounded.** A query ranks at most `candidates` matches, the newest rows first: relevance
///   (`Relevance`: the name weighted above paths, the words in order) leads, seeders and freshness follow,
///   verified rows get a lift. A common word costs about what a rare one does, never a scan of the whole table
///   (magnetico ranked every match; FTS5's own bm25 reads each word's whole posting list for its IDF, 17 ms a
///   common word at 1 M rows, which is why it is not used).
/// - **Writes.** `add` queues rows and commits them in one transaction when `batchSize` are waiting or
///   `flushDelay` after the first: visible within a second. `write` commits at once.
/// - **Bounded.** Above `maxRows`, the unpinned rows seen longest ago go. The node's own and added torrents
///   are pinned.
/// - **Claims.** A row's name, size and paths come from its first source; a verified source (the info
///   dictionary itself) replaces an unverified claim, never the other way round.
public final class SearchIndex: Sendable {
    public struct Configuration: Sendable {
        public var maxRows = 2_000_000
        /// Matches ranked per query.
        public var candidates = 2_000
        public var batchSize = 500
        public var flushDelay = Duration.milliseconds(250)
        public init() {}
    }

    /// What `peer index` shows.
    public struct Statistics: Sendable, Codable, Equatable {
        public var rows: Int
        /// Rows per source name.
        public var sources: [String: Int]
        public var verified: Int
        public var pinned: Int
        /// The database and its write-ahead log on disk; nil in memory.
        public var bytesOnDisk: Int64?
        public var maxRows: Int
        /// Search neighbours connected (filled in by the node).
        public var neighbours: Int?
        /// The DHT harvester's figures, when it runs (filled in by the node).
        public var harvest: HarvestStatistics?

        enum CodingKeys: String, CodingKey {
            case rows, sources, verified, pinned, neighbours, harvest
            case bytesOnDisk = "bytes_on_disk"
            case maxRows = "max_rows"
        }
    }

    public let configuration: Configuration
    let database: any DatabaseWriter
    let path: String?
    private let pending = Mutex<(entries: [IndexEntry], scheduled: Bool)>(([], false))
    /// Rows in the table, kept by the writer (the only one that inserts or deletes).
    let rowCount = Atomic<Int>(0)

    /// Opens (or creates) the index at `path` (WAL; readers never wait on the writer); nil keeps it in memory.
    public init(path: String?, configuration: Configuration = Configuration()) throws {
        self.configuration = configuration
        self.path = path
        var c = GRDB.Configuration()
        c.busyMode = .timeout(5)
        c.prepareDatabase { db in
            // The index is a cache of what the network said: after a power cut it may lose its last commits
            // (WAL with synchronous NORMAL stays consistent), which costs one fsync less per batch. A larger page
            // cache keeps the info-hash index's random inserts off the disk at millions of rows.
            try db.execute(sql: "PRAGMA synchronous = NORMAL; PRAGMA cache_size = -32768")
        }
        if let path {
            self.database = try DatabasePool(path: path, configuration: c)
        } else {
            self.database = try DatabaseQueue(configuration: c)
        }
        try Self.migrator.migrate(self.database)
        let rows = try self.database.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM item") ?? 0 }
        self.rowCount.store(rows, ordering: .relaxed)
    }

    /// Opens an index read-only (the CLI's `peer search` without a daemon); nil when there is none.
    public static func openReadOnly(path: String) throws -> SearchIndex? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        return try SearchIndex(path: path)
    }

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            // Times are whole seconds since 1970. `ih` is the v1 hash (20 bytes) or a v2-only torrent's (32).
            try db.execute(
                sql: """
                    CREATE TABLE item(
                        id INTEGER PRIMARY KEY,
                        ih BLOB NOT NULL UNIQUE,
                        name TEXT NOT NULL,
                        size INTEGER NOT NULL,
                        files INTEGER NOT NULL,
                        paths TEXT NOT NULL,
                        source INTEGER NOT NULL,
                        first_seen INTEGER NOT NULL,
                        last_seen INTEGER NOT NULL,
                        seeders INTEGER,
                        leechers INTEGER,
                        verified INTEGER NOT NULL,
                        pinned INTEGER NOT NULL);
                    CREATE VIRTUAL TABLE item_fts USING fts5(
                        name, paths, content='item', content_rowid='id',
                        tokenize="unicode61 remove_diacritics 2");
                    CREATE TRIGGER item_ai AFTER INSERT ON item BEGIN
                        INSERT INTO item_fts(rowid, name, paths) VALUES (new.id, new.name, new.paths);
                    END;
                    CREATE TRIGGER item_ad AFTER DELETE ON item BEGIN
                        INSERT INTO item_fts(item_fts, rowid, name, paths) VALUES ('delete', old.id, old.name, old.paths);
                    END;
                    CREATE TRIGGER item_au AFTER UPDATE OF name, paths ON item
                    WHEN old.name IS NOT new.name OR old.paths IS NOT new.paths BEGIN
                        INSERT INTO item_fts(item_fts, rowid, name, paths) VALUES ('delete', old.id, old.name, old.paths);
                        INSERT INTO item_fts(rowid, name, paths) VALUES (new.id, new.name, new.paths);
                    END;
                    """)
        }
        return m
    }

    // MARK: writing

    /// Queues rows; they are committed within `flushDelay` (or at once when `batchSize` wait).
    public func add(_ entries: [IndexEntry]) {
        guard !entries.isEmpty else { return }
        let (full, schedule) = self.pending.withLock { p -> (Bool, Bool) in
            p.entries.append(contentsOf: entries)
            let schedule = !p.scheduled
            p.scheduled = true
            return (p.entries.count >= self.configuration.batchSize, schedule)
        }
        if full {
            try? self.flush()
        } else if schedule {
            // On a dispatch queue, not a task: a busy cooperative pool must not hold back the commit.
            let delay = self.configuration.flushDelay
            DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(Int(delay.seconds * 1e9))) {
                [weak self] in try? self?.flush()
            }
        }
    }

    /// Commits what `add` queued.
    public func flush() throws {
        let batch = self.pending.withLock { p -> [IndexEntry] in
            defer { p.entries = []; p.scheduled = false }
            return p.entries
        }
        try self.write(batch)
    }

    /// Commits rows at once, in one transaction, then evicts above `maxRows`.
    public func write(_ entries: [IndexEntry]) throws {
        guard !entries.isEmpty else { return }
        let maxRows = self.configuration.maxRows
        let rows = try self.database.write { db -> Int in
            var count = self.rowCount.load(ordering: .relaxed)
            let upsert = try db.cachedStatement(
                sql: """
                    INSERT INTO item(ih, name, size, files, paths, source, first_seen, last_seen, seeders, leechers,
                                     verified, pinned)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT(ih) DO UPDATE SET
                        name = CASE WHEN excluded.verified > item.verified THEN excluded.name ELSE item.name END,
                        size = CASE WHEN excluded.verified > item.verified THEN excluded.size ELSE item.size END,
                        files = CASE WHEN excluded.verified > item.verified THEN excluded.files ELSE item.files END,
                        paths = CASE WHEN excluded.verified > item.verified THEN excluded.paths ELSE item.paths END,
                        source = item.source | excluded.source,
                        last_seen = max(item.last_seen, excluded.last_seen),
                        seeders = coalesce(excluded.seeders, item.seeders),
                        leechers = coalesce(excluded.leechers, item.leechers),
                        verified = max(item.verified, excluded.verified),
                        pinned = max(item.pinned, excluded.pinned)
                    """)
            for raw in entries {
                let e = raw.normalized
                let seen = Int64(e.seenAt.timeIntervalSince1970)
                let before = db.lastInsertedRowID
                try upsert.execute(arguments: [
                    Data(e.infoHash), e.name, e.size, e.fileCount, e.paths.joined(separator: "\n"), e.source.rawValue,
                    seen, seen, e.seeders, e.leechers, e.verified, e.pinned,
                ])
                // An upsert that updates leaves the last inserted rowid alone; one that inserts sets it.
                if db.lastInsertedRowID != before { count += 1 }
            }
            if count > maxRows {
                // Evict down to 1% under the cap, so eviction runs once per many batches, not on each. It sorts
                // the table (no index on last_seen: one would cost every insert, eviction is rare).
                let excess = count - maxRows + maxRows / 100
                try db.execute(
                    sql: """
                        DELETE FROM item WHERE id IN
                            (SELECT id FROM item WHERE pinned = 0 ORDER BY last_seen LIMIT ?)
                        """, arguments: [excess])
                count -= db.changesCount
            }
            return count
        }
        self.rowCount.store(rows, ordering: .relaxed)
    }

    /// Unpins a torrent (its user removed it); it stays findable until evicted.
    public func unpin(infoHash: [UInt8]) throws {
        try self.database.write { db in
            try db.execute(sql: "UPDATE item SET pinned = 0 WHERE ih = ?", arguments: [Data(infoHash)])
        }
    }

    /// Marks a claimed row as checked (its info dictionary matched) or deletes a claim that failed.
    public func settle(infoHash: [UInt8], verified: Bool) throws {
        let deleted = try self.database.write { db -> Int in
            if verified {
                try db.execute(sql: "UPDATE item SET verified = 1 WHERE ih = ?", arguments: [Data(infoHash)])
                return 0
            }
            try db.execute(sql: "DELETE FROM item WHERE ih = ? AND verified = 0", arguments: [Data(infoHash)])
            return db.changesCount
        }
        if deleted > 0 { self.rowCount.subtract(deleted, ordering: .relaxed) }
    }

    // MARK: reading

    /// The best `limit` matches for `query`, best first, from the newest `candidates` rows that match; with
    /// `pinnedOnly`, of the node's own torrents only (what it answers neighbours with).
    public func search(_ query: SearchQuery, limit: Int = 50, pinnedOnly: Bool = false, now: Date = Date()) throws
        -> [SearchHit]
    {
        let limit = max(1, min(limit, 500))
        let candidates = max(limit, self.configuration.candidates)
        let relevance = Relevance(query.terms)
        let nowSeconds = now.timeIntervalSince1970
        return try self.database.read { db in
            // Scored while the cursor walks the candidates: no row is copied but the winners'.
            var scored: [(id: Int64, score: Double)] = []
            scored.reserveCapacity(candidates)
            let cursor = try Row.fetchCursor(
                db,
                sql: """
                    SELECT item.id, item.name, item.paths, item.seeders, item.last_seen, item.verified
                    FROM item_fts JOIN item ON item.id = item_fts.rowid
                    WHERE item_fts MATCH ?\(pinnedOnly ? " AND item.pinned = 1" : "")
                    ORDER BY item_fts.rowid DESC LIMIT ?
                    """, arguments: [query.match, candidates])
            while let row = try cursor.next() {
                let fit = try row.withUnsafeData(atIndex: 1) { name in
                    try row.withUnsafeData(atIndex: 2) { paths in relevance.score(name: name, paths: paths) }
                }
                let seeders = Double(max(0, (row[3] as Int?) ?? 0))
                let health = min(1, log1p(seeders) / log1p(1000))
                let ageDays = max(0, nowSeconds - Double(row[4] as Int64)) / 86_400
                let freshness = exp(-ageDays / 30)
                let lift = (row[5] as Bool) ? 0.1 : 0
                scored.append((row[0], 0.6 * fit + 0.25 * health + 0.15 * freshness + lift))
            }
            scored.sort { $0.score != $1.score ? $0.score > $1.score : $0.id > $1.id }
            scored = Array(scored.prefix(limit))
            guard !scored.isEmpty else { return [] }
            let score = Dictionary(uniqueKeysWithValues: scored.map { ($0.id, $0.score) })
            var byID: [Int64: SearchHit] = [:]
            let ids = scored.map { String($0.id) }.joined(separator: ",")
            for row in try Row.fetchAll(db, sql: "SELECT * FROM item WHERE id IN (\(ids))") {
                let id: Int64 = row["id"]
                byID[id] = Self.hit(row, score: score[id] ?? 0)
            }
            return scored.compactMap { byID[$0.id] }
        }
    }

    /// The row for one torrent, if indexed.
    public func entry(infoHash: [UInt8]) throws -> SearchHit? {
        try self.database.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM item WHERE ih = ?", arguments: [Data(infoHash)])
                .map { Self.hit($0, score: 0) }
        }
    }

    /// The newest rows (what an empty Torznab query shows).
    public func newest(limit: Int) throws -> [SearchHit] {
        try self.database.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM item ORDER BY id DESC LIMIT ?", arguments: [max(1, min(limit, 500))])
                .map { Self.hit($0, score: 0) }
        }
    }

    public func statistics() throws -> Statistics {
        let (rows, bits, verified, pinned) = try self.database.read { db in
            let rows = try Int.fetchOne(db, sql: "SELECT count(*) FROM item") ?? 0
            var bits: [String: Int] = [:]
            for (source, name) in IndexSource.names {
                bits[name] = try Int.fetchOne(
                    db, sql: "SELECT count(*) FROM item WHERE source & ? != 0", arguments: [source.rawValue]) ?? 0
            }
            let verified = try Int.fetchOne(db, sql: "SELECT count(*) FROM item WHERE verified = 1") ?? 0
            let pinned = try Int.fetchOne(db, sql: "SELECT count(*) FROM item WHERE pinned = 1") ?? 0
            return (rows, bits, verified, pinned)
        }
        var bytes: Int64?
        if let path {
            bytes = ["", "-wal"].reduce(Int64(0)) { total, suffix in
                let size = (try? FileManager.default.attributesOfItem(atPath: path + suffix)[.size] as? NSNumber)
                return total + (size?.int64Value ?? 0)
            }
        }
        return Statistics(rows: rows, sources: bits, verified: verified, pinned: pinned, bytesOnDisk: bytes,
            maxRows: self.configuration.maxRows, neighbours: nil, harvest: nil)
    }

    /// Folds the write-ahead log into the database (the benchmark's bytes on disk; a clean stop).
    public func checkpoint() throws {
        guard let pool = self.database as? DatabasePool else { return }
        try pool.writeWithoutTransaction { db in _ = try db.checkpoint(.truncate) }
    }

    static func hit(_ row: Row, score: Double) -> SearchHit {
        let paths = (row["paths"] as String).split(separator: "\n").map(String.init)
        return SearchHit(
            infoHash: Hex.encode([UInt8](row["ih"] as Data)), name: row["name"], size: row["size"],
            files: row["files"], paths: paths, seeders: row["seeders"], leechers: row["leechers"],
            sources: IndexSource(rawValue: row["source"]).names, verified: row["verified"],
            firstSeen: Date(timeIntervalSince1970: TimeInterval(row["first_seen"] as Int64)),
            lastSeen: Date(timeIntervalSince1970: TimeInterval(row["last_seen"] as Int64)), score: score)
    }
}
