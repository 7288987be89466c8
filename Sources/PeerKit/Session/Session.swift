import Bencode
import DHT
import Dispatch
import Foundation
import Metainfo
import NIOCore
import PeerBase
import Search
import Storage
import SystemPackage

/// A node with many torrents that outlive the process: what `peer serve` runs and programs embed.
///
/// Torrents, their options, resume data and settings live in SQLite (`STATE/peer.sqlite`, `SessionStore`).
/// On start every torrent comes back as it was — downloading, seeding, paused, or still fetching a magnet
/// link's metadata — and resume data written at most a few seconds before a crash or `kill -9` spares the
/// recheck of unchanged files.
///
/// The actor owns the bookkeeping; the engines run on the node's event loops. Every change that waits on
/// the network or the disk bumps the torrent's generation first, so a result that arrives after a pause or
/// a removal is dropped, not applied.
public actor Session {
    public struct Configuration: Sendable {
        public var stateDirectory: String
        /// Where torrents are saved unless added with a save path (a setting; this is its first value).
        public var downloadDirectory: String
        /// Folders besides `downloadDirectory` where the API may save torrents (`peer serve --allow-path`);
        /// every save path and download folder the API sends must lead into one of them.
        public var allowedSavePaths: [String] = []
        /// The local address for peers, trackers and the DHT (tests give each node its own 127.0.0.x).
        public var bindHost: String?
        /// The TCP port for peers and the UDP port of the DHT; 0 picks a free one.
        public var port = 6881
        public var dht = true
        /// Well-known DHT routers: asked first, never kept.
        public var dhtRouters: [String] = []
        /// Ordinary DHT nodes to join through (kept in the table when they answer).
        public var dhtNodes: [String] = []
        /// BEP 42 checking and BEP 43 read-only mode.
        public var dhtPolicy = DHTService.Policy()
        public var localDiscovery = true
        /// How message stream encryption is used.
        public var encryption = EncryptionMode.enabled
        /// What outgoing peer connections try, in order.
        public var transports = PeerTransport.defaultOrder
        /// Map the listen port on the home router (PCP, NAT-PMP, UPnP IGD).
        public var portMapping = true
        /// Join the search overlay: answer neighbours' searches from this node's torrents, and search theirs.
        public var search = true
        /// Search neighbours to dial besides those the DHT names ("host:port").
        public var searchNeighbours: [String] = []
        /// The overlay's limits, and the networks hits are counted by.
        public var searchOverlay = SearchOverlay.Configuration()
        /// Fill the index from the DHT (`peer serve --harvest`), within `harvestBudget`. Off by default.
        public var harvest = false
        public var harvestQueriesPerSecond = 20.0
        public var harvestConcurrentFetches = 4
        public var harvestFetchTimeout = Duration.seconds(15)
        /// An index node to announce this node's torrents to and to search beside the neighbours
        /// (`peer serve --index-server`); nil: none.
        public var indexServer: IndexServerLink.Configuration?
        /// Channels: publish this node's, follow others' (needs the DHT).
        public var channels = true
        public var channelConfiguration = ChannelService.Configuration()
        /// Lines worth logging (a torrent's errors, peers dropped).
        public var log: (@Sendable (String) -> Void)?

        public init(stateDirectory: String, downloadDirectory: String) {
            self.stateDirectory = stateDirectory
            self.downloadDirectory = downloadDirectory
        }
    }

    public let configuration: Configuration
    public nonisolated let node: PeerNode
    let store: SessionStore
    /// The keyword index (`STATE/index.sqlite`): every torrent the node knows, found by the words of its name.
    public nonisolated let index: SearchIndex
    /// The node's place among search neighbours (nil with `search` off).
    public private(set) var overlay: SearchOverlay?
    private var harvester: Harvester?
    /// The node's channels and subscriptions (nil with channels or the DHT off).
    public private(set) var channels: ChannelService?
    /// Remote searches of the last while, newest last (at most `keptSearches`).
    var remoteSearches: [(id: String, report: RemoteSearchReport)] = []
    /// The link to the index node, when the node names one (Session+IndexServer.swift).
    let indexLink: IndexServerLink?
    static let keptSearches = 32
    public private(set) var listenPort = 0
    var dht: DHTService?
    private var torrents: [String: Managed] = [:]
    private var aliases: [String: String] = [:]
    private var subscribers: [Int: AsyncStream<SessionEvent>.Continuation] = [:]
    private var nextSubscriber = 0
    private var ticker: Task<Void, Never>?
    /// Set when `shutdown` begins: nothing starts after it. A call suspended meanwhile (a tick's rebalance, an
    /// engine whose data check ends) would otherwise start an engine on the node's loops after they stopped.
    private var closing = false
    private var settings: SessionSettings
    private let startedAt = ContinuousClock.now
    private var lastCounterSave = ContinuousClock.now
    /// Data checks run one at a time (a recheck reads every byte), off the actor.
    private let checkQueue = DispatchQueue(label: "peer.session.check")
    public static let version = "0.1.0"

    /// Opens (or creates) the state folder and its database; `start()` brings the torrents back.
    public init(configuration: Configuration) throws {
        self.configuration = configuration
        try FileManager.default.createDirectory(atPath: configuration.stateDirectory, withIntermediateDirectories: true)
        self.store = try SessionStore(path: configuration.stateDirectory + "/peer.sqlite")
        // Its own file: it grows to millions of rows, and its batched writes never wait on the torrents' table.
        try SessionStore.restrictMode(configuration.stateDirectory + "/index.sqlite")
        self.index = try SearchIndex(path: configuration.stateDirectory + "/index.sqlite")
        var settings = SessionSettings(downloadDir: configuration.downloadDirectory)
        if let data = try? self.store.setting("settings"),
            var saved = try? JSONDecoder().decode(SessionSettings.self, from: data)
        {
            // Values no longer accepted (a negative rate saved by an older version) fall back to none.
            if (saved.maxDownloadRate ?? 0) < 0 { saved.maxDownloadRate = nil }
            if (saved.maxUploadRate ?? 0) < 0 { saved.maxUploadRate = nil }
            if (saved.seedRatioLimit ?? 0) < 0 { saved.seedRatioLimit = nil }
            if (saved.seedTimeLimit ?? 0) < 0 { saved.seedTimeLimit = nil }
            saved.maxActiveDownloads = max(1, saved.maxActiveDownloads)
            settings = saved
        }
        self.settings = settings
        self.node = PeerNode(bindHost: configuration.bindHost, encryption: configuration.encryption,
            transports: configuration.transports)
        self.indexLink = try configuration.indexServer.map {
            try IndexServerLink(configuration: $0, stateDirectory: configuration.stateDirectory, log: configuration.log)
        }
    }

    // MARK: lifecycle

    /// Listens for peers, joins the DHT, and starts every torrent that is not paused.
    public func start() async throws {
        self.listenPort = try await self.node.listen(port: self.configuration.port)
        if self.configuration.portMapping {
            let log = self.configuration.log
            self.node.startPortMapping(port: self.listenPort) { log?($0) }
        }
        if self.configuration.dht {
            var known: [DHTEndpoint] = []
            if let saved = try? self.store.setting("dht-nodes"),
                let list = try? BencodeDecoder().decodeValue([UInt8](saved)).list
            {
                known = list.prefix(1000).compactMap { $0.bytes.flatMap { DHTEndpoint(compact: $0) } }
            }
            do {
                self.dht = try await self.node.startDHT(port: self.listenPort, routers: self.configuration.dhtRouters,
                    nodes: self.configuration.dhtNodes, knownNodes: known, policy: self.configuration.dhtPolicy)
            } catch {
                self.log("the DHT is off: \(error)")
            }
        }
        for record in try self.store.torrents() {
            let m = Managed(record: record)
            if let bytes = record.metainfo {
                do {
                    m.metainfo = try Self.metainfo(bytes: [UInt8](bytes), magnet: record.magnet)
                } catch {
                    m.error = .metadata(error, from: .database)
                }
            }
            if let resume = record.resume, let t = m.metainfo {
                m.have = try? ResumeData(bytes: [UInt8](resume), pieceCount: PieceMap(t).pieceCount,
                    fileCount: t.files.count).pieces
            }
            self.torrents[record.id] = m
            if let alias = record.alias { self.aliases[alias] = record.id }
        }
        if self.configuration.search {
            let overlay = self.node.startSearchOverlay(index: self.index, listenPort: self.listenPort,
                configuration: self.configuration.searchOverlay)
            overlay.onLog = self.configuration.log
            self.overlay = overlay
            for address in self.configuration.searchNeighbours { self.node.dialSearchNeighbour(overlay, address) }
        }
        if self.configuration.harvest, let dht = self.dht {
            var budget = HarvestPlan.Budget()
            budget.queriesPerSecond = max(1, self.configuration.harvestQueriesPerSecond)
            budget.concurrentFetches = max(1, self.configuration.harvestConcurrentFetches)
            budget.fetchTimeout = self.configuration.harvestFetchTimeout
            let harvester = Harvester(dht: dht, node: self.node, index: self.index, listenPort: self.listenPort,
                budget: budget, log: self.configuration.log)
            await harvester.start()
            self.harvester = harvester
        } else if self.configuration.harvest {
            self.log("harvesting needs the DHT, which is off")
        }
        if self.configuration.channels {
            do {
                let service = try ChannelService(
                    configuration: self.configuration.channelConfiguration, store: self.store, node: self.node,
                    dht: self.dht, index: self.index, listenPort: self.listenPort,
                    stateDirectory: self.configuration.stateDirectory,
                    emit: { [weak self] event in Task { await self?.emit(.channel(event)) } },
                    addTorrent: { [weak self] source, folder in await self?.addFromRule(source, folder: folder) },
                    log: self.configuration.log)
                await service.start()
                self.channels = service
            } catch {
                self.log("channels are off: \(error)")
            }
        }
        self.indexTorrents(self.torrents.values.compactMap(\.metainfo))
        self.rebalance()
        self.indexLink?.start(self)
        self.ticker = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                await self?.tick()
            }
        }
    }

    /// Saves everything and stops every torrent, the DHT and the node.
    public func shutdown() async {
        self.closing = true
        self.ticker?.cancel()
        await self.harvester?.stop()
        await self.channels?.stop()
        await self.indexLink?.stop()
        for m in self.torrents.values { await self.deactivate(m) }
        self.saveCounters()
        try? self.index.flush()
        if let dht = self.dht {
            let nodes = await dht.knownNodes()
            if !nodes.isEmpty {
                let bytes = BencodeEncoder.encode(.list(nodes.prefix(1000).map { .string($0.compact) }))
                try? self.store.setSetting("dht-nodes", Data(bytes))
            }
        }
        await self.node.shutdown()
        for c in self.subscribers.values { c.finish() }
        self.subscribers = [:]
    }

    // MARK: events

    /// Live changes, from now on, until the caller stops iterating. A slow reader loses the oldest.
    public func subscribe() -> AsyncStream<SessionEvent> {
        let (stream, continuation) = AsyncStream<SessionEvent>.makeStream(bufferingPolicy: .bufferingNewest(4096))
        let key = self.nextSubscriber
        self.nextSubscriber += 1
        self.subscribers[key] = continuation
        continuation.onTermination = { _ in Task { await self.unsubscribe(key) } }
        return stream
    }

    private func unsubscribe(_ key: Int) { self.subscribers[key] = nil }

    func emit(_ event: SessionEvent) {
        for c in self.subscribers.values { c.yield(event) }
    }

    private func log(_ line: String) { self.configuration.log?(line) }

    /// The folders given at start, not the `download_dir` setting: the API changes that one.
    private var saveFolders: SaveFolders {
        SaveFolders(roots: [self.configuration.downloadDirectory] + self.configuration.allowedSavePaths)
    }

    // MARK: adding and removing

    /// Adds a torrent; it starts at once unless `options.paused`.
    /// - Throws: `SessionError.notAMagnetLink`, `.metadata` or `.fetchFailed` for a source that is not a torrent,
    ///   `.badRequest` for a bad save path, `.alreadyAdded` when it is there.
    public func add(_ source: TorrentSource, options: AddOptions = AddOptions()) async throws(SessionError) -> TorrentStatus {
        // Checked before a URL is fetched: a request that cannot succeed makes no connection.
        let category = try options.category.map(Self.categoryName)
        let tags = try Self.tagList(options.tags)
        let known = try category.flatMap(self.category)
        let savePath = options.savePath ?? known?.savePath ?? self.settings.downloadDir
        try self.saveFolders.check(savePath, field: "save_path")
        try Self.checkLimits(options.maxDownloadRate, options.maxUploadRate, options.ratioLimit, options.seedTimeLimit)
        var magnetText: String?
        var magnet: MagnetLink?
        var metainfo: TorrentMetainfo?
        var fileBytes: [UInt8]?
        switch source {
        case .magnet(let text):
            do { magnet = try MagnetLink(parsing: text) } catch { throw .notAMagnetLink(error) }
            magnetText = text
        case .torrentFile(let bytes):
            do { metainfo = try TorrentMetainfo(bytes: bytes) } catch { throw .metadata(error, from: .upload) }
            fileBytes = bytes
        case .url(let url):
            guard url.hasPrefix("http://") || url.hasPrefix("https://") else {
                throw .badRequest("only http:// and https:// URLs can be fetched")
            }
            let response: PeerHTTP.Response
            do {
                response = try await PeerHTTP.get(self.node.httpClient, url: url, limit: Self.maxTorrentBytes,
                    timeout: .seconds(30))
            } catch {
                throw .fetchFailed(url: url, error as? HTTPFetchError ?? HTTPFetchError(error))
            }
            do { metainfo = try TorrentMetainfo(bytes: response.body) } catch {
                throw .metadata(error, from: .url(url))
            }
            fileBytes = response.body
        }
        guard let hashes = metainfo?.infoHashes ?? magnet?.infoHashes else { throw .badRequest("no info-hash") }
        let id = hashes.id
        let alias = hashes.v1 != nil ? hashes.v2?.hex : nil
        if self.find(id) != nil || alias.map({ self.find($0) != nil }) == true {
            throw .alreadyAdded(id: id)
        }
        let name = metainfo?.name ?? magnet?.displayName ?? id
        let record = TorrentRecord(id: id, alias: alias, name: name, magnet: magnetText,
            metainfo: fileBytes.map { Data($0) }, savePath: savePath, paused: options.paused,
            sequential: options.sequential, priorities: nil,
            maxDownloadRate: options.maxDownloadRate.flatMap { $0 == 0 ? nil : $0 },
            maxUploadRate: options.maxUploadRate.flatMap { $0 == 0 ? nil : $0 }, ratioLimit: options.ratioLimit,
            seedTimeLimit: options.seedTimeLimit,
            queuePosition: (self.torrents.values.map(\.record.queuePosition).max() ?? -1) + 1,
            trackers: nil, addedAt: APIJSON.now(), completedAt: nil, downloaded: 0, uploaded: 0, seedingSeconds: 0,
            resume: nil, category: category, tags: Self.encodeTags(tags), forceStart: options.forceStart,
            firstLastPieces: options.firstLastPiecePriority)
        if let category, known == nil { try self.createCategory(category, savePath: nil) }
        do { try self.store.save(record) } catch { throw .database(action: "save the torrent", reason: "\(error)") }
        let m = Managed(record: record)
        m.metainfo = metainfo
        for w in metainfo?.warnings ?? [] { self.log("\(name): \(w.message)") }
        self.torrents[id] = m
        if let alias { self.aliases[alias] = id }
        if let metainfo { self.indexTorrents([metainfo]) }
        self.rebalance()
        let status = self.status(m)
        self.emit(.added(status))
        return status
    }

    /// A torrent an auto-download rule matched (a channel's or an RSS feed's): added unless it is there.
    func addFromRule(_ source: TorrentSource, folder: String?) async {
        do {
            let status = try await self.add(source, options: AddOptions(savePath: folder))
            self.log("\(status.name): added by a rule")
        } catch .alreadyAdded {
        } catch {
            self.log("a rule's torrent was not added: \(error)")
        }
    }

    /// The .torrent file of a torrent the session holds (a magnet link's, once its metadata came).
    public func torrentFile(_ id: String) throws(SessionError) -> [UInt8] {
        let m = try self.get(id)
        guard let data = m.record.metainfo else { throw .noMetadataYet(id: m.record.id, what: "its .torrent file") }
        return [UInt8](data)
    }

    /// The channel service, or why there is none.
    public func channelService() throws(SessionError) -> ChannelService {
        guard let c = self.channels else {
            throw self.dht == nil ? .dhtOff : .unavailable("channels are off (--no-channels)")
        }
        return c
    }

    // MARK: search

    /// The torrents the session holds go into the index, pinned, as verified: their info dictionaries are here.
    private func indexTorrents(_ list: [TorrentMetainfo]) {
        self.index.add(list.map { IndexEntry(metainfo: $0, source: .added, pinned: true) })
        // A private torrent (BEP 27) is shared only through its trackers: never offered to search neighbours.
        for t in list where !t.isPrivate { self.overlay?.hold(t) }
    }

    static func indexKey(_ t: TorrentMetainfo) -> [UInt8] { t.infoHashes.v1?.bytes ?? t.infoHashes.v2!.bytes }

    /// What an index node may be told this node shares: torrents whose engine runs (it answers peers), but not
    /// private ones (BEP 27: shared only through their trackers), each with whether it is complete.
    func shareable() -> [(metainfo: TorrentMetainfo, complete: Bool)] {
        self.torrents.values.compactMap { m in
            guard case .running = m.runtime, let t = m.metainfo, !t.isPrivate else { return nil }
            return (t, m.isComplete)
        }
    }

    /// The best `limit` torrents of the index for `text`, best first; with `remote`, also starts a search among
    /// the node's neighbours, whose id the answer carries.
    public func search(_ text: String, limit: Int = 50, remote: Bool = false) throws(SessionError) -> SearchResults {
        let query: SearchQuery
        do { query = try SearchQuery(text) } catch { throw .badRequest(error.description) }
        let start = ContinuousClock.now
        let hits: [SearchHit]
        do { hits = try self.index.search(query, limit: limit) } catch {
            throw .database(action: "search the index", reason: "\(error)")
        }
        let took = ContinuousClock.now - start
        var remoteID: String?
        if remote {
            guard let overlay = self.overlay else { throw .conflict("search among peers is off on this node") }
            let id = overlay.search(query, text: text) { report in Task { await self.remoteUpdate(report) } }
            remoteID = String(id, radix: 16)
            self.remember(RemoteSearchReport(id: remoteID!, query: text, done: false, stopped: nil, neighbours: 0,
                asked: 0, answered: 0, refused: 0, bytesReceived: 0, offTopic: 0, failed: 0, milliseconds: 0, hits: []))
            self.indexLink?.search(remoteID!, text: text, session: self)
        }
        return SearchResults(query: text, terms: query.terms, hits: hits,
            milliseconds: took.milliseconds, remote: remoteID)
    }

    /// A remote search's report as it stands.
    public func remoteSearch(_ id: String) throws(SessionError) -> RemoteSearchReport {
        guard let r = self.remoteSearches.last(where: { $0.id == id.lowercased() })?.report else {
            throw .searchNotFound(id: id)
        }
        return self.withIndex(r)
    }

    private func remoteUpdate(_ report: RemoteSearchReport) {
        // A late report of a search whose final one came already is dropped.
        if let old = self.remoteSearches.last(where: { $0.id == report.id })?.report, old.done { return }
        self.remember(report)
        self.emit(.search(self.withIndex(report)))
    }

    private func remember(_ report: RemoteSearchReport) {
        self.remoteSearches.removeAll { $0.id == report.id }
        self.remoteSearches.append((report.id, report))
        if self.remoteSearches.count > Self.keptSearches { self.remoteSearches.removeFirst() }
    }

    /// What the index holds.
    public func indexStatistics() async throws(SessionError) -> SearchIndex.Statistics {
        var stats: SearchIndex.Statistics
        do { stats = try self.index.statistics() } catch {
            throw .database(action: "read the index", reason: "\(error)")
        }
        stats.neighbours = try? await self.overlay?.neighbourCount.get()
        stats.harvest = await self.harvester?.statistics()
        return stats
    }

    /// A .torrent file (an upload or a URL's body) of at most this many bytes.
    public static let maxTorrentBytes = 16 << 20

    /// Removes a torrent; with `deleteData`, its files too (only the files it names, under its save path).
    public func remove(_ id: String, deleteData: Bool) async throws(SessionError) {
        let m = try self.get(id)
        self.torrents[m.record.id] = nil
        if let alias = m.record.alias { self.aliases[alias] = nil }
        await self.deactivate(m)
        do { try self.store.delete(id: m.record.id) } catch {
            throw .database(action: "forget the torrent", reason: "\(error)")
        }
        if deleteData, let t = m.metainfo { Self.deleteFiles(of: t, in: m.record.savePath) }
        // It stays findable (the node knew it) until evicted like any other row.
        if let t = m.metainfo {
            try? self.index.unpin(infoHash: Self.indexKey(t))
            self.overlay?.release(infoHash: Self.indexKey(t))
        }
        self.emit(.removed(id: m.record.id))
        self.rebalance()
    }

    // MARK: reading

    /// Every torrent, in queue order.
    public func list() -> [TorrentStatus] {
        self.torrents.values.sorted { $0.record.queuePosition < $1.record.queuePosition }.map { self.status($0) }
    }

    public func status(_ id: String) throws(SessionError) -> TorrentStatus { self.status(try self.get(id)) }

    public func detail(_ id: String) throws(SessionError) -> TorrentDetail {
        let m = try self.get(id)
        var files: [FileStatus] = []
        var pieces: PiecesStatus?
        if let t = m.metainfo {
            let map = m.pieceMap!
            let priorities = m.priorities
            let have = m.currentHave
            for f in t.files {
                let range = map.pieces(ofFile: f.index)
                let done = have.map { h in range.reduce(0) { $0 + (h[$1] ? 1 : 0) } } ?? 0
                files.append(FileStatus(index: f.index, path: f.path.joined(separator: "/"), length: f.length,
                    priority: priorities[f.index] ?? .normal,
                    progress: range.isEmpty ? 1 : Double(done) / Double(range.count), padding: f.isPadding,
                    mime: MediaType.of(f.path.last ?? "")))
            }
            let bits = have ?? Bitfield(count: map.pieceCount)
            pieces = PiecesStatus(count: map.pieceCount, length: map.pieceLength, have: bits.setCount,
                bitfield: Data(bits.bytes).base64EncodedString())
        }
        let peers = (m.snapshot?.peers ?? []).map {
            PeerStatus(address: $0.address, client: $0.client, progress: $0.progress,
                downloadRate: Int64($0.downloadRate), outgoing: $0.outgoing, transport: $0.transport,
                packetSize: $0.packetSize)
        }
        var trackers: [TrackerStatus] = []
        for (tier, urls) in self.trackerTiers(m).enumerated() {
            for url in urls { trackers.append(TrackerStatus(url: url, tier: tier)) }
        }
        return TorrentDetail(summary: self.status(m), files: files, peers: peers, trackers: trackers, pieces: pieces,
            maxDownloadRate: m.record.maxDownloadRate, maxUploadRate: m.record.maxUploadRate,
            ratioLimit: m.record.ratioLimit, seedTimeLimit: m.record.seedTimeLimit,
            queuePosition: m.record.queuePosition, magnet: m.record.magnet, seedingSeconds: m.record.seedingSeconds)
    }

    public func stats() async -> SessionStats {
        let all = self.torrents.values
        var s = SessionStats(torrents: all.count, active: 0, downloadRate: 0, uploadRate: 0, downloaded: 0,
            uploaded: 0, peers: 0, listenPort: self.listenPort, dhtNodes: 0,
            uptime: (ContinuousClock.now - self.startedAt).components.seconds, version: Self.version)
        for m in all {
            if case .running = m.runtime { s.active += 1 }
            s.downloadRate += m.downRate
            s.uploadRate += m.upRate
            s.downloaded += m.totalDownloaded
            s.uploaded += m.totalUploaded
            s.peers += m.snapshot?.progress.peers ?? 0
        }
        if let dht = self.dht, let d = await dht.stats() { s.dhtNodes = d.ipv4Nodes + d.ipv6Nodes }
        s.utpConnections = await self.node.utpConnections()
        s.portMapping = self.node.portMapping
        return s
    }

    public func currentSettings() -> SessionSettings { self.settings }

    /// Replaces the settings (a caller changing a few reads `currentSettings()` first).
    public func updateSettings(_ s: SessionSettings) throws(SessionError) -> SessionSettings {
        var s = s
        try self.saveFolders.check(s.downloadDir, field: "download_dir")
        guard s.maxActiveDownloads >= 1 else { throw .badRequest("max_active_downloads must be at least 1") }
        // Every engine started later takes these limits: a negative rate would stop it on RateLimiter's
        // precondition (the whole process, on every start once saved), a negative seeding limit pause it at once.
        if let r = s.maxDownloadRate, r < 0 { throw .badRequest("max_download_rate must not be negative") }
        if let r = s.maxUploadRate, r < 0 { throw .badRequest("max_upload_rate must not be negative") }
        if let r = s.seedRatioLimit, r < 0 { throw .badRequest("seed_ratio_limit must not be negative") }
        if let r = s.seedTimeLimit, r < 0 { throw .badRequest("seed_time_limit must not be negative") }
        if s.maxDownloadRate == 0 { s.maxDownloadRate = nil }
        if s.maxUploadRate == 0 { s.maxUploadRate = nil }
        do { try self.store.setSetting("settings", JSONEncoder().encode(s)) } catch {
            throw .database(action: "save the settings", reason: "\(error)")
        }
        let limitsChanged = s.maxDownloadRate != self.settings.maxDownloadRate || s.maxUploadRate != self.settings.maxUploadRate
        self.settings = s
        if limitsChanged {
            for m in self.torrents.values where m.record.maxDownloadRate == nil || m.record.maxUploadRate == nil {
                Task { await self.restart(m) }
            }
        }
        self.rebalance()
        return s
    }

    // MARK: changing

    /// The torrent limits an add or an update may set: none negative.
    static func checkLimits(_ down: Int64?, _ up: Int64?, _ ratio: Double?, _ seedTime: Int64?) throws(SessionError) {
        if let down, down < 0 { throw .badRequest("max_download_rate must not be negative") }
        if let up, up < 0 { throw .badRequest("max_upload_rate must not be negative") }
        if let ratio, ratio < 0 { throw .badRequest("ratio_limit must not be negative") }
        if let seedTime, seedTime < 0 { throw .badRequest("seed_time_limit must not be negative") }
    }

    public func pause(_ id: String) async throws(SessionError) -> TorrentStatus {
        let m = try self.get(id)
        m.record.paused = true
        m.record.forceStart = false
        try self.persist(m)
        await self.deactivate(m)
        self.rebalance()
        return self.changed(m)
    }

    public func resume(_ id: String) throws(SessionError) -> TorrentStatus {
        let m = try self.get(id)
        m.record.paused = false
        m.record.forceStart = false
        m.error = nil
        try self.persist(m)
        self.rebalance()
        return self.changed(m)
    }

    /// Forgets the resume data and checks every piece on disk again.
    public func recheck(_ id: String) async throws(SessionError) -> TorrentStatus {
        let m = try self.get(id)
        let wasActive = !m.runtime.isIdle
        await self.deactivate(m)
        m.record.resume = nil
        m.have = nil
        try? self.store.clearResume(id: m.record.id)
        if wasActive { self.activate(m) }
        return self.changed(m)
    }

    /// Moves the torrent's files to `savePath` (renamed, or copied when on another file system).
    public func move(_ id: String, to savePath: String) async throws(SessionError) -> TorrentStatus {
        let m = try self.get(id)
        try self.saveFolders.check(savePath, field: "save_path")
        let wasActive = !m.runtime.isIdle
        await self.deactivate(m)
        if let t = m.metainfo, let top = t.files.first?.path.first {
            let from = m.record.savePath + "/" + top
            let to = savePath + "/" + top
            // Moving to where the files are is nothing to do (rename would say the target exists).
            let same = FilePath(from).lexicallyNormalized() == FilePath(to).lexicallyNormalized()
            if !same && FileManager.default.fileExists(atPath: from) {
                do {
                    try FileManager.default.createDirectory(atPath: savePath, withIntermediateDirectories: true)
                    try FileManager.default.moveItem(atPath: from, toPath: to)
                    // The bytes of skipped files that share pieces with wanted ones go along.
                    let parts = "/.\(m.record.id).parts"
                    try? FileManager.default.moveItem(atPath: m.record.savePath + parts, toPath: savePath + parts)
                } catch {
                    if wasActive { self.activate(m) }
                    throw .moveFailed(from: from, to: savePath, reason: error.localizedDescription)
                }
            }
        }
        m.record.savePath = savePath
        try self.persist(m)
        if wasActive { self.activate(m) }
        return self.changed(m)
    }

    public func update(_ id: String, _ change: TorrentUpdate) async throws(SessionError) -> TorrentStatus {
        let m = try self.get(id)
        try Self.checkLimits(change.maxDownloadRate ?? nil, change.maxUploadRate ?? nil, change.ratioLimit ?? nil,
            change.seedTimeLimit ?? nil)
        var restart = false
        if let v = change.sequential, v != m.record.sequential { m.record.sequential = v; restart = true }
        if let v = change.firstLastPiecePriority, v != m.record.firstLastPieces {
            m.record.firstLastPieces = v
            restart = true
        }
        if let v = change.forceStart {
            m.record.forceStart = v
            if v { m.record.paused = false; m.error = nil }
        }
        if let v = change.maxDownloadRate { m.record.maxDownloadRate = v == 0 ? nil : v; restart = true }
        if let v = change.maxUploadRate { m.record.maxUploadRate = v == 0 ? nil : v; restart = true }
        if let v = change.ratioLimit { m.record.ratioLimit = v }
        if let v = change.seedTimeLimit { m.record.seedTimeLimit = v }
        if let v = change.category {
            let name = try v.map(Self.categoryName)
            if let name, try self.category(name) == nil { try self.createCategory(name, savePath: nil) }
            m.record.category = name
        }
        if let v = change.tags { m.record.tags = Self.encodeTags(try Self.tagList(v)) }
        if let position = change.queuePosition {
            var order = self.torrents.values.sorted { $0.record.queuePosition < $1.record.queuePosition }
            order.removeAll { $0 === m }
            order.insert(m, at: max(0, min(position, order.count)))
            for (i, t) in order.enumerated() where t.record.queuePosition != i {
                t.record.queuePosition = i
                if t !== m { try self.persist(t) }
            }
        }
        try self.persist(m)
        if restart { await self.restart(m) }
        self.rebalance()
        return self.changed(m)
    }

    public func setFilePriorities(_ id: String, _ priorities: [Int: FilePriority]) async throws(SessionError) -> TorrentDetail {
        let m = try self.get(id)
        guard let t = m.metainfo else { throw .noMetadataYet(id: id, what: "no files to choose") }
        var all = m.priorities
        for (index, priority) in priorities {
            guard t.files.indices.contains(index), !t.files[index].isPadding else {
                throw .fileNotFound(index: index, torrent: id)
            }
            all[index] = priority == .normal ? nil : priority
        }
        m.priorities = all
        try self.persist(m)
        await self.restart(m)
        return try self.detail(id)
    }

    public func addTracker(_ id: String, url: String, tier: Int?) async throws(SessionError) -> TorrentDetail {
        let m = try self.get(id)
        guard TrackerTransports.supports(url) else { throw .badRequest("not a udp://, http:// or https:// tracker URL: \(url)") }
        var tiers = self.trackerTiers(m)
        guard !tiers.joined().contains(url) else { throw .alreadyATracker(url: url, torrent: id) }
        let t = max(0, tier ?? tiers.count)
        if t < tiers.count { tiers[t].append(url) } else { tiers.append([url]) }
        try self.setTrackers(m, tiers)
        await self.restart(m)
        return try self.detail(id)
    }

    public func removeTracker(_ id: String, url: String) async throws(SessionError) -> TorrentDetail {
        let m = try self.get(id)
        var tiers = self.trackerTiers(m)
        guard tiers.joined().contains(url) else { throw .trackerNotFound(url: url, torrent: id) }
        tiers = tiers.map { $0.filter { $0 != url } }.filter { !$0.isEmpty }
        try self.setTrackers(m, tiers)
        await self.restart(m)
        return try self.detail(id)
    }

    // MARK: categories and tags

    /// The categories, by name.
    public func categories() throws(SessionError) -> [TorrentCategory] {
        do { return try self.store.categories().map { TorrentCategory(name: $0.name, savePath: $0.savePath) } } catch {
            throw .database(action: "read the categories", reason: "\(error)")
        }
    }

    /// Makes a category, or changes the folder of one that exists; torrents already in it stay where they are.
    @discardableResult
    public func createCategory(_ name: String, savePath: String?) throws(SessionError) -> TorrentCategory {
        let name = try Self.categoryName(name)
        if let savePath { try self.saveFolders.check(savePath, field: "save_path") }
        do { try self.store.save(CategoryRecord(name: name, savePath: savePath)) } catch {
            throw .database(action: "save the category", reason: "\(error)")
        }
        for m in self.torrents.values where m.record.category == name { self.emit(.updated(self.status(m))) }
        return TorrentCategory(name: name, savePath: savePath)
    }

    /// Removes a category; its torrents stay, with no category.
    public func removeCategory(_ name: String) throws(SessionError) {
        guard try self.category(name) != nil else { throw .categoryNotFound(name: name) }
        do { try self.store.deleteCategory(name) } catch {
            throw .database(action: "remove the category", reason: "\(error)")
        }
        for m in self.torrents.values where m.record.category == name {
            m.record.category = nil
            self.emit(.updated(self.status(m)))
        }
    }

    /// Every tag some torrent has, sorted.
    public func tags() -> [String] {
        Set(self.torrents.values.flatMap { Self.decodeTags($0.record.tags) }).sorted()
    }

    private func category(_ name: String) throws(SessionError) -> TorrentCategory? {
        try self.categories().first { $0.name == name }
    }

    /// A category's name as given, checked: 1 to 200 characters, no control characters, no `\\`, and no empty
    /// part between `/` (qBittorrent's subcategories).
    static func categoryName(_ name: String) throws(SessionError) -> String {
        guard !name.isEmpty, name.count <= 200, !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }),
            !name.contains("\\"), !name.split(separator: "/", omittingEmptySubsequences: false).contains(where: \.isEmpty)
        else { throw .badRequest("a category is 1 to 200 characters, no control characters or \\, no empty part between /") }
        return name
    }

    /// Tags as given, trimmed, each once: 1 to 100 characters, no comma (qBittorrent's separator) and no control
    /// characters; at most 100.
    static func tagList(_ tags: [String]) throws(SessionError) -> [String] {
        var out: [String] = []
        for raw in tags {
            let tag = raw.trimmingCharacters(in: .whitespaces)
            guard !tag.isEmpty, tag.count <= 100, !tag.contains(","),
                !tag.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
            else { throw .badRequest("a tag is 1 to 100 characters, with no comma or control character: \(raw)") }
            if !out.contains(tag) { out.append(tag) }
        }
        guard out.count <= 100 else { throw .badRequest("at most 100 tags") }
        return out
    }

    static func encodeTags(_ tags: [String]) -> String? {
        tags.isEmpty ? nil : JSONColumn.text(tags)
    }

    static func decodeTags(_ text: String?) -> [String] {
        JSONColumn.value([String].self, text) ?? []
    }

    // MARK: streaming

    /// A file to stream.
    public struct StreamFile: Sendable {
        public var name: String
        public var length: Int64
        public var mime: String
    }

    public func streamFile(_ id: String, index: Int) throws(SessionError) -> StreamFile {
        let m = try self.get(id)
        guard let t = m.metainfo else { throw .noMetadataYet(id: id, what: nil) }
        guard t.files.indices.contains(index), !t.files[index].isPadding else { throw .fileNotFound(index: index, torrent: id) }
        let f = t.files[index]
        return StreamFile(name: f.path.last ?? t.name, length: f.length, mime: MediaType.of(f.path.last ?? ""))
    }

    /// Up to `maxLength` bytes of file `index` from `offset` (at most to the end of that offset's piece).
    /// Waits for a missing piece, fetched before any other, at most `timeout`.
    public func read(_ id: String, index: Int, offset: Int64, maxLength: Int, timeout: Duration = .seconds(60))
        async throws(SessionError) -> [UInt8]
    {
        let m = try self.get(id)
        guard let t = m.metainfo, t.files.indices.contains(index) else { throw .fileNotFound(index: index, torrent: id) }
        let file = t.files[index]
        guard offset >= 0, offset < file.length else { throw .badRequest("offset \(offset) is outside the file") }
        guard m.priorities[index] != .skip else { throw .conflict("file \(index) is skipped; set its priority to stream it") }
        guard case .running(let engine, _) = m.runtime else {
            throw .conflict("\(m.record.name) is \(self.status(m).state.rawValue); resume it to stream")
        }
        let map = m.pieceMap!
        let at = file.offset + offset
        let piece = Int(at / Int64(map.pieceLength))
        let inPiece = Int(at % Int64(map.pieceLength))
        let pieceSize = map.pieceSize(map.index(piece)!)
        let length = min(maxLength, pieceSize - inPiece, Int(file.length - offset))
        do {
            try await engine.waitForPieces(piece..<piece + 1, timeout: TimeAmount(timeout)).get()
            return try await engine.read(piece: piece, offset: inPiece, length: length).get()
        } catch let e as PieceWaitTimeout {
            throw .unavailable("\(e.description) (waited \(timeout))")
        } catch {
            throw .unavailable("cannot read file \(index) of \(id): \(error)")
        }
    }

    // MARK: internals

    private func get(_ id: String) throws(SessionError) -> Managed {
        guard let m = self.find(id) else { throw .torrentNotFound(id: id) }
        return m
    }

    private func find(_ id: String) -> Managed? {
        let key = id.lowercased()
        return self.torrents[key] ?? self.aliases[key].flatMap { self.torrents[$0] }
    }

    private func persist(_ m: Managed) throws(SessionError) {
        m.record.downloaded = m.totalDownloaded
        m.record.uploaded = m.totalUploaded
        do { try self.store.save(m.record) } catch { throw .database(action: "save \(m.record.id)", reason: "\(error)") }
    }

    /// The status after a change, told to subscribers.
    private func changed(_ m: Managed) -> TorrentStatus {
        let s = self.status(m)
        m.lastStatus = s
        self.emit(.updated(s))
        return s
    }

    private func setTrackers(_ m: Managed, _ tiers: [[String]]) throws(SessionError) {
        m.record.trackers = JSONColumn.text(tiers) ?? "[]"
        try self.persist(m)
    }

    private func trackerTiers(_ m: Managed) -> [[String]] {
        if let tiers = JSONColumn.value([[String]].self, m.record.trackers) { return tiers }
        if let t = m.metainfo { return t.trackers }
        return (m.record.magnet.flatMap { try? MagnetLink(parsing: $0) }?.trackers ?? []).map { [$0] }
    }

    static func metainfo(bytes: [UInt8], magnet: String?) throws(MetainfoError) -> TorrentMetainfo {
        var t = try TorrentMetainfo(bytes: bytes)
        if t.webSeeds.isEmpty, let m = magnet.flatMap({ try? MagnetLink(parsing: $0) }) { t.webSeeds = m.webSeeds }
        return t
    }

    func status(_ m: Managed) -> TorrentStatus {
        let r = m.record
        let state: TorrentState
        if m.error != nil { state = .error }
        else if r.paused { state = .paused }
        else {
            switch m.runtime {
            case .idle: state = .queued
            case .fetching: state = .metadata
            case .checking: state = .checking
            case .running: state = m.isComplete ? .seeding : .downloading
            }
        }
        var size: Int64 = 0
        var progress = 0.0
        if let t = m.metainfo {
            let skipped = m.skippedFiles
            size = t.files.filter { !$0.isPadding && !skipped.contains($0.index) }.reduce(0) { $0 + $1.length }
            if let p = m.snapshot?.progress {
                progress = p.wantedPieces > 0 ? Double(p.havePieces) / Double(p.wantedPieces) : 1
            } else if let have = m.have {
                progress = have.count > 0 ? Double(have.setCount) / Double(have.count) : 1
            }
        }
        let haveBytes = min(size, Int64((progress * Double(size)).rounded()))
        let eta: Int64? = progress < 1 && m.downRate > 0 ? (size - haveBytes) / m.downRate : nil
        return TorrentStatus(id: r.id, infoHashV1: m.metainfo?.infoHashes.v1?.hex ?? (r.id.count == 40 ? r.id : nil),
            infoHashV2: m.metainfo?.infoHashes.v2?.hex ?? (r.id.count == 64 ? r.id : r.alias),
            name: r.name, state: state, progress: progress, size: size, haveBytes: haveBytes,
            downloadRate: m.downRate, uploadRate: m.upRate, downloaded: m.totalDownloaded, uploaded: m.totalUploaded,
            peers: m.snapshot?.progress.peers ?? 0, eta: eta, savePath: r.savePath, sequential: r.sequential,
            paused: r.paused, addedAt: r.addedAt, completedAt: r.completedAt, error: m.error?.description,
            category: r.category, tags: Self.decodeTags(r.tags), forceStart: r.forceStart,
            firstLastPiecePriority: r.firstLastPieces)
    }

    /// Starts what should run and stops what should wait: every torrent not paused, except incomplete ones
    /// beyond `maxActiveDownloads` in queue order. A force-started torrent runs and takes no place in the queue.
    private func rebalance() {
        var downloading = 0
        for m in self.torrents.values.sorted(by: { $0.record.queuePosition < $1.record.queuePosition }) {
            let wants = !m.record.paused && m.error == nil
            let unqueued = m.isComplete || m.record.forceStart
            if wants && (unqueued || downloading < self.settings.maxActiveDownloads) {
                if !unqueued { downloading += 1 }
                if m.runtime.isIdle { self.activate(m) }
            } else if !m.runtime.isIdle && !(wants && unqueued) {
                Task { await self.deactivate(m) }
            }
        }
    }

    private func restart(_ m: Managed) async {
        guard !m.runtime.isIdle else { return }
        await self.deactivate(m)
        self.rebalance()
    }

    private func activate(_ m: Managed) {
        guard m.runtime.isIdle, !self.closing else { return }
        m.generation += 1
        if let t = m.metainfo { self.startEngine(m, t, generation: m.generation) } else { self.startFetch(m) }
    }

    private func startFetch(_ m: Managed) {
        guard let text = m.record.magnet, let magnet = try? MagnetLink(parsing: text) else {
            m.error = .noMetadataSource
            return
        }
        let name = m.record.name
        let log = self.configuration.log
        let fetcher = TorrentRun.fetchMetadata(magnet, on: self.node, listenPort: self.listenPort,
            discovery: self.discovery(m, peers: magnet.peers), setUp: { $0.onLog = { line in log?("\(name): \(line)") } },
            report: { problem in log?("\(name): \(problem)") })
        m.runtime = .fetching(fetcher)
        let id = m.record.id
        let generation = m.generation
        Task {
            let result: Result<[UInt8], any Error>
            do { result = .success(try await fetcher.infoBytes.get()) } catch { result = .failure(error) }
            await self.metadataArrived(id: id, generation: generation, result)
        }
    }

    private func metadataArrived(id: String, generation: Int, _ result: Result<[UInt8], any Error>) async {
        guard let m = self.torrents[id], m.generation == generation, case .fetching(let fetcher) = m.runtime, !self.closing
        else { return }
        guard case .success(let info) = result else { return }  // cancelled: paused or removed
        m.runtime = .checking
        let node = self.node
        Task { await node.remove(fetcher) }
        let magnet = m.record.magnet.flatMap { try? MagnetLink(parsing: $0) }
        do throws(SessionError) {
            let (t, bytes): (TorrentMetainfo, [UInt8])
            do { (t, bytes) = try TorrentRun.torrent(info: info, magnet: magnet) } catch { throw .metadata(error, from: .peers) }
            m.metainfo = t
            m.record.metainfo = Data(bytes)
            m.record.name = t.name
            try self.persist(m)
            self.indexTorrents([t])
            self.log("\(t.name): got the metadata (\(info.count) bytes)")
            self.startEngine(m, t, generation: generation)
        } catch {
            m.error = error
            m.runtime = .idle
            self.emit(.error(id: id, message: error.description))
        }
        _ = self.changed(m)
    }

    private func startEngine(_ m: Managed, _ t: TorrentMetainfo, generation: Int) {
        m.runtime = .checking
        let id = m.record.id
        let store = self.store
        let directory = m.record.savePath
        let unselected = m.skippedFiles
        self.checkQueue.async {
            let resume = ResumeStore(location: "the session database", metainfo: t,
                read: { try store.resume(id: id) }, write: { try store.saveResume(id: id, bytes: $0) })
            let prepared = Result { () throws(StorageError) in
                try TorrentRun.prepare(t, directory: directory, unselected: unselected, resume: resume)
            }.mapError { SessionError.storage($0, folder: directory) }
            Task { await self.engineReady(id: id, generation: generation, prepared) }
        }
    }

    private func engineReady(id: String, generation: Int, _ prepared: Result<TorrentRun.Prepared, SessionError>) {
        guard let m = self.torrents[id], m.generation == generation, case .checking = m.runtime, let t = m.metainfo,
            !self.closing
        else {
            if case .success(let p) = prepared { p.storage.close() }
            return
        }
        let p: TorrentRun.Prepared
        switch prepared {
        case .failure(let error):
            m.error = error
            m.runtime = .idle
            self.emit(.error(id: id, message: error.description))
            _ = self.changed(m)
            return
        case .success(let ok): p = ok
        }
        var config = TorrentEngine.Configuration()
        config.seedAfterDownload = true
        config.sequential = m.record.sequential
        config.unselectedFiles = m.skippedFiles
        config.highPriorityFiles = Set(m.priorities.filter { $0.value == .high }.keys)
        config.firstLastPieces = m.record.firstLastPieces
        config.maxDownloadRate = m.record.maxDownloadRate ?? self.settings.maxDownloadRate
        config.maxUploadRate = m.record.maxUploadRate ?? self.settings.maxUploadRate
        let log = self.configuration.log
        let name = t.name
        let keepLayers = m.record.magnet != nil  // a torrent file carries its own piece layers
        m.lastDial = ContinuousClock.now
        let (engine, done) = TorrentRun.start(t, p, on: self.node, configuration: config, listenPort: self.listenPort,
            discovery: self.discovery(m, peers: self.namedPeers(m)),
            setUp: { engine in
                engine.onLog = { line in log?("\(name): \(line)") }
                // A v2 torrent from a magnet link learns its piece layers from peers: kept, a restart need not.
                if keepLayers {
                    engine.onPieceLayers = { layers in Task { await self.keepPieceLayers(id: id, layers) } }
                }
            },
            report: { problem in log?("\(name): \(problem)") })
        m.have = p.have
        m.runtime = .running(engine, p.storage)
        m.snapshot = nil  // a new engine counts from zero: its bytes add to the base
        done.whenComplete { result in
            Task { await self.engineFinished(id: id, generation: generation, result) }
        }
        _ = self.changed(m)
    }

    /// Where the torrent looks for peers: its trackers (as edited), the session's DHT and local discovery.
    private func discovery(_ m: Managed, peers: [String]) -> TorrentRun.Discovery {
        TorrentRun.Discovery(trackers: self.trackerTiers(m), dht: self.dht != nil,
            localDiscovery: self.configuration.localDiscovery, peers: peers)
    }

    /// A magnet link's x.pe peers.
    private func namedPeers(_ m: Managed) -> [String] {
        m.record.magnet.flatMap { try? MagnetLink(parsing: $0) }?.peers ?? []
    }

    /// Keeps the piece layers a v2 torrent from a magnet link learnt from peers in its saved metadata.
    private func keepPieceLayers(id: String, _ layers: [[UInt8]: [UInt8]]) {
        guard let m = self.torrents[id], let t = m.metainfo else { return }
        let magnet = m.record.magnet.flatMap { try? MagnetLink(parsing: $0) }
        guard let (kept, bytes) = try? TorrentRun.torrent(info: t.infoBytes, magnet: magnet, pieceLayers: layers) else {
            return
        }
        m.metainfo = kept
        m.record.metainfo = Data(bytes)
        try? self.persist(m)
        self.log("\(t.name): kept the piece layers (\(layers.count) files)")
    }

    /// Dials a magnet link's x.pe peers: on every start (not only for the metadata), and again while the
    /// torrent has no peer at all (a peer may drop a reconnection while it still holds the old one).
    private func dialNamedPeers(_ m: Managed, _ engine: TorrentEngine) {
        m.lastDial = ContinuousClock.now
        let log = self.configuration.log
        let name = m.record.name
        TorrentRun.dial(self.namedPeers(m), engine, on: self.node) { problem in log?("\(name): \(problem)") }
    }

    private func engineFinished(id: String, generation: Int, _ result: Result<Void, any Error>) async {
        guard let m = self.torrents[id], m.generation == generation, case .running(let engine, _) = m.runtime else { return }
        switch result {
        case .success:
            // The summary the event carries shows 100%, not the figures of the last tick.
            if let snap = try? await engine.snapshot().get(), m.generation == generation { m.absorb(snap) }
            if m.record.completedAt == nil {
                m.record.completedAt = APIJSON.now()
                try? self.persist(m)
                self.log("\(m.record.name): complete")
                self.emit(.completed(self.status(m)))
            }
            self.rebalance()
        case .failure(let error):
            guard !(error is CancellationError) else { return }
            let failure: SessionError = (error as? StorageError).map { .storage($0, folder: nil) } ?? .engine("\(error)")
            m.error = failure
            self.emit(.error(id: id, message: failure.description))
            await self.deactivate(m)
            _ = self.changed(m)
        }
    }

    /// Stops whatever runs for the torrent, saving its resume data and counters; the torrent stays listed.
    private func deactivate(_ m: Managed) async {
        m.generation += 1
        let runtime = m.runtime
        m.runtime = .idle
        switch runtime {
        case .idle, .checking:
            break
        case .fetching(let fetcher):
            await self.node.remove(fetcher)
        case .running(let engine, let storage):
            // The engine's figures leave the torrent now, before any wait: a new engine may start meanwhile.
            let last = m.snapshot
            m.snapshot = nil
            m.downRate = 0
            m.upRate = 0
            let final = (try? await engine.snapshot().get()) ?? last
            m.baseDownloaded += final?.progress.downloaded ?? 0
            m.baseUploaded += final?.progress.uploaded ?? 0
            if m.runtime.isIdle, let have = final?.have { m.have = have }
            try? await engine.saveResumeData().get()
            await self.node.remove(engine)
            storage.close()
            m.record.resume = (try? self.store.resume(id: m.record.id)).flatMap { $0 }.map { Data($0) }
            try? self.persist(m)
        }
    }

    /// Once a second: figures from every running engine, rates, events for what changed, seeding limits.
    private func tick() async {
        let now = ContinuousClock.now
        for m in Array(self.torrents.values) {
            guard case .running(let engine, _) = m.runtime,
                let snap = try? await engine.snapshot().get(), case .running(let still, _) = m.runtime, still === engine
            else { continue }
            if self.closing { return }  // a tick under way when shutdown began: the node may be gone
            let before = (m.snapshot?.progress.downloaded ?? 0, m.snapshot?.progress.uploaded ?? 0, m.lastSample)
            m.absorb(snap)
            if let at = before.2 {
                let secs = max(0.001, Double((now - at).components.attoseconds) / 1e18 + Double((now - at).components.seconds))
                m.downRate = Int64(Double(snap.progress.downloaded - before.0) / secs)
                m.upRate = Int64(Double(snap.progress.uploaded - before.1) / secs)
            }
            m.lastSample = now
            if snap.progress.peers == 0 && !snap.progress.complete && now - (m.lastDial ?? now) >= .seconds(15) {
                // Starving: dial the named peers again and look the torrent up on the DHT now, not at the next
                // round (a lookup may have raced the end of the metadata fetch, or found nobody yet).
                self.dialNamedPeers(m, engine)
                if self.dht != nil && m.metainfo?.isPrivate == false {
                    self.node.trackOnDHT(engine, listenPort: self.listenPort)
                }
            }
            if m.isComplete {
                m.record.seedingSeconds += 1
                let size = max(1, m.metainfo?.totalLength ?? 1)
                let ratioReached = (m.record.ratioLimit ?? self.settings.seedRatioLimit)
                    .map { Double(m.totalUploaded) / Double(size) >= $0 } ?? false
                let timeReached = (m.record.seedTimeLimit ?? self.settings.seedTimeLimit)
                    .map { m.record.seedingSeconds >= $0 } ?? false
                if ratioReached || timeReached {
                    self.log("\(m.record.name): seeding \(ratioReached ? "ratio" : "time") limit reached; paused")
                    _ = try? await self.pause(m.record.id)
                }
            }
        }
        for m in self.torrents.values {
            let s = self.status(m)
            if s != m.lastStatus {
                m.lastStatus = s
                self.emit(.updated(s))
            }
        }
        if now - self.lastCounterSave >= Self.counterSaveInterval { self.saveCounters() }
    }

    /// How often the byte counters of running torrents are written: what a `kill -9` can lose of them (it was
    /// 30 s, and a seed killed sooner after serving came back with that upload at zero).
    static let counterSaveInterval: Duration = .seconds(5)

    /// Writes the counters of running torrents that changed since they were last written, in one transaction.
    private func saveCounters() {
        self.lastCounterSave = ContinuousClock.now
        var rows: [(id: String, downloaded: Int64, uploaded: Int64, seeding: Int64)] = []
        for m in self.torrents.values where !m.runtime.isIdle {
            let row = (m.record.id, m.totalDownloaded, m.totalUploaded, m.record.seedingSeconds)
            guard m.savedCounters.map({ $0 != (row.1, row.2, row.3) }) ?? true else { continue }
            rows.append(row)
        }
        guard !rows.isEmpty else { return }
        do {
            try self.store.saveCounters(rows)
            for r in rows { self.torrents[r.id]?.savedCounters = (r.downloaded, r.uploaded, r.seeding) }
        } catch {
            self.configuration.log?("cannot save byte counters: \(error)")
        }
    }

    /// Deletes the files a torrent names under `directory`, then the folders they leave empty.
    static func deleteFiles(of t: TorrentMetainfo, in directory: String) {
        guard let resolver = try? PathResolver(root: FilePath(directory)) else { return }
        var folders: Set<String> = []
        for f in t.files {
            guard let path = try? resolver.resolve(f.path) else { continue }
            try? FileManager.default.removeItem(atPath: path.string)
            var folder = path.removingLastComponent()
            while folder.string.count > directory.count && folder.string.hasPrefix(directory) {
                folders.insert(folder.string)
                folder = folder.removingLastComponent()
            }
        }
        for folder in folders.sorted(by: { $0.count > $1.count }) { _ = rmdir(folder) }
        try? FileManager.default.removeItem(atPath: directory + "/.\(t.infoHashes.id).parts")
    }
}

