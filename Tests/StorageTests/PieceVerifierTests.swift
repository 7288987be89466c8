import PeerBase
import Crypto
import Metainfo
import Testing

@testable import Storage

@Suite struct PieceVerifierTests {
    @Test(arguments: TorrentVersion.allCases)
    func expectedPiecesPassAndAnyFlippedBitFails(version: TorrentVersion) throws {
        let t = try awkwardTorrent(version, seed: 3)
        let verifier = PieceVerifier(metainfo: t.metainfo)
        var rng = SeededGenerator(seed: 17)
        for (i, bytes) in t.expectedPieces.enumerated() {
            let piece = try #require(verifier.pieceMap.index(i))
            #expect(verifier.verify(piece, bytes: bytes).passed)
            var broken = bytes
            let at = Int.random(in: 0..<broken.count, using: &rng)
            broken[at] ^= 1 << UInt8.random(in: 0...7, using: &rng)
            let check = verifier.verify(piece, bytes: broken)
            #expect(!check.passed)
            if version != .v2 { #expect(check.v1 == .failed) }
            // In a hybrid, a flipped padding byte breaks only the SHA-1 (v2 hashes file data alone).
            let inPadding = verifier.pieceMap.spans(piece: piece).contains { $0.isPadding && ($0.pieceOffset..<$0.pieceOffset + $0.length).contains(at) }
            if version != .v1 { #expect(check.v2 == (inPadding ? .passed : .failed)) }
        }
    }

    /// A v2 torrent loaded from its info dictionary alone (as from a magnet link) has no piece layers:
    /// pieces of files larger than one piece cannot be checked yet; single-piece files can, by their root.
    @Test func missingPieceLayerIsUnavailable() throws {
        let t = try awkwardTorrent(.v2)
        let bare = try TorrentMetainfo(infoBytes: t.metainfo.infoBytes)
        #expect(bare.pieceLayers.isEmpty)
        var verifier = PieceVerifier(metainfo: bare)
        let map = verifier.pieceMap
        let a = t.fileIndex(["a.bin"])
        let b = t.fileIndex(["sub", "b.bin"])
        let pa = try #require(map.index(map.pieces(ofFile: a).lowerBound))
        let pb = try #require(map.index(map.pieces(ofFile: b).lowerBound))
        #expect(verifier.verify(pa, bytes: t.expectedPieces[pa.value]) == PieceCheck(v1: .notApplicable, v2: .unavailable))
        #expect(!verifier.verify(pa, bytes: t.expectedPieces[pa.value]).passed)
        #expect(verifier.verify(pb, bytes: t.expectedPieces[pb.value]).passed)

        let root = try #require(t.metainfo.files[a].piecesRoot)
        verifier.addPieceLayer(try #require(t.metainfo.pieceLayers[root]), root: root)
        #expect(verifier.verify(pa, bytes: t.expectedPieces[pa.value]).passed)
    }

    /// The v1 hash of a hybrid piece holding a file's tail covers the padding as zeros: recomputed here
    /// with SHA-1 alone.
    @Test func hybridTailPieceIsHashedWithZeroPadding() throws {
        let t = try awkwardTorrent(.hybrid)
        let verifier = PieceVerifier(metainfo: t.metainfo)
        let a = t.data(of: t.metainfo.files[t.fileIndex(["a.bin"])])
        let tail = Array(a[32768...]) + [UInt8](repeating: 0, count: 32768 - (a.count - 32768))
        #expect(Array(Insecure.SHA1.hash(data: tail)) == Array(verifier.expectedSHA1(verifier.pieceMap.index(1)!)!))
        #expect(PieceVerifier.merkleHash(a[32768...], pieceLength: 32768, wholeFile: false)
            == Array(verifier.expectedMerkleHash(verifier.pieceMap.index(1)!)!))
    }

    @Test func passedNeedsOneHashAndNoFailure() {
        #expect(PieceCheck(v1: .passed, v2: .notApplicable).passed)
        #expect(PieceCheck(v1: .passed, v2: .unavailable).passed)
        #expect(!PieceCheck(v1: .passed, v2: .failed).passed)
        #expect(!PieceCheck(v1: .notApplicable, v2: .unavailable).passed)
    }
}
