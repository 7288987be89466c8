import Foundation
import Metainfo
import NIOCore
import PeerBase
import Storage
import SystemPackage

/// One torrent started the one way `peer get`, `peer share` and the daemon's `Session` all start it: its
/// storage, resume data and data check (`prepare`), then its engine on a node, with trackers, web seeds, the
/// DHT, local discovery and named peers (`start`); for a magnet link, the metadata fetch before it
/// (`fetchMetadata`, `torrent(info:magnet:)`). Callers keep what is theirs: where resume data lives, the
/// engine's options, what they print or log.
public enum TorrentRun {
    /// What `prepare` found: an open storage and the pieces verified in it.
    public struct Prepared: Sendable {
        public var storage: FileStorage
        public var resume: ResumeStore
        public var check: DataCheck.Outcome
        /// Saved resume data was used (trusted for the files unchanged since).
        public var resumed: Bool
        /// Why saved resume data was ignored; nil when there was none or it was used.
        public var resumeIgnored: String?

        public var have: Bitfield { self.check.have }
    }

    /// Opens the storage under `directory` (created if missing), moves the bytes of pieces that skipped and
    /// wanted files share to where the selection now keeps them, and finds the verified pieces: trusted from
    /// resume data for files unchanged since it was saved, read and hashed for the others. Blocking.
    /// - Parameter directory: an absolute path.
    /// - Throws: what the storage threw when it cannot be opened there.
    public static func prepare(_ t: TorrentMetainfo, directory: String, unselected: Set<Int>, resume: ResumeStore)
        throws(StorageError) -> Prepared
    {
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let dir = FilePath(directory)
        let storage = try FileStorage(metainfo: t, directory: dir, unselected: unselected,
            partFile: dir.appending(".\(t.infoHashes.id).parts"), directWrites: PeerNode.directWrites)
        // Skipping a file of a complete torrent, or wanting one again, must not lose the pieces it shares.
        do { try storage.moveSharedPieces(verifier: PieceVerifier(metainfo: t)) } catch {
            storage.close()
            throw error
        }
        var saved: ResumeData?
        var ignored: String?
        switch resume.load(map: storage.pieceMap) {
        case .success(let data): saved = data
        case .failure(.missing): break
        case .failure(.invalid(let why)): ignored = why
        }
        let check = DataCheck.check(metainfo: t, storage: storage, resume: saved)
        return Prepared(storage: storage, resume: resume, check: check, resumed: saved != nil, resumeIgnored: ignored)
    }

    /// Where a torrent looks for peers.
    public struct Discovery: Sendable {
        /// Tracker URLs by tier (BEP 12).
        public var trackers: [[String]]
        /// The node runs a DHT: announce the torrent there and look it up (never for a private one, BEP 27).
        public var dht: Bool
        /// Local service discovery (BEP 14; never for a private torrent).
        public var localDiscovery: Bool
        /// Peers to dial at once, HOST:PORT (a magnet link's x.pe, `--peer`).
        public var peers: [String]

        public init(trackers: [[String]], dht: Bool, localDiscovery: Bool, peers: [String] = []) {
            self.trackers = trackers
            self.dht = dht
            self.localDiscovery = localDiscovery
            self.peers = peers
        }
    }

    /// A failure on the way that does not stop the torrent.
    public enum Problem: Sendable, CustomStringConvertible {
        case cannotDial(peer: String, reason: String)
        case localDiscoveryOff(reason: String)

        public var description: String {
            switch self {
            case .cannotDial(let peer, let reason): "cannot connect to \(peer): \(reason)"
            case .localDiscoveryOff(let reason): "local discovery is off: \(reason)"
            }
        }
    }

