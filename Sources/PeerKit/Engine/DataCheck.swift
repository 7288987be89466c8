import Dispatch
import Metainfo
import PeerBase
import Storage
import Synchronization

/// Checks what a download folder already holds: every piece whose files exist is read and verified, on
/// every core. A fresh folder costs nothing; a second run of `peer get` resumes from what this finds.
public enum DataCheck {
    /// What a check found.
    public struct Outcome: Sendable {
        /// The pieces verified (read and hashed now, or trusted from resume data).
        public var have: Bitfield
        /// How many pieces were read and hashed.
        public var checked: Int
        /// How many pieces resume data vouched for.
        public var trusted: Int
    }

    /// - Parameter resume: saved resume data. Its pieces are trusted where every file they touch is unchanged
    ///   since it was saved, and its missing pieces stay missing there; only pieces of changed files are read.
    public static func check(
        metainfo: TorrentMetainfo, storage: any TorrentStorage, resume: ResumeData? = nil,
        threads: Int = System.coreCount, progress: (@Sendable (Int, Int) -> Void)? = nil
    ) -> Outcome {
        let map = storage.pieceMap
        let statuses = (try? storage.fileStatuses()) ?? []
        let present = Set(statuses.indices.filter { statuses[$0] != nil })
        let unchanged = statuses.count == map.files.count ? resume?.unchangedFiles(current: statuses) : nil
        let trusted = unchanged != nil ? resume!.trustedPieces(current: statuses, map: map) : Bitfield(count: map.pieceCount)
        let candidates = (0..<map.pieceCount).filter { i in
            let files = map.files(inPiece: map.index(i)!)
            guard files.allSatisfy(present.contains) else { return false }
            // With resume data, a piece all of whose files are unchanged is known: trusted or missing.
            if let unchanged, files.allSatisfy({ unchanged[$0] }) { return false }
            return true
        }
        let result = Mutex(trusted)
        if !candidates.isEmpty {
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
        }
        return Outcome(have: result.withLock { $0 }, checked: candidates.count, trusted: trusted.setCount)
    }

    /// Reads and verifies every piece whose files exist. - Returns: the verified pieces.
    public static func verifiedPieces(
        metainfo: TorrentMetainfo, storage: any TorrentStorage, threads: Int = System.coreCount,
        progress: (@Sendable (Int, Int) -> Void)? = nil
    ) -> Bitfield {
        self.check(metainfo: metainfo, storage: storage, threads: threads, progress: progress).have
    }
}
