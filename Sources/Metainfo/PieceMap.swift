// BEP 3 (piece space), BEP 47 (padding files), BEP 52 (v2 piece space: each file on a piece boundary).

/// A piece index known to lie inside one torrent's piece space; only `PieceMap` makes them.
public struct PieceIndex: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The zero-based piece number, as peers send it.
    public let value: Int

    init(unchecked value: Int) { self.value = value }

    public static func < (lhs: PieceIndex, rhs: PieceIndex) -> Bool { lhs.value < rhs.value }
    public var description: String { "piece \(self.value)" }
}

/// A block of a piece, `(piece, offset, length)`: what one `request`, `cancel`, `reject` or `piece` message names.
/// The one block type of the project: the wire protocol decodes peers' numbers into it unchecked, and
/// `PieceMap.validate(_:)` says whether a peer's block lies inside the torrent.
public struct BlockRef: Hashable, Sendable, CustomStringConvertible {
    public var piece: UInt32
    public var offset: UInt32
    public var length: UInt32

    public init(piece: UInt32, offset: UInt32, length: UInt32) {
        self.piece = piece
        self.offset = offset
        self.length = length
    }

    /// Which block of its piece this is (its offset in blocks).
    public var blockIndex: Int { Int(self.offset) / PieceMap.blockSize }

    public var description: String { "piece \(self.piece) [\(self.offset)+\(self.length)]" }
}

/// A run of bytes of a piece that lies in one file.
public struct FileSpan: Hashable, Sendable {
    /// The file's index in `TorrentMetainfo.files`.
    public var fileIndex: Int
    /// Offset of the run's first byte in the file.
    public var fileOffset: Int64
    /// Length of the run in bytes.
    public var length: Int
    /// True for a BEP 47 padding file: never written, read as zeros.
    public var isPadding: Bool
    /// Offset of the run's first byte in the piece.
    public var pieceOffset: Int

    public init(fileIndex: Int, fileOffset: Int64, length: Int, isPadding: Bool, pieceOffset: Int) {
        self.fileIndex = fileIndex
        self.fileOffset = fileOffset
        self.length = length
        self.isPadding = isPadding
        self.pieceOffset = pieceOffset
    }
}

/// Piece, block and file arithmetic for one torrent (STYLE.md rule 10): the only place that knows how
/// pieces map to files, and the only maker of `PieceIndex` and `BlockRef`.
///
/// Piece `i` starts at byte `i * pieceLength` of the torrent's piece space, whose files sit at
/// `TorrentFile.offset`:
/// - v1: files end to end; a piece may straddle files (and pass over empty ones); the last piece is short.
/// - hybrid: the v1 piece space, where BEP 47 padding files put every file on a piece boundary.
/// - v2: each file starts on a piece boundary and the last piece of each file is short; there are no bytes
///   between a file's end and the next piece boundary, so piece indices run file after file.
public struct PieceMap: Sendable {
    /// The transfer unit of the wire protocol and the leaf size of v2 Merkle trees: 16 KiB.
    public static let blockSize = 16 * 1024

    /// The torrent's piece length (every piece but the short ones).
    public let pieceLength: Int
    /// v1, v2 or hybrid: decides how pieces map to files.
    public let version: TorrentVersion
    /// Every file of the torrent, padding included, in index order.
    public let files: [TorrentFile]
    /// The number of pieces (v1 pieces for hybrid torrents).
    public let pieceCount: Int

    /// Indices of files with bytes (padding included), in piece-space order.
    private let ordered: [Int]
    /// Sizes of the pieces shorter than `pieceLength` (the last of each v2 file, the last v1 piece).
    private let shortPieces: [Int: Int]

    /// A map of one file of `totalLength` bytes in pieces of `pieceLength` (v1): the geometry alone, for
    /// pickers, simulations and tests.
    public init(totalLength: Int64, pieceLength: Int) {
        let file = TorrentFile(index: 0, path: ["data"], length: totalLength, offset: 0)
        self.init(pieceLength: pieceLength, version: .v1, files: [file])
    }

    /// Builds the map of a parsed torrent.
    public init(_ metainfo: TorrentMetainfo) {
        self.init(pieceLength: metainfo.pieceLength, version: metainfo.version, files: metainfo.files)
    }

    /// Builds a map from a file list laid out as `TorrentMetainfo` lays it out.
    /// - Precondition: offsets do not decrease and, for v2 and hybrid, non-empty real files start on piece boundaries.
    public init(pieceLength: Int, version: TorrentVersion, files: [TorrentFile]) {
        precondition(pieceLength > 0, "piece length must be positive")
        self.pieceLength = pieceLength
        self.version = version
        self.files = files
        let pl = Int64(pieceLength)
        var ordered: [Int] = []
        var short: [Int: Int] = [:]
        var end: Int64 = 0
        for file in files where file.length > 0 {
            precondition(file.offset >= end, "files overlap in piece space")
            precondition(version == .v1 || file.isPadding || file.offset % pl == 0, "v2 files start on piece boundaries")
            ordered.append(file.index)
            end = file.offset + file.length
            if version == .v2 && file.length % pl != 0 {
                short[Int((end - 1) / pl)] = Int(file.length % pl)
            }
        }
        self.ordered = ordered
        self.pieceCount = Int((end + pl - 1) / pl)
        if version != .v2 && end % pl != 0 { short[self.pieceCount - 1] = Int(end % pl) }
        self.shortPieces = short
    }

    // MARK: - Pieces

    /// The validated index for `value`, or nil when there is no such piece.
    public func index(_ value: Int) -> PieceIndex? {
        value >= 0 && value < self.pieceCount ? PieceIndex(unchecked: value) : nil
    }

    /// Every piece, in order.
    public var allPieces: [PieceIndex] { (0..<self.pieceCount).map(PieceIndex.init(unchecked:)) }

