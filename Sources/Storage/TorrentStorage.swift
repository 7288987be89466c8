import Metainfo
/// What is known of a file on disk without reading it: enough for resume data to decide whether to trust it.
public struct FileStatus: Hashable, Sendable {
    /// Size in bytes.
    public var length: Int64
    /// Last modification, in nanoseconds since 1970 for files on disk (for `MemoryStorage`, a write counter).
    public var modificationTime: Int64

    public init(length: Int64, modificationTime: Int64) {
        self.length = length
        self.modificationTime = modificationTime
    }
}

/// Where a torrent's bytes live, addressed by piece (STYLE.md rule 12).
///
/// Methods are synchronous and may block on the disk: the engine calls them from its disk thread pool,
/// never on an event loop. Implementations are safe to call from several threads at once.
///
/// Rules every implementation keeps:
/// - Padding files (BEP 47) are never written and read as zeros.
/// - A file is created on its first write, at its full length (sparse where the file system allows);
///   bytes never written read as zeros. Files that are never written are never created.
/// - Reading a file that does not exist throws `StorageError.missingFile`.
public protocol TorrentStorage: Sendable {
    /// The torrent's piece layout.
    var pieceMap: PieceMap { get }

    /// Reads `length` bytes of a piece from `offset`; padding bytes are zeros.
    /// - Throws: `StorageError` (`outOfRange`, `missingFile`, `unexpectedEndOfFile`, `system`, `closed`, …).
    func read(piece: PieceIndex, offset: Int, length: Int) throws(StorageError) -> [UInt8]

    /// Reads `buffer.count` bytes of a piece from `offset` into `buffer` (a seeder's network buffer, say);
    /// padding bytes are zeros.
    func read(piece: PieceIndex, offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws(StorageError)

    /// Writes bytes of a piece at `offset`, creating files (and folders) as needed; padding bytes are skipped.
    /// - Throws: `StorageError` (`outOfRange`, `diskFull`, `symbolicLink`, `unsafePath`, `system`, `closed`, …).
    func write(piece: PieceIndex, offset: Int, bytes: [UInt8]) throws(StorageError)

    /// The status of every file, indexed like `TorrentMetainfo.files`: nil for files that do not exist
    /// and for padding files.
    func fileStatuses() throws(StorageError) -> [FileStatus?]

    /// Creates the torrent's empty files (nothing is ever written to them, so `write` never makes them).
    func createEmptyFiles() throws(StorageError)

    /// Closes open files. Later calls throw `StorageError.closed`.
    func close()
}

extension TorrentStorage {
    /// Through `read(piece:offset:length:)`, for storage without a reading of its own.
    public func read(piece: PieceIndex, offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws(StorageError) {
        let bytes = try self.read(piece: piece, offset: offset, length: buffer.count)
        buffer.copyBytes(from: bytes)
    }

    /// Storage with no files on disk has nothing to create.
    public func createEmptyFiles() throws(StorageError) {}

    /// The length of each file on disk, nil where there is none (see `fileStatuses`).
    public func fileLengthsOnDisk() throws(StorageError) -> [Int64?] {
        try self.fileStatuses().map { $0?.length }
    }

    /// Reads a whole piece.
    public func readPiece(_ piece: PieceIndex) throws(StorageError) -> [UInt8] {
        guard self.pieceMap.contains(piece) else {
            throw .outOfRange(piece: piece.value, offset: 0, length: 0, pieceSize: 0)
        }
        return try self.read(piece: piece, offset: 0, length: self.pieceMap.pieceSize(piece))
    }

    /// Reads a whole piece and checks it against the torrent's hashes.
    public func verify(piece: PieceIndex, with verifier: PieceVerifier) throws(StorageError) -> PieceCheck {
        verifier.verify(piece, bytes: try self.readPiece(piece))
    }

    /// Checks a piece range request against the map; shared by the implementations.
    func checkRange(_ piece: PieceIndex, offset: Int, length: Int) throws(StorageError) {
        let size = self.pieceMap.contains(piece) ? self.pieceMap.pieceSize(piece) : 0
        guard self.pieceMap.contains(piece), offset >= 0, length >= 0, offset <= size - length else {
            throw .outOfRange(piece: piece.value, offset: offset, length: length, pieceSize: size)
        }
    }
}
