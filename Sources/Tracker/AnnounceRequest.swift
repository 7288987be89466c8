// BEP 3 (announce parameters), BEP 23 (compact), BEP 52 (v2 torrents announce the truncated hash).
import Metainfo

/// What a client tells a tracker when it announces: which torrent, who it is, how far it got.
///
/// The same value drives an HTTP announce (`HTTPTracker.announceURL(base:request:)`) and a UDP one
/// (`UDPTrackerSession`). Byte counts are totals for this session of the torrent.
public struct AnnounceRequest: Hashable, Sendable {
    /// Why this announce is sent (BEP 3 `event`).
    public enum Event: String, Hashable, Sendable, CaseIterable, CustomStringConvertible {
        /// A regular announce at the tracker's interval.
        case none
        /// The first announce of the session.
        case started
        /// The download just finished (sent once, never when the torrent was complete at start).
        case completed
        /// The client is leaving the swarm.
        case stopped

        /// The value of the `event` field in a UDP announce (BEP 15).
        public var udpValue: UInt32 {
            switch self {
            case .none: 0
            case .completed: 1
            case .started: 2
            case .stopped: 3
            }
        }

        public var description: String { self.rawValue }
    }

    /// The 20-byte info-hash: a v1 SHA-1, or the first 20 bytes of a v2 SHA-256 (BEP 52).
    public let infoHash: [UInt8]
    /// This client's 20-byte peer id.
    public let peerID: [UInt8]
    /// The port this client accepts peer connections on.
    public var port: UInt16
    /// Bytes uploaded so far.
    public var uploaded: UInt64
    /// Bytes downloaded so far.
    public var downloaded: UInt64
    /// Bytes still missing.
    public var left: UInt64
    /// Why this announce is sent.
    public var event: Event
    /// How many peers to ask for; nil lets the tracker choose (UDP sends -1).
    public var numWant: Int32?
    /// A per-session random number that lets the tracker recognise this client across addresses (BEP 7).
    public var key: UInt32
    /// The `tracker id` a previous HTTP response gave, sent back as `trackerid`.
    public var trackerID: [UInt8]?
    /// An address to announce instead of the source address (`ip`; trackers rarely honour it).
    public var ip: String?
    /// An IPv6 address to announce (`ipv6`, BEP 7; discouraged there, sent only when set).
    public var ipv6: String?

    /// Builds a request.
    /// - Precondition: `infoHash` and `peerID` have 20 bytes each.
    public init(
        infoHash: [UInt8],
        peerID: [UInt8],
        port: UInt16,
        uploaded: UInt64 = 0,
        downloaded: UInt64 = 0,
        left: UInt64,
        event: Event = .none,
        numWant: Int32? = nil,
        key: UInt32,
        trackerID: [UInt8]? = nil,
        ip: String? = nil,
        ipv6: String? = nil
    ) {
        precondition(infoHash.count == 20, "a tracker info-hash has 20 bytes")
        precondition(peerID.count == 20, "a peer id has 20 bytes")
        self.infoHash = infoHash
        self.peerID = peerID
        self.port = port
        self.uploaded = uploaded
        self.downloaded = downloaded
        self.left = left
        self.event = event
        self.numWant = numWant
        self.key = key
        self.trackerID = trackerID
        self.ip = ip
        self.ipv6 = ipv6
    }

    /// The 20 bytes to announce for a v1 info-hash.
    public static func trackerHash(_ hash: InfoHashV1) -> [UInt8] { hash.bytes }

    /// The 20 bytes to announce for a v2 info-hash: its first 20 bytes (BEP 52).
    public static func trackerHash(_ hash: InfoHashV2) -> [UInt8] { hash.truncated }
}