/// One torrent of a session, confined to the session actor.
final class Managed {
    var record: TorrentRecord
    var metainfo: TorrentMetainfo? {
        didSet { self.pieceMap = self.metainfo.map(PieceMap.init) }
    }
    private(set) var pieceMap: PieceMap?
    enum Runtime {
        case idle
        case fetching(MetadataFetcher)
        case checking
        case running(TorrentEngine, FileStorage)
        var isIdle: Bool { if case .idle = self { true } else { false } }
    }
    var runtime: Runtime = .idle
    /// Bumped by every start and stop: results of older ones are dropped.
    var generation = 0
    /// Why the torrent stopped; cleared by resume.
    var error: SessionError?
    /// Verified pieces when not running (from resume data or the last run).
    var have: Bitfield?
    var snapshot: TorrentEngine.Snapshot?
    var downRate: Int64 = 0
    var upRate: Int64 = 0
    var lastSample: ContinuousClock.Instant?
    var lastDial: ContinuousClock.Instant?
    var baseDownloaded: Int64
    var baseUploaded: Int64
    /// Downloaded, uploaded and seeding seconds as last written to the store.
    var savedCounters: (Int64, Int64, Int64)?
    var lastStatus: TorrentStatus?

    init(record: TorrentRecord) {
        self.record = record
        self.priorities = Self.decodePriorities(record.priorities)
        self.baseDownloaded = record.downloaded
        self.baseUploaded = record.uploaded
    }

