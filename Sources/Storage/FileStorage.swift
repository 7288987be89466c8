import Metainfo
import Synchronization
import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A `TorrentStorage` on disk under a download folder, with positional reads and writes (`pread`,
/// `pwrite` through swift-system's `FileDescriptor`).
///
/// - A file is created on its first write, with the folders it needs, and sized to its full length at
///   once (`ftruncate`, so sparse where the file system allows). Files never written are never created;
///   padding files never are.
/// - Paths are checked by `PathResolver`, and every folder below the download folder is opened with
///   `O_NOFOLLOW`, one component at a time: a symbolic link inside the download tree makes the operation
///   fail with `StorageError.symbolicLink` instead of reaching outside.
/// - Files not selected for download (`unselected`) are never created: the bytes of theirs that share a
///   piece with a selected file live in a part file instead, at `piece * pieceLength + offset`.
///   `moveSharedPieces` moves such bytes between the part file and the files when the selection changes.
/// - At most `maxOpenFiles` descriptors stay open (least recently used closed first); a descriptor in
///   use by another thread is closed only when that thread is done with it.
/// - With `directWrites`, spans that start and end on 4 KiB boundaries of their file (whole pieces of a
///   single-file torrent, say) are written with `O_DIRECT` from an aligned buffer, past the page cache.
///   Copying into the page cache is most of a downloader's CPU time (`dd` here: 2.7 s per GiB buffered,
///   0.5 s direct). A file system without `O_DIRECT` (tmpfs) and every other span use ordinary writes.
public final class FileStorage: TorrentStorage {
    /// The torrent's piece layout.
    public let pieceMap: PieceMap
    /// Maps torrent paths under the download folder.
    public let resolver: PathResolver
    /// The most descriptors kept open (more only while all are in use).
    public let maxOpenFiles: Int
    /// Files not to create; their bytes in shared pieces go to `partFile`.
    public let unselected: Set<Int>
    /// Where bytes of unselected files are kept (required when `unselected` is not empty).
    public let partFile: FilePath?
    /// Whether aligned spans are written with `O_DIRECT`.
    public let directWrites: Bool
    /// The key of the part file in the descriptor cache.
    private static let partKey = -1
    /// What `O_DIRECT` asks of offsets, lengths and buffer addresses (the largest logical block size in use).
    static let directAlignment = 4096

    /// An open file; its mutable fields change only under the cache lock.
    private final class OpenFile: @unchecked Sendable {
        let fd: FileDescriptor
        let writable: Bool
        /// The same file opened again with `O_DIRECT` (writable files with `directWrites` only; nil where the
        /// file system refuses it).
        let direct: FileDescriptor?
        var users = 0
        var retired = false
        var lastUse: UInt64 = 0

        init(fd: FileDescriptor, writable: Bool, direct: FileDescriptor?) {
            self.fd = fd
            self.writable = writable
            self.direct = direct
        }

        func close() {
            try? self.fd.close()
            try? self.direct?.close()
        }
    }

    /// A page-aligned buffer for direct writes, used by one thread at a time.
    private struct AlignedBuffer: @unchecked Sendable {
        let bytes: UnsafeMutableRawBufferPointer
    }

    /// Aligned buffers kept for reuse (a fresh one costs page faults).
    private let alignedBuffers = Mutex<[AlignedBuffer]>([])
    /// Spans written with `O_DIRECT` so far (tests).
    let directWriteCount = Atomic<Int>(0)

    private struct Cache {
        var open: [Int: OpenFile] = [:]
        var tick: UInt64 = 0
        var closed = false
    }

    private let cache = Mutex(Cache())

    /// - Parameters:
    ///   - pieceMap: the torrent's layout.
    ///   - directory: the download folder, an absolute path (created on the first write if missing).
    ///   - maxOpenFiles: how many descriptors to keep open at most.
    /// - Throws: `StorageError.relativeDownloadFolder`.
    public init(pieceMap: PieceMap, directory: FilePath, maxOpenFiles: Int = 64, unselected: Set<Int> = [],
        partFile: FilePath? = nil, directWrites: Bool = false) throws(StorageError)
    {
        precondition(maxOpenFiles > 0, "at least one open file")
        self.directWrites = directWrites
        precondition(unselected.isEmpty || partFile != nil, "unselected files need a part file")
        self.unselected = unselected
        self.partFile = partFile
        self.pieceMap = pieceMap
        self.resolver = try PathResolver(root: directory)
        self.maxOpenFiles = maxOpenFiles
    }

    /// A storage for a parsed torrent under `directory`.
    public convenience init(metainfo: TorrentMetainfo, directory: FilePath, maxOpenFiles: Int = 64,
        unselected: Set<Int> = [], partFile: FilePath? = nil, directWrites: Bool = false) throws(StorageError)
    {
        try self.init(pieceMap: PieceMap(metainfo), directory: directory, maxOpenFiles: maxOpenFiles,
            unselected: unselected, partFile: partFile, directWrites: directWrites)
    }

    /// Where a span's bytes live when the files in `parts` keep theirs in the part file: its file and
    /// offset, or the part file at `piece * pieceLength + offset`.
    private func location(_ span: FileSpan, piece: PieceIndex, parts: Set<Int>) -> (key: Int, offset: Int64) {
        guard parts.contains(span.fileIndex) else { return (span.fileIndex, span.fileOffset) }
        return (Self.partKey, Int64(piece.value) * Int64(self.pieceMap.pieceLength) + Int64(span.pieceOffset))
    }

    deinit {
        self.cache.withLock { cache in
            for file in cache.open.values { file.close() }
            cache.open.removeAll()
        }
        self.alignedBuffers.withLock { buffers in
            for b in buffers { b.bytes.deallocate() }
            buffers.removeAll()
        }
    }

    /// The absolute path of a file (its components checked, the disk not looked at).
    public func path(ofFile index: Int) throws(StorageError) -> FilePath {
        try self.resolver.resolve(self.pieceMap.files[index].path)
    }

    /// The number of descriptors open now (tests).
    public var openFileCount: Int { self.cache.withLock { $0.open.count } }

    // MARK: - TorrentStorage

    public func read(piece: PieceIndex, offset: Int, length: Int) throws(StorageError) -> [UInt8] {
        try self.checkRange(piece, offset: offset, length: length)
        return try self.read(piece: piece, offset: offset, length: length, parts: self.unselected)
    }

    public func read(piece: PieceIndex, offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws(StorageError) {
        try self.checkRange(piece, offset: offset, length: buffer.count)
        try self.read(piece: piece, offset: offset, into: buffer, parts: self.unselected)
    }

    /// Reads bytes of a piece as laid out when the files in `parts` keep theirs in the part file.
    private func read(piece: PieceIndex, offset: Int, length: Int, parts: Set<Int>) throws(StorageError) -> [UInt8] {
        // Not zeroed first (a seeder reads every piece it serves): the read fills every byte or throws.
        var failure: StorageError?
        let out = [UInt8](unsafeUninitializedCapacity: length) { buffer, count in
            do throws(StorageError) {
                try self.read(piece: piece, offset: offset, into: UnsafeMutableRawBufferPointer(buffer), parts: parts)
            } catch {
                buffer.initialize(repeating: 0)
                failure = error
            }
            count = length
        }
        if let failure { throw failure }
        return out
    }

    /// Fills `out` with bytes of a piece from `offset`: each span is read whole or the read throws, and padding
    /// is zeroed.
    private func read(piece: PieceIndex, offset: Int, into out: UnsafeMutableRawBufferPointer, parts: Set<Int>)
        throws(StorageError)
    {
        for span in self.pieceMap.spans(piece: piece, offset: offset, length: out.count) {
            let start = span.pieceOffset - offset
            if span.isPadding {
                _ = out[start..<start + span.length].initializeMemory(as: UInt8.self, repeating: 0)
                continue
            }
            let (key, fileOffset) = self.location(span, piece: piece, parts: parts)
            let file = try self.acquire(key, writable: false)
            defer { self.release(file) }
            var done = 0
            while done < span.length {
                let position = fileOffset + Int64(done)
                let n: Int
                do {
                    n = try file.fd.read(fromAbsoluteOffset: position,
                        into: UnsafeMutableRawBufferPointer(rebasing: out[start + done..<start + span.length]))
                } catch {
                    throw self.error(error, .read, span.fileIndex)
                }
                if n == 0 {
                    throw .unexpectedEndOfFile(path: self.displayPath(span.fileIndex), offset: position)
                }
                done += n
            }
        }
    }

    public func write(piece: PieceIndex, offset: Int, bytes: [UInt8]) throws(StorageError) {
        try self.checkRange(piece, offset: offset, length: bytes.count)
        for span in self.pieceMap.spans(piece: piece, offset: offset, length: bytes.count) where !span.isPadding {
            try self.write(span, of: piece, from: bytes[(span.pieceOffset - offset)...])
        }
    }

    /// Writes one span of a piece where this storage keeps it, from the start of `bytes`.
    private func write(_ span: FileSpan, of piece: PieceIndex, from bytes: ArraySlice<UInt8>) throws(StorageError) {
        let (key, fileOffset) = self.location(span, piece: piece, parts: self.unselected)
        let file = try self.acquire(key, writable: true)
        defer { self.release(file) }
        let alignment = Self.directAlignment
        if let direct = file.direct, fileOffset % Int64(alignment) == 0, span.length % alignment == 0,
            self.writeDirect(direct, at: fileOffset, bytes.prefix(span.length))
        {
            self.directWriteCount.add(1, ordering: .relaxed)
            return
        }
        do {
            _ = try file.fd.writeAll(toAbsoluteOffset: fileOffset, bytes.prefix(span.length))
        } catch {
            throw self.error(error, .write, span.fileIndex)
        }
    }

    /// Writes through an `O_DIRECT` descriptor from an aligned copy of `bytes`; false when the kernel refuses
    /// (the caller then writes them the ordinary way, which reports any real error).
    private func writeDirect(_ fd: FileDescriptor, at offset: Int64, _ bytes: ArraySlice<UInt8>) -> Bool {
        let aligned = self.alignedBuffers.withLock { buffers -> AlignedBuffer? in
            guard let i = buffers.lastIndex(where: { $0.bytes.count >= bytes.count }) else { return nil }
            return buffers.remove(at: i)
        } ?? AlignedBuffer(bytes: .allocate(byteCount: bytes.count, alignment: Self.directAlignment))
        let buffer = aligned.bytes
        defer {
            let spare: AlignedBuffer? = self.alignedBuffers.withLock { buffers in
                guard buffers.count < 4 else { return aligned }
                buffers.append(aligned)
                return nil
            }
            spare?.bytes.deallocate()
        }
        bytes.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        var done = 0
        while done < bytes.count {
            let n = pwrite(fd.rawValue, buffer.baseAddress! + done, bytes.count - done, off_t(offset) + off_t(done))
            if n > 0 {
                done += n
            } else if n < 0 && errno == EINTR {
                continue
            } else {
                return done == 0 ? false : self.finishBuffered(fd, at: offset, bytes, from: done)
            }
        }
        return true
    }

    /// After a direct write stopped part way (a short write at the end of the device's space, say), the rest
    /// goes the ordinary way through a buffered descriptor of the same file.
    private func finishBuffered(_ fd: FileDescriptor, at offset: Int64, _ bytes: ArraySlice<UInt8>, from done: Int)
        -> Bool
    {
        guard let plain = try? FileDescriptor.open("/proc/self/fd/\(fd.rawValue)", .writeOnly) else { return false }
        defer { try? plain.close() }
        return (try? plain.writeAll(toAbsoluteOffset: offset + Int64(done), bytes.dropFirst(done))) != nil
    }

    public func createEmptyFiles() throws(StorageError) {
        for (i, f) in self.pieceMap.files.enumerated() where f.length == 0 && !f.isPadding && !self.unselected.contains(i) {
            self.release(try self.acquire(i, writable: true))
        }
    }

    public func fileStatuses() throws(StorageError) -> [FileStatus?] {
        guard !self.cache.withLock({ $0.closed }) else { throw .closed }
        var out: [FileStatus?] = []
        out.reserveCapacity(self.pieceMap.files.count)
        let part = self.partFile.flatMap { path -> FileStatus? in
            guard case .success(let info?) = Posix.statAt(AT_FDCWD, path.string) else { return nil }
            return Posix.status(info)
        }
        for file in self.pieceMap.files {
            if file.isPadding {
                out.append(nil)
                continue
            }
            // What is kept of an unselected file is in the part file.
            out.append(try self.unselected.contains(file.index) ? part : self.statusOnDisk(file.index))
        }
        return out
    }

    /// The status of a file's own copy on disk (never the part file's): nil when there is none.
    private func statusOnDisk(_ index: Int) throws(StorageError) -> FileStatus? {
        guard let folder = try self.openParent(of: index, create: false) else { return nil }
        defer { Posix.closeDescriptor(folder) }
        let path = self.pieceMap.files[index].path
        switch Posix.statAt(folder, path[path.count - 1]) {
        case .success(nil): return nil
        case .success(let info?):
            switch Posix.kind(info) {
            case .regular: return Posix.status(info)
            case .symbolicLink: throw .symbolicLink(path: self.displayPath(index))
            case .folder, .other: throw .notARegularFile(path: self.displayPath(index))
            }
        case .failure(let e): throw StorageError(errno: e, operation: .stat, path: self.displayPath(index))
        }
    }

    // MARK: - Part file

    /// Puts the bytes of pieces that a wanted file shares with others where this storage looks for them,
    /// after the selection changed; then, when no file is unselected, deletes the part file. Call it before
    /// checking the data on disk, while nothing else uses the storage.
    ///
    /// A newly unselected file's bytes in such pieces are copied from its own file into the part file; a
    /// newly selected file's are copied from the part file into its own file (created if needed). The
    /// selection they were written with is not recorded: the disk tells, since an unselected file is never
    /// created: a file's bytes are in its own file when it exists, else in the part file. A piece is moved
    /// only when it fails its hash check where this storage looks and passes it where the bytes are, and
    /// only the spans whose place changes are written, so verified bytes are never overwritten and the
    /// other files keep their modification times (and with them their resume data). Nothing is deleted
    /// but the part file: a newly unselected file stays on disk as it is, as libtorrent leaves a file set
    /// to priority 0.
    /// - Returns: the number of pieces moved.
    /// - Throws: `StorageError` when a write fails; a piece that cannot be read where the bytes are is
    ///   left alone (it fails the check that follows and is downloaded again).
    @discardableResult
    public func moveSharedPieces(verifier: PieceVerifier) throws(StorageError) -> Int {
        guard let partFile = self.partFile else { return 0 }
        // Every file selected and no part file: nothing is anywhere else (an ordinary download).
        if self.unselected.isEmpty, case .success(nil) = Posix.statAt(AT_FDCWD, partFile.string) { return 0 }
        var onDisk: [Int: Bool] = [:]
        func exists(_ index: Int) -> Bool {
            if let known = onDisk[index] { return known }
            let found: Bool
            do { found = try self.statusOnDisk(index) != nil } catch {
                found = true  // a link, say: counted as there, reading it fails and the piece stays
            }
            onDisk[index] = found
            return found
        }
        var moved = 0
        for piece in self.pieceMap.allPieces {
            let spans = self.pieceMap.spans(piece: piece).filter { !$0.isPadding }
            // A piece of one file, or of unselected files only, is never kept in two places.
            guard spans.count > 1, spans.contains(where: { !self.unselected.contains($0.fileIndex) }) else { continue }
            let held = Set(spans.map(\.fileIndex).filter { !exists($0) })
            let moving = spans.filter { held.contains($0.fileIndex) != self.unselected.contains($0.fileIndex) }
            let size = self.pieceMap.pieceSize(piece)
            guard !moving.isEmpty, (try? self.verify(piece: piece, with: verifier))?.passed != true,
                let bytes = try? self.read(piece: piece, offset: 0, length: size, parts: held),
                verifier.verify(piece, bytes: bytes).passed
            else { continue }
            for span in moving { try self.write(span, of: piece, from: bytes[span.pieceOffset...]) }
            moved += 1
        }
        if self.unselected.isEmpty {
            // Nothing reads it any more; a part file that cannot be deleted is only wasted space.
            self.forget(Self.partKey)
            _ = partFile.withPlatformString { unlink($0) }
        }
        return moved
    }

    public func close() {
        let toClose: [OpenFile] = self.cache.withLock { cache in
            cache.closed = true
            var idle: [OpenFile] = []
            for file in cache.open.values {
                file.retired = true
                if file.users == 0 { idle.append(file) }
            }
            cache.open.removeAll()
            return idle
        }
        for file in toClose { file.close() }
    }

    // MARK: - Descriptors

    /// A descriptor for a file, opened (and for writing, created) if needed; pair with `release`.
    private func acquire(_ index: Int, writable: Bool) throws(StorageError) -> OpenFile {
        let cached: Result<OpenFile?, StorageError> = self.cache.withLock { cache in
            guard !cache.closed else { return .failure(.closed) }
            guard let file = cache.open[index], file.writable || !writable else { return .success(nil) }
            cache.tick += 1
            file.lastUse = cache.tick
            file.users += 1
            return .success(file)
        }
        if let file = try cached.get() { return file }

        // Open outside the lock, so other files' reads and writes go on meanwhile.
        let fd = try self.open(index, writable: writable)
        let fresh = OpenFile(fd: fd, writable: writable, direct: writable && self.directWrites ? Self.reopenDirect(fd) : nil)
        let (result, toClose): (Result<OpenFile, StorageError>, [OpenFile]) = self.cache.withLock { cache in
            guard !cache.closed else { return (.failure(.closed), [fresh]) }
            cache.tick += 1
            if let other = cache.open[index], other.writable || !writable {
                // Another thread opened it first.
                other.lastUse = cache.tick
                other.users += 1
                return (.success(other), [fresh])
            }
            var toClose: [OpenFile] = []
            if let old = cache.open[index] {
                old.retired = true
                if old.users == 0 { toClose.append(old) }
            }
            fresh.users = 1
            fresh.lastUse = cache.tick
            cache.open[index] = fresh
            while cache.open.count > self.maxOpenFiles {
                guard let victim = cache.open.filter({ $0.value.users == 0 }).min(by: { $0.value.lastUse < $1.value.lastUse })
                else { break }  // all in use: over the bound until they are released
                cache.open[victim.key] = nil
                victim.value.retired = true
                toClose.append(victim.value)
            }
            return (.success(fresh), toClose)
        }
        for file in toClose { file.close() }
        return try result.get()
    }

    /// Closes a file's descriptor (once no thread uses it) and drops it from the cache.
    private func forget(_ index: Int) {
        let idle: OpenFile? = self.cache.withLock { cache in
            guard let file = cache.open.removeValue(forKey: index) else { return nil }
            file.retired = true
            return file.users == 0 ? file : nil
        }
        idle?.close()
    }

    private func release(_ file: OpenFile) {
        let close: Bool = self.cache.withLock { _ in
            file.users -= 1
            return file.retired && file.users == 0
        }
        if close { file.close() }
    }

    #if arch(x86_64)
    /// `O_DIRECT`, which Glibc's module leaves out (it needs _GNU_SOURCE); its value differs by architecture.
    static let directFlag: Int32 = 0o40000
    #else
    static let directFlag: Int32 = 0o200000
    #endif

    /// The file open as `fd`, opened again for direct writes (through /proc/self/fd, so no path is looked up
    /// again); nil where `O_DIRECT` is refused (tmpfs) or /proc is missing.
    private static func reopenDirect(_ fd: FileDescriptor) -> FileDescriptor? {
        #if os(Linux) && (arch(x86_64) || arch(arm64))
        let d = "/proc/self/fd/\(fd.rawValue)".withCString { Glibc.open($0, O_WRONLY | Self.directFlag | O_CLOEXEC) }
        return d >= 0 ? FileDescriptor(rawValue: d) : nil
        #else
        return nil
        #endif
    }

    /// Opens a file without following links; for writing, creates it (and its folders) and gives it its
    /// full length.
    private func open(_ index: Int, writable: Bool) throws(StorageError) -> FileDescriptor {
        if index == Self.partKey, let part = self.partFile {
            do {
                return try FileDescriptor.open(part, writable ? .readWrite : .readOnly,
                    options: writable ? [.create, .noFollow] : [.noFollow], permissions: [.ownerReadWrite, .groupRead, .otherRead])
            } catch Errno.noSuchFileOrDirectory {
                throw .missingFile(path: part.string)
            } catch {
                throw StorageError(errno: error as? Errno ?? .ioError, operation: .open, path: part.string)
            }
        }
        let file = self.pieceMap.files[index]
        try self.resolver.checkOnDisk(file.path)
        guard let folder = try self.openParent(of: index, create: writable) else {
            throw .missingFile(path: self.displayPath(index))
        }
        defer { Posix.closeDescriptor(folder) }
        let name = file.path[file.path.count - 1]
        var flags = Posix.noFollow | Posix.closeOnExec | Posix.nonBlocking
        flags |= writable ? Posix.readWrite | Posix.create : Posix.readOnly
        let fd: Int32
        switch Posix.openAt(folder, name, flags: flags, mode: file.isExecutable ? 0o755 : 0o644) {
        case .success(let d): fd = d
        case .failure(let e):
            if e == .tooManySymbolicLinkLevels || e == .notDirectory { throw self.classify(folder, name, index) }
            throw StorageError(errno: e, operation: .open, path: self.displayPath(index))
        }
        let descriptor = FileDescriptor(rawValue: fd)
        do throws(StorageError) {
            let info: stat
            switch Posix.statDescriptor(fd) {
            case .success(let i): info = i
            case .failure(let e): throw StorageError(errno: e, operation: .stat, path: self.displayPath(index))
            }
            guard Posix.kind(info) == .regular else { throw .notARegularFile(path: self.displayPath(index)) }
            if writable && Int64(info.st_size) < file.length {
                do { try descriptor.resize(to: file.length) } catch {
                    throw self.error(error, .resize, index)
                }
            }
        } catch {
            try? descriptor.close()
            throw error
        }
        return descriptor
    }

    /// Opens the folder that holds a file, walking down from the download folder one component at a time
    /// with `O_NOFOLLOW` and, when `create` is set, making the folders that are missing.
    /// - Returns: the folder's descriptor (the caller closes it), or nil when a folder is missing.
    private func openParent(of index: Int, create: Bool) throws(StorageError) -> Int32? {
        let path = self.pieceMap.files[index].path
        try self.resolver.check(path)
        var current: Int32
        switch Posix.openFolder(self.resolver.root) {
        case .success(let fd): current = fd
        case .failure(.noSuchFileOrDirectory) where create:
            if let e = Posix.makeFolders(self.resolver.root) {
                throw StorageError(errno: e, operation: .createFolder, path: self.resolver.root.string)
            }
            switch Posix.openFolder(self.resolver.root) {
            case .success(let fd): current = fd
            case .failure(let e): throw StorageError(errno: e, operation: .openFolder, path: self.resolver.root.string)
            }
        case .failure(.noSuchFileOrDirectory): return nil
        case .failure(let e): throw StorageError(errno: e, operation: .openFolder, path: self.resolver.root.string)
        }
        let flags = Posix.readOnly | Posix.directory | Posix.noFollow | Posix.closeOnExec
        for (depth, name) in path.dropLast().enumerated() {
            var shown: String { self.resolver.text(path, count: depth + 1) }
            var opened = Posix.openAt(current, name, flags: flags)
            if case .failure(.noSuchFileOrDirectory) = opened, create {
                if let e = Posix.makeFolder(current, name) {
                    Posix.closeDescriptor(current)
                    throw StorageError(errno: e, operation: .createFolder, path: shown)
                }
                opened = Posix.openAt(current, name, flags: flags)
            }
            switch opened {
            case .success(let fd):
                Posix.closeDescriptor(current)
                current = fd
            case .failure(.noSuchFileOrDirectory):
                Posix.closeDescriptor(current)
                return nil
            case .failure(let e):
                let error: StorageError =
                    e == .tooManySymbolicLinkLevels || e == .notDirectory
                    ? self.classifyFolder(current, name, shown)
                    : StorageError(errno: e, operation: .openFolder, path: shown)
                Posix.closeDescriptor(current)
                throw error
            }
        }
        return current
    }

    /// Says why a folder component could not be opened as a folder.
    private func classifyFolder(_ folder: Int32, _ name: String, _ shown: String) -> StorageError {
        if case .success(let info?) = Posix.statAt(folder, name), Posix.kind(info) == .symbolicLink {
            return .symbolicLink(path: shown)
        }
        return .notAFolder(path: shown)
    }

    /// Says why a file could not be opened without following links.
    private func classify(_ folder: Int32, _ name: String, _ index: Int) -> StorageError {
        if case .success(let info?) = Posix.statAt(folder, name), Posix.kind(info) != .symbolicLink {
            return .notARegularFile(path: self.displayPath(index))
        }
        return .symbolicLink(path: self.displayPath(index))
    }

    private func displayPath(_ index: Int) -> String {
        (try? self.path(ofFile: index).string) ?? self.pieceMap.files[index].displayPath
    }

    private func error(_ error: any Error, _ operation: StorageError.Operation, _ index: Int) -> StorageError {
        let errno = (error as? Errno) ?? .ioError
        return StorageError(errno: errno, operation: operation, path: self.displayPath(index))
    }
}
