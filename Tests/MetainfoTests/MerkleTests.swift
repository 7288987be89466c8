import PeerBase
import Crypto
import Metainfo
import Testing

@Suite("Merkle trees (BEP 52)")
struct MerkleTests {
    let zero = [UInt8](repeating: 0, count: 32)

    func h(_ data: [UInt8]) -> [UInt8] { Array(SHA256.hash(data: data)) }

    /// SHA-256 leaves of `data`'s 16 KiB blocks, flat.
    func leaves(_ data: [UInt8]) -> [UInt8] {
        stride(from: 0, to: data.count, by: 16384).flatMap { self.h(Array(data[$0..<min($0 + 16384, data.count)])) }
    }

    @Test("padHash: zero leaf, then hashes of pairs of the level below")
    func padHash() {
        #expect(MerkleTree.padHash(height: 0) == self.zero)
        let p1 = self.h(self.zero + self.zero)
        #expect(MerkleTree.padHash(height: 1) == p1)
        let p2 = self.h(p1 + p1)
        #expect(MerkleTree.padHash(height: 2) == p2)
        #expect(MerkleTree.padHash(height: 3) == self.h(p2 + p2))
    }

    @Test("a file of one block: the root is the block's hash")
    func oneBlock() {
        let short = SeededGenerator.bytes(100, seed: 1)
        #expect(MerkleTree.fileRoot(leaves: self.h(short)) == self.h(short))
        let full = SeededGenerator.bytes(16384, seed: 2)
        #expect(MerkleTree.fileRoot(leaves: self.leaves(full)) == self.h(full))
    }

    @Test("two blocks: SHA256(h0 || h1)")
    func twoBlocks() {
        let data = SeededGenerator.bytes(16384 + 10, seed: 3)
        let h0 = self.h(Array(data[0..<16384]))
        let h1 = self.h(Array(data[16384...]))
        #expect(MerkleTree.fileRoot(leaves: h0 + h1) == self.h(h0 + h1))
    }

    @Test("three blocks: padded with a zero hash to four")
    func threeBlocks() {
        let data = SeededGenerator.bytes(2 * 16384 + 1, seed: 4)
        let h0 = self.h(Array(data[0..<16384]))
        let h1 = self.h(Array(data[16384..<32768]))
        let h2 = self.h(Array(data[32768...]))
        let expected = self.h(self.h(h0 + h1) + self.h(h2 + self.zero))
        #expect(MerkleTree.fileRoot(leaves: h0 + h1 + h2) == expected)
    }

    @Test("five blocks: padded to eight, with pad hashes of higher levels")
    func fiveBlocks() {
        let data = SeededGenerator.bytes(4 * 16384 + 7, seed: 5)
        let l = stride(from: 0, to: data.count, by: 16384).map { self.h(Array(data[$0..<min($0 + 16384, data.count)])) }
        let left = self.h(self.h(l[0] + l[1]) + self.h(l[2] + l[3]))
        let right = self.h(self.h(l[4] + self.zero) + MerkleTree.padHash(height: 1))
        #expect(MerkleTree.fileRoot(leaves: l.flatMap { $0 }) == self.h(left + right))
        #expect(MerkleTree.fileRoot(leaves: l.flatMap { $0 }) == Reference.fileRoot(data))
    }

    @Test("root(of:width:padHeight:) pads with hashes of the given height")
    func rootWithPadHeight() {
        let a = self.h([1])
        let b = self.h([2])
        let c = self.h([3])
        let pad2 = MerkleTree.padHash(height: 2)
        #expect(MerkleTree.root(of: a + b + c, width: 4, padHeight: 2) == self.h(self.h(a + b) + self.h(c + pad2)))
        #expect(MerkleTree.root(of: a, width: 1) == a)
        #expect(MerkleTree.root(of: a, width: 2, padHeight: 0) == self.h(a + self.zero))
        // Wider than needed: more levels of padding.
        let pad3 = MerkleTree.padHash(height: 3)
        #expect(MerkleTree.root(of: a + b, width: 4, padHeight: 2) == self.h(self.h(a + b) + pad3))
        // Nothing at all: the pad hash of the whole tree.
        #expect(MerkleTree.root(of: [], width: 4, padHeight: 1) == MerkleTree.padHash(height: 3))
    }

