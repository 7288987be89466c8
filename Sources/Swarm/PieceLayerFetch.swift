import Metainfo
import PeerWire

/// Learns the piece layers a v2 torrent from a magnet link lacks (the info dictionary holds only each file's
/// root; `piece layers` sits beside it in a .torrent), by BEP 52 hash requests to peers.
///
/// Each file's layer is asked for in runs of up to 512 hashes, each with the uncle hashes up to the file's
/// root, so that every run is checked on arrival and a peer that lies is caught at once. Pure bookkeeping:
/// the engine sends the requests it returns and reports answers, rejects and departures.
public struct PieceLayerFetch: Sendable {
    public typealias PeerKey = Int

    /// What became of an answer.
    public enum Outcome: Equatable, Sendable {
        /// A run was stored; the layer is not complete yet.
        case stored
        /// The file's whole layer is known and checked against its root.
        case layer(fileIndex: Int, root: [UInt8], hashes: [UInt8])
        /// The hashes do not lead to the file's root: the peer sent bad data.
        case invalid
        /// Not asked for (late, duplicate or never requested): ignore it.
        case unexpected
    }

    struct Run: Sendable {
        var index: Int
        var length: Int
        var hashes: [UInt8]?
        var askedOf: PeerKey?
        var refusedBy: Set<PeerKey> = []
    }

    struct File: Sendable {
        var fileIndex: Int
        var root: [UInt8]
        var pieceCount: Int
        var runs: [Run]
    }

    private var files: [File]
    /// The piece layer's height above the leaves: log2(piece length / 16 KiB), the `base layer` to ask for.
    public let baseLayer: Int

    /// - Parameter needed: files of more than one piece whose layer is unknown.
    public init(needed: [(fileIndex: Int, root: [UInt8], pieceCount: Int)], pieceLength: Int) {
        self.baseLayer = MerkleTree.log2(pieceLength / PieceMap.blockSize)
        self.files = needed.map { f in
            File(fileIndex: f.fileIndex, root: f.root, pieceCount: f.pieceCount,
                runs: MerkleProof.chunks(pieceCount: f.pieceCount).map { Run(index: $0.index, length: $0.length) })
        }
    }

    /// Every layer is known.
    public var isDone: Bool { self.files.isEmpty }

    /// The files whose layers are still missing.
    public var missingFiles: [Int] { self.files.map(\.fileIndex) }

    /// Requests to send `peer` now, keeping at most `limit` outstanding at it.
    /// - Parameter has: whether the peer has a given file (BEP 52: ask for hashes of pieces it announced).
    public mutating func requests(for peer: PeerKey, limit: Int = 2, has: (Int) -> Bool) -> [HashRequest] {
        var outstanding = self.files.reduce(0) { $0 + $1.runs.count { $0.askedOf == peer } }
        var out: [HashRequest] = []
        for f in self.files.indices where has(self.files[f].fileIndex) {
            for r in self.files[f].runs.indices where outstanding < limit {
                let run = self.files[f].runs[r]
                guard run.hashes == nil, run.askedOf == nil, !run.refusedBy.contains(peer) else { continue }
                self.files[f].runs[r].askedOf = peer
                outstanding += 1
                let width = MerkleTree.nextPowerOfTwo(self.files[f].pieceCount)
                out.append(HashRequest(piecesRoot: self.files[f].root, baseLayer: UInt32(self.baseLayer),
                    index: UInt32(run.index), length: UInt32(run.length),
                    proofLayers: UInt32(MerkleProof.proofLayers(length: run.length, width: width))))
            }
        }
        return out
    }

    private func locate(_ r: HashRequest, askedOf peer: PeerKey) -> (Int, Int)? {
        guard r.baseLayer == UInt32(self.baseLayer), let f = self.files.firstIndex(where: { $0.root == r.piecesRoot }),
            let i = self.files[f].runs.firstIndex(where: { $0.index == Int(r.index) && $0.length == Int(r.length) }),
            self.files[f].runs[i].askedOf == peer
        else { return nil }
        return (f, i)
    }

    /// A 'hashes' answer from `peer`.
    public mutating func received(_ r: HashRequest, hashes: [UInt8], from peer: PeerKey) -> Outcome {
        guard let (f, i) = self.locate(r, askedOf: peer) else { return .unexpected }
        self.files[f].runs[i].askedOf = nil
        let file = self.files[f]
        guard let run = MerkleProof.verify(hashes: hashes, root: file.root, index: Int(r.index), length: Int(r.length),
            proofLayers: Int(r.proofLayers), pieceCount: file.pieceCount)
        else {
            self.files[f].runs[i].refusedBy.insert(peer)
            return .invalid
        }
        self.files[f].runs[i].hashes = run
        guard self.files[f].runs.allSatisfy({ $0.hashes != nil }) else { return .stored }
        let layer = Array(self.files[f].runs.flatMap { $0.hashes! }.prefix(file.pieceCount * MerkleTree.hashSize))
        self.files.remove(at: f)
        return .layer(fileIndex: file.fileIndex, root: file.root, hashes: layer)
    }

    /// A 'hash reject' from `peer`: ask someone else.
    public mutating func rejected(_ r: HashRequest, by peer: PeerKey) {
        guard let (f, i) = self.locate(r, askedOf: peer) else { return }
        self.files[f].runs[i].askedOf = nil
        self.files[f].runs[i].refusedBy.insert(peer)
    }

    /// A peer left: what it was asked for goes back to the pool.
    public mutating func peerLeft(_ peer: PeerKey) {
        for f in self.files.indices {
            for i in self.files[f].runs.indices where self.files[f].runs[i].askedOf == peer {
                self.files[f].runs[i].askedOf = nil
            }
            for i in self.files[f].runs.indices { self.files[f].runs[i].refusedBy.remove(peer) }
        }
    }
}
