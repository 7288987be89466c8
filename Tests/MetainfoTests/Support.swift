import PeerBase
import Bencode
import Crypto
import Metainfo
import Testing

/// The UTF-8 bytes of `text`.
func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }


/// A file held in memory, as a torrent would list it.
struct MemFile: Sendable {
    /// For a single-file torrent, `[name]`; otherwise the path below the torrent's folder.
    var path: [String]
    var data: [UInt8]
    var attributes = ""

    init(_ path: [String], _ data: [UInt8], attributes: String = "") {
        self.path = path
        self.data = data
        self.attributes = attributes
    }

    init(_ path: String, length: Int, seed: UInt64 = 1) {
        self.init(path.split(separator: "/").map(String.init), SeededGenerator.bytes(length, seed: seed))
    }
}

/// A torrent built in memory, with what went into it.
struct BuiltTorrent: Sendable {
    var builder: TorrentBuilder
    var files: [MemFile]
    var value: BencodeValue
    var bytes: [UInt8]
    var v1Pieces: [UInt8]?
    var v2: [TorrentBuilder.V2Hashes]?

    /// The v1 piece stream: every file of the layout, padding files as zeros.
    var stream: [UInt8] {
        var out: [UInt8] = []
        for entry in self.builder.layout {
            if let source = entry.source {
                out += self.files[source].data
            } else {
                out += [UInt8](repeating: 0, count: Int(entry.length))
            }
        }
        return out
    }
}

/// Hashes in-memory files the way `TorrentCreator` does (with `PieceHasher` and `MerkleTree`) and builds
/// the torrent with `TorrentBuilder`.
func buildTorrent(
    name: String, pieceLength: Int, version: TorrentVersion, files: [MemFile], multiFile: Bool? = nil,
    configure: (inout TorrentBuilder) -> Void = { _ in }
) -> BuiltTorrent {
    let isMulti = multiFile ?? (files.count > 1)
    var builder = TorrentBuilder(
        name: name, pieceLength: pieceLength, version: version,
        files: files.map {
            TorrentBuilder.File(path: $0.path, length: Int64($0.data.count), attributes: $0.attributes)
        },
        isMultiFile: isMulti)
    configure(&builder)

    var v1Pieces: [UInt8]? = nil
    if version != .v2 {
        var hasher = PieceHasher(pieceLength: pieceLength, v1: true, v2: false)
        var out: [UInt8] = []
        let collect = { (piece: PieceHasher.Piece) in out += Array(piece.sha1!) }
        for entry in builder.layout {
            let chunk = entry.source.map { files[$0].data } ?? [UInt8](repeating: 0, count: Int(entry.length))
            chunk.withUnsafeBytes { hasher.update($0, onPiece: collect) }
        }
        hasher.finish(padToPieceLength: false, onPiece: collect)
        v1Pieces = out
    }

    var v2: [TorrentBuilder.V2Hashes]? = nil
    if version != .v1 {
        v2 = files.map { file in
            guard !file.data.isEmpty else { return TorrentBuilder.V2Hashes(root: nil, pieceLayer: nil) }
            var hasher = PieceHasher(pieceLength: pieceLength, v1: false, v2: true)
            var pieces: [[UInt8]] = []
            file.data.withUnsafeBytes { buffer in hasher.update(buffer) { piece in pieces.append(piece.leaves) } }
            hasher.finish(padToPieceLength: false) { piece in pieces.append(piece.leaves) }
            if pieces.count == 1 {
                return TorrentBuilder.V2Hashes(root: MerkleTree.fileRoot(leaves: pieces[0]), pieceLayer: nil)
            }
            let layer = pieces.flatMap { MerkleTree.pieceHash(leaves: $0, pieceLength: pieceLength) }
            return TorrentBuilder.V2Hashes(
                root: MerkleTree.fileRoot(pieceLayer: layer, pieceLength: pieceLength), pieceLayer: layer)
        }
    }
    let value = builder.build(v1Pieces: v1Pieces, v2: v2)
    return BuiltTorrent(builder: builder, files: files, value: value, bytes: value.encoded, v1Pieces: v1Pieces, v2: v2)
}

// MARK: - Independent reference hashing (Crypto only; no PieceHasher, no MerkleTree)

enum Reference {
    static let block = 16 * 1024

    static func sha1(_ data: some Collection<UInt8>) -> [UInt8] { Array(Insecure.SHA1.hash(data: Array(data))) }
    static func sha256(_ data: some Collection<UInt8>) -> [UInt8] { Array(SHA256.hash(data: Array(data))) }

