// A node's link to an index node (`peer serve --index-server URL`): it announces the torrents this node shares,
// signed with the node's key, and asks the index node beside its search neighbours, checking what it shows.
import AsyncHTTPClient
import Crypto
import Foundation
import Metainfo
import PeerBase
import Search
import Synchronization

/// The index node's part of a remote search: `index` in `GET /api/search/{id}` (the neighbours' hits stay in
/// `hits`). Its hits are claims until checked: `check` goes `unchecked` → `checking` → `verified` once the info
/// dictionary, fetched from an announcer over BEP 9, matches the claim's hash, name and size; hits that fail are
/// dropped (counted in `failed`).
public struct IndexSearchReport: Sendable, Codable, Equatable {
    public struct Hit: Sendable, Codable, Equatable {
        public var infoHash: String
        public var name: String
        public var size: Int64
        public var files: Int
        /// Announcers that have it all, and those that have part of it.
        public var seeders: Int?
        public var leechers: Int?
        /// The announcers' peer addresses.
        public var peers: [String]
        /// Always "index": the hit came from an index node.
        public var source: String
        public var check: RemoteResults.Check
        /// The magnet link with the hash, name and the announcers (`x.pe`).
        public var magnet: String

        enum CodingKeys: String, CodingKey {
            case name, size, files, seeders, leechers, peers, source, check, magnet
            case infoHash = "info_hash"
        }
    }

    /// The index node asked.
    public var server: String
    public var done: Bool
    /// Why the index node gave no answer.
    public var error: String?
    public var failed: Int
    public var milliseconds: Double
    /// Verified first, then in the index node's order.
    public var hits: [Hit]
}

/// The node's link to one index node.
///
/// - **Announcing.** At start and whenever the torrents it shares change (a torrent starts downloading or seeding,
///   completes, stops or goes; `settle` after the last change), and every `announceEvery` besides, it sends the
///   index node an `IndexAnnounce` of its running torrents but private ones (`Session.shareable`), signed with the
///   node's key (`STATE/node-key`), never more often than the index node takes them (its answer says when).
/// - **Searching.** A remote search asks the index node too (`GET /search`). Its hits go into the node's index as
///   claims (source `index`), and the best `verifyTop` are checked by fetching the info dictionary from their
///   announcers (`PeerNode.fetchInfo`), as neighbours' hits are.
public final class IndexServerLink: Sendable {
    public struct Configuration: Sendable {
        /// The index node's address, `http://HOST:PORT`.
        public var url: String
        /// The node's key file; nil is `STATE/node-key` (created on first start).
        public var keyPath: String?
        public var announceEvery = Duration.seconds(600)
        /// Changes that come close together make one announce: it goes this long after the last.
        public var settle = Duration.seconds(2)
        /// How long to wait before announcing again after an index node that cannot be reached or refused.
        public var retryAfter = Duration.seconds(60)
        public var queryTimeout = Duration.seconds(10)
        public var checkTimeout = Duration.seconds(10)
        /// Hits checked, best first, and the announcers asked for each (in turn, until one answers).
        public var verifyTop = 10
        public var peersPerCheck = 3
        public var queryLimit = 50

        public init(url: String) {
            self.url = url.hasSuffix("/") ? String(url.dropLast()) : url
        }
    }

    public let configuration: Configuration
    let key: Curve25519.Signing.PrivateKey
    private let log: (@Sendable (String) -> Void)?
    private let state = Mutex<State>(State())
    static let keptSearches = 32

    private struct State {
        var searches: [(id: String, report: IndexSearchReport)] = []
        var tasks: [Int: Task<Void, Never>] = [:]
        var nextTask = 0
        /// The shared torrents may have changed since the last announce, last at `changedAt`.
        var dirty = true
        var changedAt = ContinuousClock.now
    }

    init(configuration: Configuration, stateDirectory: String, log: (@Sendable (String) -> Void)?) throws {
        self.configuration = configuration
        self.key = try NodeKey.loadOrCreate(configuration.keyPath ?? stateDirectory + "/" + NodeKey.fileName)
        self.log = log
    }

