// BEP 19: web seeds as a source of whole pieces for the engine.
import AsyncHTTPClient
import NIOCore
import Synchronization

/// Feeds one torrent from one web seed: asks the engine for a whole piece no peer is fetching, fetches it
/// with `WebSeed`, and hands the bytes to the engine's verify-and-write path, until the torrent is complete
/// or the node stops. Pieces go one at a time (BEP 19 servers are ordinary web servers).
///
/// Errors that retrying cannot fix (404, a wrong Content-Range, Range ignored far into a file) drop the web
/// seed at once; others are retried after 1, 2, 4 … 60 s. A web seed two of whose pieces fail the hash
/// check is dropped too. Each drop is logged as `dropped web seed URL: why`.
final class WebSeedSource: Sendable {
    let seed: WebSeed
    private let engine: TorrentEngine
    /// The picker key: negative, so it never meets a peer's.
    private let key: Int
    private let task = Mutex<Task<Void, Never>?>(nil)

    /// Hash failures that drop a web seed.
    static let maxHashFailures = 2
    /// The longest wait between retries after errors.
    static let maxBackoff: Duration = .seconds(60)
    /// How often to ask again while no piece can be claimed (short, so a download limit is used in full).
    static let idlePoll: Duration = .milliseconds(200)

    /// Whether it feeds `host`.
    func feeds(_ host: any PeerHost) -> Bool { self.engine === host }

    init(seed: WebSeed, engine: TorrentEngine, key: Int) {
        precondition(key < 0, "web seeds use negative picker keys")
        self.seed = seed
        self.engine = engine
        self.key = key
    }

    func start() {
        let task = Task { await self.run() }
        self.task.withLock { $0 = task }
    }

    /// Stops fetching (the request in flight is cancelled); returns once the loop has ended.
    func stop() async {
        guard let task = self.task.withLock({ $0 }) else { return }
        task.cancel()
        await task.value
    }

    private func onLoop<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T? {
        try? await self.engine.eventLoop.submit(body).get()
    }

    private func log(_ line: String) {
        self.engine.eventLoop.execute { self.engine.log(line) }
    }

    private func run() async {
        let engine = self.engine
        let key = self.key
        var hashFailures = 0
        var errors = 0
        while !Task.isCancelled {
            guard let claimed = await self.onLoop({ engine.claimWholePiece(source: key) }) else { return }
            guard let piece = claimed else {
                // Nothing to start: done, the download limit is spent for now, or every wanted piece is in
                // progress with peers.
                if await self.onLoop({ engine.isComplete }) ?? true { return }
                try? await Task.sleep(for: Self.idlePoll)
                continue
            }
            let bytes: [UInt8]
            do {
                bytes = try await self.seed.fetch(piece: piece)
            } catch {
                _ = await self.onLoop { engine.releaseWholePieces(source: key) }
                if Task.isCancelled { return }
                if let e = error as? WebSeedError, e.isPermanent {
                    self.log("dropped web seed \(self.seed.url): \(e)")
                    return
                }
                errors += 1
                let wait = min(Self.maxBackoff, .seconds(1 << min(errors - 1, 6)))
                self.log("web seed \(self.seed.url): piece \(piece): \(error); retrying in \(wait.components.seconds) s")
                try? await Task.sleep(for: wait)
                continue
            }
            errors = 0
            let label = "web seed \(self.seed.url)"
            let passed: Bool = await withCheckedContinuation { continuation in
                engine.eventLoop.execute {
                    engine.receivedWholePiece(piece, bytes: bytes, source: key, label: label) { ok in
                        continuation.resume(returning: ok)
                    }
                }
            }
            if !passed {
                hashFailures += 1
                if hashFailures >= Self.maxHashFailures {
                    self.log("dropped web seed \(self.seed.url): \(hashFailures) pieces failed their hash check")
                    return
                }
            }
        }
    }
}

extension PeerNode {
    /// Starts fetching `engine`'s torrent from its web seeds (the torrent's `url-list`, or a magnet link's `ws`):
    /// http:// and https:// ones; others are logged and left out.
    public func startWebSeeds(_ engine: TorrentEngine) {
        var sources: [WebSeedSource] = []
        for (i, url) in engine.metainfo.webSeeds.enumerated() {
            guard WebSeed.supports(url) else {
                engine.eventLoop.execute { engine.log("web seed \(url): not an http:// or https:// URL; left out") }
                continue
            }
            let seed = WebSeed(url: url, metainfo: engine.metainfo, client: self.httpClient)
            sources.append(WebSeedSource(seed: seed, engine: engine, key: -1 - i))
        }
        self.addWebSeeds(sources)
        for s in sources { s.start() }
    }
}
