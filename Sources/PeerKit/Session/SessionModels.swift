import Channels
import Foundation
import Search
import Metainfo
import Storage

/// What a torrent is doing (docs/api.md).
public enum TorrentState: String, Codable, Sendable {
    case metadata, checking, downloading, seeding, paused, queued, error
}

/// A file's priority: `skip` never fetches it, `high` fetches its pieces before normal ones.
public enum FilePriority: String, Codable, Sendable, CaseIterable {
    case skip, normal, high
}

/// A torrent as lists and events show it (the API's summary).
public struct TorrentStatus: Codable, Sendable, Equatable {
    public var id: String
    public var infoHashV1: String?
    public var infoHashV2: String?
    public var name: String
    public var state: TorrentState
    /// 0…1 over the wanted files.
    public var progress: Double
    /// Wanted bytes: padding and skipped files left out.
    public var size: Int64
    public var haveBytes: Int64
    public var downloadRate: Int64
    public var uploadRate: Int64
    public var downloaded: Int64
    public var uploaded: Int64
    public var peers: Int
    /// Seconds to completion at the current rate; nil when unknown or complete.
    public var eta: Int64?
    public var savePath: String
    public var sequential: Bool
    public var paused: Bool
    public var addedAt: Date
    public var completedAt: Date?
    public var error: String?
    /// Its category's name, if it has one.
    public var category: String? = nil
    /// Free labels, in the order given.
    public var tags: [String] = []
    /// Runs whatever the download queue says.
    public var forceStart = false
    /// The first and last piece of each file come before the others.
    public var firstLastPiecePriority = false

    enum CodingKeys: String, CodingKey {
        case id, name, state, progress, size, downloaded, uploaded, peers, eta, sequential, paused, error
        case category, tags
        case forceStart = "force_start"
        case firstLastPiecePriority = "first_last_piece_priority"
        case infoHashV1 = "info_hash_v1"
        case infoHashV2 = "info_hash_v2"
        case haveBytes = "have_bytes"
        case downloadRate = "download_rate"
        case uploadRate = "upload_rate"
        case savePath = "save_path"
        case addedAt = "added_at"
        case completedAt = "completed_at"
    }

    /// Every key is written, `null` included, so clients see the whole shape.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(self.id, forKey: .id)
        try c.encode(self.infoHashV1, forKey: .infoHashV1)
        try c.encode(self.infoHashV2, forKey: .infoHashV2)
        try c.encode(self.name, forKey: .name)
        try c.encode(self.state, forKey: .state)
        try c.encode(self.progress, forKey: .progress)
        try c.encode(self.size, forKey: .size)
        try c.encode(self.haveBytes, forKey: .haveBytes)
        try c.encode(self.downloadRate, forKey: .downloadRate)
        try c.encode(self.uploadRate, forKey: .uploadRate)
        try c.encode(self.downloaded, forKey: .downloaded)
        try c.encode(self.uploaded, forKey: .uploaded)
        try c.encode(self.peers, forKey: .peers)
        try c.encode(self.eta, forKey: .eta)
        try c.encode(self.savePath, forKey: .savePath)
        try c.encode(self.sequential, forKey: .sequential)
        try c.encode(self.paused, forKey: .paused)
        try c.encode(self.addedAt, forKey: .addedAt)
        try c.encode(self.completedAt, forKey: .completedAt)
        try c.encode(self.error, forKey: .error)
        try c.encode(self.category, forKey: .category)
        try c.encode(self.tags, forKey: .tags)
        try c.encode(self.forceStart, forKey: .forceStart)
        try c.encode(self.firstLastPiecePriority, forKey: .firstLastPiecePriority)
    }
}

/// A category: a name torrents are filed under, and the folder they are saved in unless one is given.
public struct TorrentCategory: Codable, Sendable, Equatable {
    public var name: String
    /// nil: the session's download folder.
    public var savePath: String?

    public init(name: String, savePath: String?) {
        self.name = name
        self.savePath = savePath
    }

