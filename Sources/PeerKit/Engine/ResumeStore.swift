import Metainfo
import PeerBase
import Storage
import SystemPackage

/// Where a torrent's resume data lives: a file `STATE/resume/ID.resume` (`peer get`), or anywhere the
/// caller keeps bytes (the daemon's SQLite database).
///
/// Saving a file writes a temporary file and renames it over the old one, so a crash (or `kill -9`) in the
/// middle leaves either the old data or the new, never half of each. Methods block on the disk: call them
/// from the thread pool.
public struct ResumeStore: Sendable {
    /// Where it is kept, for messages.
    public let location: String
    let infoHash: [UInt8]
    /// The saved bytes; nil when nothing was saved.
    private let readBytes: @Sendable () throws -> [UInt8]?
    private let writeBytes: @Sendable ([UInt8]) throws -> Void

    /// Resume data in `STATE/resume/ID.resume`.
    public init(stateDirectory: String, metainfo: TorrentMetainfo) {
        let path = FilePath(stateDirectory).appending("resume").appending("\(metainfo.infoHashes.id).resume")
        self.init(location: path.string, metainfo: metainfo, read: { try Self.readFile(path) },
            write: { try Self.writeFile(path, $0) })
    }

    /// Resume data kept by the caller: `read` returns the bytes last written (nil if none), `write` replaces
    /// them in one step.
    public init(location: String, metainfo: TorrentMetainfo, read: @escaping @Sendable () throws -> [UInt8]?,
        write: @escaping @Sendable ([UInt8]) throws -> Void)
    {
        self.location = location
        self.infoHash = metainfo.infoHashes.v1?.bytes ?? metainfo.infoHashes.v2!.bytes
        self.readBytes = read
        self.writeBytes = write
    }

    /// The bitfield of a million pieces plus a few numbers per file: 64 MiB is far beyond any real one.
    static let maxBytes = 64 << 20

    /// The saved data, or nil with the reason when there is none or it does not fit this torrent (the caller
    /// then checks the data on disk, as with no resume data at all).
    public func load(map: PieceMap) -> Result<ResumeData, ResumeLoadError> {
        let bytes: [UInt8]
        do {
            guard let read = try self.readBytes() else { return .failure(.missing) }
            guard read.count <= Self.maxBytes else { return .failure(.invalid("\(read.count) bytes is too large")) }
            bytes = read
        } catch {
            return .failure(.invalid("cannot read \(self.location): \(error)"))
        }
        do {
            let data = try ResumeData(bytes: bytes, pieceCount: map.pieceCount, fileCount: map.files.count)
            guard data.infoHash == self.infoHash else { return .failure(.invalid("it is another torrent's")) }
            return .success(data)
        } catch {
            return .failure(.invalid(error.description))
        }
    }

    /// Saves `pieces` with the files' statuses as they are now.
    public func save(pieces: Bitfield, storage: any TorrentStorage) throws {
        try self.writeBytes(ResumeData(infoHash: self.infoHash, pieces: pieces, files: try storage.fileStatuses()).encoded)
    }

    private static func readFile(_ path: FilePath) throws -> [UInt8]? {
        let fd: FileDescriptor
        do { fd = try FileDescriptor.open(path, .readOnly) } catch Errno.noSuchFileOrDirectory { return nil }
        defer { try? fd.close() }
        let size = try fd.seek(offset: 0, from: .end)
        guard size <= Self.maxBytes else { return [UInt8](repeating: 0, count: Self.maxBytes + 1) }
        return try [UInt8](unsafeUninitializedCapacity: Int(size)) { buffer, count in
            count = try fd.read(fromAbsoluteOffset: 0, into: UnsafeMutableRawBufferPointer(buffer))
        }
    }

    private static func writeFile(_ path: FilePath, _ bytes: [UInt8]) throws {
        try? FileManagerless.makeFolders(path.removingLastComponent())
        let temporary = FilePath(path.string + ".part")
        let fd = try FileDescriptor.open(temporary, .writeOnly, options: [.create, .truncate], permissions: [.ownerReadWrite])
        do {
            _ = try fd.writeAll(bytes)
            try fd.close()
        } catch {
            try? fd.close()
            throw error
        }
        try FileManagerless.replace(path, with: temporary)
    }
}

/// Why no resume data was used.
public enum ResumeLoadError: Error, Sendable, Equatable {
    /// None was saved (a first run).
    case missing
    /// It exists but cannot be used (the reason); the data on disk is checked instead.
    case invalid(String)
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The two file-system calls resume data needs beyond FileDescriptor.
enum FileManagerless {
    static func makeFolders(_ path: FilePath) throws {
        var current = FilePath(path.root?.string ?? "")
        for component in path.components {
            current.append(component)
            if mkdir(current.string, 0o755) != 0 && errno != EEXIST { throw Errno(rawValue: errno) }
        }
    }

    /// Renames `source` over `target` (atomic on one file system).
    static func replace(_ target: FilePath, with source: FilePath) throws {
        if rename(source.string, target.string) != 0 { throw Errno(rawValue: errno) }
    }
}
