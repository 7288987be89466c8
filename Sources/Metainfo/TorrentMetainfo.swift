// BEP 3 (metainfo), 12 (announce-list), 19 (url-list), 27 (private), 47 (padding, attributes), 52 (v2, hybrid).
import Bencode
import Crypto
import PeerBase

/// A parsed and validated .torrent file.
///
/// Info-hashes are computed from the raw bytes of the info dictionary as they appear in the file, never
/// from a re-encoding, so a torrent whose info dictionary is not canonical still has the hash every other
/// client computes. Paths are sanitized (see `PathSanitizer`); every change is reported in `warnings`.
public struct TorrentMetainfo: Sendable {
    /// The torrent's (sanitized) name: the file name of a single-file torrent, else its root folder.
    public var name: String
    public var pieceLength: Int
    public var version: TorrentVersion
    public var isPrivate: Bool
    /// True when files live in a folder named `name` (v1 `files` list, or a v2 tree that is not a lone file).
    public var isMultiFile: Bool
    /// Every file, in index order (see `TorrentFile.index`), padding files included.
    public var files: [TorrentFile]
    /// The v1 piece hashes, 20 bytes each, for v1 and hybrid torrents.
    public var pieceHashesV1: [UInt8]?
    /// v2 piece layers by pieces root, each checked against its root.
    public var pieceLayers: [[UInt8]: [UInt8]]
    public var infoHashes: InfoHashes
    /// The info dictionary exactly as it appeared in the file (what the info-hashes are computed from).
    public var infoBytes: [UInt8]
    /// Trackers by tier (BEP 12); a lone `announce` is one tier of one.
    public var trackers: [[String]]
    /// Web seeds (BEP 19).
    public var webSeeds: [String]
    public var comment: String?
    public var createdBy: String?
    /// Seconds since 1970.
    public var creationDate: Int64?
    /// The info dictionary's `source` tag, if any (private trackers use it).
    public var source: String?
    /// What was accepted but odd, such as a sanitized path.
    public var warnings: [MetainfoWarning]

    /// Sum of the lengths of all files that are not padding.
    public var totalLength: Int64 { self.files.reduce(0) { $0 + ($1.isPadding ? 0 : $1.length) } }

    /// Number of pieces: v1 pieces for v1 and hybrid torrents; for v2, the sum of each file's pieces.
    public var pieceCount: Int {
        if let h = self.pieceHashesV1 { return h.count / 20 }
        return self.files.reduce(0) { $0 + MerkleTree.pieceCount(fileLength: $1.length, pieceLength: self.pieceLength) }
    }

    /// The most a piece may be: 256 MiB (no client makes larger ones).
    public static let maxPieceLength = 256 << 20
    /// The largest file accepted: 1 PiB.
    public static let maxFileLength: Int64 = 1 << 50
    /// The largest torrent accepted: 64 PiB, far from overflowing any offset arithmetic.
    public static let maxTotalLength: Int64 = 1 << 56
}

extension TorrentMetainfo {
    /// Parses and validates a .torrent file.
    /// - Throws: `MetainfoError` naming the first problem and its byte offset.
    public init(bytes: [UInt8], limits: BencodeLimits = .default) throws(MetainfoError) {
        let root: BencodeNode
        do { root = try BencodeDecoder(limits: limits).decode(bytes) } catch { throw .bencode(error) }
        guard root.entries != nil else {
            throw .invalid("a torrent must be a dictionary, found a \(root.typeName)", offset: 0)
        }
        guard let info = root["info"] else { throw .missingKey("info", offset: root.span.lowerBound) }
        self = try Self.parse(info: info, source: bytes, top: root)
    }

    /// Parses a bare info dictionary, as received through the metadata extension (BEP 9).
    public init(infoBytes: [UInt8], limits: BencodeLimits = .default) throws(MetainfoError) {
        let info: BencodeNode
        do { info = try BencodeDecoder(limits: limits).decode(infoBytes) } catch { throw .bencode(error) }
        self = try Self.parse(info: info, source: infoBytes, top: nil)
    }
}

// MARK: - Parsing

