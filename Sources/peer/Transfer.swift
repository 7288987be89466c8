import ArgumentParser
import Bencode
import DHT
import Foundation
import Metainfo
import NIOCore
import PeerBase
import PeerKit
import Storage
import SystemPackage
import Synchronization

/// Options every networked command takes.
struct NetworkOptions: ParsableArguments {
    @Option(help: "Local address to listen on and to connect from (tests give each node its own 127.0.0.x).")
    var bind: String?

    @Option(help: "Port to listen on for peers (0 picks a free one).")
    var port: Int = 6881

    @Option(name: .customLong("peer"), help: "Connect to this peer (HOST:PORT); repeatable.")
    var peers: [String] = []

    @Option(name: .customLong("tracker"), help: "An extra tracker URL to announce to; repeatable.")
    var trackers: [String] = []

    @Option(help: "State folder (resume data, fetched metadata); default $PEER_HOME, else ~/.local/share/peer.")
    var state: String?

    @Option(name: .customLong("max-up"), help: ArgumentHelp("Upload at most RATE bytes per second (e.g. 500k, 2M).",
        valueName: "RATE"))
    var maxUp: ByteSize?

    @Option(name: .customLong("max-down"), help: ArgumentHelp("Download at most RATE bytes per second.",
        valueName: "RATE"))
    var maxDown: ByteSize?

    @OptionGroup var discovery: DiscoveryOptions
    @OptionGroup var wire: WireOptions

    var dhtEnabled: Bool { self.discovery.dhtEnabled }
    var dhtRouters: [String] { self.discovery.dhtRouters }
    var dhtBootstrap: [String] { self.discovery.dhtBootstrap }
    var localDiscovery: Bool { self.discovery.localDiscovery }

    @Flag(help: "At exit, print a JSON summary (name, info-hash, complete, bytes down and up, seconds) on stdout.")
    var json = false

    func validate() throws {
        guard (0...65535).contains(self.port) else { throw ValidationError("--port must be 0 to 65535") }
        for p in self.peers where Self.split(p) == nil {
            throw ValidationError("--peer \(p): expected HOST:PORT (or [IPv6]:PORT)")
        }
    }

    static func split(_ text: String) -> (String, Int)? { PeerNode.splitHostPort(text) }
}

/// How connections to peers are made: message stream encryption (MSE/PE) and transport, for `get`, `share` and
/// `serve`.
struct WireOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "Message stream encryption: enabled (take encrypted or plaintext handshakes; connect in plaintext, and "
            + "encrypted to a peer that hangs up on that), required "
            + "(encrypted handshakes and RC4 over the whole stream, both ways; plaintext peers are refused), or disabled.",
        valueName: "MODE"))
    var encryption: EncryptionMode = .enabled

    @Option(name: .customLong("transport"), help: ArgumentHelp(
        "What outgoing connections try, in order, the next when one fails: tcp,utp (the default), utp,tcp (as "
            + "libtorrent), tcp or utp. uTP (BEP 29) runs on the listen port's UDP side and yields to other traffic "
            + "(LEDBAT). Incoming connections come over both.", valueName: "LIST"))
    var transports: TransportList = TransportList(order: PeerTransport.defaultOrder)

    @Flag(name: .customLong("no-port-mapping"), help: """
        Do not map the listen port on the home router (PCP, NAT-PMP, UPnP IGD; on by default, TCP and UDP, removed \
        at exit); also PEER_NO_PORT_MAPPING=1. A node bound to 127.x maps nothing.
        """)
    var noPortMapping = false

    /// Port mapping is on unless --no-port-mapping or PEER_NO_PORT_MAPPING=1 says otherwise.
    var portMapping: Bool {
        !self.noPortMapping
            && ProcessInfo.processInfo.environment["PEER_NO_PORT_MAPPING"].map { $0.isEmpty || $0 == "0" } ?? true
    }
}

extension EncryptionMode: ExpressibleByArgument {}