    enum CodingKeys: String, CodingKey {
        case name
        case savePath = "save_path"
    }

    /// Every key is written, `null` included.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(self.name, forKey: .name)
        try c.encode(self.savePath, forKey: .savePath)
    }
}

/// One file of a torrent's detail.
public struct FileStatus: Codable, Sendable, Equatable {
    public var index: Int
    public var path: String
    public var length: Int64
    public var priority: FilePriority
    public var progress: Double
    public var padding: Bool
    public var mime: String
}

/// One connected peer of a torrent's detail.
public struct PeerStatus: Codable, Sendable, Equatable {
    public var address: String
    public var client: String?
    public var progress: Double
    public var downloadRate: Int64
    public var outgoing: Bool
    /// "tcp" or "utp".
    public var transport: PeerTransport
    /// uTP only: the datagram size its packets have grown to by path MTU probing (1 400 to start).
    public var packetSize: Int?

    enum CodingKeys: String, CodingKey {
        case address, client, progress, outgoing, transport
        case downloadRate = "download_rate"
        case packetSize = "packet_size"
    }
}

/// One tracker of a torrent's detail.
public struct TrackerStatus: Codable, Sendable, Equatable {
    public var url: String
    public var tier: Int
}

/// The pieces of a torrent's detail.
public struct PiecesStatus: Codable, Sendable, Equatable {
    public var count: Int
    public var length: Int
    public var have: Int
    /// BEP 3 bitfield bytes, base64.
    public var bitfield: String
}

/// A torrent with its files, peers, trackers and pieces (the API's detail).
public struct TorrentDetail: Codable, Sendable, Equatable {
    public var summary: TorrentStatus
    public var files: [FileStatus]
    public var peers: [PeerStatus]
    public var trackers: [TrackerStatus]
    public var pieces: PiecesStatus?
    public var maxDownloadRate: Int64?
    public var maxUploadRate: Int64?
    public var ratioLimit: Double?
    public var seedTimeLimit: Int64?
    public var queuePosition: Int
    public var magnet: String?
    /// Seconds spent seeding, over every run.
    public var seedingSeconds: Int64 = 0

    enum CodingKeys: String, CodingKey {
        case files, peers, trackers, pieces, magnet
        case seedingSeconds = "seeding_seconds"
        case maxDownloadRate = "max_download_rate"
        case maxUploadRate = "max_upload_rate"
        case ratioLimit = "ratio_limit"
        case seedTimeLimit = "seed_time_limit"
        case queuePosition = "queue_position"
    }

    /// The summary's keys and the detail's, in one object.
    public func encode(to encoder: any Encoder) throws {
        try self.summary.encode(to: encoder)
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(self.files, forKey: .files)
        try c.encode(self.peers, forKey: .peers)
        try c.encode(self.trackers, forKey: .trackers)
        try c.encode(self.pieces, forKey: .pieces)
        try c.encode(self.maxDownloadRate, forKey: .maxDownloadRate)
        try c.encode(self.maxUploadRate, forKey: .maxUploadRate)
        try c.encode(self.ratioLimit, forKey: .ratioLimit)
        try c.encode(self.seedTimeLimit, forKey: .seedTimeLimit)
        try c.encode(self.queuePosition, forKey: .queuePosition)
        try c.encode(self.magnet, forKey: .magnet)
        try c.encode(self.seedingSeconds, forKey: .seedingSeconds)
    }
}

// Decoding lives in extensions, so that the structs keep their memberwise initializers.
extension TorrentStatus {
    public init(from decoder: any Decoder) throws { try self.init(from: decoder, peers: nil) }

