// Harvesting the DHT for the keyword index, politely (issue 14): `peer serve --harvest`.
import DHT
import Foundation
import Metainfo
import NIOCore
import PeerBase
import Search

/// Fills the index from the DHT: info-hashes other nodes announce to this node or ask it about, and BEP 51
/// samples from nodes of its routing table; the metadata of each is fetched over BEP 9 (from the announcing
/// peer, or peers a get_peers lookup finds) and indexed as verified, since it hashed to its info-hash. All
/// within `HarvestPlan`'s budget. The DHT node answers everyone as always and keeps its one ID.
actor Harvester {
    private var plan: HarvestPlan
    private let dht: DHTService
    private let node: PeerNode
    private let index: SearchIndex
    private let listenPort: Int
    private let epoch = ContinuousClock.now
    private var loop: Task<Void, Never>?
    private var lastNodeRefresh: Instant?

    let log: (@Sendable (String) -> Void)?

    init(dht: DHTService, node: PeerNode, index: SearchIndex, listenPort: Int, budget: HarvestPlan.Budget,
        log: (@Sendable (String) -> Void)?)
    {
        self.log = log
        self.plan = HarvestPlan(budget: budget)
        self.dht = dht
        self.node = node
        self.index = index
        self.listenPort = listenPort
    }

    private var now: Instant { Instant(offset: ContinuousClock.now - self.epoch) }

    func start() {
        self.dht.observeInfoHashes { [weak self] hash, peer in
            guard let self else { return }
            Task { await self.saw(hash, peer: peer) }
        }
        self.loop = Task { [weak self] in
            while !Task.isCancelled {
                await self?.tick()
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    func stop() {
        self.loop?.cancel()
        self.dht.observeInfoHashes { _, _ in }
    }

    func saw(_ infoHash: [UInt8], peer: String?) {
        guard infoHash.count == 20 else { return }
        if TorrentEngine.debug, let peer { self.log?("harvest: \(Hex.encode(infoHash)) announced by \(peer)") }
        if (try? self.index.entry(infoHash: infoHash)) != nil || self.node.hasHost(for: infoHash) {
            self.plan.markKnown(infoHash)
            return
        }
        self.plan.saw(infoHash, peer: peer)
    }

    private func tick() async {
        let now = self.now
        if self.lastNodeRefresh.map({ now - $0 >= .seconds(10) }) ?? true {
            self.lastNodeRefresh = now
            self.plan.addNodes(await self.dht.knownNodes(), at: self.now)
        }
        while let target = self.plan.nextSample(at: self.now) { self.sample(target) }
        while let (hash, peer) = self.plan.nextFetch(at: self.now) { self.fetch(hash, from: peer) }
        if let hash = self.plan.nextLookup(at: self.now) { self.lookUp(hash) }
    }

    private func sample(_ target: DHTEndpoint) {
        let random = NodeID(bytes: (0..<20).map { _ in UInt8.random(in: .min ... .max) })!
        Task {
            let outcome = try? await self.dht.run(.sampleInfohashes(from: target, target: random), joinFirst: false)
            self.sampled(target, outcome)
        }
    }

    private func sampled(_ target: DHTEndpoint, _ outcome: LookupOutcome?) {
        guard case .samples(let s) = outcome else {
            self.plan.sampleFailed(target, at: self.now)
            return
        }
        self.plan.sampled(target, samples: [], interval: s.interval, at: self.now)
        for sample in s.samples { self.saw(sample.bytes, peer: nil) }
        self.plan.addNodes(s.nodes.map(\.endpoint), at: self.now)
    }

    private func lookUp(_ hash: [UInt8]) {
        guard let id = NodeID(bytes: hash) else { return }
        Task {
            let outcome = try? await self.dht.run(.getPeers(infoHash: id), joinFirst: true)
            var peers: [String] = []
            if case .peers(_, let found, _) = outcome { peers = found.map(\.hostPort) }
            self.lookedUp(hash, peers)
        }
    }

    private func lookedUp(_ hash: [UInt8], _ peers: [String]) { self.plan.lookedUp(hash, peers: peers) }

    private func fetch(_ hash: [UInt8], from peer: String) {
        guard let (host, port) = PeerNode.splitHostPort(peer), !self.node.hasHost(for: hash) else {
            self.plan.fetchEnded(hash, ok: false)
            return
        }
        let magnet = MagnetLink(infoHashes: InfoHashes(v1: InfoHashV1(hash), v2: nil))
        let fetcher = self.node.addMagnet(magnet, listenPort: self.listenPort)
        _ = self.node.connect(fetcher, host: host, port: port)
        let timeout = self.plan.budget.fetchTimeout
        let node = self.node
        let started = ContinuousClock.now
        let log = self.log
        Task {
            let info = try? await fetcher.infoBytes.failing(after: timeout) { CancellationError() }.get()
            await node.remove(fetcher)
            if TorrentEngine.debug {
                log?("harvest: \(Hex.encode(hash)) from \(peer): \(info == nil ? "failed" : "fetched") after "
                    + "\(ContinuousClock.now - started)")
            }
            self.fetched(hash, info)
        }
    }

    private func fetched(_ hash: [UInt8], _ info: [UInt8]?) {
        guard let info, let t = try? TorrentMetainfo(infoBytes: info) else {
            self.plan.fetchEnded(hash, ok: false)
            return
        }
        self.index.add([IndexEntry(metainfo: t, source: .dht, pinned: false)])
        self.plan.fetchEnded(hash, ok: true)
    }

    func statistics() -> HarvestStatistics {
        let p = self.plan
        return HarvestStatistics(
            waiting: p.waiting, known: p.knownCount, fetching: p.inFlight, samplesAsked: p.samplesAsked,
            lookups: p.lookups, fetchesStarted: p.fetchesStarted, fetched: p.fetched, failed: p.failed,
            maxConcurrentFetches: p.maxConcurrentFetches, maxFetchesPerAddress: p.maxFetchesPerAddress,
            maxQueriesPerSecond: p.maxQueriesPerSecond, queriesCharged: p.queriesCharged,
            queriesPerSecond: p.budget.queriesPerSecond, concurrentFetches: p.budget.concurrentFetches,
            fetchTimeoutSeconds: p.budget.fetchTimeout.seconds)
    }
}