    var totalDownloaded: Int64 { self.baseDownloaded + (self.snapshot?.progress.downloaded ?? 0) }
    var totalUploaded: Int64 { self.baseUploaded + (self.snapshot?.progress.uploaded ?? 0) }

    var currentHave: Bitfield? { self.snapshot?.have ?? self.have }

    /// Every piece of every wanted file is verified.
    var isComplete: Bool {
        if let p = self.snapshot?.progress { return p.complete }
        guard let have = self.have, let map = self.pieceMap else { return false }
        if have.allSet { return true }
        let skipped = self.skippedFiles
        for f in map.files where !f.isPadding && !skipped.contains(f.index) {
            for i in map.pieces(ofFile: f.index) where !have[i] { return false }
        }
        return true
    }

    func absorb(_ snapshot: TorrentEngine.Snapshot) {
        self.snapshot = snapshot
        self.have = snapshot.have
    }

    /// File priorities other than normal, decoded once from the record and written back to it when set (the
    /// status of every torrent reads them once a second).
    var priorities: [Int: FilePriority] {
        didSet {
            let dict = Dictionary(uniqueKeysWithValues: self.priorities.map { (String($0.key), $0.value.rawValue) })
            self.record.priorities = dict.isEmpty ? nil : JSONColumn.text(dict)
        }
    }

    /// Files never fetched.
    var skippedFiles: Set<Int> { Set(self.priorities.filter { $0.value == .skip }.keys) }

    static func decodePriorities(_ text: String?) -> [Int: FilePriority] {
        guard let dict = JSONColumn.value([String: FilePriority].self, text) else { return [:] }
        return Dictionary(uniqueKeysWithValues: dict.compactMap { k, v in Int(k).map { ($0, v) } })
    }
}