/// `--transport`'s value: transports in order, each once.
struct TransportList: ExpressibleByArgument {
    var order: [PeerTransport]
    init(order: [PeerTransport]) { self.order = order }
    init?(argument: String) {
        guard let order = PeerTransport.order(argument) else { return nil }
        self.order = order
    }
    var defaultValueDescription: String { self.order.map(\.rawValue).joined(separator: ",") }
}

/// How a node finds peers beyond trackers: the DHT and local discovery (BEP 14).
struct DiscoveryOptions: ParsableArguments {
    @Option(name: .customLong("dht-bootstrap"), help: ArgumentHelp(
        "Join the DHT through this node (HOST:PORT); repeatable. Default: the nodes saved in the state folder and the "
            + "well-known routers (PEER_DHT_BOOTSTRAP=HOST:PORT,... sets them for a whole run).", valueName: "HOST:PORT"))
    var dhtBootstrap: [String] = []

    @Flag(name: .customLong("no-dht"), help: "Do not use the DHT (BEP 5); also PEER_NO_DHT=1.")
    var noDHT = false

    /// The DHT is on unless --no-dht or PEER_NO_DHT=1 says otherwise.
    var dhtEnabled: Bool {
        !self.noDHT && ProcessInfo.processInfo.environment["PEER_NO_DHT"].map { $0.isEmpty || $0 == "0" } ?? true
    }

    /// The routers to bootstrap from: --dht-bootstrap, else PEER_DHT_BOOTSTRAP, else the well-known ones.
    var dhtRouters: [String] {
        if !self.dhtBootstrap.isEmpty { return self.dhtBootstrap }
        if let list = ProcessInfo.processInfo.environment["PEER_DHT_BOOTSTRAP"] {
            return list.split(separator: ",").map(String.init)
        }
        return ["router.bittorrent.com:6881", "dht.transmissionbt.com:6881", "router.utorrent.com:6881"]
    }

    @Flag(name: .customLong("dht-secure"), help: """
        BEP 42: keep DHT nodes whose ID does not match their IP out of the routing table and the lookups' results \
        (as libtorrent's dht_restrict_routing_ips). Local addresses are exempt.
        """)
    var dhtSecure = false

    @Flag(name: .customLong("dht-read-only"), help: """
        BEP 43: use the DHT without answering it (behind a firewall, on a metered link); others leave the node out \
        of their tables.
        """)
    var dhtReadOnly = false

    var dhtPolicy: DHTService.Policy { .init(enforceNodeIDs: self.dhtSecure, readOnly: self.dhtReadOnly) }

    @Flag(name: .customLong("no-lsd"), help: "Do not look for peers on the local network (BEP 14); also PEER_NO_LSD=1.")
    var noLocalDiscovery = false

    /// Local service discovery is on unless --no-lsd or PEER_NO_LSD=1 says otherwise.
    var localDiscovery: Bool {
        !self.noLocalDiscovery && ProcessInfo.processInfo.environment["PEER_NO_LSD"].map { $0.isEmpty || $0 == "0" } ?? true
    }

    /// Starts the DHT's routers (well-known, asked but not kept) and nodes (--dht-bootstrap, kept).
    var dhtJoin: (routers: [String], nodes: [String]) {
        let named = !self.dhtBootstrap.isEmpty || ProcessInfo.processInfo.environment["PEER_DHT_BOOTSTRAP"] != nil
        return named ? ([], self.dhtRouters) : (self.dhtRouters, [])
    }
}

/// The state folder: --state, else $PEER_HOME, else $XDG_DATA_HOME/peer, else ~/.local/share/peer.
func stateDirectory(_ option: String?) -> String {
    let env = ProcessInfo.processInfo.environment
    if let o = option { return o }
    if let h = env["PEER_HOME"], !h.isEmpty { return h }
    if let x = env["XDG_DATA_HOME"], !x.isEmpty { return x + "/peer" }
    return (env["HOME"] ?? ".") + "/.local/share/peer"
}

/// Where a magnet link's metadata is kept once fetched: STATE/torrents/ID.torrent.
func keptTorrentPath(_ id: String, network: NetworkOptions) -> String {
    stateDirectory(network.state) + "/torrents/\(id).torrent"
}