    /// Adds the torrent's engine to `node` and starts it, with everything that finds peers for it: trackers,
    /// web seeds, the DHT and local discovery (not for a private torrent), and the named peers. A download
    /// that completes is announced to the trackers as completed.
    /// - Parameters:
    ///   - configuration: the engine's options; its `resume` and `listenPort` are set here.
    ///   - setUp: called with the engine before it starts (`onLog`, `onProgress`, `onPieceLayers`).
    ///   - report: told of each `Problem`, on any thread.
    /// - Returns: the engine and the future of its download (`TorrentEngine.start()`).
    public static func start(
        _ t: TorrentMetainfo, _ prepared: Prepared, on node: PeerNode, configuration: TorrentEngine.Configuration,
        listenPort: Int, discovery: Discovery, setUp: (TorrentEngine) -> Void = { _ in },
        report: @escaping @Sendable (Problem) -> Void = { _ in }
    ) -> (engine: TorrentEngine, done: EventLoopFuture<Void>) {
        var config = configuration
        config.resume = prepared.resume
        config.listenPort = UInt16(listenPort)
        let engine = node.add(metainfo: t, storage: prepared.storage, have: prepared.have, configuration: config)
        setUp(engine)
        let done = engine.start()
        node.startTrackers(engine, tiers: discovery.trackers, listenPort: listenPort)
        node.startWebSeeds(engine)
        if !t.isPrivate {  // private torrents: their trackers only (BEP 27)
            if discovery.dht { node.trackOnDHT(engine, listenPort: listenPort) }
            if discovery.localDiscovery {
                Self.discoverLocally({ try await node.startLocalDiscovery(engine, listenPort: listenPort) }, report)
            }
        }
        let wasComplete = prepared.have.allSet
        done.whenSuccess { if !wasComplete { node.announceCompleted(engine) } }
        Self.dial(discovery.peers, engine, on: node, report: report)
        return (engine, done)
    }

    /// Dials each HOST:PORT for the torrent (one that does not parse is left out), and again after a failure
    /// or a hang-up until the torrent is complete (`PeerNode.keepDialing`).
    public static func dial(_ peers: [String], _ engine: TorrentEngine, on node: PeerNode,
        report: @escaping @Sendable (Problem) -> Void = { _ in })
    {
        for peer in peers {
            guard let (host, port) = PeerNode.splitHostPort(peer) else { continue }
            node.keepDialing(engine, host: host, port: port) { error in
                report(.cannotDial(peer: peer, reason: "\(error)"))
            }
        }
    }

    private static func dial(_ peers: [String], _ connect: (String, Int) -> EventLoopFuture<Void>,
        _ report: @escaping @Sendable (Problem) -> Void)
    {
        for peer in peers {
            guard let (host, port) = PeerNode.splitHostPort(peer) else { continue }
            connect(host, port).whenFailure { error in report(.cannotDial(peer: peer, reason: "\(error)")) }
        }
    }

    private static func discoverLocally(_ start: @escaping @Sendable () async throws -> Void,
        _ report: @escaping @Sendable (Problem) -> Void)
    {
        Task {
            do { try await start() } catch { report(.localDiscoveryOff(reason: "\(error)")) }
        }
    }

    /// Starts fetching a magnet link's info dictionary (BEP 9) from the peers that trackers, the DHT, local
    /// discovery and `discovery.peers` give; each tracker URL is a tier of its own. The fetcher's `infoBytes`
    /// gives the dictionary, checked against the info-hash.
    /// - Parameter setUp: called with the fetcher before any peer is asked (`onLog`).
    public static func fetchMetadata(
        _ magnet: MagnetLink, on node: PeerNode, listenPort: Int, discovery: Discovery,
        setUp: (MetadataFetcher) -> Void = { _ in }, report: @escaping @Sendable (Problem) -> Void = { _ in }
    ) -> MetadataFetcher {
        let fetcher = node.addMagnet(magnet, listenPort: listenPort)
        setUp(fetcher)
        node.startTrackers(fetcher, urls: Array(discovery.trackers.joined()), listenPort: listenPort)
        if discovery.dht { node.trackOnDHT(fetcher, listenPort: listenPort) }
        if discovery.localDiscovery {
            Self.discoverLocally({ try await node.startLocalDiscovery(fetcher, listenPort: listenPort) }, report)
        }
        Self.dial(discovery.peers, { node.connect(fetcher, host: $0, port: $1) }, report)
        return fetcher
    }

    /// The torrent around an info dictionary peers sent: a .torrent file (`TorrentFileBytes`) with the magnet
    /// link's trackers, one tier each, and v2 piece layers learnt from peers; its web seeds are the link's when
    /// the dictionary names none.
    /// - Returns: the torrent and the file's bytes, to keep.
    public static func torrent(info: [UInt8], magnet: MagnetLink?, pieceLayers: [[UInt8]: [UInt8]] = [:])
        throws(MetainfoError) -> (metainfo: TorrentMetainfo, bytes: [UInt8])
    {
        let bytes = TorrentFileBytes.encode(info: info, trackers: magnet?.trackers ?? [], pieceLayers: pieceLayers)
        var t = try TorrentMetainfo(bytes: bytes)
        if t.webSeeds.isEmpty, let magnet { t.webSeeds = magnet.webSeeds }
        return (t, bytes)
    }
}