    /// - Parameter count: the number of peers when the `peers` key holds something else (a detail's list).
    init(from decoder: any Decoder, peers count: Int?) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.id = try c.decode(String.self, forKey: .id)
        self.infoHashV1 = try c.decodeIfPresent(String.self, forKey: .infoHashV1)
        self.infoHashV2 = try c.decodeIfPresent(String.self, forKey: .infoHashV2)
        self.name = try c.decode(String.self, forKey: .name)
        self.state = try c.decode(TorrentState.self, forKey: .state)
        self.progress = try c.decode(Double.self, forKey: .progress)
        self.size = try c.decode(Int64.self, forKey: .size)
        self.haveBytes = try c.decode(Int64.self, forKey: .haveBytes)
        self.downloadRate = try c.decode(Int64.self, forKey: .downloadRate)
        self.uploadRate = try c.decode(Int64.self, forKey: .uploadRate)
        self.downloaded = try c.decode(Int64.self, forKey: .downloaded)
        self.uploaded = try c.decode(Int64.self, forKey: .uploaded)
        self.peers = try count ?? c.decode(Int.self, forKey: .peers)
        self.eta = try c.decodeIfPresent(Int64.self, forKey: .eta)
        self.savePath = try c.decode(String.self, forKey: .savePath)
        self.sequential = try c.decode(Bool.self, forKey: .sequential)
        self.paused = try c.decode(Bool.self, forKey: .paused)
        self.addedAt = try c.decode(Date.self, forKey: .addedAt)
        self.completedAt = try c.decodeIfPresent(Date.self, forKey: .completedAt)
        self.error = try c.decodeIfPresent(String.self, forKey: .error)
        self.category = try c.decodeIfPresent(String.self, forKey: .category)
        self.tags = try c.decodeIfPresent([String].self, forKey: .tags) ?? []
    }
}

extension TorrentDetail {
    /// The summary's keys and the detail's, in one object; the summary's peer count is the list's length.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.files = try c.decode([FileStatus].self, forKey: .files)
        self.peers = try c.decode([PeerStatus].self, forKey: .peers)
        self.trackers = try c.decode([TrackerStatus].self, forKey: .trackers)
        self.pieces = try c.decodeIfPresent(PiecesStatus.self, forKey: .pieces)
        self.maxDownloadRate = try c.decodeIfPresent(Int64.self, forKey: .maxDownloadRate)
        self.maxUploadRate = try c.decodeIfPresent(Int64.self, forKey: .maxUploadRate)
        self.ratioLimit = try c.decodeIfPresent(Double.self, forKey: .ratioLimit)
        self.seedTimeLimit = try c.decodeIfPresent(Int64.self, forKey: .seedTimeLimit)
        self.queuePosition = try c.decode(Int.self, forKey: .queuePosition)
        self.magnet = try c.decodeIfPresent(String.self, forKey: .magnet)
        self.seedingSeconds = try c.decodeIfPresent(Int64.self, forKey: .seedingSeconds) ?? 0
        self.summary = try TorrentStatus(from: decoder, peers: self.peers.count)
    }
}

/// `GET /api/torrents`: every torrent, in queue order.
public struct TorrentList: Codable, Sendable, Equatable {
    public var torrents: [TorrentStatus]
    public init(torrents: [TorrentStatus]) { self.torrents = torrents }
}

/// Figures over the whole session.
public struct SessionStats: Codable, Sendable, Equatable {
    public var torrents: Int
    public var active: Int
    public var downloadRate: Int64
    public var uploadRate: Int64
    public var downloaded: Int64
    public var uploaded: Int64
    public var peers: Int
    public var listenPort: Int
    public var dhtNodes: Int
    public var uptime: Int64
    public var version: String
    /// uTP connections the node's UDP sockets hold, in every state (handshaking, open, closing).
    public var utpConnections: Int = 0
    /// The router's mapping of the listen port; nil when port mapping is off.
    public var portMapping: PortMapper.Status?

    enum CodingKeys: String, CodingKey {
        case torrents, active, downloaded, uploaded, peers, uptime, version
        case downloadRate = "download_rate"
        case uploadRate = "upload_rate"
        case listenPort = "listen_port"
        case dhtNodes = "dht_nodes"
        case utpConnections = "utp_connections"
        case portMapping = "port_mapping"
    }

