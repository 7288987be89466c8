import Metainfo
import PeerBase
import Storage
import SystemPackage

/// Where a torrent's resume data lives: `STATE/resume/ID.resume`, keyed by the info-hash's id.
///
/// Saving writes a temporary file and renames it over the old one, so a crash (or `kill -9`) in the middle
/// leaves either the old data or the new, never half of each. Methods block on the disk: call them from the
/// thread pool.
public struct ResumeStore: Sendable {
    public let path: FilePath
    let infoHash: [UInt8]

    public init(stateDirectory: String, metainfo: TorrentMetainfo) {
        self.path = FilePath(stateDirectory).appending("resume").appending("\(metainfo.infoHashes.id).resume")
        self.infoHash = metainfo.infoHashes.v1?.bytes ?? metainfo.infoHashes.v2!.bytes
    }

    /// The saved data, or nil with the reason when there is none or it does not fit this torrent (the caller
    /// then checks the data on disk, as with no resume data at all).
    public func load(map: PieceMap) -> Result<ResumeData, ResumeLoadError> {
        let bytes: [UInt8]
        do {
            let fd = try FileDescriptor.open(self.path, .readOnly)
            defer { try? fd.close() }
            let size = try fd.seek(offset: 0, from: .end)
            // The bitfield of a million pieces plus a few numbers per file: 64 MiB is far beyond any real file.
            guard size <= 64 << 20 else { return .failure(.invalid("\(size) bytes is too large")) }
            bytes = try [UInt8](unsafeUninitializedCapacity: Int(size)) { buffer, count in
                count = try fd.read(fromAbsoluteOffset: 0, into: UnsafeMutableRawBufferPointer(buffer))
            }
        } catch Errno.noSuchFileOrDirectory {
            return .failure(.missing)
        } catch {
            return .failure(.invalid("cannot read \(self.path): \(error)"))
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
        let data = ResumeData(infoHash: self.infoHash, pieces: pieces, files: try storage.fileStatuses())
        let folder = self.path.removingLastComponent()
        try? FileManagerless.makeFolders(folder)
        let temporary = FilePath(self.path.string + ".part")
        let fd = try FileDescriptor.open(temporary, .writeOnly, options: [.create, .truncate], permissions: [.ownerReadWrite])
        do {
            _ = try fd.writeAll(data.encoded)
            try fd.close()
        } catch {
            try? fd.close()
            throw error
        }
        try FileManagerless.replace(self.path, with: temporary)
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
