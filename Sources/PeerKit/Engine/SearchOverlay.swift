// Search between Peer nodes with no central index: the peer_search extension (Search.SearchMessage) on
// connections to a rendezvous info-hash that every searching node announces on the DHT.
import Crypto
import Foundation
import Metainfo
import NIOCore
import NIOPosix
import PeerBase
import PeerWire
import Search
import Synchronization
import Tracker

/// How a remote search stands: what `GET /api/search/{id}` and the live events show.
public struct RemoteSearchReport: Sendable, Codable, Equatable {
    public struct Hit: Sendable, Codable, Equatable {
        public var infoHash: String
        public var name: String
        public var size: Int64
        public var files: Int
        public var seeders: Int?
        /// How many nodes, and from how many networks, claimed it.
        public var responders: Int
        public var networks: Int
        /// `unchecked`, `checking`, `verified` (its info dictionary, fetched from a responder, matches the claim).
        public var check: RemoteResults.Check
        public var magnet: String

        enum CodingKeys: String, CodingKey {
            case name, size, files, seeders, responders, networks, check, magnet
            case infoHash = "info_hash"
        }
    }

    public var id: String
    public var query: String
    public var done: Bool
    /// Why asking stopped: enough_results, enough_responders, timeout, exhausted.
    public var stopped: QueryFanout<Int>.Stop?
    public var neighbours: Int
    public var asked: Int
    public var answered: Int
    /// Neighbours that said busy or left before answering.
    public var refused: Int
    /// peer_search bytes received for this search (answers and info dictionaries).
    public var bytesReceived: Int
    /// Hits dropped: without every word, or failing verification.
    public var offTopic: Int
    public var failed: Int
    public var milliseconds: Double
    /// Best first; failed hits are not here.
    public var hits: [Hit]
    /// The index node's part, when the node names one (`peer serve --index-server`; `IndexSearchReport`).
    public var index: IndexSearchReport? = nil

    enum CodingKeys: String, CodingKey {
        case id, query, done, stopped, neighbours, asked, answered, refused, failed, milliseconds, hits, index
        case bytesReceived = "bytes_received"
        case offTopic = "off_topic"
    }
}

/// The node's place in the search overlay. A `PeerHost` for the rendezvous hash: every connection to it is a
/// search neighbour (at most `maxNeighbours`). It answers neighbours' queries from the torrents this node
/// holds (and serves their info dictionaries, so a hit can be checked), and runs this node's own searches:
/// `QueryFanout` picks whom to ask, `RemoteResults` merges and ranks, the top hits are checked by fetching
/// their info dictionary from a responder, and `HitLedger` drops and refuses neighbours whose hits fail.
/// Confined to its event loop.
public final class SearchOverlay: @unchecked Sendable {
    /// The rendezvous info-hash: SHA-1 of "peer-search-v1".
    public static let rendezvous = Array(Insecure.SHA1.hash(data: Array("peer-search-v1".utf8)))

    public struct Configuration: Sendable {
        public var maxNeighbours = 32
        public var fanout = QueryFanout<Int>.Configuration()
        /// Hits checked, best first, until this many at the top are verified.
        public var verifyTop = 10
        /// Networks hits are counted by (tests on one /24 of loopback count each address: `v4Bits: 32`).
        public var prefix = NetworkPrefix()
        /// Queries answered per neighbour (a bucket of `queryBurst`, `queryRate` a second) and overall.
        public var queryRate = 1.0
        public var queryBurst = 10.0
        public var globalQueryRate = 20.0
        /// Index searches running at once for neighbours; beyond that a query is answered busy.
        public var concurrentAnswers = 4
        /// A hit's info dictionary must arrive within this.
        public var verifyTimeout = Duration.seconds(5)
        public init() {}
    }

    public let eventLoop: any EventLoop
    public let configuration: Configuration
    let index: SearchIndex
    let threadPool: NIOThreadPool
    private let epoch = ContinuousClock.now
    /// Neighbours, each with its bucket of queries answered.
    private let links: OverlayLinks<TokenBucket>
    private let nextKey = Atomic<Int>(0)
    /// Info dictionaries of the torrents this node holds, by index key (v1 hash, or v2 for v2-only).
    private var held: [[UInt8]: [UInt8]] = [:]
    private var searches: [UInt64: Running] = [:]
    private var fetches: [UInt64: Fetch] = [:]
    private var ledger = HitLedger<String>()
    private var globalBucket: TokenBucket
    private var answering = 0
    private var timer: RepeatedTask?
    private var lastRefresh: Instant = .zero
    /// Asks the DHT for more neighbours, and dials one (set by the node).
    var refreshNeighbours: (@Sendable () -> Void)?
    var dialer: (@Sendable (String) -> Void)?
    public var onLog: (@Sendable (String) -> Void)?