    /// The public key index nodes know this node by, in hex.
    public var publicKey: String { NodeKey.publicHex(self.key) }

    // MARK: running

    func start(_ session: Session) {
        self.spawn { await self.announceLoop(session) }
    }

    func stop() async {
        let tasks = self.state.withLock { s in
            defer { s.tasks = [:] }
            return Array(s.tasks.values)
        }
        for t in tasks { t.cancel() }
        for t in tasks { await t.value }
    }

    private func spawn(_ body: @escaping @Sendable () async -> Void) {
        self.state.withLock { s in
            let id = s.nextTask
            s.nextTask += 1
            s.tasks[id] = Task {
                await body()
                _ = self.state.withLock { $0.tasks.removeValue(forKey: id) }
            }
        }
    }

    // MARK: announcing

    private func changed() {
        self.state.withLock {
            $0.dirty = true
            $0.changedAt = ContinuousClock.now
        }
    }

    /// Watches the session's events for changes to what it shares, and announces (see the type's comment).
    private func announceLoop(_ session: Session) async {
        let events = await session.subscribe()
        let watcher = Task {
            var states: [String: TorrentState] = [:]
            for await event in events {
                switch event {
                case .added(let s), .updated(let s), .completed(let s):
                    if states.updateValue(s.state, forKey: s.id) != s.state { self.changed() }
                case .removed(let id):
                    states[id] = nil
                    self.changed()
                default:
                    break
                }
            }
        }
        defer { watcher.cancel() }
        var announced: [[UInt8]: Bool]?
        var nextAllowed = ContinuousClock.now
        var nextPeriodic = ContinuousClock.now + self.configuration.announceEvery
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(1))
            let now = ContinuousClock.now
            let (dirty, changedAt) = self.state.withLock { ($0.dirty, $0.changedAt) }
            guard now >= nextAllowed,
                (dirty && now - changedAt >= self.configuration.settle) || now >= nextPeriodic
            else { continue }
            self.state.withLock { $0.dirty = false }
            let torrents = await self.shared(session)
            let set = Dictionary(torrents.map { ($0.infoHash, $0.seeding) }, uniquingKeysWith: { a, _ in a })
            if now < nextPeriodic && set == (announced ?? [:]) { continue }
            if set.isEmpty && (announced ?? [:]).isEmpty {
                // Nothing shared, nothing to withdraw.
                nextPeriodic = now + self.configuration.announceEvery
                continue
            }
            switch await self.announce(torrents, port: await session.listenPort, client: session.node.httpClient) {
            case .taken(let interval):
                announced = set
                nextPeriodic = now + self.configuration.announceEvery
                nextAllowed = now + interval
            case .later(let wait):
                self.changed()
                nextAllowed = now + wait
            }
        }
    }

    /// The torrents the session shares (`Session.shareable`), as an announce lists them.
    private func shared(_ session: Session) async -> [IndexAnnounce.Torrent] {
        await session.shareable().map { t, complete in
            let e = IndexEntry(metainfo: t, source: .own, pinned: false)
            return IndexAnnounce.Torrent(infoHash: e.infoHash, name: e.name, size: e.size, files: e.fileCount,
                seeding: complete)
        }
    }

    enum Outcome {
        /// Taken; the next one is taken after this long.
        case taken(Duration)
        /// Not taken now; try again after this long.
        case later(Duration)
    }

    /// Signs and sends one announce.
    func announce(_ torrents: [IndexAnnounce.Torrent], port: Int, client: HTTPClient) async -> Outcome {
        let url = self.configuration.url + "/announce"
        let retry = self.configuration.retryAfter
        let signed: (announce: IndexAnnounce, body: [UInt8])
        do {
            signed = try IndexAnnounce.fitting(torrents, key: self.key, port: port,
                time: Int64(Date().timeIntervalSince1970))
        } catch {
            self.log?("index server \(url): cannot sign the announce: \(error)")
            return .later(retry)
        }
        let response: PeerHTTP.Response
        do {
            response = try await PeerHTTP.send(client, method: .POST, url: url,
                headers: [("Content-Type", "application/octet-stream")], body: signed.body, limit: 64 << 10,
                timeout: .seconds(30), accept: Set(200..<500))
        } catch {
            self.log?("index server \(url): cannot announce: \(error)")
            return .later(retry)
        }
        if response.status.code == 200,
            let receipt = try? APIJSON.decoder.decode(IndexNode.Receipt.self, from: Data(response.body))
        {
            let cut = torrents.count - signed.announce.torrents.count
            self.log?("index server \(url): announced \(receipt.accepted) torrents (\(receipt.new) new)"
                + (cut > 0 ? "; \(cut) left out (an announce holds \(IndexAnnounce.maxTorrents) torrents, "
                    + "\(IndexAnnounce.maxBytes) bytes)" : ""))
            return .taken(Self.wait(receipt.interval))
        }
        let message = (try? APIJSON.decoder.decode(ErrorBody.self, from: Data(response.body)))?.error.message
            ?? "HTTP \(response.status.code)"
        let after = response.headers.first(name: "retry-after").flatMap { Int64($0) }
        self.log?("index server \(url): the announce was refused: \(message)")
        return .later(after.map(Self.wait) ?? retry)
    }

    /// A wait the index node asks for, from a second to a day.
    static func wait(_ seconds: Int64) -> Duration { .seconds(min(86_400, max(1, seconds))) }

    private struct ErrorBody: Decodable {
        struct Inner: Decodable { var message: String }
        var error: Inner
    }

    // MARK: searching

    /// The index node's part of remote search `id`, if it was asked.
    func report(_ id: String) -> IndexSearchReport? {
        self.state.withLock { s in s.searches.last { $0.id == id }?.report }
    }

    private func update(_ id: String, _ change: (inout IndexSearchReport) -> Void) {
        self.state.withLock { s in
            guard let i = s.searches.lastIndex(where: { $0.id == id }) else { return }
            change(&s.searches[i].report)
        }
    }

    /// Asks the index node for `text` as part of remote search `id`; the session hears of every change.
    func search(_ id: String, text: String, session: Session) {
        self.state.withLock { s in
            s.searches.append((id, IndexSearchReport(server: self.configuration.url, done: false, error: nil, failed: 0,
                milliseconds: 0, hits: [])))
            if s.searches.count > Self.keptSearches { s.searches.removeFirst() }
        }
        self.spawn { await self.run(id, text: text, session: session) }
    }

    private func run(_ id: String, text: String, session: Session) async {
        let started = ContinuousClock.now
        let notify: @Sendable () async -> Void = {
            self.update(id) { $0.milliseconds = (ContinuousClock.now - started).milliseconds }
            await session.indexSearchUpdated(id)
        }
        var query = URLComponents(string: self.configuration.url + "/search")
        query?.queryItems = [URLQueryItem(name: "q", value: text),
            URLQueryItem(name: "limit", value: String(self.configuration.queryLimit))]
        let answer: IndexAnswer
        do {
            guard let url = query?.url?.absoluteString else { throw HTTPFetchError.transport("invalid URL") }
            let response = try await PeerHTTP.get(session.node.httpClient, url: url, limit: 4 << 20,
                timeout: self.configuration.queryTimeout)
            answer = try APIJSON.decoder.decode(IndexAnswer.self, from: Data(response.body))
        } catch {
            self.update(id) {
                $0.error = "\(error)"
                $0.done = true
            }
            return await notify()
        }
        // What the index node says is a claim like any other: hashes of the two lengths, each once.
        var seen: Set<String> = []
        let hits = answer.hits.filter { h in
            guard let ih = Hex.decode(h.hit.infoHash), ih.count == 20 || ih.count == 32 else { return false }
            return seen.insert(h.hit.infoHash.lowercased()).inserted
        }.prefix(self.configuration.queryLimit)
        self.update(id) { r in
            r.hits = hits.map { h in
                IndexSearchReport.Hit(infoHash: h.hit.infoHash, name: h.hit.name, size: h.hit.size, files: h.hit.files,
                    seeders: h.hit.seeders, leechers: h.hit.leechers, peers: h.peers, source: "index",
                    check: .unchecked, magnet: h.magnet)
            }
        }
        // Claims are findable here too, labelled, until checked.
        session.index.add(hits.compactMap { h in
            Hex.decode(h.hit.infoHash).map {
                IndexEntry(infoHash: $0, name: h.hit.name, size: h.hit.size, fileCount: h.hit.files, source: .indexNode,
                    seeders: h.hit.seeders, leechers: h.hit.leechers, verified: false)
            }
        })
        await notify()
        await self.verify(id, session: session, notify: notify)
        self.update(id) { $0.done = true }
        await notify()
    }

    /// Checks the best `verifyTop` hits that did not fail, until each is verified or failed.
    private func verify(_ id: String, session: Session, notify: @escaping @Sendable () async -> Void) async {
        while !Task.isCancelled {
            var batch: [IndexSearchReport.Hit] = []
            self.update(id) { r in
                for i in r.hits.indices.prefix(self.configuration.verifyTop) where r.hits[i].check == .unchecked {
                    r.hits[i].check = .checking
                    batch.append(r.hits[i])
                }
            }
            guard !batch.isEmpty else { return }
            await notify()
            await withTaskGroup(of: (String, TorrentMetainfo?).self) { group in
                for hit in batch {
                    group.addTask { (hit.infoHash, await self.check(hit, node: session.node)) }
                }
                for await (hex, metainfo) in group {
                    guard let ih = Hex.decode(hex) else { continue }
                    if let metainfo {
                        var entry = IndexEntry(metainfo: metainfo, source: .indexNode, pinned: false)
                        entry.infoHash = ih
                        session.index.add([entry])
                    } else {
                        try? session.index.settle(infoHash: ih, verified: false)
                    }
                    self.update(id) { r in
                        guard let i = r.hits.firstIndex(where: { $0.infoHash == hex }) else { return }
                        if metainfo != nil {
                            r.hits[i].check = .verified
                        } else {
                            r.hits.remove(at: i)
                            r.failed += 1
                        }
                        // Verified first; otherwise the index node's order.
                        let order = Dictionary(r.hits.enumerated().map { ($1.infoHash, $0) }, uniquingKeysWith: min)
                        r.hits.sort { a, b in
                            (a.check == .verified) != (b.check == .verified)
                                ? a.check == .verified : order[a.infoHash]! < order[b.infoHash]!
                        }
                    }
                    await notify()
                }
            }
        }
    }

    /// The hit's torrent when an announcer sends an info dictionary that matches the claim; nil otherwise.
    private func check(_ hit: IndexSearchReport.Hit, node: PeerNode) async -> TorrentMetainfo? {
        guard let ih = Hex.decode(hit.infoHash) else { return nil }
        let claim = RemoteHit(infoHash: ih, name: hit.name, size: hit.size, files: hit.files)
        for address in hit.peers.prefix(self.configuration.peersPerCheck) {
            guard let (host, port) = PeerNode.splitHostPort(address),
                let info = try? await node.fetchInfo(infoHash: ih, from: host, port: port,
                    timeout: self.configuration.checkTimeout)
            else { continue }
            // The dictionary hashes to the claim (the fetch checked that); its name and size must be the claim's.
            return RemoteResults.matches(claim, info: info) ? try? TorrentMetainfo(infoBytes: info) : nil
        }
        return nil
    }
}

extension Session {
    /// `report` with the index node's part, when this node has one: done when both parts are.
    func withIndex(_ report: RemoteSearchReport) -> RemoteSearchReport {
        guard let part = self.indexLink?.report(report.id) else { return report }
        var r = report
        r.index = part
        r.done = report.done && part.done
        return r
    }

    /// The index node's part of a remote search changed: subscribers get the whole report.
    func indexSearchUpdated(_ id: String) {
        guard let r = self.remoteSearches.last(where: { $0.id == id })?.report else { return }
        self.emit(.search(self.withIndex(r)))
    }
}