    /// True when `piece` belongs to this map (an index made by a map of a larger torrent does not).
    public func contains(_ piece: PieceIndex) -> Bool { piece.value < self.pieceCount }

    /// The size of a piece in bytes: `pieceLength`, less for the last piece (v1, hybrid) or the last
    /// piece of each file (v2).
    public func pieceSize(_ piece: PieceIndex) -> Int {
        precondition(self.contains(piece), "\(piece) is not in this torrent of \(self.pieceCount) pieces")
        return self.shortPieces[piece.value] ?? self.pieceLength
    }

    /// The offset of the piece's first byte in piece space.
    public func pieceStart(_ piece: PieceIndex) -> Int64 { Int64(piece.value) * Int64(self.pieceLength) }

    // MARK: - Blocks

    /// The number of 16 KiB blocks in a piece (the last may be short).
    public func blockCount(_ piece: PieceIndex) -> Int {
        (self.pieceSize(piece) + Self.blockSize - 1) / Self.blockSize
    }

    /// The byte range, within its piece, of block `block`.
    /// - Precondition: `block < blockCount(piece)`.
    public func blockRange(_ piece: PieceIndex, block: Int) -> Range<Int> {
        let size = self.pieceSize(piece)
        let start = block * Self.blockSize
        precondition(block >= 0 && start < size, "block \(block) is not in \(piece)")
        return start..<min(start + Self.blockSize, size)
    }

    /// Block `block` of `piece`.
    public func block(_ piece: PieceIndex, _ block: Int) -> BlockRef {
        let r = self.blockRange(piece, block: block)
        return BlockRef(piece: UInt32(piece.value), offset: UInt32(r.lowerBound), length: UInt32(r.count))
    }

    /// Every block of a piece, in order.
    public func blocks(_ piece: PieceIndex) -> [BlockRef] {
        (0..<self.blockCount(piece)).map { self.block(piece, $0) }
    }

    /// Validates a block a peer asked for or sent: inside its piece, 1 to 16 KiB long.
    /// - Returns: the block's piece, or nil when the piece does not exist or the range is not acceptable.
    public func validate(_ block: BlockRef) -> PieceIndex? {
        guard let p = self.index(Int(block.piece)), block.length > 0, Int(block.length) <= Self.blockSize,
            Int(block.offset) <= self.pieceSize(p) - Int(block.length)
        else { return nil }
        return p
    }

    /// The block `(piece, offset, length)` when it is one `validate(_:)` accepts; nil otherwise.
    public func blockRef(piece: Int, offset: Int, length: Int) -> BlockRef? {
        guard offset >= 0, length >= 0, piece >= 0, let o = UInt32(exactly: offset), let l = UInt32(exactly: length),
            let p = UInt32(exactly: piece)
        else { return nil }
        let block = BlockRef(piece: p, offset: o, length: l)
        return self.validate(block) == nil ? nil : block
    }

    // MARK: - Files

    /// Maps a byte range of a piece to the files that hold it, in order. Empty files are skipped;
    /// padding files appear with `isPadding` set.
    /// - Precondition: `0 <= offset`, `0 <= length` and `offset + length <= pieceSize(piece)`.
    public func spans(piece: PieceIndex, offset: Int = 0, length: Int? = nil) -> [FileSpan] {
        let size = self.pieceSize(piece)
        let length = length ?? size - offset
        precondition(offset >= 0 && length >= 0 && offset <= size - length,
            "range [\(offset), +\(length)) is outside \(piece) of \(size) bytes")
        guard length > 0 else { return [] }
        let start = self.pieceStart(piece) + Int64(offset)
        let end = start + Int64(length)
        var out: [FileSpan] = []
        var k = self.firstOrdered(endingAfter: start)
        while k < self.ordered.count {
            let file = self.files[self.ordered[k]]
            if file.offset >= end { break }
            let from = max(start, file.offset)
            let to = min(end, file.offset + file.length)
            out.append(FileSpan(fileIndex: file.index, fileOffset: from - file.offset, length: Int(to - from),
                isPadding: file.isPadding, pieceOffset: Int(from - start) + offset))
            k += 1
        }
        return out
    }

    /// The pieces holding bytes of a file; empty for an empty file.
    public func pieces(ofFile index: Int) -> Range<Int> {
        let file = self.files[index]
        let pl = Int64(self.pieceLength)
        let first = Int(min(file.offset / pl, Int64(self.pieceCount)))
        guard file.length > 0 else { return first..<first }
        return first..<Int((file.offset + file.length - 1) / pl) + 1
    }

    /// The files (not padding) holding bytes of a piece, in order.
    public func files(inPiece piece: PieceIndex) -> [Int] {
        self.spans(piece: piece).filter { !$0.isPadding }.map(\.fileIndex)
    }

    /// Where a piece sits in its file's Merkle tree (v2 and hybrid): the file, the piece's position in
    /// the file's piece layer, and how many of the piece's bytes are file data (the rest is padding).
    /// nil for v1 torrents.
    public func merkleLocation(_ piece: PieceIndex) -> (fileIndex: Int, pieceInFile: Int, dataLength: Int)? {
        guard self.version != .v1 else { return nil }
        guard let first = self.spans(piece: piece).first, !first.isPadding else { return nil }
        return (first.fileIndex, Int(first.fileOffset / Int64(self.pieceLength)), first.length)
    }

    /// Index into `ordered` of the first file whose end lies after `position`.
    private func firstOrdered(endingAfter position: Int64) -> Int {
        var lo = 0
        var hi = self.ordered.count
        while lo < hi {
            let mid = (lo + hi) / 2
            let f = self.files[self.ordered[mid]]
            if f.offset + f.length <= position { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }
}
