import Foundation
import GRDB

/// A channel this node publishes or follows: one row of the `channel` table (in `STATE/peer.sqlite`).
struct ChannelRecord: Codable, FetchableRecord, PersistableRecord, Sendable {
    static let databaseTableName = "channel"

    /// The channel's target in hex (`ChannelLink.id`).
    var id: String
    var link: String
    /// Published by this node (its key is the node's key).
    var mine: Bool
    var title: String
    var description: String
    /// "channel" or "group".
    var kind: String
    /// The revision held (the pointer's seq); nil before the first.
    var seq: Int64?
    /// The revision's info dictionary, to seed it again after a restart.
    var info: Data?
    /// The signed pointer (`{"k", "salt", "seq", "sig", "v"}` bencoded), put again now and then.
    var pointer: Data?
    var createdAt: Date
    /// When the last new revision arrived (or was published).
    var updatedAt: Date?
    /// When the pointer was last looked up.
    var checkedAt: Date?
    /// When the pointer was last put.
    var putAt: Date?
    /// Most bytes the channel's files may take (a subscription's quota).
    var quota: Int64
    /// The auto-download rule (`FeedRule` JSON); nil: none.
    var rule: String?
    /// For an author's feed in a group: the group's id.
    var groupId: String?
    /// Keys (JSON array of hex) published with the next revision: in a group this node founded, its other authors;
    /// in this node's own feed in an open group, the keys it vouches for.
    var members: String?
    /// A group this node founded that also takes the keys its members vouch for.
    var open = false
    /// Why the last update failed, if it did.
    var error: String?
    /// The archives held (their info dictionaries, bencoded as a list), to seed them again after a restart.
    var archives: Data?
    /// One of this node's channels: the channels it recommends (JSON array of links), published with the next
    /// revision.
    var links: String?

    enum CodingKeys: String, CodingKey {
        case id, link, mine, title, description, kind, seq, info, pointer, quota, rule, error, members, archives, links
        case open
        case createdAt = "created_at"
        case updatedAt = "updated_at"
        case checkedAt = "checked_at"
        case putAt = "put_at"
        case groupId = "group_id"
    }
}

/// An item of a channel, as read from its revisions (or staged by its publisher before the next one).
struct ChannelItemRecord: Codable, FetchableRecord, PersistableRecord, Sendable {
    static let databaseTableName = "channel_item"

    var channel: String
    /// The item's id in hex: a torrent's info-hash or a post's id.
    var id: String
    /// "torrent" or "post".
    var kind: String
    /// Order in the feed (staged items after the published ones).
    var position: Int64
    var title: String
    var body: String?
    /// The author's key (posts) in hex.
    var author: String?
    var time: Int64
    /// Ids of the posts answered (JSON array of hex).
    var refs: String?
    var license: String?
    /// A torrent's total size.
    var size: Int64?
    /// The item's file (a .torrent or a post) until it is published; nil once in a revision.
    var staged: Data?
    var read: Bool
    var removed: Bool
}

extension SessionStore {
    static func registerChannelMigrations(_ m: inout DatabaseMigrator) {
        m.registerMigration("channels-v1") { db in
            try db.create(table: "channel") { t in
                t.primaryKey("id", .text)
                t.column("link", .text).notNull()
                t.column("mine", .boolean).notNull()
                t.column("title", .text).notNull()
                t.column("description", .text).notNull()
                t.column("kind", .text).notNull()
                t.column("seq", .integer)
                t.column("info", .blob)
                t.column("pointer", .blob)
                t.column("created_at", .datetime).notNull()
                t.column("updated_at", .datetime)
                t.column("checked_at", .datetime)
                t.column("put_at", .datetime)
                t.column("quota", .integer).notNull()
                t.column("rule", .text)
                t.column("group_id", .text)
                t.column("members", .text)
                t.column("archives", .blob)
                t.column("links", .text)
                t.column("error", .text)
            }
            try db.create(table: "channel_item") { t in
                t.column("channel", .text).notNull().references("channel", onDelete: .cascade)
                t.column("id", .text).notNull()
                t.column("kind", .text).notNull()
                t.column("position", .integer).notNull()
                t.column("title", .text).notNull()
                t.column("body", .text)
                t.column("author", .text)
                t.column("time", .integer).notNull()
                t.column("refs", .text)
                t.column("license", .text)
                t.column("size", .integer)
                t.column("staged", .blob)
                t.column("read", .boolean).notNull().defaults(to: false)
                t.column("removed", .boolean).notNull().defaults(to: false)
                t.primaryKey(["channel", "id"])
            }
            try db.create(table: "channel_block") { t in t.primaryKey("key", .text) }
        }
        m.registerMigration("channels-v2") { db in
            try db.alter(table: "channel") { t in t.add(column: "open", .boolean).notNull().defaults(to: false) }
        }
    }

