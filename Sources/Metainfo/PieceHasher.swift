import Crypto

/// Hashes a run of whole pieces fed as bytes in any chunking: SHA-1 per piece (v1) and SHA-256 per
/// 16 KiB block (v2 leaves), in one pass over the data so that hybrid torrents read each byte once.
///
/// Pure and single-threaded; torrent creation runs one per worker thread over disjoint piece ranges.
public struct PieceHasher {
    /// A finished piece.
    public struct Piece {
        /// SHA-1 of the piece (v1), padded with zeros to the piece length when `padToPieceLength` was set.
        public var sha1: Insecure.SHA1Digest?
        /// SHA-256 leaf hashes of the piece's blocks (v2), 32 bytes each; the last may cover a short block.
        public var leaves: [UInt8]
    }

    public let pieceLength: Int
    public let v1: Bool
    public let v2: Bool

    private var sha1 = Insecure.SHA1()
    private var block = SHA256()
    private var pieceFill = 0
    private var blockFill = 0
    private var leaves: [UInt8] = []

    public init(pieceLength: Int, v1: Bool, v2: Bool) {
        precondition(!v2 || pieceLength % PieceMap.blockSize == 0, "v2 pieces are whole blocks")
        self.pieceLength = pieceLength
        self.v1 = v1
        self.v2 = v2
        if v2 { self.leaves.reserveCapacity(pieceLength / PieceMap.blockSize * 32) }
    }

    /// Feeds bytes; `onPiece` is called for every piece they complete.
    public mutating func update(_ bytes: UnsafeRawBufferPointer, onPiece: (Piece) -> Void) {
        var rest = bytes
        while !rest.isEmpty {
            let n = min(rest.count, self.pieceLength - self.pieceFill)
            let chunk = UnsafeRawBufferPointer(rebasing: rest[..<n])
            if self.v1 { self.sha1.update(bufferPointer: chunk) }
            if self.v2 { self.feedBlocks(chunk) }
            self.pieceFill += n
            rest = UnsafeRawBufferPointer(rebasing: rest[n...])
            if self.pieceFill == self.pieceLength { onPiece(self.finishPiece()) }
        }
    }

    /// Ends the data: a partial last piece is finished (and for v1 padded with zeros to a whole piece
    /// when `padToPieceLength`, as a BEP 47 padding file after it would do).
    public mutating func finish(padToPieceLength: Bool, onPiece: (Piece) -> Void) {
        guard self.pieceFill > 0 else { return }
        if self.v1 && padToPieceLength {
            var missing = self.pieceLength - self.pieceFill
            Self.zeros.withUnsafeBytes { z in
                while missing > 0 {
                    let n = min(missing, z.count)
                    self.sha1.update(bufferPointer: UnsafeRawBufferPointer(rebasing: z[..<n]))
                    missing -= n
                }
            }
        }
        onPiece(self.finishPiece())
    }

    private static let zeros = [UInt8](repeating: 0, count: 64 * 1024)

    private mutating func feedBlocks(_ bytes: UnsafeRawBufferPointer) {
        var rest = bytes
        while !rest.isEmpty {
            if self.blockFill == 0 && rest.count >= PieceMap.blockSize {
                // Fast path: a whole block in one call.
                var h = SHA256()
                h.update(bufferPointer: UnsafeRawBufferPointer(rebasing: rest[..<PieceMap.blockSize]))
                h.finalize().withUnsafeBytes { self.leaves.append(contentsOf: $0) }
                rest = UnsafeRawBufferPointer(rebasing: rest[PieceMap.blockSize...])
                continue
            }
            let n = min(rest.count, PieceMap.blockSize - self.blockFill)
            self.block.update(bufferPointer: UnsafeRawBufferPointer(rebasing: rest[..<n]))
            self.blockFill += n
            rest = UnsafeRawBufferPointer(rebasing: rest[n...])
            if self.blockFill == PieceMap.blockSize { self.finishBlock() }
        }
    }

    private mutating func finishBlock() {
        let d = self.block.finalize()
        d.withUnsafeBytes { self.leaves.append(contentsOf: $0) }
        self.block = SHA256()
        self.blockFill = 0
    }

    private mutating func finishPiece() -> Piece {
        if self.v2 && self.blockFill > 0 { self.finishBlock() }
        let piece = Piece(sha1: self.v1 ? self.sha1.finalize() : nil, leaves: self.leaves)
        self.sha1 = Insecure.SHA1()
        self.leaves.removeAll(keepingCapacity: true)
        self.pieceFill = 0
        return piece
    }
}