    private final class Running {
        let query: SearchQuery
        let text: String
        let started: Instant
        var fanout: QueryFanout<Int>
        var results: RemoteResults
        let neighbours: Int
        /// Conn key -> the exchange id sent to it.
        var bytes = 0
        var failed = 0
        var done = false
        let update: @Sendable (RemoteSearchReport) -> Void
        let id: UInt64
        init(id: UInt64, query: SearchQuery, text: String, started: Instant, fanout: QueryFanout<Int>,
            results: RemoteResults, neighbours: Int, update: @escaping @Sendable (RemoteSearchReport) -> Void)
        {
            self.id = id
            self.query = query
            self.text = text
            self.started = started
            self.fanout = fanout
            self.results = results
            self.neighbours = neighbours
            self.update = update
        }
    }

    /// One hit's info dictionary being fetched from a responder.
    private struct Fetch {
        let search: UInt64
        let hit: RemoteHit
        let key: Int
        let host: String
        let deadline: Instant
        var total: Int?
        var pieces: [Int: [UInt8]] = [:]
    }

    init(eventLoop: any EventLoop, index: SearchIndex, threadPool: NIOThreadPool, listenPort: UInt16,
        ownAddresses: OwnAddresses, configuration: Configuration)
    {
        self.eventLoop = eventLoop
        self.index = index
        self.threadPool = threadPool
        self.configuration = configuration
        self.links = OverlayLinks(hash: Self.rendezvous, extensionName: SearchMessage.name, listenPort: listenPort,
            ownAddresses: ownAddresses)
        self.globalBucket = TokenBucket(capacity: configuration.globalQueryRate, rate: configuration.globalQueryRate,
            at: .zero)
        self.timer = eventLoop.scheduleRepeatedTask(initialDelay: .milliseconds(100), delay: .milliseconds(100)) { _ in
            self.tick()
        }
    }

    private var now: Instant { Instant(offset: ContinuousClock.now - self.epoch) }

    // MARK: neighbours

    /// Nodes the DHT named under the rendezvous key: those not connected already (by their listen address),
    /// not refused, are dialled while there is room.
    func discovered(_ addresses: [String]) {
        self.eventLoop.execute {
            let connected = self.links.connectedAddresses
            var room = self.configuration.maxNeighbours - self.links.count
            for address in addresses where room > 0 && !connected.contains(address)
                && !self.links.ownAddresses.contains(address)
            {
                guard let (host, _) = PeerNode.splitHostPort(address), !self.ledger.isBanned(host, at: self.now) else {
                    continue
                }
                room -= 1
                self.dialer?(address)
            }
        }
    }

    // MARK: what this node holds

    /// Offers a torrent to neighbours' searches; its info dictionary is served so that hits can be checked.
    public func hold(_ t: TorrentMetainfo) {
        let key = t.infoHashes.v1?.bytes ?? t.infoHashes.v2!.bytes
        let info = t.infoBytes
        self.eventLoop.execute { self.held[key] = info }
    }

    public func release(infoHash: [UInt8]) {
        self.eventLoop.execute { self.held[infoHash] = nil }
    }

    /// Search neighbours connected now.
    public var neighbourCount: EventLoopFuture<Int> {
        self.eventLoop.submit { self.links.readyCount }
    }

    // MARK: searching

    /// Asks neighbours for `query`; `update` gets the report as answers and checks arrive, the last one `done`.
    public func search(_ query: SearchQuery, text: String, update: @escaping @Sendable (RemoteSearchReport) -> Void)
        -> UInt64
    {
        let id = UInt64.random(in: 1 ... .max)
        self.eventLoop.execute {
            let ready = self.links.ready.keys.shuffled()
            let s = Running(id: id, query: query, text: text, started: self.now,
                fanout: QueryFanout(neighbours: ready, at: self.now, configuration: self.configuration.fanout),
                results: RemoteResults(query: query, prefix: self.configuration.prefix), neighbours: ready.count,
                update: update)
            self.searches[id] = s
            self.advance(s)
        }
        return id
    }

