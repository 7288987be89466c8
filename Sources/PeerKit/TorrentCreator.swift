import Bencode
import Dispatch
import Metainfo
import Synchronization
import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Makes .torrent files from files on disk: v1, v2 or hybrid, hashing on every core.
///
/// Memory stays bounded whatever the payload: each worker streams its share through one reused buffer
/// of `readSize` bytes with positional reads; only the hashes themselves are kept (20 bytes a piece for
/// v1, 32 bytes a piece for v2).
public struct TorrentCreator: Sendable {
    public struct Options: Sendable {
        public var version: TorrentVersion = .hybrid
        /// nil chooses one from the total size (`FileLayout.automaticPieceLength`).
        public var pieceLength: Int?
        public var trackers: [[String]] = []
        public var webSeeds: [String] = []
        public var isPrivate = false
        public var comment: String?
        /// Overrides the torrent's name (by default the file's or folder's name).
        public var name: String?
        /// Seconds since 1970 for `creation date`; nil leaves the key out.
        public var creationDate: Int64?
        public var createdBy: String?
        public var source: String?
        public var excludes: [String] = []
        public var followSymlinks = false
        /// Worker threads; 0 means one per core.
        public var threads = 0
        /// Bytes each worker reads at a time.
        public var readSize = 1 << 20

        public init() {}
    }

    /// A finished torrent.
    public struct Output: Sendable {
        /// The .torrent file's bytes.
        public var bytes: [UInt8]
        /// The same, parsed back (so hashes and warnings come from the one parser every command uses).
        public var metainfo: TorrentMetainfo
        /// Entries left out, with why.
        public var skipped: [(path: String, reason: String)]
    }

    public var options: Options

    public init(options: Options) { self.options = options }

    /// Smallest and largest piece length accepted from the user (a power of two, as v2 requires).
    public static let pieceLengthRange = (16 * 1024)...(256 * 1024 * 1024)

    /// Scans `path`, hashes it and builds the torrent.
    /// - Parameter progress: called from worker threads with (bytes hashed, bytes in all) as work completes.
    public func create(path: String, progress: (@Sendable (Int64, Int64) -> Void)? = nil) throws(CreateError)
        -> Output
    {
        let scan = try FileScanner.scan(path, excludes: self.options.excludes,
            followSymlinks: self.options.followSymlinks)
        let total = scan.files.reduce(Int64(0)) { $0 + $1.length }
        guard total > 0 else {
            throw CreateError(scan.files.isEmpty ? "nothing to share: \(path) holds no files"
                : "nothing to share: every file under \(path) is empty")
        }
        let pieceLength = self.options.pieceLength ?? FileLayout.automaticPieceLength(totalLength: total)
        guard Self.pieceLengthRange.contains(pieceLength), pieceLength & (pieceLength - 1) == 0 else {
            throw CreateError("piece length \(pieceLength) must be a power of two from 16 KiB to 256 MiB")
        }
        let name = self.options.name ?? scan.files.first.map { scan.isFolder ? FileScanner.baseName(path) : $0.path[0] }
            ?? "files"
        guard PathSanitizer.component(Array(name.utf8)) == name else {
            throw CreateError("\"\(name)\" cannot be a torrent name (it must be one valid file name)")
        }
        var builder = TorrentBuilder(
            name: name, pieceLength: pieceLength, version: self.options.version,
            files: scan.files.map {
                TorrentBuilder.File(path: scan.isFolder ? $0.path : [name], length: $0.length,
                    attributes: $0.isExecutable ? "x" : "")
            },
            isMultiFile: scan.isFolder)
        builder.trackers = self.options.trackers
        builder.webSeeds = self.options.webSeeds
        builder.isPrivate = self.options.isPrivate
        builder.comment = self.options.comment
        builder.createdBy = self.options.createdBy
        builder.creationDate = self.options.creationDate
        builder.source = self.options.source

        let hashes = try self.hash(files: scan.files, builder: builder, total: total, progress: progress)
        let torrent = builder.build(v1Pieces: hashes.v1, v2: hashes.v2)
        let bytes = BencodeEncoder.encode(torrent)
        let metainfo: TorrentMetainfo
        do { metainfo = try TorrentMetainfo(bytes: bytes) } catch {
            throw CreateError("internal error: the new torrent does not parse: \(error)")
        }
        return Output(bytes: bytes, metainfo: metainfo, skipped: scan.skipped)
    }

    // MARK: - Hashing

    /// A contiguous run of whole pieces read by one worker.
    private struct WorkUnit {
        /// For v1: nil (the run is in the concatenated stream). For v2/hybrid: the file it lies in.
        var file: Int?
        /// First byte of the run (in the stream for v1, in the file otherwise).
        var start: Int64
        var length: Int64
        /// Index of the run's first piece in the v1 piece list (v1, hybrid).
        var v1Piece: Int
        /// Index of the run's first piece in its file's piece layer (v2, hybrid).
        var filePiece: Int
        /// The run ends its file and the file is followed by padding (hybrid): pad the last SHA-1 with zeros.
        var padTail: Bool
    }

