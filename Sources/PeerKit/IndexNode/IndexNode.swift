// The index node (`peer serve --index`): the Napster/OpenNAP role, optional. Nodes tell it what they share in
// signed announces; it answers keyword searches with those torrents and the peers that have them.
import Foundation
import Metainfo
import PeerBase
import Search

/// Why an index node refused an announce or a query.
public enum IndexNodeError: Error, Sendable, CustomStringConvertible {
    /// The body is not a good announce (size, rows, form, signature).
    case announce(IndexAnnounceError)
    /// A good announce the gate does not take now (stale, replay, too frequent, refused key, …).
    case refused(AnnounceGate.Refusal)
    /// The query cannot be searched for.
    case query(SearchError)
    case database(String)

    public var description: String {
        switch self {
        case .announce(let e): e.description
        case .refused(let r): r.description
        case .query(let e): e.description
        case .database(let why): "the index node's database failed: \(why)"
        }
    }
}

/// An index node: it takes signed announces (`IndexAnnounce`) through `AnnounceGate`, keeps the torrents they
/// claim in its own `SearchIndex` (source `index`, unverified) and who claims each in `IndexNodeStore`, and
/// answers searches with the torrents and their announcers' peer addresses.
///
/// Claims are sampled: of each announce's claims new for its key, `AnnounceGate.checks` are checked by fetching
/// the info dictionary from the announcer alone over BEP 9 (`PeerNode.fetchInfo`). A claim that passes makes its
/// row verified, with the dictionary's own name, size and paths; one that fails (no answer, another dictionary, a
/// name or size that differs) is dropped, and a key whose checks keep failing is refused and its claims dropped.
/// An announcer not heard from for `claimLifetime` is forgotten with its claims.
public actor IndexNode {
    public struct Configuration: Sendable {
        /// The index node's folder (`STATE/index-node`): `index.sqlite` and `claims.sqlite`.
        public var directory: String
        public var gate = AnnounceGate.Configuration()
        /// A claim's info dictionary must arrive within this.
        public var checkTimeout = Duration.seconds(20)
        public var concurrentChecks = 4
        /// Checks waiting at most; beyond this an announce's claims go unchecked.
        public var maxQueuedChecks = 5000
        /// Seconds an announcer's claims last without a new announce (sharing nodes announce every 10 minutes).
        public var claimLifetime: Int64 = 3600
        public var index = SearchIndex.Configuration()
        public var log: (@Sendable (String) -> Void)?

        public init(directory: String) { self.directory = directory }
    }

    /// What `POST /announce` answers when it takes an announce.
    public struct Receipt: Sendable, Codable, Equatable {
        /// Torrents the key claims now, how many of them it did not claim before, and how many of those are checked.
        public var accepted: Int
        public var new: Int
        public var checking: Int
        /// Seconds until this key's next announce is taken.
        public var interval: Int64
    }

    /// What `GET /stats` answers.
    public struct Statistics: Sendable, Codable, Equatable {
        public var rows: Int
        public var verified: Int
        public var announcers: Int
        public var claims: Int
        public var checksPassed: Int
        public var checksFailed: Int
        public var checksRunning: Int
        public var checksQueued: Int
        /// Keys refused since start because their claims failed.
        public var refusedKeys: Int

        enum CodingKeys: String, CodingKey {
            case rows, verified, announcers, claims
            case checksPassed = "checks_passed"
            case checksFailed = "checks_failed"
            case checksRunning = "checks_running"
            case checksQueued = "checks_queued"
            case refusedKeys = "refused_keys"
        }
    }

    /// One claim to check: `key` at `host:port` says it has `torrent`.
    private struct Check: Sendable {
        var key: [UInt8]
        var host: String
        var port: Int
        var torrent: IndexAnnounce.Torrent
    }

    public let configuration: Configuration
    public nonisolated let index: SearchIndex
    let store: IndexNodeStore
    private var gate: AnnounceGate
    private let node: PeerNode
    private let listenPort: Int
    private var queue: [Check] = []
    private var checks: [Int: Task<Void, Never>] = [:]
    private var nextCheck = 0
    private var passed = 0
    private var failed = 0
    private var refusedKeys = 0
    private var sweeper: Task<Void, Never>?
    private var stopped = false

    /// Opens (or creates) the index node's folder. Claims are checked over `node` (the daemon's), whose peers
    /// listen on `listenPort`.
    public init(configuration: Configuration, node: PeerNode, listenPort: Int) throws {
        self.configuration = configuration
        try FileManager.default.createDirectory(atPath: configuration.directory, withIntermediateDirectories: true)
        let indexPath = configuration.directory + "/index.sqlite"
        try SessionStore.restrictMode(indexPath)
        self.index = try SearchIndex(path: indexPath, configuration: configuration.index)
        self.store = try IndexNodeStore(path: configuration.directory + "/claims.sqlite")
        self.gate = AnnounceGate(configuration: configuration.gate)
        self.node = node
        self.listenPort = listenPort
    }

    /// Forgets silent announcers once a minute.
    public func start() {
        self.sweeper = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(60))
                await self?.sweep(now: Int64(Date().timeIntervalSince1970))
            }
        }
    }

    /// Stops checking.
    public func shutdown() async {
        self.stopped = true
        self.sweeper?.cancel()
        let running = Array(self.checks.values)
        for t in running { t.cancel() }
        for t in running { await t.value }
        try? self.index.flush()
    }

    // MARK: announces

    /// Takes a signed announce that came from `host`.
    /// - Throws: `IndexNodeError.announce` for bytes that are not a good announce, `.refused` for one the gate
    ///   does not take now, `.database`.
    public func announce(_ body: [UInt8], from host: String, now: Date = Date()) throws(IndexNodeError) -> Receipt {
        let a: IndexAnnounce
        do { a = try IndexAnnounce(verifying: body) } catch { throw .announce(error) }
        let seconds = Int64(now.timeIntervalSince1970)
        if let refusal = self.gate.admit(key: a.publicKey, host: host, time: a.time, now: seconds) {
            throw .refused(refusal)
        }
        let new: [[UInt8]]
        do {
            let claims = try self.store.replaceClaims(key: a.publicKey, host: host, port: a.port,
                torrents: a.torrents.map { ($0.infoHash, $0.seeding) }, at: seconds)
            new = claims.new
            // Written at once (not batched): an announce is searchable when it is answered.
            try self.index.write(a.torrents.map {
                IndexEntry(infoHash: $0.infoHash, name: $0.name, size: $0.size, fileCount: $0.files, source: .indexNode,
                    verified: false, seenAt: now)
            })
            try self.index.remove(infoHashes: claims.orphans)
        } catch {
            throw .database("\(error)")
        }
        let fresh = Set(new)
        let candidates = a.torrents.filter { fresh.contains($0.infoHash) }.shuffled()
        let count = min(self.gate.checks(newClaims: candidates.count),
            max(0, self.configuration.maxQueuedChecks - self.queue.count))
        for t in candidates.prefix(count) {
            self.queue.append(Check(key: a.publicKey, host: host, port: a.port, torrent: t))
        }
        self.pump()
        return Receipt(accepted: a.torrents.count, new: new.count, checking: count,
            interval: self.configuration.gate.interval)
    }

    private func pump() {
        while !self.stopped, self.checks.count < self.configuration.concurrentChecks, !self.queue.isEmpty {
            let c = self.queue.removeFirst()
            let id = self.nextCheck
            self.nextCheck += 1
            let (node, timeout, listenPort) = (self.node, self.configuration.checkTimeout, self.listenPort)
            self.checks[id] = Task {
                let info = try? await node.fetchInfo(infoHash: c.torrent.infoHash, from: c.host, port: c.port,
                    timeout: timeout, listenPort: listenPort)
                self.checked(id, c, info: info)
            }
        }
    }

    /// A check's outcome: the row verified with the dictionary's own fields, or the claim dropped and its key
    /// told on.
    private func checked(_ id: Int, _ c: Check, info: [UInt8]?) {
        self.checks[id] = nil
        guard !self.stopped else { return }
        let t = c.torrent
        let hit = RemoteHit(infoHash: t.infoHash, name: t.name, size: t.size, files: t.files)
        let verified = info.map { RemoteResults.matches(hit, info: $0) } ?? false
        let address = c.host.contains(":") ? "[\(c.host)]:\(c.port)" : "\(c.host):\(c.port)"
        if verified, let info, let metainfo = try? TorrentMetainfo(infoBytes: info) {
            self.passed += 1
            // Withdrawn while it was checked: nothing to verify any more.
            if (try? self.store.peers(of: [t.infoHash])[t.infoHash]?.contains { $0.address == address }) == true {
                var entry = IndexEntry(metainfo: metainfo, source: .indexNode, pinned: false)
                entry.infoHash = t.infoHash
                try? self.index.write([entry])
            }
        } else {
            self.failed += 1
            let why = info == nil ? "did not send its info dictionary" : "sent an info dictionary of another name or size"
            self.log("index node: \(address) claims \(t.name) (\(Hex.encode(t.infoHash))) but \(why); claim dropped")
            if (try? self.store.dropClaim(key: c.key, infoHash: t.infoHash)) == true {
                try? self.index.remove(infoHashes: [t.infoHash])
            }
        }
        if self.gate.checked(key: c.key, verified: verified, now: Int64(Date().timeIntervalSince1970)) {
            self.refusedKeys += 1
            self.queue.removeAll { $0.key == c.key }
            if let (orphans, _) = try? self.store.drop(keys: [c.key]) { try? self.index.remove(infoHashes: orphans) }
            self.log("index node: refused the key \(Hex.encode(c.key)) of \(address): most of its checked claims failed")
        }
        self.pump()
    }

    /// Forgets announcers silent for `claimLifetime`, with their claims, and refusals that ran out.
    func sweep(now: Int64) {
        if let (orphans, keys) = try? self.store.drop(silentSince: now - self.configuration.claimLifetime) {
            try? self.index.remove(infoHashes: orphans)
            for k in keys { self.gate.forget(k) }
        }
        self.gate.purge(now: now)
    }

    private func log(_ line: String) { self.configuration.log?(line) }

    // MARK: queries

    /// The best `limit` torrents for `text` after the first `offset`, with their announcers; the newest when
    /// `text` has no words (an empty Torznab query).
    public func search(_ text: String, limit: Int, offset: Int = 0) throws(IndexNodeError) -> [IndexHit] {
        let limit = max(1, min(limit, 500))
        let want = min(500, max(0, offset) + limit)
        let hits: [SearchHit]
        do {
            if SearchQuery.words(text).isEmpty {
                hits = try self.index.newest(limit: want)
            } else {
                let query: SearchQuery
                do { query = try SearchQuery(text) } catch { throw IndexNodeError.query(error) }
                hits = try self.index.search(query, limit: want)
            }
        } catch let e as IndexNodeError {
            throw e
        } catch {
            throw .database("\(error)")
        }
        let page = Array(hits.dropFirst(max(0, offset)).prefix(limit))
        let peers: [[UInt8]: [IndexNodeStore.Peer]]
        do { peers = try self.store.peers(of: page.compactMap { Hex.decode($0.infoHash) }) } catch {
            throw .database("\(error)")
        }
        return page.compactMap { h in
            guard let ih = Hex.decode(h.infoHash), let list = peers[ih], !list.isEmpty else { return nil }
            var h = h
            h.seeders = list.count { $0.seed }
            h.leechers = list.count { !$0.seed }
            return IndexHit(hit: h, peers: list.map(\.address))
        }
    }

    public func statistics() throws(IndexNodeError) -> Statistics {
        do {
            let s = try self.index.statistics()
            let (announcers, claims) = try self.store.counts()
            return Statistics(rows: s.rows, verified: s.verified, announcers: announcers, claims: claims,
                checksPassed: self.passed, checksFailed: self.failed, checksRunning: self.checks.count,
                checksQueued: self.queue.count, refusedKeys: self.refusedKeys)
        } catch {
            throw .database("\(error)")
        }
    }
}