    private func advance(_ s: Running) {
        guard !s.done else { return }
        let now = self.now
        for key in s.fanout.poll(at: now) {
            guard self.links[key] != nil else {
                s.fanout.refused(key, at: now)
                continue
            }
            self.send(.query(id: s.id, text: s.text, max: SearchMessage.maxHits), to: key)
        }
        self.verify(s)
        if s.fanout.stopped != nil && !self.fetches.values.contains(where: { $0.search == s.id })
            && s.results.ranked().prefix(self.configuration.verifyTop).allSatisfy({ $0.check == .verified })
        {
            s.done = true
            self.searches[s.id] = nil
        }
        s.update(self.report(s))
    }

    /// Starts checks of the best unchecked hits.
    private func verify(_ s: Running) {
        for (hit, from) in s.results.nextToVerify(top: self.configuration.verifyTop) {
            guard let (key, c) = self.links.ready.first(where: { $0.value.host == from }) else {
                self.settle(s, hit, verified: false, blame: nil)
                continue
            }
            let fetchID = UInt64.random(in: 1 ... .max)
            self.fetches[fetchID] = Fetch(search: s.id, hit: hit, key: key, host: c.host,
                deadline: self.now + self.configuration.verifyTimeout)
            self.send(.metadataRequest(id: fetchID, infoHash: hit.infoHash, piece: 0), to: key)
        }
    }

    /// The outcome of one check. Only the responder that was asked is blamed for a failure: others may have
    /// repeated a claim they believed.
    private func settle(_ s: Running, _ hit: RemoteHit, verified: Bool, blame host: String?) {
        s.results.settle(hit.infoHash, verified: verified)
        if verified {
            self.index.add([IndexEntry(infoHash: hit.infoHash, name: hit.name, size: hit.size, fileCount: hit.files,
                source: .peer, seeders: hit.seeders, verified: true)])
        } else {
            s.failed += 1
            try? self.index.settle(infoHash: hit.infoHash, verified: false)
        }
        guard let host else { return }
        if self.ledger.record(host, verified: verified, at: self.now) { self.ban(host) }
    }

    private func ban(_ host: String) {
        self.log("dropped search neighbour \(host): most of its hits failed verification; refused for a day")
        for (key, link) in self.links.links where link.host == host { self.links.close(key, at: self.now) }
    }

    private func report(_ s: Running) -> RemoteSearchReport {
        RemoteSearchReport(
            id: String(s.id, radix: 16), query: s.text, done: s.done, stopped: s.fanout.stopped,
            neighbours: s.neighbours, asked: s.fanout.asked, answered: s.fanout.answered, refused: s.fanout.refused,
            bytesReceived: s.bytes, offTopic: s.results.offTopic, failed: s.failed,
            milliseconds: (self.now - s.started).milliseconds,
            hits: s.results.ranked().map { e in
                let hex = Hex.encode(e.hit.infoHash)
                let magnet = SearchHit(infoHash: hex, name: e.hit.name, size: e.hit.size, files: e.hit.files, paths: [],
                    sources: [], verified: false, firstSeen: Date(), lastSeen: Date(), score: 0).magnet
                return .init(infoHash: hex, name: e.hit.name, size: e.hit.size, files: e.hit.files,
                    seeders: e.hit.seeders, responders: e.responders.count, networks: e.networks.count,
                    check: e.check, magnet: magnet)
            })
    }

    // MARK: messages

    private func send(_ m: SearchMessage, to key: Int) { self.links.send(m.encoded(), to: key, at: self.now) }