/// Writes a torrent file around an info dictionary received from peers (`TorrentFileBytes`).
func keepTorrent(info: [UInt8], trackers: [String], pieceLayers: [[UInt8]: [UInt8]] = [:], at path: String) {
    keep(TorrentFileBytes.encode(info: info, trackers: trackers, pieceLayers: pieceLayers), at: path)
}

/// Writes a torrent file's bytes to `path`, whole or not at all.
func keep(_ file: [UInt8], at path: String) {
    let folder = (path as NSString).deletingLastPathComponent
    try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    let temporary = path + ".part"
    if !FileManager.default.createFile(atPath: temporary, contents: Data(file))
        || rename(temporary, path) != 0
    {
        Terminal.warn("cannot keep the metadata in \(folder)")
    }
}

/// A magnet link's torrent: the one kept from an earlier run if it is there and matches, else fetched.
func magnetTorrent(_ magnet: MagnetLink, network: NetworkOptions, command: String) async throws -> TorrentMetainfo {
    let path = keptTorrentPath(magnet.infoHashes.id, network: network)
    if let data = FileManager.default.contents(atPath: path), var t = try? TorrentMetainfo(bytes: [UInt8](data)),
        magnet.infoHashes.v1 == nil || t.infoHashes.v1 == magnet.infoHashes.v1,
        magnet.infoHashes.v2 == nil || t.infoHashes.v2 == magnet.infoHashes.v2
    {
        Terminal.stderr("\(command): using the metadata kept in \(path)\n")
        if t.webSeeds.isEmpty { t.webSeeds = magnet.webSeeds }
        return t
    }
    return try await fetchMetadata(magnet, network: network, command: command)
}

/// Fetches a magnet link's info dictionary from its peers (x.pe, --peer, trackers), checks it against the
/// info-hash, keeps it as STATE/torrents/ID.torrent, and returns the torrent.
func fetchMetadata(_ magnet: MagnetLink, network: NetworkOptions, command: String) async throws -> TorrentMetainfo {
    let node = PeerNode(bindHost: network.bind, encryption: network.wire.encryption,
        transports: network.wire.transports.order)
    let port = try await listen(node, network: network, command: command)
    Terminal.stderr("\(command): fetching metadata of \(magnet.displayName ?? magnet.infoHashes.id) from peers\n")
    let dht = await startDHT(node, network: network, port: port, command: command)
    let discovery = TorrentRun.Discovery(trackers: (magnet.trackers + network.trackers).map { [$0] }, dht: dht != nil,
        localDiscovery: network.localDiscovery, peers: magnet.peers + network.peers)
    let fetcher = TorrentRun.fetchMetadata(magnet, on: node, listenPort: port, discovery: discovery,
        setUp: { $0.onLog = { line in Terminal.stderr("\(line)\n") } },
        report: { report($0, command: command) })
    let token = SignalWatcher.shared.add { fetcher.cancel() }
    let info: [UInt8]
    do { info = try await fetcher.infoBytes.get() } catch {
        SignalWatcher.shared.remove(token)
        await saveDHTNodes(dht, network: network)
        await node.shutdown()
        Terminal.stderr("\(command): interrupted before the metadata arrived\n")
        throw ExitCode(130)
    }
    SignalWatcher.shared.remove(token)
    await saveDHTNodes(dht, network: network)
    await node.shutdown()
    let torrent: TorrentMetainfo
    let bytes: [UInt8]
    do { (torrent, bytes) = try TorrentRun.torrent(info: info, magnet: magnet) } catch {
        Terminal.error(command, "the metadata peers sent is not a valid info dictionary: \(error)")
        throw ExitCode(1)
    }
    keep(bytes, at: keptTorrentPath(magnet.infoHashes.id, network: network))
    Terminal.stderr("\(command): got the metadata of \(torrent.name) (\(info.count) bytes)\n")
    return torrent
}

/// Opens the node's listener on --bind and --port and returns its port; when it cannot, says why, shuts the node
/// down and exits 1.
func listen(_ node: PeerNode, network: NetworkOptions, command: String) async throws -> Int {
    do { return try await node.listen(port: network.port) } catch {
        Terminal.error(command, "cannot listen on \(network.bind ?? "0.0.0.0"):\(network.port): \(error)")
        await node.shutdown()
        throw ExitCode(1)
    }
}