    /// Every key, `port_mapping` as null when it is off (the synthesized encoder would leave it out).
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(self.torrents, forKey: .torrents)
        try c.encode(self.active, forKey: .active)
        try c.encode(self.downloadRate, forKey: .downloadRate)
        try c.encode(self.uploadRate, forKey: .uploadRate)
        try c.encode(self.downloaded, forKey: .downloaded)
        try c.encode(self.uploaded, forKey: .uploaded)
        try c.encode(self.peers, forKey: .peers)
        try c.encode(self.listenPort, forKey: .listenPort)
        try c.encode(self.dhtNodes, forKey: .dhtNodes)
        try c.encode(self.utpConnections, forKey: .utpConnections)
        try c.encode(self.portMapping, forKey: .portMapping)
        try c.encode(self.uptime, forKey: .uptime)
        try c.encode(self.version, forKey: .version)
    }
}

/// Settings that apply to the whole session; kept in the database.
public struct SessionSettings: Codable, Sendable, Equatable {
    public var downloadDir: String
    /// Per torrent, for torrents without a limit of their own; nil: none.
    public var maxDownloadRate: Int64?
    public var maxUploadRate: Int64?
    /// Torrents downloading at once; the others wait as `queued`.
    public var maxActiveDownloads: Int
    /// A complete torrent pauses once it uploaded this many times its size; nil: never.
    public var seedRatioLimit: Double?
    /// A complete torrent pauses after seeding this many seconds; nil: never.
    public var seedTimeLimit: Int64?

    public init(downloadDir: String) {
        self.downloadDir = downloadDir
        self.maxActiveDownloads = 5
    }

    /// The API's names, which `PATCH /api/settings` takes too.
    public enum CodingKeys: String, CodingKey {
        case downloadDir = "download_dir"
        case maxDownloadRate = "max_download_rate"
        case maxUploadRate = "max_upload_rate"
        case maxActiveDownloads = "max_active_downloads"
        case seedRatioLimit = "seed_ratio_limit"
        case seedTimeLimit = "seed_time_limit"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(self.downloadDir, forKey: .downloadDir)
        try c.encode(self.maxDownloadRate, forKey: .maxDownloadRate)
        try c.encode(self.maxUploadRate, forKey: .maxUploadRate)
        try c.encode(self.maxActiveDownloads, forKey: .maxActiveDownloads)
        try c.encode(self.seedRatioLimit, forKey: .seedRatioLimit)
        try c.encode(self.seedTimeLimit, forKey: .seedTimeLimit)
    }
}

/// What changes in a session, for live updates.
public enum SessionEvent: Sendable {
    case added(TorrentStatus)
    case updated(TorrentStatus)
    case completed(TorrentStatus)
    case removed(id: String)
    case error(id: String, message: String)
    /// A remote search's progress: answers, checks, and at last `done`.
    case search(RemoteSearchReport)
    /// A channel subscribed to, updated (with its new items), published, refused or removed.
    case channel(ChannelEvent)
}

/// Where a torrent comes from.
public enum TorrentSource: Sendable {
    case magnet(String)
    /// The bytes of a .torrent file.
    case torrentFile([UInt8])
    /// An http(s) URL of a .torrent file.
    case url(String)
}

/// How a torrent is added.
public struct AddOptions: Sendable {
    /// nil: the category's folder, else the session's download folder.
    public var savePath: String?
    public var paused = false
    public var sequential = false
    /// A category's name; one not known yet is made (with no folder of its own).
    public var category: String?
    public var tags: [String] = []
    /// Started whatever the download queue says.
    public var forceStart = false
    /// The first and last piece of each file before the others.
    public var firstLastPiecePriority = false
    /// The torrent's own limits (`TorrentUpdate`'s meaning); nil: the session's.
    public var maxDownloadRate: Int64?
    public var maxUploadRate: Int64?
    public var ratioLimit: Double?
    public var seedTimeLimit: Int64?
    public init(savePath: String? = nil, paused: Bool = false, sequential: Bool = false, category: String? = nil,
        tags: [String] = [])
    {
        self.savePath = savePath
        self.paused = paused
        self.sequential = sequential
        self.category = category
        self.tags = tags
    }
}

