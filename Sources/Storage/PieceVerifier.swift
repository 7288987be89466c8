// BEP 3 (SHA-1 piece hashes), BEP 47 (padding hashed as zeros), BEP 52 (SHA-256 Merkle trees, piece layers).
import Crypto
import Metainfo

/// The outcome of checking a piece against one kind of hash.
public enum HashCheck: Sendable, Equatable {
    case passed
    case failed
    /// The torrent has no hash of this kind (v2 hashes of a v1 torrent, v1 hashes of a v2 one).
    case notApplicable
    /// The torrent should have this hash but it is not known yet (a v2 piece layer not yet received).
    case unavailable
}

/// The outcome of checking one piece.
public struct PieceCheck: Sendable, Equatable {
    /// The SHA-1 check (v1 and hybrid torrents).
    public var v1: HashCheck
    /// The Merkle check (v2 and hybrid torrents).
    public var v2: HashCheck

    public init(v1: HashCheck, v2: HashCheck) {
        self.v1 = v1
        self.v2 = v2
    }

    /// True when no hash failed and at least one passed.
    public var passed: Bool {
        self.v1 != .failed && self.v2 != .failed && (self.v1 == .passed || self.v2 == .passed)
    }
}

/// Checks whole pieces against a torrent's hashes: v1 SHA-1 of the piece (padding included, as zeros),
/// and for v2 and hybrid torrents the SHA-256 Merkle hash of the piece's file data. Pure.
public struct PieceVerifier: Sendable {
    /// The torrent's piece layout.
    public let pieceMap: PieceMap
    /// 20 bytes a piece, for v1 and hybrid torrents.
    public let pieceHashesV1: [UInt8]?
    /// v2 piece layers by pieces root.
    public private(set) var pieceLayers: [[UInt8]: [UInt8]]

    /// A verifier for a parsed torrent, with the piece layers it carries.
    public init(metainfo: TorrentMetainfo) {
        self.init(pieceMap: PieceMap(metainfo), pieceHashesV1: metainfo.pieceHashesV1,
            pieceLayers: metainfo.pieceLayers)
    }

    /// A verifier from a layout and hashes (for example a torrent whose piece layers arrive from peers).
    public init(pieceMap: PieceMap, pieceHashesV1: [UInt8]?, pieceLayers: [[UInt8]: [UInt8]]) {
        precondition(pieceHashesV1.map { $0.count == pieceMap.pieceCount * 20 } ?? true,
            "one 20-byte hash per piece")
        self.pieceMap = pieceMap
        self.pieceHashesV1 = pieceHashesV1
        self.pieceLayers = pieceLayers
    }

    /// Adds a piece layer received from peers (BEP 52 `hashes`); the caller has checked it against its root.
    public mutating func addPieceLayer(_ layer: [UInt8], root: [UInt8]) {
        self.pieceLayers[root] = layer
    }

    /// The expected SHA-1 of a piece, or nil for v2-only torrents.
    public func expectedSHA1(_ piece: PieceIndex) -> ArraySlice<UInt8>? {
        guard let hashes = self.pieceHashesV1 else { return nil }
        return hashes[piece.value * 20..<piece.value * 20 + 20]
    }

    /// The hash a piece's Merkle subtree must have: its entry in the file's piece layer, or the file's
    /// root for a file of one piece. nil for v1 torrents and for layers not known yet.
    public func expectedMerkleHash(_ piece: PieceIndex) -> ArraySlice<UInt8>? {
        guard let location = self.pieceMap.merkleLocation(piece),
            let root = self.pieceMap.files[location.fileIndex].piecesRoot
        else { return nil }
        if self.pieceMap.pieces(ofFile: location.fileIndex).count == 1 { return root[...] }
        guard let layer = self.pieceLayers[root], layer.count >= (location.pieceInFile + 1) * 32 else { return nil }
        return layer[location.pieceInFile * 32..<location.pieceInFile * 32 + 32]
    }

    /// Checks a whole piece.
    /// - Parameter bytes: the piece's `pieceSize(piece)` bytes, padding as zeros.
    public func verify(_ piece: PieceIndex, bytes: [UInt8]) -> PieceCheck {
        precondition(bytes.count == self.pieceMap.pieceSize(piece), "a whole piece is verified")
        var check = PieceCheck(v1: .notApplicable, v2: .notApplicable)
        if let expected = self.expectedSHA1(piece) {
            check.v1 = Insecure.SHA1.hash(data: bytes).elementsEqual(expected) ? .passed : .failed
        }
        if let location = self.pieceMap.merkleLocation(piece) {
            if let expected = self.expectedMerkleHash(piece) {
                let single = self.pieceMap.pieces(ofFile: location.fileIndex).count == 1
                let hash = Self.merkleHash(bytes[..<location.dataLength], pieceLength: self.pieceMap.pieceLength,
                    wholeFile: single)
                check.v2 = hash.elementsEqual(expected) ? .passed : .failed
            } else {
                check.v2 = .unavailable
            }
        }
        return check
    }

    /// The Merkle hash of a piece's file data: the root of its 16 KiB leaves padded to the piece's width,
    /// or, for a file of one piece (`wholeFile`), padded only to the next power of two (the file's root).
    public static func merkleHash(_ data: ArraySlice<UInt8>, pieceLength: Int, wholeFile: Bool) -> [UInt8] {
        var leaves: [UInt8] = []
        leaves.reserveCapacity((data.count + PieceMap.blockSize - 1) / PieceMap.blockSize * MerkleTree.hashSize)
        var start = data.startIndex
        while start < data.endIndex {
            let end = min(start + PieceMap.blockSize, data.endIndex)
            leaves.append(contentsOf: SHA256.hash(data: data[start..<end]))
            start = end
        }
        return wholeFile
            ? MerkleTree.fileRoot(leaves: leaves)
            : MerkleTree.pieceHash(leaves: leaves, pieceLength: pieceLength)
    }
}