extension TorrentMetainfo {
    private static func parse(info: BencodeNode, source: [UInt8], top: BencodeNode?) throws(MetainfoError) -> Self {
        guard info.entries != nil else {
            throw .wrongType(key: "info", expected: "a dictionary", found: info.typeName, offset: info.span.lowerBound)
        }
        var warnings: [MetainfoWarning] = []
        let infoBytes = Array(source[info.span])
        if !info.isCanonicalDeep {
            warnings.append(.init("the info dictionary is not in canonical order; it is hashed from its raw bytes"))
        }

        let metaVersion = try Field.int(info, "meta version")
        if let mv = metaVersion, mv != 1 && mv != 2 {
            throw .invalid("unsupported meta version \(mv)", offset: info["meta version"]!.span.lowerBound)
        }
        let hasV2 = metaVersion == 2
        let hasV1 = info["pieces"] != nil
        if !hasV1 && !hasV2 { throw .missingKey("pieces", offset: info.span.lowerBound) }

        guard let pl = try Field.int(info, "piece length") else {
            throw .missingKey("piece length", offset: info.span.lowerBound)
        }
        let plOffset = info["piece length"]!.span.lowerBound
        guard pl > 0 && pl <= Int64(Self.maxPieceLength) else {
            throw .invalid("piece length \(pl) is out of range (1 to \(Self.maxPieceLength))", offset: plOffset)
        }
        let pieceLength = Int(pl)
        if hasV2 && (pieceLength < PieceMap.blockSize || pieceLength & (pieceLength - 1) != 0) {
            throw .invalid("piece length \(pieceLength) of a v2 torrent must be a power of two of at least 16 KiB",
                offset: plOffset)
        }

        let nameKey = try Field.string(info, "name.utf-8") != nil ? "name.utf-8" : "name"
        guard let rawName = try Field.string(info, nameKey) else {
            throw .missingKey("name", offset: info.span.lowerBound)
        }
        var name = PathSanitizer.component(rawName) ?? "_"
        if Array(name.utf8) != rawName {
            warnings.append(.init("torrent name \(Self.quote(rawName)) was sanitized to \"\(name)\""))
        }
        if name == ".pad" { name = "_pad" }
        let isPrivate = try Field.int(info, "private") == 1

        // v1 file list.
        var v1Files: [TorrentFile]? = nil
        var pieceHashesV1: [UInt8]? = nil
        var isMultiFile = false
        if hasV1 {
            let piecesNode = info["pieces"]!
            guard let pieces = piecesNode.bytes else {
                throw .wrongType(key: "pieces", expected: "a string", found: piecesNode.typeName,
                    offset: piecesNode.span.lowerBound)
            }
            guard pieces.count % 20 == 0 else {
                throw .invalid("\"pieces\" is \(pieces.count) bytes, not a multiple of 20",
                    offset: piecesNode.span.lowerBound)
            }
            let (files, multi) = try Self.parseV1Files(info: info, name: name, warnings: &warnings)
            isMultiFile = multi
            let total = files.last.map { $0.offset + $0.length } ?? 0
            if total == 0 && files.allSatisfy({ $0.length == 0 }) {
                throw .invalid("the torrent holds no data (all files are empty)", offset: info.span.lowerBound)
            }
            let expected = (total + Int64(pieceLength) - 1) / Int64(pieceLength)
            guard Int64(pieces.count / 20) == expected else {
                throw .invalid(
                    "\(pieces.count / 20) piece hashes for \(total) bytes in pieces of \(pieceLength): expected \(expected)",
                    offset: piecesNode.span.lowerBound)
            }
            v1Files = files
            pieceHashesV1 = pieces
        }

        // v2 file tree.
        var v2Files: [TorrentFile]? = nil
        var pieceLayers: [[UInt8]: [UInt8]] = [:]
        if hasV2 {
            guard let tree = info["file tree"] else { throw .missingKey("file tree", offset: info.span.lowerBound) }
            var collected: [(path: [[UInt8]], length: Int64, root: [UInt8]?, attr: String, offset: Int)] = []
            try Self.walkFileTree(tree, prefix: [], into: &collected)
            guard !collected.isEmpty else { throw .invalid("the file tree is empty", offset: tree.span.lowerBound) }
            if collected.allSatisfy({ $0.length == 0 }) {
                throw .invalid("the torrent holds no data (all files are empty)", offset: tree.span.lowerBound)
            }
            let lone = collected.count == 1 && collected[0].path == [rawName]
            if !hasV1 { isMultiFile = !lone }
            if hasV1 && !isMultiFile && !lone {
                throw .invalid("the v1 and v2 parts of this hybrid torrent differ: v1 is the single file "
                    + "\(Self.quote(rawName)), the v2 file tree holds something else", offset: info.span.lowerBound)
            }
            var files: [TorrentFile] = []
            var offset: Int64 = 0
            for (i, c) in collected.enumerated() {
                let path = try Self.sanitizedPath(c.path, root: isMultiFile ? name : nil, single: name,
                    warnings: &warnings, offset: c.offset)
                files.append(TorrentFile(index: i, path: path, length: c.length, offset: offset, attributes: c.attr,
                    piecesRoot: c.root))
                let pieces = Int64(MerkleTree.pieceCount(fileLength: c.length, pieceLength: pieceLength))
                offset += pieces * Int64(pieceLength)
                guard offset <= Self.maxTotalLength else {
                    throw .invalid("the files add up to more than \(Self.maxTotalLength) bytes", offset: c.offset)
                }
            }
            pieceLayers = try Self.parsePieceLayers(top: top, files: files, pieceLength: pieceLength,
                warnings: &warnings)
            v2Files = files
        }

        // Put the two together.
        var files: [TorrentFile]
        let version: TorrentVersion
        switch (v1Files, v2Files) {
        case (let v1?, let v2?):
            version = .hybrid
            files = try Self.merge(v1: v1, v2: v2, pieceLength: pieceLength, offset: info.span.lowerBound)
        case (let v1?, nil):
            version = .v1
            files = v1
        case (nil, let v2?):
            version = .v2
            files = v2
        case (nil, nil):
            fatalError("internal inconsistency: neither v1 nor v2")
        }
        try Self.resolveCollisions(&files, warnings: &warnings)

        let hashes = InfoHashes(
            v1: hasV1 ? InfoHashV1(Array(Insecure.SHA1.hash(data: infoBytes))) : nil,
            v2: hasV2 ? InfoHashV2(Array(SHA256.hash(data: infoBytes))) : nil)

        var result = TorrentMetainfo(
            name: name, pieceLength: pieceLength, version: version, isPrivate: isPrivate, isMultiFile: isMultiFile,
            files: files, pieceHashesV1: pieceHashesV1, pieceLayers: pieceLayers, infoHashes: hashes,
            infoBytes: infoBytes, trackers: [], webSeeds: [], comment: nil, createdBy: nil, creationDate: nil,
            source: try Field.text(info, "source"), warnings: warnings)
        if let top { try result.readTopLevel(top) }
        return result
    }