/// Changes to a torrent's options; nil leaves one as it is.
public struct TorrentUpdate: Sendable {
    public var sequential: Bool?
    /// `.some(nil)` removes the limit.
    public var maxDownloadRate: Int64??
    public var maxUploadRate: Int64??
    public var ratioLimit: Double??
    public var seedTimeLimit: Int64??
    public var queuePosition: Int?
    /// `.some(nil)` takes the torrent out of its category.
    public var category: String??
    /// The whole set of tags, in order.
    public var tags: [String]?
    /// True also starts a paused torrent; pausing or resuming it clears the flag.
    public var forceStart: Bool?
    public var firstLastPiecePriority: Bool?
    public init() {}
}

/// Why a session call failed, or why a torrent stopped (its `error`). Lower errors come along as they were
/// thrown; the API maps each case to an HTTP status in one place (PeerServer's `APIError`).
/// A search's answer: `GET /api/search`, `peer search`.
public struct SearchResults: Sendable, Codable, Equatable {
    /// The query as typed, and the words searched for.
    public var query: String
    public var terms: [String]
    /// Best first.
    public var hits: [SearchHit]
    /// How long the index took.
    public var milliseconds: Double
    /// The id of the search started among the node's neighbours (`remote=1`): its report is at
    /// `GET /api/search/{id}`, and comes as `search` events.
    public var remote: String?

    public init(query: String, terms: [String], hits: [SearchHit], milliseconds: Double, remote: String? = nil) {
        self.query = query
        self.terms = terms
        self.hits = hits
        self.milliseconds = milliseconds
        self.remote = remote
    }
}

public enum SessionError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Where a torrent's metadata came from when it did not parse.
    public enum MetadataSource: Sendable, Equatable {
        /// A .torrent file in the request.
        case upload
        /// The body of an http(s) URL the request named.
        case url(String)
        /// The info dictionary peers sent for a magnet link.
        case peers
        /// The copy in the session's database.
        case database
    }

    // Nothing by that name.
    case torrentNotFound(id: String)
    /// No remote search by that id (the last few are kept).
    case searchNotFound(id: String)
    case fileNotFound(index: Int, torrent: String)
    case trackerNotFound(url: String, torrent: String)
    /// No DHT node has the BEP 44 item.
    case itemNotFound(target: String)
    /// No channel by that id or link.
    case channelNotFound(id: String)
    case categoryNotFound(name: String)

    // Requests that cannot be right.
    /// A field's value, said in words (`save_path must be an absolute path`).
    case badRequest(String)
    case notAMagnetLink(MetainfoError)
    case fetchFailed(url: String, HTTPFetchError)
    case moveFailed(from: String, to: String, reason: String)
    /// A channel link, pointer, revision or post that is refused, with the reason.
    case channelRefused(ChannelRefusal)

    // Requests that do not fit the torrent's state now.
    case alreadyAdded(id: String)
    case alreadyATracker(url: String, torrent: String)
    /// A magnet link's metadata has not come yet, so it has no files; `what` says what the call wanted.
    case noMetadataYet(id: String, what: String?)
    case conflict(String)
    case dhtOff

    /// Not now: a piece did not come in time, the DHT did not answer.
    case unavailable(String)

    // Faults of a torrent or of the daemon.
    /// Metadata that is not a torrent: a bad request when it came with one, else the torrent's fault.
    case metadata(MetainfoError, from: MetadataSource)
    /// The files of a torrent; `folder` is its save path when the storage could not be opened there.
    case storage(StorageError, folder: String?)
    /// The session's database refused a change: `action` is what the session tried.
    case database(action: String, reason: String)
    /// A torrent without metadata and without a magnet link to fetch it.
    case noMetadataSource
    /// The engine stopped with an error that is not the storage's.
    case engine(String)
    case internalError(String)

    public var description: String {
        switch self {
        case .torrentNotFound(let id): "no torrent \(id)"
        case .searchNotFound(let id): "no remote search \(id) (the last 32 are kept)"
        case .fileNotFound(let index, let torrent): "no file \(index) in \(torrent)"
        case .trackerNotFound(let url, let torrent): "\(url) is not a tracker of \(torrent)"
        case .itemNotFound(let target): "no node has \(target)"
        case .channelNotFound(let id): "no channel \(id)"
        case .categoryNotFound(let name): "no category \(name)"
        case .channelRefused(let e): e.description
        case .badRequest(let m), .conflict(let m), .unavailable(let m), .engine(let m), .internalError(let m): m
        case .notAMagnetLink(let e): "not a magnet link: \(e)"
        case .fetchFailed(let url, let e): "cannot fetch \(url): \(e)"
        case .moveFailed(let from, let to, let reason): "cannot move \(from) to \(to): \(reason)"
        case .alreadyAdded(let id): "the torrent \(id) is already there"
        case .alreadyATracker(let url, let torrent): "\(url) is already a tracker of \(torrent)"
        case .noMetadataYet(let id, let what): "the metadata of \(id) has not arrived yet" + (what.map { ": \($0)" } ?? "")
        case .dhtOff: "the daemon's DHT is off (--no-dht)"
        case .metadata(let e, .upload): "not a torrent file: \(e)"
        case .metadata(let e, .url(let url)): "\(url) is not a torrent file: \(e)"
        case .metadata(let e, .peers): "the metadata peers sent is not usable: \(e)"
        case .metadata(let e, .database): "the saved torrent cannot be read: \(e)"
        case .storage(let e, let folder): (folder.map { "\($0): " } ?? "") + e.description
        case .database(let action, let reason): "cannot \(action): \(reason)"
        case .noMetadataSource: "no metadata and no magnet link to fetch it with"
        }
    }
}

