// BEP 52 'hash request' / 'hashes': a run of one layer's hashes with the uncle hashes that tie it to the
// file's root.

/// Answers and checks BEP 52 hash requests for a file's piece layer.
///
/// A request names `length` hashes (a power of two, at least 2) from `index` (a multiple of `length`) of a
/// layer, and a number of proof layers. The hashes form a complete subtree; the answer adds one uncle hash
/// per layer above that subtree's root, from the lowest up, so that the receiver can climb to the file's
/// root. BEP 52 counts the subtree's own inner layers (log2(length) - 1 of them) as proof layers too, but
/// sends no hashes for them.
public enum MerkleProof {
    /// The longest run BEP 52 says to ask for or serve.
    public static let maxLength = 512

    /// How many uncle hashes an answer carries.
    /// - Parameters:
    ///   - width: the layer's width padded to a power of two.
    public static func uncleCount(length: Int, proofLayers: Int, width: Int) -> Int {
        let available = MerkleTree.log2(width) - MerkleTree.log2(length)
        return max(0, min(available, proofLayers - (MerkleTree.log2(length) - 1)))
    }

    /// The proof layers to ask for so that the answer reaches the root.
    public static func proofLayers(length: Int, width: Int) -> Int {
        MerkleTree.log2(width) - 1
    }

    /// The runs to ask for to learn a whole piece layer of `pieceCount` hashes: (index, length) pairs.
    public static func chunks(pieceCount: Int) -> [(index: Int, length: Int)] {
        let width = MerkleTree.nextPowerOfTwo(pieceCount)
        let length = max(2, min(width, Self.maxLength))
        return stride(from: 0, to: pieceCount, by: length).map { ($0, length) }
    }

    /// The answer to a request for `length` hashes from `index` of a file's piece layer, with uncles; nil if
    /// the request does not fit the layer (the caller sends 'hash reject').
    /// - Parameters:
    ///   - layer: the file's piece layer (one 32-byte hash per piece, unpadded).
    ///   - padHeight: the height of a piece's subtree (log2(pieceLength / 16 KiB)), for the padding hashes.
    public static func answer(layer: [UInt8], padHeight: Int, index: Int, length: Int, proofLayers: Int)
        -> [UInt8]?
    {
        let count = layer.count / MerkleTree.hashSize
        let width = MerkleTree.nextPowerOfTwo(count)
        guard count >= 2, length >= 2, length <= Self.maxLength, length & (length - 1) == 0, index >= 0,
            index % length == 0, index + length <= width, proofLayers >= 0, proofLayers < 64
        else { return nil }
        // The padded layer, then each layer above it, up to the root.
        var levels: [[UInt8]] = [layer + Array(repeating: MerkleTree.padHash(height: padHeight), count: width - count)
            .flatMap { $0 }]
        while levels.last!.count > MerkleTree.hashSize {
            let below = levels.last!
            var next: [UInt8] = []
            next.reserveCapacity(below.count / 2)
            below.withUnsafeBytes { buf in
                for i in stride(from: 0, to: buf.count, by: 2 * MerkleTree.hashSize) {
                    next.append(contentsOf: MerkleTree.parent(
                        UnsafeRawBufferPointer(rebasing: buf[i..<i + 32]),
                        UnsafeRawBufferPointer(rebasing: buf[i + 32..<i + 64])))
                }
            }
            levels.append(next)
        }
        var out = Array(levels[0][index * 32..<(index + length) * 32])
        var level = MerkleTree.log2(length)
        var position = index / length
        for _ in 0..<Self.uncleCount(length: length, proofLayers: proofLayers, width: width) {
            let sibling = position ^ 1
            out += levels[level][sibling * 32..<sibling * 32 + 32]
            level += 1
            position /= 2
        }
        return out
    }

    /// Checks an answer against the file's root.
    /// - Parameters:
    ///   - hashes: the `length` hashes followed by the uncles, as received.
    ///   - pieceCount: the file's pieces (the layer's unpadded width).
    /// - Returns: the `length` hashes if they belong to the tree whose root is `root`, else nil.
    public static func verify(
        hashes: [UInt8], root: [UInt8], index: Int, length: Int, proofLayers: Int, pieceCount: Int
    ) -> [UInt8]? {
        let width = MerkleTree.nextPowerOfTwo(pieceCount)
        guard length >= 2, length & (length - 1) == 0, index % length == 0, index + length <= width else { return nil }
        let uncles = Self.uncleCount(length: length, proofLayers: proofLayers, width: width)
        // Without enough uncles to reach the root the run cannot be checked.
        guard uncles == MerkleTree.log2(width) - MerkleTree.log2(length),
            hashes.count == (length + uncles) * MerkleTree.hashSize
        else { return nil }
        let run = Array(hashes[0..<length * 32])
        var node = MerkleTree.root(of: run, width: length)
        var position = index / length
        for u in 0..<uncles {
            let uncle = Array(hashes[(length + u) * 32..<(length + u + 1) * 32])
            let pair = position & 1 == 0 ? node + uncle : uncle + node
            node = pair.withUnsafeBytes { buf in
                Array(MerkleTree.parent(UnsafeRawBufferPointer(rebasing: buf[0..<32]),
                    UnsafeRawBufferPointer(rebasing: buf[32..<64])))
            }
            position /= 2
        }
        return node == root ? run : nil
    }
}