    @Test(
        "fileRoot(pieceLayer:) equals fileRoot(leaves:) for multi-piece files",
        arguments: [
            (32768, 2 * 32768), (32768, 2 * 32768 + 1), (65536, 5 * 65536 - 16384), (65536, 3 * 65536 + 100),
            (16384, 3 * 16384), (16384, 5 * 16384 + 1), (131072, 2 * 131072 + 16384 + 1), (32768, 9 * 32768 - 1),
        ])
    func pieceLayerRoot(_ pieceLength: Int, _ length: Int) {
        let data = SeededGenerator.bytes(length, seed: UInt64(length))
        let all = self.leaves(data)
        let perPiece = pieceLength / 16384 * 32
        let layer = stride(from: 0, to: all.count, by: perPiece).flatMap {
            MerkleTree.pieceHash(leaves: Array(all[$0..<min($0 + perPiece, all.count)]), pieceLength: pieceLength)
        }
        #expect(layer.count == MerkleTree.pieceCount(fileLength: Int64(length), pieceLength: pieceLength) * 32)
        #expect(layer == Reference.pieceLayer(data, pieceLength: pieceLength))
        let fromLayer = MerkleTree.fileRoot(pieceLayer: layer, pieceLength: pieceLength)
        #expect(fromLayer == MerkleTree.fileRoot(leaves: all))
        #expect(fromLayer == Reference.fileRoot(data))
    }

    @Test("pieceHash of a short last piece pads with zero leaves to a whole piece")
    func shortPiece() {
        let l0 = self.h([9])
        #expect(
            MerkleTree.pieceHash(leaves: l0, pieceLength: 65536)
                == self.h(self.h(l0 + self.zero) + MerkleTree.padHash(height: 1)))
        #expect(MerkleTree.pieceHash(leaves: l0, pieceLength: 16384) == l0)
    }

    @Test("helpers")
    func helpers() {
        #expect(
            [0, 1, 2, 3, 4, 5, 1000, 1024, 1025].map(MerkleTree.nextPowerOfTwo) == [1, 1, 2, 4, 4, 8, 1024, 1024, 2048])
        #expect(MerkleTree.log2(1) == 0)
        #expect(MerkleTree.log2(16384) == 14)
        #expect(MerkleTree.pieceCount(fileLength: 0, pieceLength: 16384) == 0)
        #expect(MerkleTree.pieceCount(fileLength: 1, pieceLength: 16384) == 1)
        #expect(MerkleTree.pieceCount(fileLength: 16384, pieceLength: 16384) == 1)
        #expect(MerkleTree.pieceCount(fileLength: 16385, pieceLength: 16384) == 2)
        #expect(MerkleTree.pieceCount(fileLength: 1 << 50, pieceLength: 1 << 24) == 1 << 26)
        #expect(PieceMap.blockSize == 16384 && MerkleTree.hashSize == 32)
    }
}

@Suite("PieceHasher")
struct PieceHasherTests {
    func hashAll(_ data: [UInt8], chunks: [Int], pieceLength: Int, v1: Bool, v2: Bool, pad: Bool = false)
        -> [PieceHasher.Piece]
    {
        var hasher = PieceHasher(pieceLength: pieceLength, v1: v1, v2: v2)
        var pieces: [PieceHasher.Piece] = []
        var start = 0
        var k = 0
        while start < data.count {
            let n = min(chunks[k % chunks.count], data.count - start)
            data[start..<start + n].withUnsafeBytes { buffer in hasher.update(buffer) { pieces.append($0) } }
            start += n
            k += 1
        }
        hasher.finish(padToPieceLength: pad) { pieces.append($0) }
        return pieces
    }

