import Foundation
import GRDB

#if canImport(Glibc)
import Glibc
#endif

/// A torrent as the session keeps it between runs: one row of the `torrent` table.
struct TorrentRecord: Codable, FetchableRecord, PersistableRecord, Sendable {
    static let databaseTableName = "torrent"

    /// The v1 info-hash in hex if the torrent has one, else the full v2 hash: fixed when it is added.
    var id: String
    /// The other hash of a hybrid torrent (v2, 64 hex), accepted in its place.
    var alias: String?
    var name: String
    /// The magnet link it was added from, while (and after) its metadata is fetched.
    var magnet: String?
    /// The .torrent bytes; nil until a magnet link's metadata arrives.
    var metainfo: Data?
    var savePath: String
    var paused: Bool
    var sequential: Bool
    /// File priorities other than normal, by file index: "skip" or "high" (JSON).
    var priorities: String?
    var maxDownloadRate: Int64?
    var maxUploadRate: Int64?
    var ratioLimit: Double?
    var seedTimeLimit: Int64?
    var queuePosition: Int
    /// The tracker tiers when edited through the API (JSON `[[String]]`); nil: the torrent's own.
    var trackers: String?
    var addedAt: Date
    var completedAt: Date?
    /// Bytes over every run, saved now and then.
    var downloaded: Int64
    var uploaded: Int64
    /// Seconds spent seeding over every run.
    var seedingSeconds: Int64
    /// Resume data (`ResumeData.encoded`), written at most every few seconds while pieces are verified.
    var resume: Data?
    /// Its category's name (`category` table).
    var category: String? = nil
    /// Its tags (JSON array of strings), in the order given.
    var tags: String? = nil
    /// Started whatever the download queue says (qBittorrent's "force start").
    var forceStart = false
    /// The first and last piece of each file are fetched before the others (for previews).
    var firstLastPieces = false

    enum CodingKeys: String, CodingKey {
        case id, alias, name, magnet, metainfo, paused, sequential, priorities, trackers, downloaded, uploaded, resume
        case category, tags
        case forceStart = "force_start"
        case firstLastPieces = "first_last_pieces"
        case savePath = "save_path"
        case maxDownloadRate = "max_download_rate"
        case maxUploadRate = "max_upload_rate"
        case ratioLimit = "ratio_limit"
        case seedTimeLimit = "seed_time_limit"
        case queuePosition = "queue_position"
        case addedAt = "added_at"
        case completedAt = "completed_at"
        case seedingSeconds = "seeding_seconds"
    }
}

/// A category: a name torrents are filed under, and where they are saved by default (`category` table).
struct CategoryRecord: Codable, FetchableRecord, PersistableRecord, Sendable {
    static let databaseTableName = "category"
    var name: String
    /// nil: the session's download folder.
    var savePath: String?

    enum CodingKeys: String, CodingKey {
        case name
        case savePath = "save_path"
    }
}

/// The session's SQLite database (`STATE/peer.sqlite`, WAL): torrents with their resume data, settings, and
/// the DHT's known nodes. Writes are small and synchronous; SQLite's WAL keeps every committed one across a
/// crash or `kill -9` of the process.
final class SessionStore: Sendable {
    let database: DatabasePool

    init(path: String) throws {
        self.database = try Self.openDatabase(path, Self.migrator)
    }

    /// A database of the daemon's (this one, the index node's claims): mode 0600, WAL, waiting up to 5 s on a
    /// lock, migrated.
    static func openDatabase(_ path: String, _ migrator: DatabaseMigrator) throws -> DatabasePool {
        try Self.restrictMode(path)
        var configuration = Configuration()
        configuration.busyMode = .timeout(5)
        let database = try DatabasePool(path: path, configuration: configuration)
        try migrator.migrate(database)
        return database
    }