    private static func parseV1Files(info: BencodeNode, name: String, warnings: inout [MetainfoWarning])
        throws(MetainfoError) -> ([TorrentFile], Bool)
    {
        let filesNode = info["files"]
        let lengthNode = info["length"]
        if filesNode != nil && lengthNode != nil {
            throw .invalid("the info dictionary has both \"length\" and \"files\"", offset: info.span.lowerBound)
        }
        guard let filesNode else {
            guard let length = try Field.int(info, "length") else {
                throw .missingKey("length", offset: info.span.lowerBound)
            }
            guard length >= 0 else { throw .invalid("negative file length \(length)", offset: lengthNode!.span.lowerBound) }
            guard length <= Self.maxFileLength else {
                throw .invalid("file length \(length) is out of range", offset: lengthNode!.span.lowerBound)
            }
            let attr = try Field.text(info, "attr") ?? ""
            return ([TorrentFile(index: 0, path: [name], length: length, offset: 0, attributes: attr)], false)
        }
        guard let list = filesNode.list else {
            throw .wrongType(key: "files", expected: "a list", found: filesNode.typeName,
                offset: filesNode.span.lowerBound)
        }
        guard !list.isEmpty else { throw .invalid("the file list is empty", offset: filesNode.span.lowerBound) }
        var files: [TorrentFile] = []
        files.reserveCapacity(list.count)
        var offset: Int64 = 0
        for (i, entry) in list.enumerated() {
            guard entry.entries != nil else {
                throw .wrongType(key: "files[\(i)]", expected: "a dictionary", found: entry.typeName,
                    offset: entry.span.lowerBound)
            }
            guard let length = try Field.int(entry, "length") else {
                throw .missingKey("length", offset: entry.span.lowerBound)
            }
            guard length >= 0 && length <= Self.maxFileLength else {
                throw .invalid("file length \(length) is out of range", offset: entry["length"]!.span.lowerBound)
            }
            let pathKey = try Field.stringList(entry, "path.utf-8") != nil ? "path.utf-8" : "path"
            guard let rawPath = try Field.stringList(entry, pathKey), let pathNode = entry[pathKey] else {
                throw .missingKey("path", offset: entry.span.lowerBound)
            }
            let attr = try Field.text(entry, "attr") ?? ""
            let path: [String]
            if attr.contains("p") {
                path = [name] + PathSanitizer.components(rawPath)
            } else {
                path = try Self.sanitizedPath(rawPath, root: name, single: name, warnings: &warnings,
                    offset: pathNode.span.lowerBound)
            }
            var target: [String]? = nil
            if attr.contains("l"), let t = try Field.stringList(entry, "symlink path") {
                target = PathSanitizer.components(t)
            }
            files.append(TorrentFile(index: i, path: path, length: length, offset: offset, attributes: attr,
                symlinkTarget: target))
            offset += length
            guard offset <= Self.maxTotalLength else {
                throw .invalid("the files add up to more than \(Self.maxTotalLength) bytes", offset: entry.span.lowerBound)
            }
        }
        return (files, true)
    }

