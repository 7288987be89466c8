import Dispatch
import Metainfo
import PeerBase
import Storage
import Synchronization

/// Checks what a download folder already holds: every piece whose files exist is read and verified, on
/// every core. A fresh folder costs nothing; a second run of `peer get` resumes from what this finds.
public enum DataCheck {
    /// - Returns: the verified pieces.
    public static func verifiedPieces(
        metainfo: TorrentMetainfo, storage: any TorrentStorage, threads: Int = System.coreCount,
        progress: (@Sendable (Int, Int) -> Void)? = nil
    ) -> Bitfield {
        let map = storage.pieceMap
        let statuses = (try? storage.fileStatuses()) ?? []
        let present = Set(statuses.indices.filter { statuses[$0] != nil })
        let candidates = (0..<map.pieceCount).filter { i in
            let spans = map.spans(piece: map.index(i)!, offset: 0, length: map.pieceSize(map.index(i)!))
            return spans.allSatisfy { $0.isPadding || present.contains($0.fileIndex) }
        }
        let result = Mutex(Bitfield(count: map.pieceCount))
        guard !candidates.isEmpty else { return result.withLock { $0 } }
        let verifier = PieceVerifier(metainfo: metainfo)
        let next = Atomic<Int>(0)
        let done = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: max(1, min(threads, candidates.count))) { _ in
            while true {
                let k = next.wrappingAdd(1, ordering: .relaxed).oldValue
                guard k < candidates.count else { return }
                let piece = map.index(candidates[k])!
                if let check = try? storage.verify(piece: piece, with: verifier), check.passed {
                    result.withLock { $0[piece.value] = true }
                }
                progress?(done.add(1, ordering: .relaxed).newValue, candidates.count)
            }
        }
        return result.withLock { $0 }
    }
}
