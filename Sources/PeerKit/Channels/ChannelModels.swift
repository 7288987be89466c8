import Channels
import Foundation
import PeerBase

/// A channel as the API, the CLI and the web UI show it.
public struct ChannelInfo: Codable, Sendable, Equatable {
    public var id: String
    public var link: String
    public var mine: Bool
    public var title: String
    public var description: String
    public var kind: String
    /// The revision held; nil before the first.
    public var seq: Int64?
    /// The revision's info-hash.
    public var infoHash: String?
    public var items: Int
    public var unread: Int
    /// Items staged for the next revision (the publisher's).
    public var staged: Int
    public var createdAt: Date
    public var updatedAt: Date?
    public var checkedAt: Date?
    /// No revision for 180 days.
    public var stale: Bool
    public var quota: Int64
    public var rule: FeedRule?
    public var groupId: String?
    public var error: String?
    /// Archive torrents held (older items).
    public var archives: Int
    /// Payload bytes its revisions and archives fetched since the daemon started.
    public var downloaded: Int64
    /// Bytes of their info dictionaries, counted apart.
    public var metadataBytes: Int64
    /// A group that also takes the keys its listed members vouch for.
    public var open: Bool

    enum CodingKeys: String, CodingKey {
        case id, link, mine, title, description, kind, seq, items, unread, staged, stale, quota, rule, error, archives
        case downloaded, open
        case metadataBytes = "metadata_bytes"
        case infoHash = "info_hash"
        case createdAt = "created_at"
        case updatedAt = "updated_at"
        case checkedAt = "checked_at"
        case groupId = "group_id"
    }
}

/// One item of a channel: a torrent or a post.
public struct ChannelItem: Codable, Sendable, Equatable {
    public var id: String
    public var kind: String
    public var title: String
    public var body: String?
    public var author: String?
    public var time: Int64
    /// Ids of the posts it answers.
    public var refs: [String]
    /// Replies nest under the post they answer: 0 for a thread's first post.
    public var depth: Int
    public var license: String?
    public var size: Int64?
    /// A torrent's magnet link.
    public var magnet: String?
    public var read: Bool
    /// Not yet in a published revision.
    public var staged: Bool

    enum CodingKeys: String, CodingKey {
        case id, kind, title, body, author, time, refs, depth, license, size, magnet, read, staged
    }
}

/// A channel and its items in thread order (a group's: every member's posts merged).
public struct ChannelDetail: Codable, Sendable, Equatable {
    public var channel: ChannelInfo
    public var items: [ChannelItem]
    /// A group's authors (hex keys).
    public var members: [String]
    /// Channels it links to.
    public var links: [String]
}

/// What publishing a revision did.
public struct ChannelPublishReport: Codable, Sendable, Equatable {
    public var channel: ChannelInfo
    public var seq: Int64
    public var infoHash: String
    public var added: Int
    /// Bytes of the files the revision added (the new items and its metadata).
    public var newBytes: Int64
    /// Items retired to a new archive torrent.
    public var archived: Int
    /// DHT nodes that stored the pointer; nil when the put had not ended after a few seconds (it goes on).
    public var storedBy: Int?

    enum CodingKeys: String, CodingKey {
        case channel, seq, added, archived
        case infoHash = "info_hash"
        case newBytes = "new_bytes"
        case storedBy = "stored_by"
    }
}

/// A live change of a channel (the daemon's `channel` events).
public struct ChannelEvent: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable { case subscribed, updated, published, refused, removed }
    public var kind: Kind
    public var channel: String
    public var seq: Int64?
    /// Items new in this revision.
    public var newItems: [ChannelItem]
    public var message: String?

    enum CodingKeys: String, CodingKey {
        case kind, channel, seq, message
        case newItems = "new_items"
    }
}

/// `POST /api/channels` (make one of this node's: `name`, `title`, `description`, `group`) and
/// `POST /api/channels/subscribe` (follow one: `link`, `quota`, `rule`).
public struct ChannelRequest: Codable, Sendable {
    public var name: String?
    public var title: String?
    public var description: String?
    public var group: Bool?
    public var link: String?
    public var quota: Int64?
    public var rule: FeedRule?

    public init(name: String? = nil, title: String? = nil, description: String? = nil, group: Bool? = nil,
        link: String? = nil, quota: Int64? = nil, rule: FeedRule? = nil)
    {
        (self.name, self.title, self.description, self.group) = (name, title, description, group)
        (self.link, self.quota, self.rule) = (link, quota, rule)
    }
}

/// `POST /api/channels/{id}/posts`.
public struct PostRequest: Codable, Sendable {
    public var title: String
    public var body: String
    public var replyTo: [String]?
    public var license: String?
    /// Publish the next revision at once (the default); false stages the post for `…/publish`.
    public var publish: Bool?

    public init(title: String, body: String, replyTo: [String]? = nil, license: String? = nil, publish: Bool? = nil) {
        (self.title, self.body, self.replyTo, self.license, self.publish) = (title, body, replyTo, license, publish)
    }

    enum CodingKeys: String, CodingKey {
        case title, body, license, publish
        case replyTo = "reply_to"
    }
}

/// `POST /api/channels/{id}/items`: a .torrent file in base64, or the id of a torrent the daemon holds.
public struct ChannelItemRequest: Codable, Sendable {
    public var torrent: String?
    public var id: String?
    public var license: String?
    public var publish: Bool?

    public init(torrent: String? = nil, id: String? = nil, license: String? = nil, publish: Bool? = nil) {
        (self.torrent, self.id, self.license, self.publish) = (torrent, id, license, publish)
    }
}

/// `POST /api/channels/{id}/members`: a key that may post to the group, or the group opened (or closed).
public struct MemberRequest: Codable, Sendable {
    /// A key that may post: listed by the group's founder, or vouched for by a listed member of an open group.
    public var key: String?
    /// The founder opens the group to the keys its members vouch for (false closes it again).
    public var open: Bool?
    public init(key: String? = nil, open: Bool? = nil) {
        self.key = key
        self.open = open
    }
}

/// `POST /api/channels/{id}/read`: items read (all when none are named).
public struct ReadRequest: Codable, Sendable {
    public var items: [String]?
    public init(items: [String]?) { self.items = items }
}

/// `POST /api/channels/block`: a key whose channels, posts and pointers are refused (`blocked` false lifts it).
public struct BlockRequest: Codable, Sendable {
    public var key: String
    public var blocked: Bool?
    public init(key: String, blocked: Bool?) { (self.key, self.blocked) = (key, blocked) }
}
