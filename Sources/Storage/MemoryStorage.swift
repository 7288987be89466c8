import Metainfo
import Synchronization

/// A `TorrentStorage` in memory, for tests and simulation: the same rules as `FileStorage` (files made
/// on first write at full length, padding never stored, unwritten bytes read as zeros, missing files
/// refused), with a write counter standing in for modification times.
public final class MemoryStorage: TorrentStorage {
    /// The torrent's piece layout.
    public let pieceMap: PieceMap

    private struct State {
        /// File contents by file index, present once written.
        var files: [Int: [UInt8]] = [:]
        /// The write counter at each file's last write.
        var modified: [Int: Int64] = [:]
        var writes: Int64 = 0
        var closed = false
    }

    private let state = Mutex(State())

    /// An empty storage for a layout.
    public init(pieceMap: PieceMap) { self.pieceMap = pieceMap }

    /// An empty storage for a parsed torrent.
    public convenience init(metainfo: TorrentMetainfo) { self.init(pieceMap: PieceMap(metainfo)) }

    public func read(piece: PieceIndex, offset: Int, length: Int) throws(StorageError) -> [UInt8] {
        try self.checkRange(piece, offset: offset, length: length)
        let spans = self.pieceMap.spans(piece: piece, offset: offset, length: length)
        let result: Result<[UInt8], StorageError> = self.state.withLock { state in
            guard !state.closed else { return .failure(.closed) }
            var out = [UInt8](repeating: 0, count: length)
            for span in spans where !span.isPadding {
                guard let data = state.files[span.fileIndex] else {
                    return .failure(.missingFile(path: self.pieceMap.files[span.fileIndex].displayPath))
                }
                let from = Int(span.fileOffset)
                out.replaceSubrange(span.pieceOffset - offset..<span.pieceOffset - offset + span.length,
                    with: data[from..<from + span.length])
            }
            return .success(out)
        }
        return try result.get()
    }

    public func write(piece: PieceIndex, offset: Int, bytes: [UInt8]) throws(StorageError) {
        try self.checkRange(piece, offset: offset, length: bytes.count)
        let spans = self.pieceMap.spans(piece: piece, offset: offset, length: bytes.count)
        for span in spans where !span.isPadding {
            let path = self.pieceMap.files[span.fileIndex].path
            guard !path.isEmpty else { throw .unsafePath(path: "", component: "") }
            for name in path { _ = try PathResolver.checkComponent(name, in: path) }
        }
        let failure: StorageError? = self.state.withLock { state in
            guard !state.closed else { return .closed }
            state.writes += 1
            for span in spans where !span.isPadding {
                let length = Int(self.pieceMap.files[span.fileIndex].length)
                let from = Int(span.fileOffset)
                let source = span.pieceOffset - offset
                if state.files[span.fileIndex] == nil {
                    state.files[span.fileIndex] = [UInt8](repeating: 0, count: length)
                }
                state.files[span.fileIndex]!.replaceSubrange(from..<from + span.length,
                    with: bytes[source..<source + span.length])
                state.modified[span.fileIndex] = state.writes
            }
            return nil
        }
        if let failure { throw failure }
    }

    public func fileStatuses() throws(StorageError) -> [FileStatus?] {
        let result: Result<[FileStatus?], StorageError> = self.state.withLock { state in
            guard !state.closed else { return .failure(.closed) }
            return .success(self.pieceMap.files.map { file in
                guard let data = state.files[file.index] else { return nil }
                return FileStatus(length: Int64(data.count), modificationTime: state.modified[file.index] ?? 0)
            })
        }
        return try result.get()
    }

    public func close() { self.state.withLock { $0.closed = true } }

    /// Changes stored bytes behind the storage's back (tests: corruption, or a file changed on disk).
    /// - Returns: false when the file has not been written.
    @discardableResult
    public func corrupt(file: Int, at offset: Int, with byte: UInt8) -> Bool {
        self.state.withLock { state in
            guard state.files[file] != nil else { return false }
            state.files[file]![offset] = byte
            state.writes += 1
            state.modified[file] = state.writes
            return true
        }
    }
}