/// Says on stderr what failed on the way that does not stop a transfer.
@Sendable func report(_ problem: TorrentRun.Problem, command: String) {
    switch problem {
    case .localDiscoveryOff: Terminal.stderr("\(command): \(problem)\n")
    case .cannotDial: Terminal.stderr("\(problem)\n")
    }
}

/// The files *not* to fetch, given the ones to fetch as `peer info` numbers them: "0,2,5-7".
func fileSelection(_ text: String, metainfo: TorrentMetainfo) throws(ValidationError) -> Set<Int> {
    var wanted: Set<Int> = []
    for part in text.split(separator: ",", omittingEmptySubsequences: false) {
        let bounds = part.split(separator: "-", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard (1...2).contains(bounds.count), let lo = bounds.first!, let hi = bounds.last!, lo <= hi else {
            throw ValidationError("expected file numbers and ranges such as 0,2,5-7, got \"\(part)\"")
        }
        for i in lo...hi {
            guard metainfo.files.indices.contains(i), !metainfo.files[i].isPadding else {
                throw ValidationError("there is no file \(i) (`peer info` lists the files with their numbers)")
            }
            wanted.insert(i)
        }
    }
    return Set(metainfo.files.indices.filter { !wanted.contains($0) && !metainfo.files[$0].isPadding })
}

/// Starts the node's DHT from the nodes saved in STATE/dht-nodes and the bootstrap routers; nil when it is off
/// or cannot start (said on stderr).
func startDHT(_ node: PeerNode, network: NetworkOptions, port: Int, command: String) async -> DHTService? {
    guard network.dhtEnabled else { return nil }
    var known: [DHTEndpoint] = []
    if let data = FileManager.default.contents(atPath: stateDirectory(network.state) + "/dht-nodes"),
        let list = try? BencodeDecoder().decodeValue([UInt8](data)).list
    {
        known = list.prefix(1000).compactMap { $0.bytes.flatMap { DHTEndpoint(compact: $0) } }
    }
    do {
        // Nodes named with --dht-bootstrap are ordinary nodes (kept when they answer); the default ones are routers.
        let join = network.discovery.dhtJoin
        return try await node.startDHT(port: port, routers: join.routers, nodes: join.nodes, knownNodes: known,
            policy: network.discovery.dhtPolicy)
    } catch {
        Terminal.stderr("\(command): the DHT is off: \(error)\n")
        return nil
    }
}

/// Saves the DHT's routing table nodes for the next start.
func saveDHTNodes(_ dht: DHTService?, network: NetworkOptions) async {
    guard let dht else { return }
    let nodes = await dht.knownNodes()
    guard !nodes.isEmpty else { return }
    let folder = stateDirectory(network.state)
    try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    let bytes = BencodeEncoder.encode(.list(nodes.prefix(1000).map { .string($0.compact) }))
    _ = FileManager.default.createFile(atPath: folder + "/dht-nodes", contents: Data(bytes))
}

/// Loads a .torrent for a transfer, with the same clear errors as `peer info`.
func loadTorrent(_ source: String, command: String) throws -> TorrentMetainfo {
    do {
        let bytes = try Info.read(source, limit: 128 << 20)
        let t = try TorrentMetainfo(bytes: bytes)
        for w in t.warnings { Terminal.warn(w.message) }
        return t
    } catch let e as CreateError {
        Terminal.error(command, "\(source): \(e.description)")
    } catch let e as MetainfoError {
        Terminal.error(command, "\(source): \(e.description)")
    }
    throw ExitCode(1)
}

/// Runs a node for one torrent until it completes (get) or is interrupted (share, get --seed).
func runTransfer(
    command: String, metainfo: TorrentMetainfo, directory: String, network: NetworkOptions, seed: Bool,
    requireComplete: Bool, extraPeers: [String] = [], sequential: Bool = false, fromMagnet: MagnetLink? = nil,
    files selection: String? = nil
) async throws {
    let dir = FilePath(directory.hasPrefix("/") ? directory : FileManager.default.currentDirectoryPath + "/" + directory)
    try? FileManager.default.createDirectory(atPath: dir.string, withIntermediateDirectories: true)
    var unselected: Set<Int> = []
    if let selection {
        do { unselected = try fileSelection(selection, metainfo: metainfo) } catch {
            Terminal.error(command, "--files \(selection): \(error.message)")
            throw ExitCode(1)
        }
        let real = metainfo.files.filter { !$0.isPadding }.count
        Terminal.stderr("\(command): fetching \(real - unselected.count) of \(real) files\n")
    }
    let resume = ResumeStore(stateDirectory: stateDirectory(network.state), metainfo: metainfo)
    let prepared: TorrentRun.Prepared
    do {
        // An earlier run with other --files kept some bytes elsewhere: the check finds them.
        prepared = try TorrentRun.prepare(metainfo, directory: dir.string, unselected: unselected, resume: resume)
    } catch {
        Terminal.error(command, "\(directory): \(error)")
        throw ExitCode(1)
    }
    if let why = prepared.resumeIgnored {
        Terminal.warn("ignoring the resume data in \(resume.location) (\(why)); checking the files instead")
    }
    let (storage, check, have) = (prepared.storage, prepared.check, prepared.have)
    if requireComplete && !have.allSet {
        Terminal.error(command, "\(directory) holds \(have.setCount) of \(have.count) pieces of \(metainfo.name); "
            + "--data must be the folder that holds \(metainfo.isMultiFile ? "the folder" : "the file") \(metainfo.name)")
        throw ExitCode(1)
    }
    let node = PeerNode(bindHost: network.bind, encryption: network.wire.encryption,
        transports: network.wire.transports.order)
    var config = TorrentEngine.Configuration()
    config.seedAfterDownload = seed
    config.sequential = sequential
    config.unselectedFiles = unselected
    config.maxUploadRate = network.maxUp.map { Int64($0.bytes) }
    config.maxDownloadRate = network.maxDown.map { Int64($0.bytes) }
    let boundPort = try await listen(node, network: network, command: command)
    var dht: DHTService?
    if !metainfo.isPrivate {  // private torrents: their trackers only (BEP 27)
        dht = await startDHT(node, network: network, port: boundPort, command: command)
    }
    if network.wire.portMapping {
        node.startPortMapping(port: boundPort) { line in Terminal.stderr("\(command): \(line)\n") }
    }
    let tty = Terminal.stderrIsTTY
    let total = metainfo.totalLength
    let started = ContinuousClock.now
    let discovery = TorrentRun.Discovery(trackers: metainfo.trackers + network.trackers.map { [$0] }, dht: dht != nil,
        localDiscovery: network.localDiscovery, peers: network.peers + extraPeers)
    let (engine, done) = TorrentRun.start(metainfo, prepared, on: node, configuration: config, listenPort: boundPort,
        discovery: discovery,
        setUp: { engine in
            engine.onProgress = { p in
                guard tty else { return }
                let fraction = p.wantedPieces > 0 ? Double(p.havePieces) / Double(p.wantedPieces) : 1
                let secs = max(0.001, Double((ContinuousClock.now - started).components.seconds))
                let rate = Double(p.downloaded) / secs
                let eta = rate > 0 ? Int(Double(total) * (1 - fraction) / rate) : 0
                Terminal.stderr("\r\(ByteCount.fixed(fraction * 100, 1))%  down \(ByteCount.format(Int64(rate)))/s  "
                    + "up \(ByteCount.format(p.uploaded))  peers \(p.peers)  ETA \(eta / 60):\(eta % 60 < 10 ? "0" : "")\(eta % 60)\u{1B}[K")
            }
            engine.onLog = { line in Terminal.stderr((tty ? "\r\u{1B}[K" : "") + "\(line)\n") }
            if let magnet = fromMagnet {
                // A v2 torrent from a magnet link learns its piece layers from peers: keep them for the next run.
                engine.onPieceLayers = { layers in
                    keepTorrent(info: metainfo.infoBytes, trackers: magnet.trackers, pieceLayers: layers,
                        at: keptTorrentPath(magnet.infoHashes.id, network: network))
                }
            }
        },
        report: { report($0, command: command) })
    let how = prepared.resumed ? " (\(check.trusted) from resume data, \(check.checked) checked)" : ""
    Terminal.stderr("\(command): \(metainfo.name): \(have.setCount)/\(have.count) pieces verified\(how); "
        + "listening on " + (network.bind.map { $0.contains(":") ? "[\($0)]:\(boundPort)" : "\($0):\(boundPort)" }
            ?? "0.0.0.0:\(boundPort) and [::]:\(boundPort)") + "\n")
    let token = SignalWatcher.shared.add { engine.cancel() }
    var outcome: Result<Void, any Error>
    do {
        try await done.get()
        outcome = .success(())
    } catch {
        outcome = .failure(error)
    }
    if seed, case .success = outcome {
        if tty { Terminal.stderr("\r\u{1B}[K") }
        Terminal.stderr("\(command): complete; seeding until interrupted\n")
        await SignalWatcher.shared.wait()
    }
    SignalWatcher.shared.remove(token)
    try? await engine.saveResumeData().get()
    await saveDHTNodes(dht, network: network)
    let final = try? await engine.progress().get()
    await node.shutdown()
    storage.close()
    if tty { Terminal.stderr("\r\u{1B}[K") }
    let seconds = Double((ContinuousClock.now - started).components.attoseconds) / 1e18
        + Double((ContinuousClock.now - started).components.seconds)
    if let final {
        Terminal.stderr("\(command): downloaded \(ByteCount.format(final.downloaded)), uploaded "
            + "\(ByteCount.format(final.uploaded)) in \(ByteCount.fixed(seconds, 1)) s\n")
        if network.json {
            print(try Terminal.json(TransferSummary(name: metainfo.name, id: metainfo.infoHashes.id,
                complete: final.complete, verifiedPieces: final.havePieces, pieceCount: have.count,
                downloaded: final.downloaded, uploaded: final.uploaded, seconds: seconds)))
        }
    }
    switch outcome {
    case .success:
        let selected = metainfo.files.filter { !$0.isPadding && !unselected.contains($0.index) }.reduce(0) { $0 + $1.length }
        let size = unselected.isEmpty ? ByteCount.format(total)
            : "\(ByteCount.format(selected)) selected of \(ByteCount.format(total))"
        if !seed && !network.json { print("\(metainfo.name): complete (\(size))") }
    case .failure(let error):
        if error is CancellationError {
            Terminal.stderr("\(command): interrupted; verified pieces are kept, run again to resume\n")
            throw ExitCode(130)
        }
        Terminal.error(command, "\(error)")
        throw ExitCode(1)
    }
}

/// SIGINT and SIGTERM for the whole process: one pair of dispatch sources (libdispatch does not take well
/// to cancelling a signal source and making another), and handlers that come and go.
final class SignalWatcher: @unchecked Sendable {
    static let shared = SignalWatcher()
    private let handlers = Mutex<[Int: @Sendable () -> Void]>([:])
    private let nextToken = Mutex(0)
    private var sources: [any DispatchSourceSignal] = []

    private init() {
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { self.fire() }
            source.resume()
            self.sources.append(source)
        }
    }

    private func fire() {
        for h in self.handlers.withLock({ Array($0.values) }) { h() }
    }

    /// Calls `handler` on every signal until `remove` is called with the returned token.
    func add(_ handler: @escaping @Sendable () -> Void) -> Int {
        let token = self.nextToken.withLock { t in
            t += 1
            return t
        }
        self.handlers.withLock { $0[token] = handler }
        return token
    }

    func remove(_ token: Int) { _ = self.handlers.withLock { $0.removeValue(forKey: token) } }

    /// Waits for the next signal.
    func wait() async {
        let once = Mutex(false)
        var token = 0
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            token = self.add {
                let first = once.withLock { done in
                    defer { done = true }
                    return !done
                }
                if first { continuation.resume() }
            }
        }
        self.remove(token)
    }
}

