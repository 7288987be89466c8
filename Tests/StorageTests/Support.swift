import PeerBase
import Bencode
import Foundation
import Metainfo
import SystemPackage
import Testing

@testable import Storage



/// A torrent made in memory from payload files, hashed the way `PeerKit.TorrentCreator` hashes files on disk.
struct TestTorrent {
    /// Paths below the torrent's folder (or `[name]` for a single file) and contents, in torrent order.
    var payload: [(path: [String], data: [UInt8])]
    var metainfo: TorrentMetainfo
    var bytes: [UInt8]

    var map: PieceMap { PieceMap(self.metainfo) }

    /// The bytes of every piece, built from the payload without `PieceMap`: for v1 and hybrid the files of
    /// the layout end to end (padding as zeros) cut every `pieceLength` bytes; for v2 each file cut on its own.
    var expectedPieces: [[UInt8]] {
        let pl = self.metainfo.pieceLength
        var chunks: [[UInt8]] = []
        if self.metainfo.version == .v2 {
            for file in self.metainfo.files where file.length > 0 {
                let data = self.data(of: file)
                chunks += stride(from: 0, to: data.count, by: pl).map { Array(data[$0..<min($0 + pl, data.count)]) }
            }
        } else {
            var stream: [UInt8] = []
            for file in self.metainfo.files {
                if file.isPadding {
                    stream += [UInt8](repeating: 0, count: Int(file.length))
                } else {
                    stream += self.data(of: file)
                }
            }
            chunks = stride(from: 0, to: stream.count, by: pl).map { Array(stream[$0..<min($0 + pl, stream.count)]) }
        }
        return chunks
    }

    /// The payload of a (non-padding) file of the parsed torrent.
    func data(of file: TorrentFile) -> [UInt8] {
        let relative = self.metainfo.isMultiFile ? Array(file.path.dropFirst()) : file.path
        return self.payload.first { $0.path == relative }!.data
    }

    /// The index of the parsed file at `relative` (below the torrent's folder).
    func fileIndex(_ relative: [String]) -> Int {
        let full = self.metainfo.isMultiFile ? [self.metainfo.name] + relative : relative
        return self.metainfo.files.first { $0.path == full }!.index
    }
}

/// Builds and parses back a torrent with `TorrentBuilder`, `PieceHasher` and `MerkleTree`.
func makeTorrent(
    name: String = "t", pieceLength: Int, version: TorrentVersion, files: [(path: [String], data: [UInt8])],
    multiFile: Bool? = nil
) throws -> TestTorrent {
    let builder = TorrentBuilder(
        name: name, pieceLength: pieceLength, version: version,
        files: files.map { TorrentBuilder.File(path: $0.path, length: Int64($0.data.count)) },
        isMultiFile: multiFile ?? (files.count > 1))

    var v1: [UInt8]? = nil
    if version != .v2 {
        var hasher = PieceHasher(pieceLength: pieceLength, v1: true, v2: false)
        var out: [UInt8] = []
        for entry in builder.layout {
            let chunk = entry.source.map { files[$0].data } ?? [UInt8](repeating: 0, count: Int(entry.length))
            chunk.withUnsafeBytes { hasher.update($0) { out += Array($0.sha1!) } }
        }
        hasher.finish(padToPieceLength: false) { out += Array($0.sha1!) }
        v1 = out
    }

    var v2: [TorrentBuilder.V2Hashes]? = nil
    if version != .v1 {
        v2 = files.map { file in
            guard !file.data.isEmpty else { return TorrentBuilder.V2Hashes(root: nil, pieceLayer: nil) }
            var hasher = PieceHasher(pieceLength: pieceLength, v1: false, v2: true)
            var leaves: [[UInt8]] = []
            file.data.withUnsafeBytes { hasher.update($0) { leaves.append($0.leaves) } }
            hasher.finish(padToPieceLength: false) { leaves.append($0.leaves) }
            if leaves.count == 1 {
                return TorrentBuilder.V2Hashes(root: MerkleTree.fileRoot(leaves: leaves[0]), pieceLayer: nil)
            }
            let layer = leaves.flatMap { MerkleTree.pieceHash(leaves: $0, pieceLength: pieceLength) }
            return TorrentBuilder.V2Hashes(
                root: MerkleTree.fileRoot(pieceLayer: layer, pieceLength: pieceLength), pieceLayer: layer)
        }
    }
    let bytes = BencodeEncoder.encode(builder.build(v1Pieces: v1, v2: v2))
    return TestTorrent(payload: files, metainfo: try TorrentMetainfo(bytes: bytes), bytes: bytes)
}

/// Three files of awkward sizes and an empty one, so that pieces straddle files (v1), padding appears
/// (hybrid) and last pieces are short (v2). Piece length 32 KiB: two blocks a piece.
func awkwardTorrent(_ version: TorrentVersion, seed: UInt64 = 7) throws -> TestTorrent {
    try makeTorrent(pieceLength: 32 * 1024, version: version, files: [
        (["a.bin"], SeededGenerator.bytes(40_000, seed: seed)),
        (["empty.txt"], []),
        (["sub", "b.bin"], SeededGenerator.bytes(10_000, seed: seed + 1)),
        (["sub", "deeper", "c.bin"], SeededGenerator.bytes(70_000, seed: seed + 2)),
    ])
}

/// A fresh folder under the system's temporary folder, removed after `body`.
func withTemporaryFolder<T>(_ body: (URL) throws -> T) throws -> T {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("peer-storage-tests-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: url) }
    return try body(url)
}

extension URL {
    var filePath: FilePath { FilePath(self.path) }

    /// The URL of a torrent path (components) below this folder.
    func appending(_ components: [String]) -> URL {
        components.reduce(self) { $0.appendingPathComponent($1) }
    }
}

/// True when something (even a dangling link) exists at `url`.
func exists(_ url: URL) -> Bool {
    (try? FileManager.default.attributesOfItem(atPath: url.path)) != nil
}

/// Writes every block of every piece in a shuffled order.
func writeAllBlocks(_ torrent: TestTorrent, to storage: some TorrentStorage, seed: UInt64) throws(StorageError) {
    let map = storage.pieceMap
    let pieces = torrent.expectedPieces
    var blocks = map.allPieces.flatMap { map.blocks($0) }
    var rng = SeededGenerator(seed: seed)
    blocks.shuffle(using: &rng)
    for block in blocks {
        let (piece, offset, length) = (map.index(Int(block.piece))!, Int(block.offset), Int(block.length))
        let data = pieces[piece.value]
        try storage.write(piece: piece, offset: offset, bytes: Array(data[offset..<offset + length]))
    }
}

/// The case of a storage error without its paths, for comparing `FileStorage` with `MemoryStorage`.
func kind(of error: StorageError) -> String {
    Mirror(reflecting: error).children.first?.label ?? "\(error)"
}

/// Runs `body` and returns the `StorageError` it threw (nil if none; any other error is an issue).
func storageError(sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) -> StorageError? {
    do {
        try body()
        return nil
    } catch let error as StorageError {
        return error
    } catch {
        Issue.record(error, sourceLocation: sourceLocation)
        return nil
    }
}