    private func hash(
        files: [ScannedFile], builder: TorrentBuilder, total: Int64, progress: (@Sendable (Int64, Int64) -> Void)?
    ) throws(CreateError) -> (v1: [UInt8]?, v2: [TorrentBuilder.V2Hashes]?) {
        let pl = Int64(builder.pieceLength)
        let version = builder.version
        let wantV1 = version != .v2
        let wantV2 = version != .v1
        let readSize = max(self.options.readSize, PieceMap.blockSize)
        // Runs of about 4 MiB (at least one piece) balance the threads without seeking much.
        let piecesPerUnit = Int(max(1, Int64(4 << 20) / pl))

        var units: [WorkUnit] = []
        var v1PieceCount = 0
        var layerPieces: [Int] = Array(repeating: 0, count: files.count)
        if version == .v1 {
            v1PieceCount = Int((total + pl - 1) / pl)
            var p = 0
            while p < v1PieceCount {
                let n = min(piecesPerUnit, v1PieceCount - p)
                let start = Int64(p) * pl
                units.append(WorkUnit(file: nil, start: start, length: min(Int64(n) * pl, total - start),
                    v1Piece: p, filePiece: 0, padTail: false))
                p += n
            }
        } else {
            let layout = builder.layout
            v1PieceCount = Int(((layout.last.map { $0.offset + $0.length } ?? 0) + pl - 1) / pl)
            for (k, entry) in layout.enumerated() {
                guard let f = entry.source, entry.length > 0 else { continue }
                let count = MerkleTree.pieceCount(fileLength: entry.length, pieceLength: builder.pieceLength)
                layerPieces[f] = count
                let padded = k + 1 < layout.count && layout[k + 1].isPadding
                var p = 0
                while p < count {
                    let n = min(piecesPerUnit, count - p)
                    let start = Int64(p) * pl
                    let length = min(Int64(n) * pl, entry.length - start)
                    units.append(WorkUnit(file: f, start: start, length: length,
                        v1Piece: Int(entry.offset / pl) + p, filePiece: p, padTail: padded && p + n == count))
                    p += n
                }
            }
        }

        let results = HashResults(v1Pieces: wantV1 ? v1PieceCount : 0, layerPieces: wantV2 ? layerPieces : [])
        let next = Atomic<Int>(0)
        let done = Atomic<Int64>(0)
        let failure = Mutex<CreateError?>(nil)
        let threads = self.options.threads > 0 ? self.options.threads : max(1, System.coreCount)
        let unitsCopy = units
        DispatchQueue.concurrentPerform(iterations: min(threads, max(1, units.count))) { _ in
            var reader = FileReader(files: files)
            defer { reader.close() }
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: readSize, alignment: 4096)
            defer { buffer.deallocate() }
            while true {
                let i = next.wrappingAdd(1, ordering: .relaxed).oldValue
                guard i < unitsCopy.count, failure.withLock({ $0 == nil }) else { return }
                let unit = unitsCopy[i]
                var hasher = PieceHasher(pieceLength: builder.pieceLength, v1: wantV1, v2: wantV2)
                var v1Index = unit.v1Piece
                var layerIndex = unit.filePiece
                let onPiece = { (piece: PieceHasher.Piece) in
                    if let sha1 = piece.sha1 {
                        results.storeV1(sha1, at: v1Index)
                        v1Index += 1
                    }
                    if let f = unit.file, wantV2 {
                        results.storeLeaves(piece.leaves, file: f, piece: layerIndex, pieceLength: builder.pieceLength)
                        layerIndex += 1
                    }
                }
                var offset = unit.start
                let end = unit.start + unit.length
                do throws(CreateError) {
                    while offset < end {
                        let n = Int(min(Int64(readSize), end - offset))
                        let chunk = UnsafeMutableRawBufferPointer(rebasing: buffer[..<n])
                        if let f = unit.file {
                            try reader.read(file: f, at: offset, into: chunk)
                        } else {
                            try reader.readStream(at: offset, into: chunk)
                        }
                        hasher.update(UnsafeRawBufferPointer(chunk), onPiece: onPiece)
                        offset += Int64(n)
                        let sofar = done.add(Int64(n), ordering: .relaxed).newValue
                        progress?(sofar, total)
                    }
                    hasher.finish(padToPieceLength: unit.padTail, onPiece: onPiece)
                } catch {
                    failure.withLock { if $0 == nil { $0 = error } }
                    return
                }
            }
        }
        if let error = failure.withLock({ $0 }) { throw error }

