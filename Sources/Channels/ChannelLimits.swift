/// What a subscriber accepts from a channel before it fetches or keeps anything (issue 15's "limits and
/// defences"). A revision, post or metadata file over any of these is refused with the limit it broke.
public struct ChannelLimits: Sendable, Equatable {
    /// Items in a revision's head; older items go to archive torrents.
    public var maxHeadItems = 1000
    /// Bytes of all the head's files (items and metadata).
    public var maxHeadBytes: Int64 = 16 << 20
    /// Items and bytes of one archive torrent (a subscription's quota bounds them all together).
    public var maxArchiveItems = 100_000
    public var maxArchiveBytes: Int64 = 1 << 30
    /// Bytes of one item (a .torrent file or a post).
    public var maxItemBytes: Int64 = 1 << 20
    /// Bytes of the channel's metadata file.
    public var maxMetaBytes: Int64 = 256 << 10
    /// Bytes of a post's title, body and licence.
    public var maxTitleBytes = 300
    public var maxBodyBytes = 64 << 10
    public var maxLicenseBytes = 200
    /// Posts one post answers (its References).
    public var maxRefs = 64
    /// Entries in the metadata's lists.
    public var maxLinks = 100
    public var maxMembers = 256
    public var maxTombstones = 10_000
    /// Bytes of the revision's info dictionary (fetched over BEP 9 before anything else).
    public var maxInfoBytes = 16 << 20

    public init() {}

    public static let `default` = ChannelLimits()
}