struct Get: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Download a torrent from peers, serving it to them at the same time.",
        discussion: """
            Verified pieces are kept: after Ctrl-C or a crash, run the same command again and it fetches only \
            the rest. Resume data (STATE/resume/ID.resume, saved every few seconds and on exit) says which \
            pieces are already verified; files changed since it was saved are checked again. Exits 0 once every piece is verified (or keeps seeding with \
            --seed).

            Peers come from the torrent's trackers (UDP, HTTP and HTTPS, tier by tier), from --peer, from \
            other peers (PEX, not for private torrents), from the Mainline DHT (BEP 5, off with --no-dht), \
            from the LAN (BEP 14, off with --no-lsd), and for a magnet link from its x.pe and tr fields; a \
            magnet link's metadata is fetched from those peers first (BEP 9). Web seeds (url-list, or ws in a \
            magnet link) serve whole pieces over HTTP(S) beside the peers.

            Examples:
              peer get linux.torrent -o ~/Downloads --peer 192.0.2.10:6881
              peer get album.torrent -o music --peer 127.0.0.2:6881 --bind 127.0.0.3 --port 0 --seed
              peer get 'magnet:?xt=urn:btih:...&tr=udp://tracker.example:6969' -o ~/Downloads
              peer get show.torrent -o tv --files 2,4-6 --sequential --max-down 4M --max-up 1M
            """)

    @Argument(help: "A .torrent file or a magnet link (its x.pe peers and tr trackers are used).")
    var source: String

    @Option(name: .shortAndLong, help: "The download folder.")
    var output: String

    @OptionGroup var network: NetworkOptions

    @Flag(help: "Keep seeding after the download completes, until interrupted.")
    var seed = false

    @Flag(help: "Fetch pieces in order, first to last (to play media while it downloads), not rarest first.")
    var sequential = false

    @Option(help: ArgumentHelp("Fetch only these files, numbered as `peer info` lists them (e.g. 0,2,5-7).",
        valueName: "LIST"))
    var files: String?

    func run() async throws {
        let t: TorrentMetainfo
        var magnetPeers: [String] = []
        var magnetLink: MagnetLink?
        if self.source.lowercased().hasPrefix("magnet:") {
            let magnet: MagnetLink
            do { magnet = try MagnetLink(parsing: self.source) } catch {
                Terminal.error("get", error.description)
                throw ExitCode(1)
            }
            t = try await magnetTorrent(magnet, network: self.network, command: "get")
            magnetPeers = magnet.peers
            magnetLink = magnet
        } else {
            t = try loadTorrent(self.source, command: "get")
        }
        try await runTransfer(command: "get", metainfo: t, directory: self.output, network: self.network,
            seed: self.seed, requireComplete: false, extraPeers: magnetPeers, sequential: self.sequential,
            fromMagnet: magnetLink, files: self.files)
    }
}