    private func handle(_ payload: ByteBuffer, from key: Int, _ c: OverlayLinks<TokenBucket>.Link) {
        let bytes = Array(payload.readableBytesView)
        let message: SearchMessage
        do { message = try SearchMessage(decoding: bytes) } catch {
            self.log("dropped search neighbour \(c.host): \(error)")
            self.links.close(key, at: self.now)
            return
        }
        switch message {
        case .query(let id, let text, let max):
            self.answer(id: id, text: text, max: max, key: key, c)
        case .hits(let id, let hits):
            guard let s = self.searches[id] else { return }
            s.bytes += bytes.count
            s.results.add(hits, from: c.host)
            s.fanout.answered(key, infoHashes: hits.map(\.infoHash), at: self.now)
            // Unverified claims go into the index too, labelled: they are findable, and replaced or deleted
            // when checked.
            self.index.add(hits.map {
                IndexEntry(infoHash: $0.infoHash, name: $0.name, size: $0.size, fileCount: $0.files, source: .peer,
                    seeders: $0.seeders, verified: false)
            }.filter { s.results.entry($0.infoHash) != nil })
            self.advance(s)
        case .busy(let id, let retry):
            guard let s = self.searches[id] else { return }
            // Asked again after what it said (1 to 2 s), with jitter so that askers turned away together do not
            // come back together.
            let wait = Duration.milliseconds(Int64(max(1, min(retry, 2)) * 1000 + Int.random(in: 0..<500)))
            s.fanout.busy(key, after: wait, at: self.now)
            self.advance(s)
        case .metadataRequest(let id, let ih, let piece):
            self.serveMetadata(id: id, infoHash: ih, piece: piece, to: key)
        case .metadata(let id, let ih, let piece, let total, let data):
            self.receivedMetadata(id: id, infoHash: ih, piece: piece, total: total, data: data, size: bytes.count)
        case .metadataReject(let id, _, _):
            guard let f = self.fetches.removeValue(forKey: id), let s = self.searches[f.search] else { return }
            // It claimed a torrent it does not hold.
            self.settle(s, f.hit, verified: false, blame: f.host)
            self.advance(s)
        }
    }

    private func answer(id: UInt64, text: String, max: Int, key: Int, _ c: OverlayLinks<TokenBucket>.Link) {
        let now = self.now
        guard c.state.take(at: now), self.globalBucket.take(at: now),
            self.answering < self.configuration.concurrentAnswers,
            let query = try? SearchQuery(text)
        else {
            self.send(.busy(id: id, retryAfter: 2), to: key)
            return
        }
        self.answering += 1
        let held = Set(self.held.keys)
        let index = self.index
        self.threadPool.runIfActive(eventLoop: self.eventLoop) { () -> [SearchHit] in
            (try? index.search(query, limit: max * 2, pinnedOnly: true)) ?? []
        }.whenComplete { result in
            self.answering -= 1
            guard self.links[key] != nil else { return }
            let hits = ((try? result.get()) ?? []).compactMap { h -> RemoteHit? in
                guard let ih = Hex.decode(h.infoHash), held.contains(ih) else { return nil }
                return RemoteHit(infoHash: ih, name: h.name, size: h.size, files: h.files, seeders: h.seeders)
            }
            self.send(.hits(id: id, Array(hits.prefix(max))), to: key)
        }
    }

    private func serveMetadata(id: UInt64, infoHash: [UInt8], piece: Int, to key: Int) {
        guard let info = self.held[infoHash], info.count <= SearchMessage.maxMetadata,
            piece * SearchMessage.pieceSize < info.count
        else {
            self.send(.metadataReject(id: id, infoHash: infoHash, piece: piece), to: key)
            return
        }
        let start = piece * SearchMessage.pieceSize
        let slice = Array(info[start..<min(info.count, start + SearchMessage.pieceSize)])
        self.send(.metadata(id: id, infoHash: infoHash, piece: piece, total: info.count, bytes: slice), to: key)
    }

    private func receivedMetadata(id: UInt64, infoHash: [UInt8], piece: Int, total: Int, data: [UInt8], size: Int) {
        guard var f = self.fetches[id], f.hit.infoHash == infoHash, let s = self.searches[f.search] else { return }
        s.bytes += size
        let count = (total + SearchMessage.pieceSize - 1) / SearchMessage.pieceSize
        let expected = piece == count - 1 ? total - piece * SearchMessage.pieceSize : SearchMessage.pieceSize
        guard f.total == nil || f.total == total, piece < count, data.count == expected else {
            self.fetches[id] = nil
            self.settle(s, f.hit, verified: false, blame: f.host)
            self.advance(s)
            return
        }
        if f.total == nil {
            // The first piece told the size: ask for the rest at once.
            for p in 1..<max(1, count) { self.send(.metadataRequest(id: id, infoHash: infoHash, piece: p), to: f.key) }
        }
        f.total = total
        f.pieces[piece] = data
        guard f.pieces.count == count else {
            self.fetches[id] = f
            return
        }
        self.fetches[id] = nil
        let info = (0..<count).flatMap { f.pieces[$0]! }
        self.settle(s, f.hit, verified: RemoteResults.matches(f.hit, info: info), blame: f.host)
        self.advance(s)
    }

    // MARK: ticking

