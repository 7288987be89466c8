// BEP 52: per-file SHA-256 Merkle trees over 16 KiB blocks.
import Crypto

/// Merkle tree arithmetic for v2 torrents. Hashes are 32 bytes, stored flat in `[UInt8]` layers
/// (hash `i` is `layer[32*i ..< 32*i+32]`).
///
/// A file's tree has one leaf per 16 KiB block (the last one may be short and is hashed as it is),
/// padded with all-zero leaves to a power of two. Its *piece layer* is the layer whose nodes each cover
/// `pieceLength` bytes; it is stored in `piece layers` for every file larger than one piece.
public enum MerkleTree {
    /// Size of one hash.
    public static let hashSize = 32

    /// SHA-256 of `left || right`.
    public static func parent(_ left: UnsafeRawBufferPointer, _ right: UnsafeRawBufferPointer) -> SHA256Digest {
        var h = SHA256()
        h.update(bufferPointer: left)
        h.update(bufferPointer: right)
        return h.finalize()
    }

    /// The hash of a subtree of height `height` whose leaves are all zero (height 0 is the zero leaf).
    public static func padHash(height: Int) -> [UInt8] {
        var h = [UInt8](repeating: 0, count: Self.hashSize)
        for _ in 0..<height {
            let d = h.withUnsafeBytes { Self.parent($0, $0) }
            h = Array(d)
        }
        return h
    }

    /// Reduces a flat layer of hashes to its root after padding it with `pad` hashes to `width` nodes.
    ///
    /// - Parameters:
    ///   - layer: `n` hashes, `n <= width`.
    ///   - width: a power of two.
    ///   - padHeight: the height of the nodes in `layer` (0 for leaves), used to make the padding.
    public static func root(of layer: [UInt8], width: Int, padHeight: Int = 0) -> [UInt8] {
        precondition(width > 0 && width & (width - 1) == 0, "width must be a power of two")
        precondition(layer.count % Self.hashSize == 0 && layer.count / Self.hashSize <= width)
        var current = layer
        var count = layer.count / Self.hashSize
        var pad = Self.padHash(height: padHeight)
        var w = width
        while w > 1 {
            var next = [UInt8]()
            next.reserveCapacity((count + 1) / 2 * Self.hashSize)
            var i = 0
            while i < count {
                let d: SHA256Digest = current.withUnsafeBytes { buf in
                    let left = UnsafeRawBufferPointer(rebasing: buf[i * 32..<i * 32 + 32])
                    if i + 1 < count {
                        return Self.parent(left, UnsafeRawBufferPointer(rebasing: buf[(i + 1) * 32..<(i + 2) * 32]))
                    }
                    return pad.withUnsafeBytes { Self.parent(left, $0) }
                }
                next.append(contentsOf: d)
                i += 2
            }
            current = next
            count = (count + 1) / 2
            pad = pad.withUnsafeBytes { Array(Self.parent($0, $0)) }
            w /= 2
        }
        if count == 0 { return pad }
        return Array(current.prefix(Self.hashSize))
    }

    /// The smallest power of two that is at least `n` (1 for 0).
    public static func nextPowerOfTwo(_ n: Int) -> Int {
        var p = 1
        while p < n { p <<= 1 }
        return p
    }

    /// log2 of a power of two.
    public static func log2(_ n: Int) -> Int { n.trailingZeroBitCount }

    /// The root of a file's tree given all its leaf hashes (SHA-256 of each 16 KiB block).
    public static func fileRoot(leaves: [UInt8]) -> [UInt8] {
        Self.root(of: leaves, width: Self.nextPowerOfTwo(leaves.count / Self.hashSize))
    }

    /// The root of a file's tree given its piece layer.
    ///
    /// - Parameters:
    ///   - pieceLayer: one hash per piece of the file.
    ///   - pieceLength: the torrent's piece length (a power of two of at least 16 KiB).
    public static func fileRoot(pieceLayer: [UInt8], pieceLength: Int) -> [UInt8] {
        let height = Self.log2(pieceLength / PieceMap.blockSize)
        return Self.root(
            of: pieceLayer, width: Self.nextPowerOfTwo(pieceLayer.count / Self.hashSize), padHeight: height)
    }

    /// The hash of one piece's subtree from its leaves (fewer than a full piece's are padded with zero leaves).
    public static func pieceHash(leaves: [UInt8], pieceLength: Int) -> [UInt8] {
        Self.root(of: leaves, width: pieceLength / PieceMap.blockSize)
    }

    /// The number of pieces a file of `length` bytes has (0 for an empty file).
    public static func pieceCount(fileLength: Int64, pieceLength: Int) -> Int {
        Int((fileLength + Int64(pieceLength) - 1) / Int64(pieceLength))
    }
}
