import Foundation
import GRDB

/// Who announced what to an index node (`STATE/index-node/claims.sqlite`): each announcer's peer address and the
/// torrents it claims. The torrents themselves are rows of the index node's `SearchIndex`; a row whose last
/// claim goes is removed from it by the caller.
final class IndexNodeStore: Sendable {
    let database: DatabasePool

    init(path: String) throws {
        self.database = try SessionStore.openDatabase(path, Self.migrator)
    }

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            // Times are Unix seconds.
            try db.execute(
                sql: """
                    CREATE TABLE announcer(
                        key BLOB PRIMARY KEY,
                        host TEXT NOT NULL,
                        port INTEGER NOT NULL,
                        announced_at INTEGER NOT NULL);
                    CREATE TABLE claim(
                        ih BLOB NOT NULL,
                        key BLOB NOT NULL REFERENCES announcer(key) ON DELETE CASCADE,
                        seed INTEGER NOT NULL,
                        PRIMARY KEY (ih, key)) WITHOUT ROWID;
                    CREATE INDEX claim_key ON claim(key);
                    """)
        }
        return m
    }

    /// A torrent's announcers: peer addresses, and whether each has it all.
    struct Peer: Equatable {
        var address: String
        var seed: Bool
    }

    /// Makes `torrents` (info-hash, seeding) the claims of `key` at `host:port`. Returns the claims it did not
    /// make before (`new`) and the info-hashes that no key claims any more (`orphans`).
    func replaceClaims(key: [UInt8], host: String, port: Int, torrents: [([UInt8], Bool)], at now: Int64) throws
        -> (new: [[UInt8]], orphans: [[UInt8]])
    {
        try self.database.write { db in
            let k = Data(key)
            try db.execute(
                sql: """
                    INSERT INTO announcer(key, host, port, announced_at) VALUES (?, ?, ?, ?)
                    ON CONFLICT(key) DO UPDATE SET host = excluded.host, port = excluded.port,
                        announced_at = excluded.announced_at
                    """, arguments: [k, host, port, now])
            let before = Set(try Data.fetchAll(db, sql: "SELECT ih FROM claim WHERE key = ?", arguments: [k]).map { [UInt8]($0) })
            let current = Set(torrents.map(\.0))
            let upsert = try db.cachedStatement(
                sql: "INSERT INTO claim(ih, key, seed) VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET seed = excluded.seed")
            for (ih, seed) in torrents { try upsert.execute(arguments: [Data(ih), k, seed]) }
            let gone = before.subtracting(current)
            let delete = try db.cachedStatement(sql: "DELETE FROM claim WHERE ih = ? AND key = ?")
            for ih in gone { try delete.execute(arguments: [Data(ih), k]) }
            return (torrents.map(\.0).filter { !before.contains($0) }, try Self.unclaimed(db, Array(gone)))
        }
    }

    /// Drops one claim (it failed its check); true when no key claims the torrent any more.
    func dropClaim(key: [UInt8], infoHash: [UInt8]) throws -> Bool {
        try self.database.write { db in
            try db.execute(sql: "DELETE FROM claim WHERE ih = ? AND key = ?", arguments: [Data(infoHash), Data(key)])
            return try !Self.unclaimed(db, [infoHash]).isEmpty
        }
    }

    /// Forgets announcers (refused, or silent since before `before`) and their claims; returns the info-hashes no
    /// key claims any more, and the keys forgotten.
    func drop(keys: [[UInt8]] = [], silentSince before: Int64? = nil) throws -> (orphans: [[UInt8]], keys: [[UInt8]]) {
        try self.database.write { db in
            var dropped = keys
            if let before {
                dropped += try Data.fetchAll(db, sql: "SELECT key FROM announcer WHERE announced_at < ?",
                    arguments: [before]).map { [UInt8]($0) }
            }
            var claimed: Set<[UInt8]> = []
            for key in dropped {
                claimed.formUnion(try Data.fetchAll(db, sql: "SELECT ih FROM claim WHERE key = ?",
                    arguments: [Data(key)]).map { [UInt8]($0) })
                try db.execute(sql: "DELETE FROM claim WHERE key = ?", arguments: [Data(key)])
                try db.execute(sql: "DELETE FROM announcer WHERE key = ?", arguments: [Data(key)])
            }
            return (try Self.unclaimed(db, Array(claimed)), dropped)
        }
    }

    /// The announcers of each of `infoHashes`, seeders first.
    func peers(of infoHashes: [[UInt8]]) throws -> [[UInt8]: [Peer]] {
        guard !infoHashes.isEmpty else { return [:] }
        return try self.database.read { db in
            var out: [[UInt8]: [Peer]] = [:]
            let marks = Array(repeating: "?", count: infoHashes.count).joined(separator: ",")
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT claim.ih, announcer.host, announcer.port, claim.seed FROM claim
                    JOIN announcer ON announcer.key = claim.key
                    WHERE claim.ih IN (\(marks)) ORDER BY claim.seed DESC, announcer.announced_at DESC
                    """, arguments: StatementArguments(infoHashes.map { Data($0) }))
            for row in rows {
                let host: String = row[1]
                let port: Int = row[2]
                let address = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
                out[[UInt8](row[0] as Data), default: []].append(Peer(address: address, seed: row[3]))
            }
            return out
        }
    }

    /// Announcers known, and claims they make.
    func counts() throws -> (announcers: Int, claims: Int) {
        try self.database.read { db in
            (try Int.fetchOne(db, sql: "SELECT count(*) FROM announcer") ?? 0,
                try Int.fetchOne(db, sql: "SELECT count(*) FROM claim") ?? 0)
        }
    }

    /// Those of `infoHashes` that no key claims.
    private static func unclaimed(_ db: Database, _ infoHashes: [[UInt8]]) throws -> [[UInt8]] {
        let claimed = try db.cachedStatement(sql: "SELECT 1 FROM claim WHERE ih = ? LIMIT 1")
        return try infoHashes.filter { try Bool.fetchOne(claimed, arguments: [Data($0)]) == nil }
    }
}
