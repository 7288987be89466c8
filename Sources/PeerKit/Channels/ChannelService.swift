// Channels and groups (issue 15): signed news that propagates from peer to peer, like Usenet.
import Bencode
import Channels
import Crypto
import DHT
import Foundation
import Metainfo
import NIOCore
import PeerBase
import Search
import Storage

/// Publishes this node's channels and follows the channels it subscribed to.
///
/// - A channel is the node's ed25519 key and a salt; its pointer (BEP 44/46) names the current revision, a
///   BEP 49 feed torrent (`FeedRevision`) kept in `STATE/channels/<id>/` and seeded for as long as the channel is
///   held, by publisher and subscribers alike, so it lives while its publisher is offline.
/// - Publishing: staged posts and torrents become the next revision; the pointer's `seq` goes up by one and is
///   put on the DHT, and put again every `republishInterval`.
/// - Following: the pointer is looked up every `pollInterval` (±25%), one channel at a time; a newer one is
///   checked whole (`ChannelPointer`), then the revision's info dictionary (`FeedRevision`) and the quota, and only
///   then are its new pieces fetched. Subscribers put the same signed pointer again, as the publisher does.
/// - A group merges the posts of the authors its founder lists (their feeds are followed too), and drops posts
///   by any other key.
public actor ChannelService {
    public struct Configuration: Sendable {
        /// How often a followed channel's pointer is looked up (±25%).
        public var pollInterval = Duration.seconds(20 * 60)
        /// How often a held pointer is put again (BEP 44 items may expire after 2 hours).
        public var republishInterval = Duration.seconds(60 * 60)
        /// How long a revision's new pieces may take.
        public var fetchTimeout = Duration.seconds(120)
        /// How long its info dictionary may take (the fetch gives up sooner; the next poll tries again).
        public var metadataTimeout = Duration.seconds(30)
        public var defaultQuota: Int64 = 256 << 20
        public var limits = ChannelLimits()
        /// At most one pointer lookup starts within this time (with one fetch at a time, this bounds the DHT
        /// queries channels make: ~16 a lookup).
        public var lookupSpacing = Duration.seconds(1)
        /// Pass newer pointers to the channel's peers (and take theirs) over the `peer_channel` extension.
        public var push = true
        /// A channel with no revision for this long is marked stale.
        public var staleAfter = Duration.seconds(180 * 86_400)
        public init() {}
    }

    /// The revision torrent a channel seeds (and, while `complete` is false, fetches).
    private struct Run {
        var engine: TorrentEngine
        var storage: FileStorage
        var revision: FeedRevision
        var seq: Int64
        var complete: Bool
        /// Succeeds when every piece is there.
        var done: EventLoopFuture<Void>
    }

    public let configuration: Configuration
    private let store: SessionStore
    private let node: PeerNode
    private let dht: DHTService?
    private let index: SearchIndex
    private let listenPort: Int
    private let key: Curve25519.Signing.PrivateKey
    /// `STATE/channels`: every revision's files under `<id>/`, resume data under `resume/`.
    private let folder: String
    private let emit: @Sendable (ChannelEvent) -> Void
    /// Adds a torrent an auto-download rule matched to the session (and the rule's folder).
    private let addTorrent: @Sendable (TorrentSource, String?) async -> Void
    private let log: (@Sendable (String) -> Void)?
    private var runs: [String: Run] = [:]
    /// When each followed channel is next looked up.
    private var due: [String: ContinuousClock.Instant] = [:]
    private var loop: Task<Void, Never>?
    private var lastLookup: ContinuousClock.Instant?
    /// The outcome of a publish's put, for the publish to report if it comes in time.
    private var putResults: [String: Int] = [:]
    private var lastPut: ContinuousClock.Instant?
    private var rng = SystemRandomNumberGenerator()

    // Figures `stats()` reports (the start-up budget test reads them).
    private(set) var lookups = 0
    private(set) var fetchesStarted = 0
    private var fetching = 0
    private(set) var maxFetchesAtOnce = 0
    private(set) var refused = 0

    init(
        configuration: Configuration, store: SessionStore, node: PeerNode, dht: DHTService?, index: SearchIndex,
        listenPort: Int, stateDirectory: String, emit: @escaping @Sendable (ChannelEvent) -> Void,
        addTorrent: @escaping @Sendable (TorrentSource, String?) async -> Void, log: (@Sendable (String) -> Void)?
    ) throws {
        self.configuration = configuration
        self.store = store
        self.node = node
        self.dht = dht
        self.index = index
        self.listenPort = listenPort
        self.key = try NodeKey.loadOrCreate(stateDirectory + "/" + NodeKey.fileName)
        self.folder = stateDirectory + "/channels"
        self.emit = emit
        self.addTorrent = addTorrent
        self.log = log
        try FileManager.default.createDirectory(atPath: self.folder, withIntermediateDirectories: true)
    }

    /// Seeds every held revision again and starts the poll and re-put loop. Followed channels are first looked
    /// up spread over the first poll interval's quarter, never all at once.
    func start() {
        let now = ContinuousClock.now
        for r in (try? self.store.channels()) ?? [] {
            if let info = r.info, let link = try? ChannelLink(parsing: r.link),
                let revision = try? FeedRevision(infoBytes: [UInt8](info), link: link, limits: self.limitsFor(r))
            {
                self.seed(r.id, revision, seq: r.seq ?? 0, complete: false)
            }
            for a in self.archives(r) { self.seed(Self.runKey(r.id, a), a, seq: r.seq ?? 0, complete: false) }
            if !r.mine { self.due[r.id] = now + self.jitter(self.configuration.pollInterval / 4) }
        }
        self.loop = Task { [weak self] in
            while !Task.isCancelled {
                await self?.tick()
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    func stop() async {
        self.loop?.cancel()
        for key in Array(self.runs.keys) { await self.stopRun(key) }
    }

    // MARK: publishing

    /// Makes a channel (or a group) of this node's key, named `name` (its salt is `ch/` and the name).
    public func create(name: String, title: String?, description: String, group: Bool) throws(SessionError)
        -> ChannelInfo
    {
        guard !name.isEmpty else { throw .badRequest("a channel needs a name") }
        let link: ChannelLink
        do { link = try ChannelLink(publicKey: self.publicKey, salt: ChannelLink.salt(forName: name)) } catch {
            throw .channelRefused(error)
        }
        guard (try? self.store.channel(link.id)) == nil else { throw .conflict("the channel \(link.id) exists") }
        let record = ChannelRecord(
            id: link.id, link: link.description, mine: true, title: title ?? name, description: description,
            kind: group ? "group" : "channel", seq: nil, info: nil, pointer: nil, createdAt: Date(), updatedAt: nil,
            checkedAt: nil, putAt: nil, quota: Int64.max, rule: nil, groupId: nil, members: nil, error: nil, archives: nil, links: nil)
        try self.save(record, [])
        return self.info(record)
    }

    /// Stages a post in one of this node's channels (or in its own feed of a group it writes to).
    public func post(
        _ id: String, title: String, body: String, replyTo: [String], license: String?
    ) throws(SessionError) -> ChannelItem {
        let (record, target) = try self.writable(id)
        var refs: [[UInt8]] = []
        for r in replyTo {
            guard let b = Hex.decode(r), b.count == 20 else { throw .badRequest("reply_to: post ids are 40 hex digits") }
            refs.append(b)
        }
        let post: Post
        do {
            post = try Post.signed(title: title, body: body, channel: target, time: Int64(Date().timeIntervalSince1970),
                refs: refs, license: license, key: self.key, limits: self.configuration.limits)
        } catch { throw .channelRefused(error) }
        let item = ChannelItemRecord(
            channel: record.id, id: Hex.encode(post.id), kind: "post", position: self.nextPosition(record.id),
            title: post.title, body: post.body, author: Hex.encode(post.author), time: post.time,
            refs: JSONColumn.text(post.refs.map { Hex.encode($0) }), license: license, size: nil, staged: Data(post.bytes),
            read: true, removed: false)
        try self.save(record, [item])
        return self.item(item)
    }

    /// Stages a torrent (a .torrent file's bytes) in one of this node's channels.
    public func addTorrent(_ id: String, torrent bytes: [UInt8], license: String?) throws(SessionError) -> ChannelItem {
        let (record, _) = try self.writable(id)
        let t: TorrentMetainfo
        do { t = try TorrentMetainfo(bytes: bytes) } catch { throw .metadata(error, from: .upload) }
        guard Int64(bytes.count) <= self.configuration.limits.maxItemBytes else {
            throw .channelRefused(.badRevision("the torrent file is \(bytes.count) bytes, over the item limit"))
        }
        let ih = Session.indexKey(t)
        if let old = try? self.store.item(channel: record.id, id: Hex.encode(ih)), !old.removed {
            throw .conflict("\(t.name) is already in the channel")
        }
        let item = ChannelItemRecord(
            channel: record.id, id: Hex.encode(ih), kind: "torrent", position: self.nextPosition(record.id),
            title: t.name, body: nil, author: nil, time: Int64(Date().timeIntervalSince1970), refs: nil,
            license: license, size: t.totalLength, staged: Data(bytes), read: true, removed: false)
        try self.save(record, [item])
        return self.item(item)
    }

    /// Removes an item: a tombstone in the next revision.
    public func removeItem(_ id: String, item: String) throws(SessionError) {
        let (record, _) = try self.writable(id)
        guard var row = try? self.store.item(channel: record.id, id: item) else {
            throw .badRequest("no item \(item) in the channel")
        }
        row.removed = true
        try self.save(record, [row])
    }

    /// Publishes the staged items as the next revision: written, seeded, and its pointer (seq + 1) put.
    public func publish(_ id: String) async throws(SessionError) -> ChannelPublishReport {
        var (record, _) = try self.writable(id)
        let link = try self.link(record)
        let rows = (try? self.store.items(channel: record.id)) ?? []
        let staged = rows.filter { $0.staged != nil && !$0.removed }
        var previous: FeedRevision?
        if let data = record.info {
            do { previous = try FeedRevision(infoBytes: [UInt8](data), link: link, limits: self.configuration.limits) } catch {
                throw .channelRefused(error)
            }
        }
        let inFeed = Set(previous?.items.compactMap { $0.id.map { Hex.encode($0) } } ?? [])
        let kept = rows.filter { inFeed.contains($0.id) }
        let meta = ChannelMeta(
            title: record.title, description: record.description, kind: record.kind == "group" ? .group : .channel,
            links: (JSONColumn.value([String].self, record.links) ?? []).compactMap { try? ChannelLink(parsing: $0) },
            tombstones: rows.filter { $0.removed && $0.staged == nil }.compactMap { Hex.decode($0.id) },
            members: record.kind == "group" && record.groupId == nil ? [self.publicKey] + self.keys(record) : [],
            open: record.kind == "group" && record.groupId == nil && record.open,
            vouches: record.groupId != nil ? self.keys(record) : [],
            licenses: Dictionary(
                (kept + staged).compactMap { r in r.license.map { (r.id, $0) } }, uniquingKeysWith: { a, _ in a }),
            time: Int64(Date().timeIntervalSince1970))
        let added = staged.compactMap { r -> FeedBuilder.Item? in
            guard let id = Hex.decode(r.id), let bytes = r.staged else { return nil }
            return FeedBuilder.Item(kind: r.kind == "post" ? .post : .torrent, id: id, bytes: [UInt8](bytes))
        }
        let built: FeedBuilder.Built
        do {
            built = try FeedBuilder.build(link: link, previous: previous, added: added, meta: meta,
                limits: self.configuration.limits)
        } catch { throw .channelRefused(error) }
        // The new files, then the revision's torrent; the old metadata file goes once the new one is written.
        let root = self.folder + "/" + record.id
        do {
            for f in built.files {
                let path = root + "/" + f.path.joined(separator: "/")
                try FileManager.default.createDirectory(
                    atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                try Data(f.bytes).write(to: URL(fileURLWithPath: path))
            }
        } catch { throw .internalError("cannot write the revision under \(root): \(error)") }
        if let old = previous?.meta, old.path != built.revision.meta?.path {
            try? FileManager.default.removeItem(atPath: root + "/" + old.path.joined(separator: "/"))
        }
        let seq = (record.seq ?? 0) + 1
        let pointer: ChannelPointer
        do {
            pointer = try ChannelPointer.signed(link: link, infoHash: built.revision.infoHash, sequence: seq, key: self.key)
        } catch { throw .channelRefused(error) }
        // The new revision is served before the followers in the old one's swarm hear of it (at once): one that
        // asked sooner was turned away and found it again only through the DHT, seconds later.
        let next = record.id + "#next"
        self.seed(next, built.revision, seq: seq, complete: true)
        await self.pass(pointer.item, channel: record.id)
        await self.stopRun(record.id)
        self.runs[record.id] = self.runs.removeValue(forKey: next)
        if let archive = built.archive {
            self.seed(Self.runKey(record.id, archive), archive, seq: seq, complete: true)
            record.archives = Data(Self.encodeArchives([archive] + self.archives(record)))
        }
        record.seq = seq
        record.info = Data(built.revision.infoBytes)
        record.pointer = Data(Self.encode(pointer.item))
        record.updatedAt = Date()
        let published = staged.map { r in
            var r = r
            r.staged = nil
            return r
        }
        try self.save(record, published)
        self.indexTorrents(staged.filter { $0.kind == "torrent" })
        // The pointer's put runs on; the answer waits for it a few seconds at most (a node still joining the
        // DHT can take half a minute), and says nil when it did not end in time.
        self.putResults[record.id] = nil
        let id = record.id
        Task { self.putResults[id] = await self.put(id, pointer.item) }
        var stored: Int?
        let deadline = ContinuousClock.now + .seconds(5)
        while ContinuousClock.now < deadline {
            if let n = self.putResults.removeValue(forKey: id) {
                stored = n
                break
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
        let info = self.info((try? self.store.channel(record.id)) ?? record)
        self.emit(ChannelEvent(kind: .published, channel: record.id, seq: seq, newItems: published.map(self.item),
            message: nil))
        self.log?("channel \(record.title): revision \(seq) published (\(staged.count) new, "
            + (stored.map { "stored by \($0) nodes)" } ?? "its pointer still being put)"))
        return ChannelPublishReport(channel: info, seq: seq, infoHash: Hex.encode(built.revision.infoHash),
            added: staged.count, newBytes: Int64(built.files.reduce(0) { $0 + $1.bytes.count }),
            archived: built.archive?.items.count ?? 0, storedBy: stored)
    }

    // MARK: following

    /// Follows a channel by its link (or key): its pointer is looked up at once.
    public func subscribe(_ text: String, quota: Int64?, rule: FeedRule?) throws(SessionError) -> ChannelInfo {
        if text.hasPrefix("http://") || text.hasPrefix("https://") { return try self.follow(feed: text, rule: rule) }
        let link: ChannelLink
        do { link = try ChannelLink(parsing: text) } catch { throw .channelRefused(error) }
        return try self.follow(link, quota: quota, rule: rule, groupId: nil)
    }

    private func follow(_ link: ChannelLink, quota: Int64?, rule: FeedRule?, groupId: String?) throws(SessionError)
        -> ChannelInfo
    {
        if self.blocked.contains(link.keyHex) { throw .channelRefused(.blocked(link.keyHex)) }
        if let existing = try? self.store.channel(link.id) { return self.info(existing) }
        guard self.dht != nil else { throw .dhtOff }
        let record = ChannelRecord(
            id: link.id, link: link.description, mine: false, title: link.id, description: "", kind: "channel",
            seq: nil, info: nil, pointer: nil, createdAt: Date(), updatedAt: nil, checkedAt: nil, putAt: nil,
            quota: quota ?? self.configuration.defaultQuota, rule: rule.flatMap { JSONColumn.text($0) }, groupId: groupId,
            members: nil, error: nil, archives: nil, links: nil)
        try self.save(record, [])
        self.due[link.id] = .now
        self.emit(ChannelEvent(kind: .subscribed, channel: link.id, seq: nil, newItems: [], message: nil))
        return self.info(record)
    }

    /// Follows an RSS feed of torrents (BEP 36) at `url`: read every poll interval, its new items matched against
    /// `rule`.
    private func follow(feed url: String, rule: FeedRule?) throws(SessionError) -> ChannelInfo {
        let id = Hex.encode(Insecure.SHA1.hash(data: Array(url.utf8)))
        if let existing = try? self.store.channel(id) { return self.info(existing) }
        let record = ChannelRecord(
            id: id, link: url, mine: false, title: url, description: "", kind: "rss", seq: nil, info: nil, pointer: nil,
            createdAt: Date(), updatedAt: nil, checkedAt: nil, putAt: nil, quota: 0,
            rule: rule.flatMap { JSONColumn.text($0) }, groupId: nil, members: nil, error: nil, archives: nil, links: nil)
        try self.save(record, [])
        self.due[id] = .now
        self.emit(ChannelEvent(kind: .subscribed, channel: id, seq: nil, newItems: [], message: nil))
        return self.info(record)
    }

    /// Reads a followed RSS feed: its new items are kept, and those the rule matches added to the session.
    private func read(feed record: inout ChannelRecord) async {
        let response: PeerHTTP.Response
        do {
            response = try await PeerHTTP.get(self.node.httpClient, url: record.link, limit: 4 << 20, timeout: .seconds(30))
        } catch {
            record.error = "cannot fetch the feed: \(error)"
            try? self.store.save(record)
            return
        }
        let feed: RSSFeed
        do { feed = try RSSFeed(data: Data(response.body)) } catch {
            return self.refuse(&record, error)
        }
        var position = self.nextPosition(record.id)
        var rows: [ChannelItemRecord] = []
        for item in feed.items {
            let id = Hex.encode(Insecure.SHA1.hash(data: Array(item.id.utf8)))
            guard (try? self.store.item(channel: record.id, id: id)) == nil, !rows.contains(where: { $0.id == id }) else {
                continue
            }
            rows.append(ChannelItemRecord(
                channel: record.id, id: id, kind: "link", position: position, title: item.title, body: item.torrent,
                author: nil, time: Int64(Date().timeIntervalSince1970), refs: nil, license: nil, size: item.size,
                staged: nil, read: false, removed: false))
            position += 1
        }
        if !feed.title.isEmpty { record.title = feed.title }
        record.updatedAt = rows.isEmpty ? record.updatedAt : Date()
        record.error = nil
        do { try self.store.save(record, items: rows) } catch { return }
        if !rows.isEmpty {
            self.emit(ChannelEvent(kind: .updated, channel: record.id, seq: nil, newItems: rows.map(self.item), message: nil))
        }
        guard let rule = JSONColumn.value(FeedRule.self, record.rule) else { return }
        for row in rows where rule.matches(name: row.title, size: row.size) {
            guard let link = row.body else { continue }
            await self.addTorrent(link.hasPrefix("magnet:") ? .magnet(link) : .url(link), rule.folder)
        }
    }

    /// Stops following (or publishing) a channel; with `deleteData`, its files go too.
    public func unsubscribe(_ id: String, deleteData: Bool) async throws(SessionError) {
        let record = try self.record(id)
        await self.stopRuns(record.id)
        self.due[record.id] = nil
        do { try self.store.deleteChannel(record.id) } catch {
            throw .database(action: "remove the channel", reason: "\(error)")
        }
        if deleteData { try? FileManager.default.removeItem(atPath: self.folder + "/" + record.id) }
        // A group's authors go with it.
        for r in (try? self.store.channels()) ?? [] where r.groupId == record.id {
            await self.stopRuns(r.id)
            self.due[r.id] = nil
            try? self.store.deleteChannel(r.id)
        }
        self.emit(ChannelEvent(kind: .removed, channel: record.id, seq: nil, newItems: [], message: nil))
    }

    /// The BEP 10 extension that carries signed pointers between the Peer nodes of a channel's swarm.
    static let extensionName = "peer_channel"

    /// A pointer another Peer node passed on: checked whole (key, salt, signature, seq) before anything else,
    /// and the revision it names fetched at once when it is newer, from that node first.
    func received(_ item: MutableItem, from peer: String?) {
        guard !self.blocked.contains(Hex.encode(item.publicKey)),
            let record = try? self.store.channel(Hex.encode(item.target.bytes)), !record.mine,
            let link = try? self.link(record), (try? ChannelPointer(item: item, link: link, newerThan: record.seq)) != nil,
            (self.hints[record.id]?.item.sequence ?? -1) < item.sequence
        else { return }
        self.due[record.id] = .now
        self.hints[record.id] = (item, peer)
    }

    private func passed(_ payload: [UInt8], from peer: String?) {
        guard self.configuration.push, payload.count <= 2048, self.mayPass(peer), let item = Self.decodeItem(payload)
        else { return }
        self.received(item, from: peer)
    }

    /// At most four pointers a second from each peer are checked (a signature check each): a flood is dropped
    /// unread.
    private func mayPass(_ peer: String?) -> Bool {
        let now = ContinuousClock.now
        let key = peer ?? ""
        var window = self.passedBy[key].flatMap { now - $0.since < .seconds(1) ? $0 : nil } ?? (since: now, count: 0)
        guard window.count < 4 else { return false }
        window.count += 1
        if self.passedBy.count >= 1024 { self.passedBy = self.passedBy.filter { now - $0.value.since < .seconds(1) } }
        self.passedBy[key] = window
        return true
    }

    private var passedBy: [String: (since: ContinuousClock.Instant, count: Int)] = [:]

    /// Pointers passed on by peers, used at the channel's next update instead of a lookup, with who sent each.
    private var hints: [String: (item: MutableItem, peer: String?)] = [:]

    /// Passes a signed pointer to the peers of the channel's swarm that speak `peer_channel`.
    private func pass(_ item: MutableItem, channel id: String) async {
        guard self.configuration.push, let run = self.runs[id] else { return }
        let sent = (try? await run.engine.sendExtension(Self.extensionName, payload: Self.encode(item)).get()) ?? 0
        if sent > 0 { self.log?("channel \(id.prefix(8)): pointer \(item.sequence) passed to \(sent) peers") }
    }

    // MARK: reading

    public func list() -> [ChannelInfo] {
        ((try? self.store.channels()) ?? []).filter { $0.groupId == nil }.map(self.info)
    }

    public func detail(_ id: String) throws(SessionError) -> ChannelDetail {
        let record = try self.record(id)
        var rows = (try? self.store.items(channel: record.id)) ?? []
        var members: [String] = []
        if record.kind == "group" {
            members = [record.link].compactMap { try? ChannelLink(parsing: $0).keyHex } + self.members(record).map { Hex.encode($0) }
            let allowed = Set(members)
            for author in (try? self.store.channels())?.filter({ $0.groupId == record.id }) ?? [] {
                rows += ((try? self.store.items(channel: author.id)) ?? []).filter { $0.kind == "post" }
            }
            // Only the listed authors' posts, each once.
            var seen = Set<String>()
            rows = rows.filter { r in
                (r.kind != "post" || r.author.map(allowed.contains) ?? false) && seen.insert(r.id).inserted
            }
        }
        let links = record.mine ? (JSONColumn.value([String].self, record.links) ?? [])
            : (self.meta(record)?.links.map(\.description) ?? [])
        return ChannelDetail(channel: self.info(record), items: Self.threaded(rows.filter { !$0.removed }.map(self.item)),
            members: members, links: links)
    }

    public func markRead(_ id: String, items: [String]?) throws(SessionError) {
        let record = try self.record(id)
        do { try self.store.markRead(channel: record.id, ids: items) } catch {
            throw .database(action: "mark items read", reason: "\(error)")
        }
    }

    public func setBlocked(_ key: String, _ blocked: Bool) throws(SessionError) {
        guard let k = Hex.decode(key), k.count == 32 else { throw .badRequest("a key is 64 hex digits") }
        do { try self.store.setBlocked(Hex.encode(k), blocked) } catch {
            throw .database(action: "change the block list", reason: "\(error)")
        }
    }

    /// This node's public key (hex): what a group's founder lists to let this node post.
    public func identity() -> [String: String] { ["public_key": Hex.encode(self.publicKey)] }

    /// What `/api/channels/stats` shows: the start-up budget's figures.
    public func stats() -> [String: Int] {
        ["lookups": self.lookups, "fetches_started": self.fetchesStarted, "max_fetches_at_once": self.maxFetchesAtOnce,
         "fetching": self.fetching, "refused": self.refused, "seeding": self.runs.count]
    }

    /// The channel's RSS 2.0 feed, for feed readers.
    public func rss(_ id: String, baseURL: String) throws(SessionError) -> String {
        let d = try self.detail(id)
        func esc(_ s: String) -> String {
            s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
                .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
        }
        var out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<rss version=\"2.0\"><channel>"
        out += "<title>\(esc(d.channel.title))</title><link>\(esc(d.channel.link))</link>"
        out += "<description>\(esc(d.channel.description))</description>"
        for item in d.items.reversed() {
            let date = Date(timeIntervalSince1970: TimeInterval(item.time))
            out += "<item><title>\(esc(item.title))</title><guid isPermaLink=\"false\">\(item.id)</guid>"
            out += "<pubDate>\(Self.rfc822(date))</pubDate>"
            if let body = item.body { out += "<description>\(esc(body))</description>" }
            if let magnet = item.magnet {
                out += "<link>\(esc(magnet))</link>"
                out += "<enclosure url=\"\(esc(magnet))\" length=\"\(item.size ?? 0)\" type=\"application/x-bittorrent\"/>"
            }
            out += "</item>"
        }
        return out + "</channel></rss>\n"
    }

    // MARK: the loop

    private func tick() async {
        let now = ContinuousClock.now
        // One channel at a time: first one whose pointer a peer passed on (no lookup needed), else the one due
        // first, with lookups spaced.
        if let id = self.hints.keys.first(where: { self.due[$0] != nil }) {
            self.due[id] = now + self.jitter(self.configuration.pollInterval)
            await self.update(id)
        } else if self.lastLookup.map({ now - $0 >= self.configuration.lookupSpacing }) ?? true,
            let (id, _) = self.due.filter({ $0.value <= now }).min(by: { $0.value < $1.value })
        {
            self.due[id] = now + self.jitter(self.configuration.pollInterval)
            self.lastLookup = now
            await self.update(id)
        }
        // Re-put every held pointer once per `republishInterval` (sooner after a put no node took), one a second.
        guard self.lastPut.map({ now - $0 >= self.configuration.lookupSpacing }) ?? true else { return }
        for r in (try? self.store.channels()) ?? [] {
            guard let data = r.pointer, let item = Self.decodeItem([UInt8](data)) else { continue }
            if let at = r.putAt, Date() < at + self.configuration.republishInterval.seconds { continue }
            self.lastPut = now
            _ = await self.put(r.id, item)
            break
        }
    }

    /// Looks the pointer up (or takes one a peer passed on) and fetches the revision it names, if newer.
    private func update(_ id: String) async {
        let hint = self.hints.removeValue(forKey: id)
        if var feed = try? self.store.channel(id), feed.kind == "rss" {
            feed.checkedAt = Date()
            try? self.store.save(feed)
            return await self.read(feed: &feed)
        }
        guard var record = try? self.store.channel(id), !record.mine, let link = try? self.link(record),
            let dht = self.dht
        else { return }
        var item = hint?.item
        if item == nil {
            self.lookups += 1
            // Only a newer pointer is sent back (BEP 44 `seq`): an unchanged channel's poll carries no values.
            let outcome = try? await dht.run(.get(target: link.target, salt: link.salt, newerThan: record.seq),
                joinFirst: true)
            if case .item(_, .mutable(let found)?, _) = outcome { item = found }
        }
        record = (try? self.store.channel(id)) ?? record
        record.checkedAt = Date()
        try? self.store.save(record)
        guard let item else {
            record.error = record.seq == nil ? "no pointer found in the DHT yet" : record.error
            try? self.store.save(record)
            return
        }
        let pointer: ChannelPointer
        do { pointer = try ChannelPointer(item: item, link: link, newerThan: record.seq) } catch {
            if case .staleSequence = error {
                try? self.store.save(record)
                return
            }
            return self.refuse(&record, error)
        }
        await self.fetch(&record, link, pointer, from: hint?.peer)
    }

    /// Fetches revision `pointer` names: its info dictionary first, checked; then its new pieces.
    private func fetch(_ record: inout ChannelRecord, _ link: ChannelLink, _ pointer: ChannelPointer, from peer: String?)
        async
    {
        self.fetchesStarted += 1
        self.fetching += 1
        self.maxFetchesAtOnce = max(self.maxFetchesAtOnce, self.fetching)
        defer { self.fetching -= 1 }
        let magnet = MagnetLink(infoHashes: InfoHashes(v1: InfoHashV1(pointer.infoHash), v2: nil))
        guard let info = await self.fetchInfo(magnet, peer: peer, channel: record.id, seq: pointer.sequence) else {
            record.error = "the revision \(pointer.sequence)'s metadata did not arrive"
            try? self.store.save(record)
            return
        }
        guard FeedRevision.isFeed(infoBytes: info) else { return await self.follow(&record, torrent: info, pointer) }
        let revision: FeedRevision
        do { revision = try FeedRevision(infoBytes: info, link: link, limits: self.limitsFor(record)) } catch {
            return self.refuse(&record, error)
        }
        guard revision.storedBytes <= record.quota else {
            return self.refuse(&record, .overQuota(needed: revision.storedBytes, quota: record.quota))
        }
        // The new revision runs beside the old one until it is complete; then the old one's swarm (the channel's
        // other followers) is told of it, by a node that can now serve it, and the old one stops.
        let next = record.id + "#next"
        await self.stopRun(next)
        self.seed(next, revision, seq: pointer.sequence, complete: false, peers: peer.map { [$0] } ?? [])
        guard await self.finished(next) else {
            await self.stopRun(next)
            record.error = "the revision \(pointer.sequence)'s files did not all arrive in time"
            try? self.store.save(record)
            return
        }
        await self.pass(pointer.item, channel: record.id)
        await self.stopRun(record.id)
        self.runs[record.id] = self.runs.removeValue(forKey: next)
        record = (try? self.store.channel(record.id)) ?? record
        await self.read(&record, link, revision, pointer)
        await self.fetchArchives(&record, link, from: revision, pointer, peer: peer)
    }

    /// Reads a complete revision's items and metadata into the database and the index.
    private func read(_ record: inout ChannelRecord, _ link: ChannelLink, _ revision: FeedRevision, _ pointer: ChannelPointer)
        async
    {
        let root = self.folder + "/" + record.id + "/"
        let limits = self.limitsFor(record)
        let known = Set(((try? self.store.items(channel: record.id)) ?? []).map(\.id))
        var meta: ChannelMeta?
        if let m = revision.meta, let bytes = FileManager.default.contents(atPath: root + m.path.joined(separator: "/")) {
            do { meta = try ChannelMeta(bytes: [UInt8](bytes), limits: limits) } catch {
                return self.refuse(&record, error)
            }
        }
        // The posts a feed may hold: the channel's key's own; in a group's feeds, the listed authors'.
        let group = record.groupId.flatMap { try? self.store.channel($0) }
        let target = group.flatMap { try? self.link($0).target.bytes } ?? link.target.bytes
        var rows: [ChannelItemRecord] = []
        var torrents: [[UInt8]] = []
        var position = self.nextPosition(record.id)
        let blocked = self.blocked
        for entry in revision.items {
            guard let idBytes = entry.id, !known.contains(Hex.encode(idBytes)),
                let data = FileManager.default.contents(atPath: root + entry.path.joined(separator: "/"))
            else { continue }
            let bytes = [UInt8](data)
            switch entry.kind {
            case .post:
                let post: Post
                do {
                    post = try Post(bytes: bytes, limits: limits)
                    guard post.id == idBytes else { throw ChannelRefusal.badPost("its file name is not its id") }
                    guard post.channel == target else { throw ChannelRefusal.badPost("it was posted to another channel") }
                    guard !blocked.contains(Hex.encode(post.author)) else {
                        throw ChannelRefusal.blocked(Hex.encode(post.author))
                    }
                    guard post.author == link.publicKey else {
                        throw group != nil ? ChannelRefusal.notAMember(author: Hex.encode(post.author))
                            : ChannelRefusal.badPost("it is signed by another key than the channel's")
                    }
                } catch {
                    self.refused += 1
                    self.log?("channel \(record.id): post \(Hex.encode(idBytes)) refused: \(error)")
                    continue
                }
                rows.append(ChannelItemRecord(
                    channel: record.id, id: Hex.encode(idBytes), kind: "post", position: position, title: post.title,
                    body: post.body, author: Hex.encode(post.author), time: post.time,
                    refs: JSONColumn.text(post.refs.map { Hex.encode($0) }), license: post.license, size: nil, staged: nil,
                    read: false, removed: false))
            case .torrent:
                guard let t = try? TorrentMetainfo(bytes: bytes), Session.indexKey(t) == idBytes else {
                    self.refused += 1
                    continue
                }
                rows.append(ChannelItemRecord(
                    channel: record.id, id: Hex.encode(idBytes), kind: "torrent", position: position, title: t.name,
                    body: nil, author: nil, time: meta?.time ?? Int64(Date().timeIntervalSince1970), refs: nil,
                    license: meta?.licenses[Hex.encode(idBytes)], size: t.totalLength, staged: nil, read: false,
                    removed: false))
                torrents.append(bytes)
            default: continue
            }
            position += 1
        }
        var removedRows: [ChannelItemRecord] = []
        if let meta {
            record.title = meta.title
            record.description = meta.description
            record.kind = meta.kind.rawValue
            let tombs = Set(meta.tombstones.map { Hex.encode($0) })
            removedRows = ((try? self.store.items(channel: record.id)) ?? []).filter { tombs.contains($0.id) && !$0.removed }
                .map { r in
                    var r = r
                    r.removed = true
                    return r
                }
        }
        if !revision.isArchive {
            record.seq = pointer.sequence
            record.info = Data(revision.infoBytes)
            record.pointer = Data(Self.encode(pointer.item))
            record.updatedAt = Date()
            record.error = nil
        }
        do { try self.store.save(record, items: rows + removedRows) } catch {
            self.log?("channel \(record.id): cannot save revision \(pointer.sequence): \(error)")
            return
        }
        self.index.add(torrents.compactMap { try? TorrentMetainfo(bytes: $0) }.map {
            IndexEntry(metainfo: $0, source: .channel, pinned: false)
        })
        // A group's founder lists its authors (and in an open group, its members vouch for more): their feeds are
        // followed too.
        if let group = meta?.kind == .group && record.groupId == nil ? record : record.groupId.flatMap({ try? self.store.channel($0) }) {
            self.followAuthors(group)
        }
        self.log?("channel \(record.title): revision \(pointer.sequence), \(rows.count) new items")
        let announced = record.groupId ?? record.id
        self.emit(ChannelEvent(kind: .updated, channel: announced, seq: pointer.sequence, newItems: rows.map(self.item),
            message: nil))
        _ = await self.put(record.id, pointer.item)
        // Auto-download: the torrents the subscription's rule matches.
        if let rule = JSONColumn.value(FeedRule.self, record.rule) {
            for bytes in torrents {
                guard let t = try? TorrentMetainfo(bytes: bytes), rule.matches(name: t.name, size: t.totalLength) else {
                    continue
                }
                await self.addTorrent(.torrentFile(bytes), rule.folder)
            }
        }
    }

    /// A BEP 46 pointer to a plain torrent (an updatable torrent, not a feed): each revision is added to the
    /// session and downloaded, within the subscription's quota.
    private func follow(_ record: inout ChannelRecord, torrent info: [UInt8], _ pointer: ChannelPointer) async {
        let t: TorrentMetainfo
        let bytes: [UInt8]
        do { (t, bytes) = try TorrentRun.torrent(info: info, magnet: nil) } catch {
            return self.refuse(&record, .badRevision("its info dictionary is not a torrent: \(error)"))
        }
        guard t.totalLength <= record.quota else {
            return self.refuse(&record, .overQuota(needed: t.totalLength, quota: record.quota))
        }
        let row = ChannelItemRecord(
            channel: record.id, id: Hex.encode(Session.indexKey(t)), kind: "torrent", position: self.nextPosition(record.id),
            title: t.name, body: nil, author: nil, time: Int64(Date().timeIntervalSince1970), refs: nil, license: nil,
            size: t.totalLength, staged: nil, read: false, removed: false)
        record.kind = "torrent"
        record.title = t.name
        record.seq = pointer.sequence
        record.info = Data(info)
        record.pointer = Data(Self.encode(pointer.item))
        record.updatedAt = Date()
        record.error = nil
        do { try self.store.save(record, items: [row]) } catch {
            self.log?("channel \(record.id): cannot save revision \(pointer.sequence): \(error)")
            return
        }
        self.index.add([IndexEntry(metainfo: t, source: .channel, pinned: false)])
        await self.addTorrent(.torrentFile(bytes), JSONColumn.value(FeedRule.self, record.rule)?.folder)
        self.log?("channel \(record.id.prefix(8)): revision \(pointer.sequence) is the torrent \(t.name)")
        self.emit(ChannelEvent(kind: .updated, channel: record.id, seq: pointer.sequence, newItems: [self.item(row)],
            message: nil))
        _ = await self.put(record.id, pointer.item)
    }

    private func refuse(_ record: inout ChannelRecord, _ error: ChannelRefusal) {
        self.refused += 1
        record.error = error.description
        try? self.store.save(record)
        self.log?("channel \(record.id): \(error)")
        self.emit(ChannelEvent(kind: .refused, channel: record.groupId ?? record.id, seq: nil, newItems: [],
            message: error.description))
    }

    // MARK: seeding

    /// Opens the revision's files and starts its engine (seeding what is there, fetching the rest).
    private func seed(_ id: String, _ revision: FeedRevision, seq: Int64, complete: Bool, peers: [String] = []) {
        let t: TorrentMetainfo
        let prepared: TorrentRun.Prepared
        do {
            (t, _) = try TorrentRun.torrent(info: revision.infoBytes, magnet: nil)
            prepared = try TorrentRun.prepare(t, directory: self.folder, unselected: [],
                resume: ResumeStore(stateDirectory: self.folder, metainfo: t))
        } catch {
            self.log?("channel \(id): cannot open revision \(seq): \(error)")
            return
        }
        var config = TorrentEngine.Configuration()
        config.seedAfterDownload = true
        // A revision's new part is a few kilobytes that every follower wants at once: all of them get a slot
        // (with 4, the rest waited for a choke round, 10 s, per hop), and no piece is held back for initial
        // seeding, which would refuse a new follower the old pieces nobody else asks for.
        config.uploadSlots = config.maxPeers
        config.initialSeeding = false
        config.extraExtensions = self.configuration.push ? [Self.extensionName] : []
        let log = self.log
        let (engine, done) = TorrentRun.start(t, prepared, on: self.node, configuration: config,
            listenPort: self.listenPort,
            discovery: TorrentRun.Discovery(trackers: [], dht: self.dht != nil, localDiscovery: false, peers: peers),
            setUp: { engine in
                engine.onLog = { line in log?("channel \(id.prefix(8)): \(line)") }
                engine.onExtensionMessage = { [weak self] name, payload, from in
                    guard name == Self.extensionName else { return }
                    Task { await self?.passed(payload, from: from) }
                }
            })
        self.runs[id] = Run(engine: engine, storage: prepared.storage, revision: revision, seq: seq,
            complete: complete || prepared.have.allSet, done: done)
    }

    /// Stops a channel's runs: its head's, and with `archives` its archives' too.
    private func stopRuns(_ id: String) async {
        for key in self.runs.keys where key.hasPrefix(id) { await self.stopRun(key) }
    }

    private func stopRun(_ id: String) async {
        guard let run = self.runs.removeValue(forKey: id) else { return }
        try? await run.engine.saveResumeData().get()
        await self.node.remove(run.engine)
        run.storage.close()
    }

    /// Puts a signed pointer on the DHT; returns how many nodes stored it.
    private func put(_ id: String, _ item: MutableItem) async -> Int {
        guard let dht = self.dht else { return 0 }
        let outcome = try? await dht.run(.put(.mutable(item)), joinFirst: true)
        var stored = 0
        if case .stored(_, let accepted, _) = outcome { stored = accepted.count }
        if var r = try? self.store.channel(id) {
            // No node took it: put it again within half a minute rather than at the next period.
            let retry = min(30, self.configuration.republishInterval.seconds)
            r.putAt = stored > 0 ? Date() : Date() - self.configuration.republishInterval.seconds + retry
            try? self.store.save(r)
        }
        return stored
    }

    // MARK: archives

    /// The key of an archive's run: the channel's id and the archive's info-hash.
    static func runKey(_ id: String, _ archive: FeedRevision) -> String { id + "/" + Hex.encode(archive.infoHash) }

    /// The archives held, newest first.
    private func archives(_ r: ChannelRecord) -> [FeedRevision] {
        guard let data = r.archives, let list = (try? BencodeDecoder().decodeValue([UInt8](data)))?.list,
            let link = try? ChannelLink(parsing: r.link)
        else { return [] }
        return list.compactMap { $0.bytes.flatMap { try? FeedRevision(infoBytes: $0, link: link, limits: self.limitsFor(r)) } }
    }

    static func encodeArchives(_ list: [FeedRevision]) -> [UInt8] {
        BencodeValue.list(list.map { .string($0.infoBytes) }).encoded
    }

    /// Follows a revision's chain of archives (`archive next`) down to the first one already held: each checked,
    /// within the quota, fetched (what the folder does not hold yet) and read like a revision.
    private func fetchArchives(_ record: inout ChannelRecord, _ link: ChannelLink, from head: FeedRevision,
        _ pointer: ChannelPointer, peer: String?) async
    {
        var held = self.archives(record)
        var next = head.archiveNext
        var fetched = 0
        while let magnetText = next, fetched < 64 {
            guard let magnet = try? MagnetLink(parsing: magnetText), let v1 = magnet.infoHashes.v1 else { return }
            if held.contains(where: { $0.infoHash == v1.bytes }) { return }
            guard let info = await self.fetchInfo(magnet, peer: peer, channel: record.id, seq: pointer.sequence) else {
                record.error = "an archive's metadata did not arrive"
                try? self.store.save(record)
                return
            }
            let archive: FeedRevision
            do {
                archive = try FeedRevision(infoBytes: info, link: link, limits: self.limitsFor(record))
                guard archive.isArchive else { throw ChannelRefusal.badRevision("archive next names a head, not an archive") }
            } catch {
                return self.refuse(&record, error as? ChannelRefusal ?? .badRevision("\(error)"))
            }
            let total = head.storedBytes + (held + [archive]).reduce(0) { $0 + $1.storedBytes }
            guard total <= record.quota else { return self.refuse(&record, .overQuota(needed: total, quota: record.quota)) }
            let key = Self.runKey(record.id, archive)
            self.seed(key, archive, seq: pointer.sequence, complete: false, peers: peer.map { [$0] } ?? [])
            guard await self.finished(key) else {
                record.error = "an archive's files did not all arrive in time"
                try? self.store.save(record)
                return
            }
            held.append(archive)
            record.archives = Data(Self.encodeArchives(held))
            await self.read(&record, link, archive, pointer)
            next = archive.archiveNext
            fetched += 1
        }
    }

    /// Waits until the run's files are all there (its download's future), at most `fetchTimeout`; counts the
    /// bytes it fetched.
    private func finished(_ key: String) async -> Bool {
        guard let run = self.runs[key] else { return false }
        let ok = await self.wait(for: run.done, channel: String(key.prefix(40)), seq: run.seq) != nil
            && self.runs[key]?.engine === run.engine
        if let snap = try? await run.engine.snapshot().get() {
            self.downloaded[String(key.prefix(40)), default: 0] += snap.progress.downloaded
        }
        if ok { self.runs[key]?.complete = true }
        return ok
    }

    /// A revision's (or archive's) info dictionary from its swarm, `peer` first; its size is counted.
    private func fetchInfo(_ magnet: MagnetLink, peer: String?, channel id: String, seq: Int64) async -> [UInt8]? {
        let fetcher = TorrentRun.fetchMetadata(magnet, on: self.node, listenPort: self.listenPort,
            discovery: TorrentRun.Discovery(trackers: [], dht: true, localDiscovery: false, peers: peer.map { [$0] } ?? []))
        let info = await self.wait(for: fetcher.infoBytes, channel: id, seq: seq, timeout: self.configuration.metadataTimeout)
        await self.node.remove(fetcher)
        if let info { self.metadataBytes[id, default: 0] += Int64(info.count) }
        return info
    }

    /// What `future` gives, waited for at most `fetchTimeout`; nil sooner when a peer passed on a pointer newer than
    /// `seq` meanwhile (the revision being fetched is stale: its publisher may no longer seed it).
    private func wait<T: Sendable>(
        for future: EventLoopFuture<T>, channel id: String, seq: Int64, timeout: Duration? = nil
    ) async -> T? {
        let deadline = ContinuousClock.now + (timeout ?? self.configuration.fetchTimeout)
        while ContinuousClock.now < deadline {
            do { return try await future.failing(after: .seconds(1), with: { NotYet() }).get() } catch is NotYet {
            } catch {
                return nil  // the fetch itself failed
            }
            if (self.hints[id]?.item.sequence ?? -1) > seq { return nil }
        }
        return nil
    }

    private struct NotYet: Error {}

    /// Payload bytes each channel's revisions and archives fetched since the daemon started, and bytes of info
    /// dictionaries (counted apart).
    private var downloaded: [String: Int64] = [:]
    private var metadataBytes: [String: Int64] = [:]

    // MARK: helpers

    private var publicKey: [UInt8] { Array(self.key.publicKey.rawRepresentation) }

    private var blocked: Set<String> { (try? self.store.blockedKeys()) ?? [] }

    /// The salt of an author's feed in a group: `g/` and the group's id.
    static func authorSalt(group: String) -> [UInt8] { Array("g/\(group)".utf8) }

    private func record(_ id: String) throws(SessionError) -> ChannelRecord {
        let key = (try? ChannelLink(parsing: id))?.id ?? id.lowercased()
        guard let r = try? self.store.channel(key) else { throw .channelNotFound(id: id) }
        return r
    }

    private func link(_ r: ChannelRecord) throws(SessionError) -> ChannelLink {
        do { return try ChannelLink(parsing: r.link) } catch { throw .channelRefused(error) }
    }

    /// A channel this node may post to, and the target its posts name: its own channel, or its feed in a group
    /// it follows (made on the first post).
    private func writable(_ id: String) throws(SessionError) -> (ChannelRecord, [UInt8]) {
        let r = try self.record(id)
        if r.mine { return (r, try self.link(r).target.bytes) }
        guard r.kind == "group" else { throw .conflict("\(r.title) is not this node's channel (its key is another's)") }
        let allowed = Set(self.members(r).map { Hex.encode($0) })
        guard allowed.contains(Hex.encode(self.publicKey)) else {
            throw .conflict("this node's key is not a member of the group \(r.title)")
        }
        let feed: ChannelLink
        do { feed = try ChannelLink(publicKey: self.publicKey, salt: Self.authorSalt(group: r.id)) } catch {
            throw .channelRefused(error)
        }
        if let own = try? self.store.channel(feed.id) { return (own, try self.link(r).target.bytes) }
        let own = ChannelRecord(
            id: feed.id, link: feed.description, mine: true, title: r.title, description: "", kind: "channel", seq: nil,
            info: nil, pointer: nil, createdAt: Date(), updatedAt: nil, checkedAt: nil, putAt: nil, quota: Int64.max,
            rule: nil, groupId: r.id, members: nil, error: nil, archives: nil, links: nil)
        try self.save(own, [])
        return (own, try self.link(r).target.bytes)
    }

    /// A group's authors besides its founder: the founder's list (its own when the group is ours, else its latest
    /// metadata's) and, in an open group, the keys that the founder's listed members vouch for in their feeds'
    /// metadata (one step: a vouched key cannot vouch for another).
    private func members(_ group: ChannelRecord) -> [[UInt8]] {
        guard group.kind == "group", group.groupId == nil, let founder = try? self.link(group).publicKey else { return [] }
        let listed: [[UInt8]]
        let open: Bool
        if group.mine {
            (listed, open) = (self.keys(group), group.open)
        } else {
            guard let meta = self.meta(group) else { return [] }
            (listed, open) = (meta.members, meta.open)
        }
        var all = listed
        if open {
            let voters = Set(listed)
            for author in (try? self.store.channels())?.filter({ $0.groupId == group.id }) ?? [] {
                guard let key = try? ChannelLink(parsing: author.link).publicKey, voters.contains(key) else { continue }
                all += self.meta(author)?.vouches ?? []
            }
        }
        var seen = Set<[UInt8]>()
        return all.filter { $0 != founder && seen.insert($0).inserted }
    }

    /// The keys a record of this node's publishes with its next revision (`ChannelRecord.members`).
    private func keys(_ r: ChannelRecord) -> [[UInt8]] {
        (JSONColumn.value([String].self, r.members) ?? []).compactMap { Hex.decode($0) }
    }

    /// Follows the feed of every author a group admits (this node's own feed is its own already).
    private func followAuthors(_ group: ChannelRecord) {
        for key in self.members(group) where key != self.publicKey {
            guard let feed = try? ChannelLink(publicKey: key, salt: Self.authorSalt(group: group.id)) else { continue }
            _ = try? self.follow(feed, quota: group.mine ? nil : group.quota, rule: nil, groupId: group.id)
        }
    }

    /// The metadata of the revision held.
    private func meta(_ r: ChannelRecord) -> ChannelMeta? {
        guard let info = r.info, let link = try? ChannelLink(parsing: r.link),
            let revision = try? FeedRevision(infoBytes: [UInt8](info), link: link, limits: self.limitsFor(r)),
            let m = revision.meta,
            let bytes = FileManager.default.contents(atPath: self.folder + "/" + r.id + "/" + m.path.joined(separator: "/"))
        else { return nil }
        return try? ChannelMeta(bytes: [UInt8](bytes), limits: self.limitsFor(r))
    }

    /// Recommends another channel from one of this node's (its metadata's `links`, from the next revision).
    public func addLink(_ id: String, link text: String) throws(SessionError) {
        var r = try self.record(id)
        guard r.mine else { throw .conflict("only a channel's publisher adds its links") }
        let link: ChannelLink
        do { link = try ChannelLink(parsing: text) } catch { throw .channelRefused(error) }
        var list = (JSONColumn.value([String].self, r.links) ?? [])
        guard list.count < self.configuration.limits.maxLinks else { throw .conflict("the channel links to as many as it may") }
        if !list.contains(link.description) { list.append(link.description) }
        r.links = JSONColumn.text(list)
        try self.save(r, [])
    }

    /// Lets `key` post to a group: its founder lists it; in an open group, a listed member vouches for it in its
    /// own feed. Either way it counts from the next revision (of the group, or of the member's feed).
    public func addMember(_ id: String, key: String) throws(SessionError) {
        let group = try self.record(id)
        guard group.kind == "group", group.groupId == nil else { throw .conflict("\(group.title) is not a group") }
        guard let k = Hex.decode(key), k.count == 32 else { throw .badRequest("a key is 64 hex digits") }
        var r = group
        if !group.mine {
            let listed = self.meta(group)?.members ?? []
            guard self.meta(group)?.open == true, listed.contains(self.publicKey) else {
                throw .conflict(listed.contains(self.publicKey)
                    ? "\(group.title) is not open: only its founder adds members"
                    : "only a group's founder adds members, and in an open group its listed members vouch for keys")
            }
            (r, _) = try self.writable(id)  // this node's own feed in the group
        }
        var list = self.keys(r)
        guard list.count < self.configuration.limits.maxMembers else { throw .conflict("the list of keys is full") }
        if !list.contains(k) && k != self.publicKey { list.append(k) }
        r.members = JSONColumn.text(list.map { Hex.encode($0) })
        try self.save(r, [])
        if group.mine { self.followAuthors(r) }
    }

    /// Marks one of this node's groups open (or closed again) to the keys its members vouch for, from its next
    /// revision.
    public func setOpen(_ id: String, _ open: Bool) throws(SessionError) {
        var r = try self.record(id)
        guard r.mine, r.kind == "group", r.groupId == nil else { throw .conflict("only a group's founder opens it") }
        r.open = open
        try self.save(r, [])
    }

    private func limitsFor(_ r: ChannelRecord) -> ChannelLimits { self.configuration.limits }

    private func nextPosition(_ channel: String) -> Int64 { ((try? self.store.lastPosition(channel: channel)) ?? -1) + 1 }

    private func save(_ record: ChannelRecord, _ items: [ChannelItemRecord]) throws(SessionError) {
        do { try self.store.save(record, items: items) } catch {
            throw .database(action: "save the channel", reason: "\(error)")
        }
    }

    private func indexTorrents(_ rows: [ChannelItemRecord]) {
        self.index.add(rows.compactMap { $0.staged.flatMap { try? TorrentMetainfo(bytes: [UInt8]($0)) } }.map {
            IndexEntry(metainfo: $0, source: [.own, .channel], pinned: true)
        })
    }

    private func info(_ r: ChannelRecord) -> ChannelInfo {
        let counts = (try? self.store.itemCounts(channel: r.id)) ?? (items: 0, unread: 0, staged: 0)
        let stale = r.updatedAt.map { Date().timeIntervalSince($0) > self.configuration.staleAfter.seconds } ?? false
        return ChannelInfo(
            id: r.id, link: r.link, mine: r.mine, title: r.title, description: r.description, kind: r.kind, seq: r.seq,
            infoHash: r.info.map { Hex.encode(Insecure.SHA1.hash(data: $0)) },
            items: counts.items, unread: counts.unread, staged: counts.staged,
            createdAt: r.createdAt, updatedAt: r.updatedAt, checkedAt: r.checkedAt, stale: stale && !r.mine,
            quota: r.quota, rule: JSONColumn.value(FeedRule.self, r.rule), groupId: r.groupId, error: r.error,
            archives: r.archives.flatMap { try? BencodeDecoder().decodeValue([UInt8]($0)) }?.list?.count ?? 0, downloaded: self.downloaded[r.id] ?? 0,
            metadataBytes: self.metadataBytes[r.id] ?? 0,
            open: r.kind == "group" && r.groupId == nil && (r.mine ? r.open : self.meta(r)?.open == true))
    }

    private func item(_ r: ChannelItemRecord) -> ChannelItem {
        var magnet: String?
        if r.kind == "torrent" { magnet = "magnet:?xt=urn:btih:\(r.id)&dn=\(Self.urlEncoded(r.title))" }
        if r.kind == "link" { magnet = r.body }
        return ChannelItem(
            id: r.id, kind: r.kind, title: r.title, body: r.kind == "link" ? nil : r.body, author: r.author, time: r.time,
            refs: JSONColumn.value([String].self, r.refs) ?? [], depth: 0, license: r.license, size: r.size,
            magnet: magnet, read: r.read, staged: r.staged != nil)
    }

    /// Posts in thread order: each reply after the post it answers (depth one more), threads and torrents in time
    /// order; a reply to a post not held starts a thread of its own.
    static func threaded(_ items: [ChannelItem]) -> [ChannelItem] {
        let ids = Set(items.map(\.id))
        var children: [String: [ChannelItem]] = [:]
        var roots: [ChannelItem] = []
        for i in items.sorted(by: { ($0.time, $0.id) < ($1.time, $1.id) }) {
            if let parent = i.refs.last, ids.contains(parent), parent != i.id {
                children[parent, default: []].append(i)
            } else {
                roots.append(i)
            }
        }
        var out: [ChannelItem] = []
        var visited = Set<String>()
        func walk(_ i: ChannelItem, _ depth: Int) {
            guard visited.insert(i.id).inserted else { return }
            var i = i
            i.depth = depth
            out.append(i)
            for c in children[i.id] ?? [] { walk(c, depth + 1) }
        }
        for r in roots { walk(r, 0) }
        return out
    }

    private func jitter(_ d: Duration) -> Duration {
        let s = d.seconds
        return .milliseconds(Int64(Double.random(in: (s * 750)...(s * 1250), using: &self.rng)))
    }

    static func encode(_ item: MutableItem) -> [UInt8] {
        BencodeValue.dictionary(BencodeDictionary([
            ("k", .string(item.publicKey)), ("salt", .string(item.salt)), ("seq", .integer(item.sequence)),
            ("sig", .string(item.signature)), ("v", item.value),
        ])).encoded
    }

    static func decodeItem(_ bytes: [UInt8]) -> MutableItem? {
        guard let d = (try? BencodeDecoder(limits: .message).decodeValue(bytes))?.dictionary,
            let k = d["k"]?.bytes, let seq = d["seq"]?.integer, let sig = d["sig"]?.bytes, let v = d["v"]
        else { return nil }
        return MutableItem(publicKey: k, salt: d["salt"]?.bytes ?? [], sequence: seq, value: v, signature: sig)
    }


    static func urlEncoded(_ s: String) -> String {
        s.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
    }

    static func rfc822(_ date: Date) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "GMT")
        f.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        return f.string(from: date)
    }
}
