import Metainfo
import PeerBase

/// The stable JSON shape of a torrent, as `peer info --json` prints it (docs/json.md documents each field).
public struct TorrentSummary: Codable, Sendable, Equatable {
    public struct File: Codable, Sendable, Equatable {
        public var index: Int
        public var path: String
        public var length: Int64
        public var offset: Int64
        public var padding: Bool
        public var attributes: String
        public var piecesRoot: String?

        enum CodingKeys: String, CodingKey {
            case index, path, length, offset, padding, attributes
            case piecesRoot = "pieces_root"
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(self.index, forKey: .index)
            try c.encode(self.path, forKey: .path)
            try c.encode(self.length, forKey: .length)
            try c.encode(self.offset, forKey: .offset)
            try c.encode(self.padding, forKey: .padding)
            try c.encode(self.attributes, forKey: .attributes)
            try c.encode(self.piecesRoot, forKey: .piecesRoot)
        }
    }

    public var kind = "torrent"
    public var name: String
    public var version: String
    public var totalSize: Int64
    public var pieceLength: Int
    public var pieceCount: Int
    public var infoHashV1: String?
    public var infoHashV2: String?
    public var infoHashV2Truncated: String?
    public var id: String
    public var isPrivate: Bool
    public var multiFile: Bool
    public var trackers: [[String]]
    public var webSeeds: [String]
    public var createdBy: String?
    public var creationDate: Int64?
    public var comment: String?
    public var source: String?
    public var files: [File]
    public var magnet: String
    public var warnings: [String]

    enum CodingKeys: String, CodingKey {
        case kind, name, version, id, trackers, comment, source, files, magnet, warnings
        case totalSize = "total_size"
        case pieceLength = "piece_length"
        case pieceCount = "piece_count"
        case infoHashV1 = "info_hash_v1"
        case infoHashV2 = "info_hash_v2"
        case infoHashV2Truncated = "info_hash_v2_truncated"
        case isPrivate = "private"
        case multiFile = "multi_file"
        case webSeeds = "web_seeds"
        case createdBy = "created_by"
        case creationDate = "creation_date"
    }

    /// Absent values are written as `null`, so every key is always there.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(self.kind, forKey: .kind)
        try c.encode(self.name, forKey: .name)
        try c.encode(self.version, forKey: .version)
        try c.encode(self.id, forKey: .id)
        try c.encode(self.totalSize, forKey: .totalSize)
        try c.encode(self.pieceLength, forKey: .pieceLength)
        try c.encode(self.pieceCount, forKey: .pieceCount)
        try c.encode(self.infoHashV1, forKey: .infoHashV1)
        try c.encode(self.infoHashV2, forKey: .infoHashV2)
        try c.encode(self.infoHashV2Truncated, forKey: .infoHashV2Truncated)
        try c.encode(self.isPrivate, forKey: .isPrivate)
        try c.encode(self.multiFile, forKey: .multiFile)
        try c.encode(self.trackers, forKey: .trackers)
        try c.encode(self.webSeeds, forKey: .webSeeds)
        try c.encode(self.createdBy, forKey: .createdBy)
        try c.encode(self.creationDate, forKey: .creationDate)
        try c.encode(self.comment, forKey: .comment)
        try c.encode(self.source, forKey: .source)
        try c.encode(self.files, forKey: .files)
        try c.encode(self.magnet, forKey: .magnet)
        try c.encode(self.warnings, forKey: .warnings)
    }

    public init(_ t: TorrentMetainfo) {
        self.name = t.name
        self.version = t.version.rawValue
        self.totalSize = t.totalLength
        self.pieceLength = t.pieceLength
        self.pieceCount = t.pieceCount
        self.infoHashV1 = t.infoHashes.v1?.hex
        self.infoHashV2 = t.infoHashes.v2?.hex
        self.infoHashV2Truncated = t.infoHashes.v2.map { Hex.encode($0.truncated) }
        self.id = t.infoHashes.id
        self.isPrivate = t.isPrivate
        self.multiFile = t.isMultiFile
        self.trackers = t.trackers
        self.webSeeds = t.webSeeds
        self.createdBy = t.createdBy
        self.creationDate = t.creationDate
        self.comment = t.comment
        self.source = t.source
        self.files = t.files.map {
            File(index: $0.index, path: $0.displayPath, length: $0.length, offset: $0.offset, padding: $0.isPadding,
                attributes: $0.attributes, piecesRoot: $0.piecesRoot.map { Hex.encode($0) })
        }
        self.magnet = MagnetLink(t).description
        self.warnings = t.warnings.map(\.message)
    }
}

/// The stable JSON shape of a magnet link, as `peer info --json` prints it.
public struct MagnetSummary: Codable, Sendable, Equatable {
    public var kind = "magnet"
    public var infoHashV1: String?
    public var infoHashV2: String?
    public var id: String
    public var displayName: String?
    public var trackers: [String]
    public var webSeeds: [String]
    public var peers: [String]
    public var selectedFiles: [Int]
    public var exactLength: Int64?
    public var magnet: String

    enum CodingKeys: String, CodingKey {
        case kind, id, trackers, peers, magnet
        case infoHashV1 = "info_hash_v1"
        case infoHashV2 = "info_hash_v2"
        case displayName = "display_name"
        case webSeeds = "web_seeds"
        case selectedFiles = "selected_files"
        case exactLength = "exact_length"
    }

    /// Absent values are written as `null`, so every key is always there.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(self.kind, forKey: .kind)
        try c.encode(self.id, forKey: .id)
        try c.encode(self.infoHashV1, forKey: .infoHashV1)
        try c.encode(self.infoHashV2, forKey: .infoHashV2)
        try c.encode(self.displayName, forKey: .displayName)
        try c.encode(self.trackers, forKey: .trackers)
        try c.encode(self.webSeeds, forKey: .webSeeds)
        try c.encode(self.peers, forKey: .peers)
        try c.encode(self.selectedFiles, forKey: .selectedFiles)
        try c.encode(self.exactLength, forKey: .exactLength)
        try c.encode(self.magnet, forKey: .magnet)
    }

    public init(_ m: MagnetLink) {
        self.infoHashV1 = m.infoHashes.v1?.hex
        self.infoHashV2 = m.infoHashes.v2?.hex
        self.id = m.infoHashes.id
        self.displayName = m.displayName
        self.trackers = m.trackers
        self.webSeeds = m.webSeeds
        self.peers = m.peers
        self.selectedFiles = m.selectedFiles
        self.exactLength = m.exactLength
        self.magnet = m.description
    }
}