        let v1 = wantV1 ? results.v1Bytes() : nil
        let v2: [TorrentBuilder.V2Hashes]? = wantV2
            ? files.indices.map { f in
                guard files[f].length > 0 else { return TorrentBuilder.V2Hashes(root: nil, pieceLayer: nil) }
                if files[f].length <= pl {
                    return TorrentBuilder.V2Hashes(root: results.singlePieceRoot(file: f), pieceLayer: nil)
                }
                let layer = results.layer(file: f)
                return TorrentBuilder.V2Hashes(
                    root: MerkleTree.fileRoot(pieceLayer: layer, pieceLength: builder.pieceLength), pieceLayer: layer)
            } : nil
        return (v1, v2)
    }
}

/// Hash outputs written by worker threads at disjoint indices.
private final class HashResults: @unchecked Sendable {
    private let v1: UnsafeMutableRawBufferPointer
    /// Per file: its piece layer (32 bytes a piece), or for a file of one piece its root.
    private let layers: [UnsafeMutableRawBufferPointer]

    init(v1Pieces: Int, layerPieces: [Int]) {
        self.v1 = .allocate(byteCount: v1Pieces * 20, alignment: 8)
        self.layers = layerPieces.map { .allocate(byteCount: max($0, 1) * 32, alignment: 8) }
    }

    deinit {
        self.v1.deallocate()
        for l in self.layers { l.deallocate() }
    }

    func storeV1(_ digest: some Sequence<UInt8>, at index: Int) {
        var i = index * 20
        for b in digest {
            self.v1[i] = b
            i += 1
        }
    }

    func storeLeaves(_ leaves: [UInt8], file: Int, piece: Int, pieceLength: Int) {
        let count = self.layers[file].count / 32
        precondition(piece < count, "piece index within the file")
        // A file of one piece keeps the root of its own (smaller) tree; larger files keep piece hashes.
        let hash = count == 1
            ? MerkleTree.fileRoot(leaves: leaves)
            : MerkleTree.pieceHash(leaves: leaves, pieceLength: pieceLength)
        hash.withUnsafeBytes { self.layers[file].baseAddress!.advanced(by: piece * 32).copyMemory(from: $0.baseAddress!, byteCount: 32) }
    }

    func v1Bytes() -> [UInt8] { Array(self.v1) }
    func layer(file: Int) -> [UInt8] { Array(self.layers[file]) }
    func singlePieceRoot(file: Int) -> [UInt8] { Array(self.layers[file].prefix(32)) }
}

/// Positional reads of the scanned files, one descriptor open at a time per worker.
private struct FileReader {
    let files: [ScannedFile]
    /// Start of each file in the concatenated stream (v1).
    let starts: [Int64]
    var open: (index: Int, fd: FileDescriptor)?

    init(files: [ScannedFile]) {
        self.files = files
        var s: [Int64] = []
        var o: Int64 = 0
        for f in files {
            s.append(o)
            o += f.length
        }
        self.starts = s
    }

    mutating func close() {
        if let o = self.open { try? o.fd.close() }
        self.open = nil
    }

    mutating func read(file: Int, at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws(CreateError) {
        let fd = try self.descriptor(file)
        var filled = 0
        while filled < buffer.count {
            let n: Int
            do {
                n = try fd.read(fromAbsoluteOffset: offset + Int64(filled),
                    into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled...]))
            } catch {
                throw CreateError("cannot read \(self.files[file].location): \(error)")
            }
            if n == 0 {
                throw CreateError("\(self.files[file].location) changed while it was hashed (it got shorter)")
            }
            filled += n
        }
    }

    /// Reads from the concatenation of all files (v1 pieces may straddle files).
    mutating func readStream(at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws(CreateError) {
        // The last file starting at or before `offset` (empty files share a start with the next one).
        var lo = 0
        var hi = self.starts.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if self.starts[mid] <= offset { lo = mid } else { hi = mid - 1 }
        }
        var file = lo
        var position = offset
        var filled = 0
        while filled < buffer.count {
            guard file < self.files.count else { throw CreateError("internal error: read past the last file") }
            let inFile = position - self.starts[file]
            let available = self.files[file].length - inFile
            if available <= 0 {
                file += 1
                continue
            }
            let n = Int(min(Int64(buffer.count - filled), available))
            try self.read(file: file, at: inFile, into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled..<filled + n]))
            filled += n
            position += Int64(n)
        }
    }

    private mutating func descriptor(_ file: Int) throws(CreateError) -> FileDescriptor {
        if let o = self.open, o.index == file { return o.fd }
        self.close()
        do {
            let fd = try FileDescriptor.open(FilePath(self.files[file].location), .readOnly)
            self.open = (file, fd)
            return fd
        } catch {
            throw CreateError("cannot open \(self.files[file].location): \(error)")
        }
    }
}

/// Facts about the machine.
public enum System {
    /// Cores available to this process.
    public static var coreCount: Int {
        return Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
    }
}
