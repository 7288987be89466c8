// BEP 48 (HTTP scrape) and BEP 15 (UDP scrape): swarm counts of one torrent from each of its trackers.
import AsyncHTTPClient
import Metainfo
import NIOCore
import NIOPosix
import PeerBase
import Tracker

/// The stable JSON shape of `peer scrape --json` (docs/json.md documents each field).
public struct ScrapeReport: Codable, Sendable, Equatable {
    /// What one tracker said.
    public struct Entry: Codable, Sendable, Equatable {
        public var tracker: String
        /// True when the tracker answered the scrape.
        public var ok: Bool
        /// Peers with the whole torrent (`complete`).
        public var seeders: Int?
        /// Peers that ever completed it (`downloaded`).
        public var completed: Int?
        /// Peers still downloading (`incomplete`).
        public var leechers: Int?
        /// False when an HTTP tracker answered without an entry for the torrent (it does not know it); the
        /// counts are then 0. UDP answers always carry an entry.
        public var listed: Bool?
        /// Why the tracker could not be scraped.
        public var error: String?

        public init(
            tracker: String, ok: Bool, seeders: Int?, completed: Int?, leechers: Int?, listed: Bool?, error: String?
        ) {
            self.tracker = tracker
            self.ok = ok
            self.seeders = seeders
            self.completed = completed
            self.leechers = leechers
            self.listed = listed
            self.error = error
        }

        enum CodingKeys: String, CodingKey {
            case tracker, ok, seeders, completed, leechers, listed, error
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(self.tracker, forKey: .tracker)
            try c.encode(self.ok, forKey: .ok)
            try c.encode(self.seeders, forKey: .seeders)
            try c.encode(self.completed, forKey: .completed)
            try c.encode(self.leechers, forKey: .leechers)
            try c.encode(self.listed, forKey: .listed)
            try c.encode(self.error, forKey: .error)
        }
    }

    public var kind = "scrape"
    /// The torrent's identifier (as in `peer info`).
    public var id: String
    /// The 20 bytes asked about, in hex: the v1 info-hash, or the first 20 bytes of the v2 one (what Peer
    /// announces).
    public var infoHash: String
    public var name: String?
    public var trackers: [Entry]
    /// How many trackers answered.
    public var answered: Int

    enum CodingKeys: String, CodingKey {
        case kind, id, name, trackers, answered
        case infoHash = "info_hash"
    }

    public init(id: String, infoHash: [UInt8], name: String?, trackers: [Entry]) {
        self.id = id
        self.infoHash = Hex.encode(infoHash)
        self.name = name
        self.trackers = trackers
        self.answered = trackers.filter(\.ok).count
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(self.kind, forKey: .kind)
        try c.encode(self.id, forKey: .id)
        try c.encode(self.infoHash, forKey: .infoHash)
        try c.encode(self.name, forKey: .name)
        try c.encode(self.trackers, forKey: .trackers)
        try c.encode(self.answered, forKey: .answered)
    }
}

/// Asks trackers for a torrent's swarm counts.
public enum TrackerScrape {
    /// The 20 bytes trackers know a torrent by: its v1 hash, or its v2 hash truncated (BEP 52).
    public static func trackerHash(_ hashes: InfoHashes) -> [UInt8] {
        hashes.v1?.bytes ?? hashes.v2!.truncated
    }

    /// Scrapes `infoHash` from every tracker in `urls` at once (HTTP(S) through the BEP 48 scrape URL, UDP
    /// with BEP 15's scrape action), each within `timeout`.
    /// - Parameters:
    ///   - bindHost: The local address requests leave from.
    /// - Returns: One entry per URL, in the order given.
    public static func scrape(urls: [String], infoHash: [UInt8], bindHost: String?, timeout: Duration) async
        -> [ScrapeReport.Entry]
    {
        precondition(infoHash.count == 20, "a tracker info-hash has 20 bytes")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let client = PeerHTTP.makeClient(group: group, bindHost: bindHost)
        var transports: [any TrackerTransport] = []
        var futures: [EventLoopFuture<ScrapeResponse>] = []
        for url in urls {
            guard let t = TrackerTransports.make(url: url, eventLoop: loop, client: client, bindHost: bindHost) else {
                futures.append(loop.makeFailedFuture(TrackerTransportError("not a udp://, http:// or https:// URL")))
                continue
            }
            transports.append(t)
            futures.append(t.scrape([infoHash], timeout: timeout))
        }
        var entries: [ScrapeReport.Entry] = []
        for (url, future) in zip(urls, futures) {
            do {
                let response = try await future.get()
                let stats = response[infoHash]
                entries.append(ScrapeReport.Entry(tracker: url, ok: true, seeders: stats?.complete ?? 0,
                    completed: stats?.downloaded ?? 0, leechers: stats?.incomplete ?? 0, listed: stats != nil,
                    error: nil))
            } catch {
                entries.append(ScrapeReport.Entry(tracker: url, ok: false, seeders: nil, completed: nil, leechers: nil,
                    listed: nil, error: "\(error)"))
            }
        }
        for t in transports { t.close() }
        try? await client.shutdown()
        try? await group.shutdownGracefully()
        return entries
    }
}