    /// Makes the database readable by its user only (0600, like `api-token`): it holds every torrent's
    /// save path, trackers (their URLs may carry passkeys) and resume data. Created empty with that mode
    /// before SQLite opens it, since SQLite gives the -wal and -shm files the mode of the database; an
    /// existing database and its companions from an older run are changed to it.
    static func restrictMode(_ path: String) throws {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        defer { close(fd) }
        fchmod(fd, 0o600)
        for companion in ["-wal", "-shm"] { chmod(path + companion, 0o600) }
    }

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            try db.create(table: "torrent") { t in
                t.primaryKey("id", .text)
                t.column("alias", .text).unique()
                t.column("name", .text).notNull()
                t.column("magnet", .text)
                t.column("metainfo", .blob)
                t.column("save_path", .text).notNull()
                t.column("paused", .boolean).notNull().defaults(to: false)
                t.column("sequential", .boolean).notNull().defaults(to: false)
                t.column("priorities", .text)
                t.column("max_download_rate", .integer)
                t.column("max_upload_rate", .integer)
                t.column("ratio_limit", .double)
                t.column("seed_time_limit", .integer)
                t.column("queue_position", .integer).notNull()
                t.column("trackers", .text)
                t.column("added_at", .datetime).notNull()
                t.column("completed_at", .datetime)
                t.column("downloaded", .integer).notNull().defaults(to: 0)
                t.column("uploaded", .integer).notNull().defaults(to: 0)
                t.column("seeding_seconds", .integer).notNull().defaults(to: 0)
                t.column("resume", .blob)
            }
            try db.create(table: "setting") { t in
                t.primaryKey("key", .text)
                t.column("value", .blob).notNull()
            }
        }
        Self.registerChannelMigrations(&m)
        m.registerMigration("categories-v1") { db in
            try db.create(table: "category") { t in
                t.primaryKey("name", .text)
                t.column("save_path", .text)
            }
            try db.alter(table: "torrent") { t in
                t.add(column: "category", .text)
                t.add(column: "tags", .text)
            }
        }
        m.registerMigration("torrent-flags-v1") { db in
            try db.alter(table: "torrent") { t in
                t.add(column: "force_start", .boolean).notNull().defaults(to: false)
                t.add(column: "first_last_pieces", .boolean).notNull().defaults(to: false)
            }
        }
        return m
    }

    func categories() throws -> [CategoryRecord] {
        try self.database.read { db in try CategoryRecord.order(Column("name")).fetchAll(db) }
    }

    func save(_ category: CategoryRecord) throws {
        try self.database.write { db in try category.save(db) }
    }

    /// Removes a category; its torrents keep their data and lose the name.
    func deleteCategory(_ name: String) throws {
        try self.database.write { db in
            try db.execute(sql: "UPDATE torrent SET category = NULL WHERE category = ?", arguments: [name])
            _ = try CategoryRecord.deleteOne(db, key: name)
        }
    }

    func torrents() throws -> [TorrentRecord] {
        try self.database.read { db in try TorrentRecord.order(Column("queue_position")).fetchAll(db) }
    }

    func save(_ record: TorrentRecord) throws {
        try self.database.write { db in try record.save(db) }
    }

    func delete(id: String) throws {
        try self.database.write { db in _ = try TorrentRecord.deleteOne(db, key: id) }
    }

    /// Replaces one torrent's resume data (from the thread pool).
    func saveResume(id: String, bytes: [UInt8]) throws {
        try self.database.write { db in
            try db.execute(sql: "UPDATE torrent SET resume = ? WHERE id = ?", arguments: [Data(bytes), id])
        }
    }

    func resume(id: String) throws -> [UInt8]? {
        try self.database.read { db in
            try Data.fetchOne(db, sql: "SELECT resume FROM torrent WHERE id = ?", arguments: [id]).map { [UInt8]($0) }
        }
    }

    func clearResume(id: String) throws {
        try self.database.write { db in
            try db.execute(sql: "UPDATE torrent SET resume = NULL WHERE id = ?", arguments: [id])
        }
    }

    /// Saves the byte counters of many torrents in one transaction.
    func saveCounters(_ rows: [(id: String, downloaded: Int64, uploaded: Int64, seeding: Int64)]) throws {
        guard !rows.isEmpty else { return }
        try self.database.write { db in
            for r in rows {
                try db.execute(
                    sql: "UPDATE torrent SET downloaded = ?, uploaded = ?, seeding_seconds = ? WHERE id = ?",
                    arguments: [r.downloaded, r.uploaded, r.seeding, r.id])
            }
        }
    }

    func setting(_ key: String) throws -> Data? {
        try self.database.read { db in try Data.fetchOne(db, sql: "SELECT value FROM setting WHERE key = ?", arguments: [key]) }
    }

    func setSetting(_ key: String, _ value: Data) throws {
        try self.database.write { db in
            try db.execute(sql: "INSERT OR REPLACE INTO setting(key, value) VALUES (?, ?)", arguments: [key, value])
        }
    }
}