    /// Sanitizes a file's path; `root` is prepended for multi-file torrents.
    private static func sanitizedPath(
        _ raw: [[UInt8]], root: String?, single: String, warnings: inout [MetainfoWarning], offset: Int
    ) throws(MetainfoError) -> [String] {
        guard let root else { return [single] }
        var clean = PathSanitizer.components(raw)
        if clean.isEmpty { clean = ["_"] }
        if clean.map({ Array($0.utf8) }) != raw {
            let shown = raw.map { String(decoding: $0, as: UTF8.self) }.joined(separator: "/")
            warnings.append(.init(
                "file path \(Self.quote(Array(shown.utf8))) (byte \(offset)) was sanitized to \"\(clean.joined(separator: "/"))\""))
        }
        return [root] + clean
    }

    private static func walkFileTree(
        _ node: BencodeNode, prefix: [[UInt8]],
        into out: inout [(path: [[UInt8]], length: Int64, root: [UInt8]?, attr: String, offset: Int)]
    ) throws(MetainfoError) {
        guard let entries = node.entries else {
            throw .wrongType(key: "file tree", expected: "a dictionary", found: node.typeName,
                offset: node.span.lowerBound)
        }
        // File-tree order is the canonical (sorted) key order, whatever order the file used.
        for entry in entries.sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }) {
            let child = entry.value
            guard let childEntries = child.entries else {
                throw .wrongType(key: "file tree", expected: "a dictionary", found: child.typeName,
                    offset: child.span.lowerBound)
            }
            if entry.key.isEmpty {
                throw .invalid("a file-tree entry has an empty name", offset: child.span.lowerBound)
            }
            if let leaf = child[""] {
                guard childEntries.count == 1 else {
                    throw .invalid("a file-tree entry is both a file and a folder", offset: child.span.lowerBound)
                }
                guard leaf.entries != nil else {
                    throw .wrongType(key: "file tree", expected: "a dictionary", found: leaf.typeName,
                        offset: leaf.span.lowerBound)
                }
                guard let length = try Field.int(leaf, "length") else {
                    throw .missingKey("length", offset: leaf.span.lowerBound)
                }
                guard length >= 0 && length <= Self.maxFileLength else {
                    throw .invalid("file length \(length) is out of range", offset: leaf["length"]!.span.lowerBound)
                }
                let root = try Field.string(leaf, "pieces root")
                if length > 0 {
                    guard let root else { throw .missingKey("pieces root", offset: leaf.span.lowerBound) }
                    guard root.count == 32 else {
                        throw .invalid("\"pieces root\" is \(root.count) bytes, not 32",
                            offset: leaf["pieces root"]!.span.lowerBound)
                    }
                }
                out.append((prefix + [entry.key], length, length > 0 ? root : nil,
                    try Field.text(leaf, "attr") ?? "", child.span.lowerBound))
            } else {
                try Self.walkFileTree(child, prefix: prefix + [entry.key], into: &out)
            }
        }
    }

    private static func parsePieceLayers(
        top: BencodeNode?, files: [TorrentFile], pieceLength: Int, warnings: inout [MetainfoWarning]
    ) throws(MetainfoError) -> [[UInt8]: [UInt8]] {
        var layers: [[UInt8]: [UInt8]] = [:]
        let node = top?["piece layers"]
        if let node, node.entries == nil {
            throw .wrongType(key: "piece layers", expected: "a dictionary", found: node.typeName,
                offset: node.span.lowerBound)
        }
        var missing = 0
        for file in files where file.length > Int64(pieceLength) {
            guard let root = file.piecesRoot else { continue }
            guard let layerNode = node?.entries?.first(where: { $0.key == root })?.value else {
                missing += 1
                continue
            }
            guard let layer = layerNode.bytes else {
                throw .wrongType(key: "piece layers", expected: "a string", found: layerNode.typeName,
                    offset: layerNode.span.lowerBound)
            }
            let count = MerkleTree.pieceCount(fileLength: file.length, pieceLength: pieceLength)
            guard layer.count == count * 32 else {
                throw .invalid("the piece layer of \"\(file.displayPath)\" has \(layer.count / 32) hashes, expected \(count)",
                    offset: layerNode.span.lowerBound)
            }
            guard MerkleTree.fileRoot(pieceLayer: layer, pieceLength: pieceLength) == root else {
                throw .invalid("the piece layer of \"\(file.displayPath)\" does not match its pieces root",
                    offset: layerNode.span.lowerBound)
            }
            layers[root] = layer
        }
        if missing > 0 && top != nil {
            warnings.append(.init("\(missing) file(s) have no piece layer; their hashes will be asked of peers"))
        }
        return layers
    }

    /// Checks that the v1 and v2 halves of a hybrid describe the same files and returns the v1 list
    /// with the v2 roots attached.
    private static func merge(v1: [TorrentFile], v2: [TorrentFile], pieceLength: Int, offset: Int)
        throws(MetainfoError) -> [TorrentFile]
    {
        let real1 = v1.filter { !$0.isPadding && $0.length > 0 }
        let real2 = v2.filter { $0.length > 0 }
        guard real1.count == real2.count else {
            throw .invalid("the v1 and v2 parts of this hybrid torrent list \(real1.count) and \(real2.count) files",
                offset: offset)
        }
        var merged = v1
        for (a, b) in zip(real1, real2) {
            guard a.path == b.path && a.length == b.length else {
                throw .invalid("the v1 and v2 parts of this hybrid torrent differ at \"\(a.displayPath)\"",
                    offset: offset)
            }
            guard a.offset % Int64(pieceLength) == 0 else {
                throw .invalid("\"\(a.displayPath)\" does not start on a piece boundary in this hybrid torrent",
                    offset: offset)
            }
            merged[a.index].piecesRoot = b.piecesRoot
        }
        return merged
    }

    /// Renames files whose sanitized paths collide; refuses a file that is also a folder of another.
    private static func resolveCollisions(_ files: inout [TorrentFile], warnings: inout [MetainfoWarning])
        throws(MetainfoError)
    {
        var used = Set<[String]>()
        var folders = Set<[String]>()
        for i in files.indices where !files[i].isPadding {
            var path = files[i].path
            for n in 1..<path.count where used.contains(Array(path.prefix(n))) {
                throw .invalid(
                    "no safe layout: \"\(path.prefix(n).joined(separator: "/"))\" is both a file and a folder",
                    offset: nil)
            }
            if used.contains(path) || folders.contains(path) {
                let original = path
                var k = 1
                repeat {
                    path[path.count - 1] = Self.numbered(original.last!, k)
                    k += 1
                } while used.contains(path) || folders.contains(path)
                warnings.append(.init(
                    "\"\(original.joined(separator: "/"))\" appears twice; the second is \"\(path.joined(separator: "/"))\""))
                files[i].path = path
            }
            used.insert(path)
            for n in 1..<path.count { folders.insert(Array(path.prefix(n))) }
        }
    }

    private static func numbered(_ name: String, _ k: Int) -> String {
        if let dot = name.lastIndex(of: "."), dot != name.startIndex {
            return "\(name[..<dot]).\(k)\(name[dot...])"
        }
        return "\(name).\(k)"
    }

    private mutating func readTopLevel(_ top: BencodeNode) throws(MetainfoError) {
        var tiers: [[String]] = []
        var seen = Set<String>()
        if let list = top["announce-list"]?.list {
            for tierNode in list {
                let tier = (tierNode.list ?? []).compactMap(\.utf8).filter { !$0.isEmpty && seen.insert($0).inserted }
                if !tier.isEmpty { tiers.append(tier) }
            }
        }
        if tiers.isEmpty, let a = try Field.text(top, "announce"), !a.isEmpty { tiers = [[a]] }
        self.trackers = tiers
        if let one = top["url-list"]?.utf8 {
            self.webSeeds = one.isEmpty ? [] : [one]
        } else if let many = top["url-list"]?.list {
            self.webSeeds = many.compactMap(\.utf8).filter { !$0.isEmpty }
        }
        let comment = try Field.text(top, "comment")
        self.comment = try Field.text(top, "comment.utf-8") ?? comment
        self.createdBy = try Field.text(top, "created by")
        self.creationDate = try Field.int(top, "creation date")
    }

    private static func quote(_ raw: [UInt8]) -> String {
        "\"" + String(decoding: raw, as: UTF8.self).unicodeScalars.map {
            $0.value < 0x20 || $0 == "\u{FFFD}" ? "\\x" + String($0.value, radix: 16) : String($0)
        }.joined() + "\""
    }
}