/// Content types by file extension, for streams and file lists.
public enum MediaType {
    static let byExtension: [String: String] = [
        "webm": "video/webm", "mkv": "video/x-matroska", "mp4": "video/mp4", "m4v": "video/mp4",
        "mov": "video/quicktime", "ogv": "video/ogg", "avi": "video/x-msvideo", "ts": "video/mp2t",
        "mp3": "audio/mpeg", "ogg": "audio/ogg", "oga": "audio/ogg", "opus": "audio/opus", "flac": "audio/flac",
        "wav": "audio/wav", "m4a": "audio/mp4", "aac": "audio/aac",
        "jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "gif": "image/gif", "webp": "image/webp",
        "txt": "text/plain; charset=utf-8", "html": "text/html; charset=utf-8", "pdf": "application/pdf",
        "json": "application/json", "zip": "application/zip",
    ]

    /// The content type of a file name; `application/octet-stream` when the extension is unknown.
    public static func of(_ name: String) -> String {
        guard let dot = name.lastIndex(of: ".") else { return "application/octet-stream" }
        return Self.byExtension[name[name.index(after: dot)...].lowercased()] ?? "application/octet-stream"
    }
}

/// `POST /api/torrents` with a JSON body (`peer add` sends it, the daemon reads it): exactly one of `magnet`,
/// `url` or `torrent` (a .torrent file in base64), and the options of `AddOptions`.
public struct AddRequest: Codable, Sendable {
    public var magnet: String?
    public var url: String?
    /// A .torrent file, base64.
    public var torrent: String?
    public var savePath: String?
    public var paused: Bool?
    public var sequential: Bool?
    public var category: String?
    public var tags: [String]?

    public init(magnet: String? = nil, url: String? = nil, torrent: String? = nil, savePath: String? = nil,
        paused: Bool? = nil, sequential: Bool? = nil, category: String? = nil, tags: [String]? = nil)
    {
        (self.magnet, self.url, self.torrent) = (magnet, url, torrent)
        (self.savePath, self.paused, self.sequential) = (savePath, paused, sequential)
        (self.category, self.tags) = (category, tags)
    }

    enum CodingKeys: String, CodingKey {
        case magnet, url, torrent, paused, sequential, category, tags
        case savePath = "save_path"
    }
}