    private func tick() {
        let now = self.now
        self.links.tick(at: now)
        for (id, f) in self.fetches where now >= f.deadline {
            self.fetches[id] = nil
            // Slow is not lying: the hit is dropped from this search, its responder not blamed.
            if let s = self.searches[f.search] { self.settle(s, f.hit, verified: false, blame: nil) }
        }
        for s in Array(self.searches.values) {
            if let d = s.fanout.deadline, now >= d { self.advance(s) }
            else if s.fanout.stopped != nil { self.advance(s) }
        }
        let neighbours = self.links.readyCount
        if neighbours < self.configuration.maxNeighbours, now - self.lastRefresh >= .seconds(30) {
            self.lastRefresh = now
            self.refreshNeighbours?()
        }
        if Int(now.offset.components.seconds) % 60 == 0 { self.ledger.purge(at: now) }
    }

    func log(_ line: String) { self.onLog?(line) }
}

extension SearchOverlay: DHTOverlay {
    var handshakeHashes: [[UInt8]] { [Self.rendezvous] }

    func announceRequest(event: AnnounceRequest.Event) -> AnnounceRequest? { nil }

    func reserveKey() -> Int { self.nextKey.wrappingAdd(1, ordering: .relaxed).oldValue }

    func attach(_ channel: any Channel, role: PeerWireSession.Role, key reserved: Int?) {
        self.eventLoop.preconditionInEventLoop()
        let host = channel.remoteAddress?.ipAddress ?? "?"
        guard self.links.count < self.configuration.maxNeighbours, !self.ledger.isBanned(host, at: self.now),
            !self.links.links.values.contains(where: { $0.host == host && $0.channel.remoteAddress == channel.remoteAddress })
        else {
            channel.close(promise: nil)
            return
        }
        let key = reserved ?? self.reserveKey()
        self.links.attach(channel, role: role, key: key,
            state: TokenBucket(capacity: self.configuration.queryBurst, rate: self.configuration.queryRate, at: self.now),
            at: self.now)
        if reserved == nil { _ = channel.pipeline.addHandler(PeerChannelHandler(host: self, key: key)) }
    }

    func key(of channel: any Channel) -> Int { self.links.key(of: channel) }

    func received(_ key: Int, _ bytes: ByteBuffer) {
        for event in self.links.received(key, bytes, at: self.now) {
            switch event {
            case .ready: break
            case .message(let k, let payload): if let c = self.links[k] { self.handle(payload, from: k, c) }
            case .replaced(let k): self.disconnected(k)
            case .closed(let k, let reason):
                if let reason, let c = self.links[k] { self.log("dropped search neighbour \(c.host): \(reason)") }
            }
        }
    }

    func disconnected(_ key: Int) {
        guard self.links.remove(key) != nil else { return }
        let now = self.now
        // A check waiting on this connection ends now, unblamed.
        for (id, f) in self.fetches where f.key == key {
            self.fetches[id] = nil
            if let s = self.searches[f.search] { self.settle(s, f.hit, verified: false, blame: nil) }
        }
        for s in Array(self.searches.values) {
            s.fanout.refused(key, at: now)
            self.advance(s)
        }
    }

    func writabilityChanged(_ key: Int) {}

    func stop() -> EventLoopFuture<Void> {
        self.eventLoop.submit {
            self.timer?.cancel()
            self.links.closeAll()
            for s in self.searches.values {
                s.done = true
                s.update(self.report(s))
            }
            self.searches = [:]
        }
    }
}

extension PeerNode {
    /// Joins the search overlay: registers the rendezvous hash, announces it on the DHT and dials the nodes the
    /// DHT names (again every 30 s while it has fewer than `maxNeighbours`: a node that joined early learns of
    /// those that came after it).
    public func startSearchOverlay(index: SearchIndex, listenPort: Int,
        configuration: SearchOverlay.Configuration = .init()) -> SearchOverlay
    {
        let overlay = SearchOverlay(eventLoop: self.group.next(), index: index, threadPool: self.threadPool,
            listenPort: UInt16(clamping: listenPort), ownAddresses: self.ownAddresses, configuration: configuration)
        self.join(overlay, listenPort: listenPort)
        return overlay
    }

    /// Dials a search neighbour by address ("host:port"), as the DHT would.
    public func dialSearchNeighbour(_ overlay: SearchOverlay, _ address: String) { self.dial(overlay, address) }
}