struct Share: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Seed a torrent whose data you have.",
        discussion: """
            The data is checked against the torrent first; then peers are served until interrupted.

            Examples:
              peer share album.torrent --data ~/Music            (~/Music/album holds the files)
              peer share album.torrent --data . --bind 127.0.0.2 --port 6881
            """)

    @Argument(help: "The .torrent file.")
    var torrent: String

    @Option(help: "The folder that holds the torrent's content (DIR/<name>).")
    var data: String = "."

    @OptionGroup var network: NetworkOptions

    func run() async throws {
        let t = try loadTorrent(self.torrent, command: "share")
        try await runTransfer(command: "share", metainfo: t, directory: self.data, network: self.network,
            seed: true, requireComplete: true)
    }
}

/// What `peer get --json` and `peer share --json` print at exit (docs/json.md).
struct TransferSummary: Encodable {
    var kind = "transfer"
    var name: String
    var id: String
    var complete: Bool
    var verifiedPieces: Int
    var pieceCount: Int
    var downloaded: Int64
    var uploaded: Int64
    var seconds: Double

    enum CodingKeys: String, CodingKey {
        case kind, name, id, complete, downloaded, uploaded, seconds
        case verifiedPieces = "verified_pieces"
        case pieceCount = "piece_count"
    }
}