/// Typed look-ups that say which key had the wrong type and where.
enum Field {
    static func int(_ d: BencodeNode, _ key: String) throws(MetainfoError) -> Int64? {
        guard let n = d[key] else { return nil }
        guard let v = n.integer else {
            throw .wrongType(key: key, expected: "an integer", found: n.typeName, offset: n.span.lowerBound)
        }
        return v
    }

    static func string(_ d: BencodeNode, _ key: String) throws(MetainfoError) -> [UInt8]? {
        guard let n = d[key] else { return nil }
        guard let v = n.bytes else {
            throw .wrongType(key: key, expected: "a string", found: n.typeName, offset: n.span.lowerBound)
        }
        return v
    }

    /// A string as text; invalid UTF-8 is repaired rather than refused (it is only shown, never hashed).
    static func text(_ d: BencodeNode, _ key: String) throws(MetainfoError) -> String? {
        try Self.string(d, key).map { String(decoding: $0, as: UTF8.self) }
    }

    static func stringList(_ d: BencodeNode, _ key: String) throws(MetainfoError) -> [[UInt8]]? {
        guard let n = d[key] else { return nil }
        guard let items = n.list else {
            throw .wrongType(key: key, expected: "a list of strings", found: n.typeName, offset: n.span.lowerBound)
        }
        var out: [[UInt8]] = []
        for item in items {
            guard let b = item.bytes else {
                throw .wrongType(key: key, expected: "a list of strings", found: "a list holding a \(item.typeName)",
                    offset: item.span.lowerBound)
            }
            out.append(b)
        }
        return out
    }
}