    /// v1 piece hashes: SHA-1 of each `pieceLength` slice of `stream` (the last may be short).
    static func v1Pieces(_ stream: [UInt8], pieceLength: Int) -> [UInt8] {
        stride(from: 0, to: stream.count, by: pieceLength).flatMap {
            sha1(stream[$0..<min($0 + pieceLength, stream.count)])
        }
    }

    /// SHA-256 of every 16 KiB block of `data` (the last one may be short).
    static func leaves(_ data: ArraySlice<UInt8>) -> [[UInt8]] {
        stride(from: data.startIndex, to: data.endIndex, by: block).map {
            sha256(data[$0..<min($0 + block, data.endIndex)])
        }
    }

    /// Reduces hashes pairwise to one, after padding them with `pad` to `width` (a power of two).
    static func reduce(_ hashes: [[UInt8]], width: Int, pad: [UInt8]) -> [UInt8] {
        var level = hashes + Array(repeating: pad, count: width - hashes.count)
        var padding = pad
        while level.count > 1 {
            level = stride(from: 0, to: level.count, by: 2).map { sha256(level[$0] + level[$0 + 1]) }
            padding = sha256(padding + padding)
        }
        return level[0]
    }

    static func powerOfTwo(atLeast n: Int) -> Int {
        var p = 1
        while p < n { p *= 2 }
        return p
    }

    /// BEP 52 root of a file: its 16 KiB leaves padded with zero hashes to a power of two.
    static func fileRoot(_ data: [UInt8]) -> [UInt8] {
        let l = leaves(data[...])
        return reduce(l, width: powerOfTwo(atLeast: l.count), pad: [UInt8](repeating: 0, count: 32))
    }

    /// BEP 52 piece layer of a file: the root of each piece's subtree (short pieces padded with zero leaves).
    static func pieceLayer(_ data: [UInt8], pieceLength: Int) -> [UInt8] {
        stride(from: 0, to: data.count, by: pieceLength).flatMap { start in
            let l = leaves(data[start..<min(start + pieceLength, data.count)])
            return reduce(l, width: pieceLength / block, pad: [UInt8](repeating: 0, count: 32))
        }
    }
}

// MARK: - Reading errors and offsets

/// Parses `bytes`, returning the error (nil when it loads).
func loadError(_ bytes: [UInt8]) -> MetainfoError? {
    do {
        _ = try TorrentMetainfo(bytes: bytes)
        return nil
    } catch {
        return error
    }
}

/// The offset of the node `select` picks in the decoded `bytes`.
func offset(in bytes: [UInt8], _ select: (BencodeNode) -> BencodeNode?) -> Int? {
    guard let root = try? BencodeDecoder().decode(bytes) else { return nil }
    return select(root)?.span.lowerBound
}

extension BencodeValue {
    /// Sets the value at a path of dictionary keys (and list indices written as "#n").
    func setting(_ path: [String], to newValue: BencodeValue?) -> BencodeValue {
        guard let head = path.first else { return newValue ?? self }
        let rest = Array(path.dropFirst())
        switch self {
        case .dictionary(var d):
            let child = d[head] ?? .dictionary(BencodeDictionary())
            d[head] = rest.isEmpty ? newValue : child.setting(rest, to: newValue)
            return .dictionary(d)
        case .list(var items):
            let i = Int(head.dropFirst())!
            if rest.isEmpty {
                if let newValue { items[i] = newValue } else { items.remove(at: i) }
            } else {
                items[i] = items[i].setting(rest, to: newValue)
            }
            return .list(items)
        default:
            preconditionFailure("cannot descend into \(self)")
        }
    }

    /// The value at a path of dictionary keys (and list indices written as "#n").
    func at(_ path: [String]) -> BencodeValue? {
        guard let head = path.first else { return self }
        switch self {
        case .dictionary(let d): return d[head]?.at(Array(path.dropFirst()))
        case .list(let items):
            guard let i = Int(head.dropFirst()), items.indices.contains(i) else { return nil }
            return items[i].at(Array(path.dropFirst()))
        default: return nil
        }
    }
}

extension BencodeNode {
    /// The node at a path of dictionary keys (and list indices written as "#n").
    func at(_ path: [String]) -> BencodeNode? {
        guard let head = path.first else { return self }
        if let items = self.list {
            guard let i = Int(head.dropFirst()), items.indices.contains(i) else { return nil }
            return items[i].at(Array(path.dropFirst()))
        }
        return self[head]?.at(Array(path.dropFirst()))
    }
}

/// Runs the body of a property, recording a thrown error as an issue. `propertyCheck` (swift-property-based
/// 2.0.1) discards errors thrown by its body (`try?` in `countIssues`), so a bare `try` there can never fail.
func failOnThrow(sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) {
    do {
        try body()
    } catch {
        Issue.record(error, sourceLocation: sourceLocation)
    }
}
