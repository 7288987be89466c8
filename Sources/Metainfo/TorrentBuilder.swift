import Bencode

/// Assembles a .torrent from a file list and its hashes. Pure: the hashing of file contents is the
/// caller's (see `PeerKit.TorrentCreator`), so this can be tested on in-memory data.
public struct TorrentBuilder: Sendable {
    /// One real file, in torrent order.
    public struct File: Sendable, Equatable {
        /// Path below the torrent's root folder; for a single-file torrent, `[name]`.
        public var path: [String]
        public var length: Int64
        /// BEP 47 attributes to record (`x` for executable files).
        public var attributes: String
        public init(path: [String], length: Int64, attributes: String = "") {
            self.path = path
            self.length = length
            self.attributes = attributes
        }
    }

    /// The v2 hashes of one file: its root (nil when empty) and, when it spans more than one piece, its layer.
    public struct V2Hashes: Sendable, Equatable {
        public var root: [UInt8]?
        public var pieceLayer: [UInt8]?
        public init(root: [UInt8]?, pieceLayer: [UInt8]?) {
            self.root = root
            self.pieceLayer = pieceLayer
        }
    }

    public var name: String
    public var pieceLength: Int
    public var version: TorrentVersion
    public var files: [File]
    /// False for a torrent of one file that is not in a folder.
    public var isMultiFile: Bool
    public var trackers: [[String]] = []
    public var webSeeds: [String] = []
    public var isPrivate = false
    public var comment: String?
    public var createdBy: String?
    public var creationDate: Int64?
    public var source: String?

    public init(name: String, pieceLength: Int, version: TorrentVersion, files: [File], isMultiFile: Bool) {
        self.name = name
        self.pieceLength = pieceLength
        self.version = version
        self.files = files
        self.isMultiFile = isMultiFile
    }

    /// The layout in v1 piece space: files and the padding files a hybrid needs.
    public var layout: [FileLayout.Entry] {
        FileLayout.plan(files: self.files.map { ($0.path, $0.length) }, pieceLength: self.pieceLength,
            version: self.version)
    }

    /// Builds the torrent.
    /// - Parameters:
    ///   - v1Pieces: 20-byte SHA-1 hashes of every piece of `layout` (v1 and hybrid).
    ///   - v2: one entry per file of `files` (v2 and hybrid).
    public func build(v1Pieces: [UInt8]?, v2: [V2Hashes]?) -> BencodeValue {
        var info = BencodeDictionary()
        info["name"] = .text(self.name)
        info["piece length"] = .integer(Int64(self.pieceLength))
        if self.isPrivate { info["private"] = 1 }
        if let source = self.source { info["source"] = .text(source) }

        if self.version != .v2 {
            precondition(v1Pieces != nil, "v1 and hybrid torrents need v1 piece hashes")
            info["pieces"] = .string(v1Pieces!)
            if self.isMultiFile {
                info["files"] = .list(self.layout.map { e in
                    var d = BencodeDictionary()
                    d["length"] = .integer(e.length)
                    d["path"] = .list(e.path.map { .text($0) })
                    if e.isPadding {
                        d["attr"] = "p"
                    } else if let src = e.source, !self.files[src].attributes.isEmpty {
                        d["attr"] = .text(self.files[src].attributes)
                    }
                    return .dictionary(d)
                })
            } else {
                info["length"] = .integer(self.files[0].length)
                if !self.files[0].attributes.isEmpty { info["attr"] = .text(self.files[0].attributes) }
            }
        }

        var pieceLayers = BencodeDictionary()
        if self.version != .v1 {
            precondition(v2?.count == self.files.count, "v2 and hybrid torrents need v2 hashes for every file")
            info["meta version"] = 2
            var tree = BencodeValue.dictionary(BencodeDictionary())
            for (file, hashes) in zip(self.files, v2!) {
                var leaf = BencodeDictionary()
                leaf["length"] = .integer(file.length)
                if let root = hashes.root { leaf["pieces root"] = .string(root) }
                if !file.attributes.isEmpty { leaf["attr"] = .text(file.attributes) }
                Self.insert(&tree, path: file.path[...], leaf: ["": .dictionary(leaf)])
                if let root = hashes.root, let layer = hashes.pieceLayer { pieceLayers[root] = .string(layer) }
            }
            info["file tree"] = tree
        }

        var top = BencodeDictionary()
        top["info"] = .dictionary(info)
        let allTrackers = self.trackers.flatMap { $0 }
        if let first = allTrackers.first { top["announce"] = .text(first) }
        if allTrackers.count > 1 {
            top["announce-list"] = .list(self.trackers.filter { !$0.isEmpty }.map { .list($0.map { .text($0) }) })
        }
        if !self.webSeeds.isEmpty { top["url-list"] = .list(self.webSeeds.map { .text($0) }) }
        if let c = self.comment { top["comment"] = .text(c) }
        if let c = self.createdBy { top["created by"] = .text(c) }
        if let d = self.creationDate { top["creation date"] = .integer(d) }
        if self.version != .v1 { top["piece layers"] = .dictionary(pieceLayers) }
        return .dictionary(top)
    }

    private static func insert(_ tree: inout BencodeValue, path: ArraySlice<String>, leaf: BencodeValue) {
        guard case .dictionary(var d) = tree, let head = path.first else { return }
        if path.count == 1 {
            d[head] = leaf
        } else {
            var child = d[head] ?? .dictionary(BencodeDictionary())
            Self.insert(&child, path: path.dropFirst(), leaf: leaf)
            d[head] = child
        }
        tree = .dictionary(d)
    }
}