    @Test(
        "any chunking gives SHA-1 per piece and SHA-256 per block",
        arguments: [[1 << 20], [1], [7, 16383, 3], [16384], [5000, 40000]])
    func chunking(_ chunks: [Int]) {
        let pl = 32768
        let data = SeededGenerator.bytes(3 * pl + 16384 + 77, seed: 21)
        let pieces = self.hashAll(data, chunks: chunks, pieceLength: pl, v1: true, v2: true)
        #expect(pieces.count == 4)
        for (i, piece) in pieces.enumerated() {
            let slice = Array(data[(i * pl)..<min((i + 1) * pl, data.count)])
            #expect(piece.sha1.map(Array.init) == Reference.sha1(slice))
            #expect(piece.leaves == Reference.leaves(slice[...]).flatMap { $0 })
        }
        #expect(pieces[3].leaves.count == 2 * 32)  // one whole block, one of 77 bytes
    }

    @Test("v1 only or v2 only")
    func oneVersion() {
        let data = SeededGenerator.bytes(20000, seed: 22)
        let v1 = self.hashAll(data, chunks: [999], pieceLength: 16384, v1: true, v2: false)
        #expect(v1.count == 2 && v1.allSatisfy { $0.leaves.isEmpty && $0.sha1 != nil })
        let v2 = self.hashAll(data, chunks: [999], pieceLength: 16384, v1: false, v2: true)
        #expect(v2.count == 2 && v2.allSatisfy { $0.sha1 == nil && $0.leaves.count == 32 })
        // A v1 piece length need not be a multiple of 16 KiB.
        let odd = self.hashAll(data, chunks: [4096], pieceLength: 1000, v1: true, v2: false)
        #expect(odd.count == 20)
        #expect(odd.map { Array($0.sha1!) } == (0..<20).map { Reference.sha1(data[($0 * 1000)..<($0 * 1000 + 1000)]) })
        // Nothing fed, nothing finished.
        #expect(self.hashAll([], chunks: [1], pieceLength: 16384, v1: true, v2: true).isEmpty)
    }

    @Test("finish(padToPieceLength:) pads the last SHA-1 with zeros")
    func padding() {
        let data = SeededGenerator.bytes(16384 + 100, seed: 23)
        let padded = self.hashAll(data, chunks: [1 << 20], pieceLength: 16384, v1: true, v2: true, pad: true)
        #expect(padded.count == 2)
        #expect(Array(padded[1].sha1!) == Reference.sha1(Array(data[16384...]) + [UInt8](repeating: 0, count: 16284)))
        #expect(padded[1].leaves == Reference.sha256(data[16384...]))  // leaves are never padded
        let unpadded = self.hashAll(data, chunks: [1 << 20], pieceLength: 16384, v1: true, v2: false, pad: false)
        #expect(Array(unpadded[1].sha1!) == Reference.sha1(data[16384...]))
        // With a large piece length, padding crosses the 64 KiB zero buffer several times.
        let big = self.hashAll([1, 2, 3], chunks: [3], pieceLength: 1 << 18, v1: true, v2: false, pad: true)
        #expect(Array(big[0].sha1!) == Reference.sha1([1, 2, 3] + [UInt8](repeating: 0, count: (1 << 18) - 3)))
    }
}

@Suite("Info-hashes")
struct InfoHashTests {
    @Test("hex parsing and formatting")
    func hex() throws {
        let text = "0123456789abcdef0123456789abcdef01234567"
        let v1 = try #require(InfoHashV1(hex: text))
        #expect(v1.hex == text)
        #expect(v1.description == text)
        #expect(InfoHashV1(hex: text.uppercased()) == v1)
        #expect(InfoHashV1(hex: String(text.dropLast(2))) == nil)
        #expect(InfoHashV1(hex: text + "00") == nil)
        #expect(InfoHashV1(hex: "g" + text.dropFirst()) == nil)
        let long = String(repeating: "ab", count: 32)
        let v2 = try #require(InfoHashV2(hex: long))
        #expect(v2.bytes == [UInt8](repeating: 0xab, count: 32))
        #expect(v2.truncated == [UInt8](repeating: 0xab, count: 20))
        #expect(InfoHashV2(hex: text) == nil)
        #expect(InfoHashes(v1: v1, v2: v2).id == text)
        #expect(InfoHashes(v1: nil, v2: v2).id == long)
    }
}