    func channels() throws -> [ChannelRecord] {
        try self.database.read { db in try ChannelRecord.order(Column("created_at")).fetchAll(db) }
    }

    func channel(_ id: String) throws -> ChannelRecord? {
        try self.database.read { db in try ChannelRecord.fetchOne(db, key: id) }
    }

    func save(_ record: ChannelRecord) throws {
        try self.database.write { db in try record.save(db) }
    }

    func deleteChannel(_ id: String) throws {
        try self.database.write { db in
            try db.execute(sql: "DELETE FROM channel_item WHERE channel = ?", arguments: [id])
            _ = try ChannelRecord.deleteOne(db, key: id)
        }
    }

    /// A channel's items in feed order (staged ones last).
    func items(channel: String) throws -> [ChannelItemRecord] {
        try self.database.read { db in
            try ChannelItemRecord.filter(Column("channel") == channel).order(Column("position")).fetchAll(db)
        }
    }

    /// Saves items and the channel's row in one transaction.
    func save(_ record: ChannelRecord, items: [ChannelItemRecord]) throws {
        try self.database.write { db in
            try record.save(db)
            for i in items { try i.save(db) }
        }
    }

    func item(channel: String, id: String) throws -> ChannelItemRecord? {
        try self.database.read { db in try ChannelItemRecord.fetchOne(db, key: ["channel": channel, "id": id]) }
    }

    /// The last position used in a channel (-1: none).
    func lastPosition(channel: String) throws -> Int64 {
        try self.database.read { db in
            try Int64.fetchOne(db, sql: "SELECT MAX(position) FROM channel_item WHERE channel = ?", arguments: [channel])
        } ?? -1
    }

    /// A channel's items published (and not removed), unread, and staged.
    func itemCounts(channel: String) throws -> (items: Int, unread: Int, staged: Int) {
        try self.database.read { db in
            let row = try Row.fetchOne(db, sql: """
                SELECT SUM(staged IS NULL AND NOT removed), SUM(NOT read AND NOT removed), SUM(staged IS NOT NULL)
                FROM channel_item WHERE channel = ?
                """, arguments: [channel])
            return (row?[0] ?? 0, row?[1] ?? 0, row?[2] ?? 0)
        }
    }

    func markRead(channel: String, ids: [String]?) throws {
        try self.database.write { db in
            if let ids {
                for id in ids {
                    try db.execute(sql: "UPDATE channel_item SET read = 1 WHERE channel = ? AND id = ?",
                        arguments: [channel, id])
                }
            } else {
                try db.execute(sql: "UPDATE channel_item SET read = 1 WHERE channel = ?", arguments: [channel])
            }
        }
    }

    func blockedKeys() throws -> Set<String> {
        try self.database.read { db in Set(try String.fetchAll(db, sql: "SELECT key FROM channel_block")) }
    }

    func setBlocked(_ key: String, _ blocked: Bool) throws {
        try self.database.write { db in
            if blocked {
                try db.execute(sql: "INSERT OR IGNORE INTO channel_block(key) VALUES (?)", arguments: [key])
            } else {
                try db.execute(sql: "DELETE FROM channel_block WHERE key = ?", arguments: [key])
            }
        }
    }
}
