import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The few `*at` system calls swift-system does not wrap, so that folders are walked one component at a
/// time without following symbolic links. Each returns the errno on failure.
enum Posix {
    static let readOnly = FileDescriptor.AccessMode.readOnly.rawValue
    static let readWrite = FileDescriptor.AccessMode.readWrite.rawValue
    static let create = FileDescriptor.OpenOptions.create.rawValue
    static let directory = FileDescriptor.OpenOptions.directory.rawValue
    static let noFollow = FileDescriptor.OpenOptions.noFollow.rawValue
    static let closeOnExec = FileDescriptor.OpenOptions.closeOnExec.rawValue
    static let nonBlocking = FileDescriptor.OpenOptions.nonBlocking.rawValue

    /// The kind of an existing entry.
    enum Kind {
        case regular, folder, symbolicLink, other
    }

    /// `openat`, retrying on EINTR.
    static func openAt(_ dir: Int32, _ name: String, flags: Int32, mode: mode_t = 0) -> Result<Int32, Errno> {
        while true {
            let fd = name.withCString { openat(dir, $0, flags, mode) }
            if fd >= 0 { return .success(fd) }
            let e = Errno(rawValue: errno)
            if e != .interrupted { return .failure(e) }
        }
    }

    /// `open` of an absolute path (the download folder), following links.
    static func openFolder(_ path: FilePath) -> Result<Int32, Errno> {
        while true {
            let fd = path.withPlatformString { open($0, Self.readOnly | Self.directory | Self.closeOnExec) }
            if fd >= 0 { return .success(fd) }
            let e = Errno(rawValue: errno)
            if e != .interrupted { return .failure(e) }
        }
    }

    /// `mkdirat`; an existing entry is not an error (the caller opens it next and finds out what it is).
    static func makeFolder(_ dir: Int32, _ name: String) -> Errno? {
        let rc = name.withCString { mkdirat(dir, $0, 0o755) }
        if rc == 0 { return nil }
        let e = Errno(rawValue: errno)
        return e == .fileExists ? nil : e
    }

    /// `mkdir -p` for the download folder itself.
    static func makeFolders(_ path: FilePath) -> Errno? {
        var current = FilePath(root: path.root)
        for component in path.components {
            current.append(component)
            let rc = current.withPlatformString { mkdir($0, 0o755) }
            if rc != 0 && errno != EEXIST { return Errno(rawValue: errno) }
        }
        return nil
    }

    /// `fstatat` without following a link: nil when the entry does not exist.
    static func statAt(_ dir: Int32, _ name: String) -> Result<stat?, Errno> {
        var info = stat()
        let rc = name.withCString { fstatat(dir, $0, &info, AT_SYMLINK_NOFOLLOW) }
        if rc == 0 { return .success(info) }
        let e = Errno(rawValue: errno)
        return e == .noSuchFileOrDirectory ? .success(nil) : .failure(e)
    }

    /// `fstat` of an open descriptor.
    static func statDescriptor(_ fd: Int32) -> Result<stat, Errno> {
        var info = stat()
        if fstat(fd, &info) == 0 { return .success(info) }
        return .failure(Errno(rawValue: errno))
    }

    static func kind(_ info: stat) -> Kind {
        switch info.st_mode & S_IFMT {
        case S_IFREG: .regular
        case S_IFDIR: .folder
        case S_IFLNK: .symbolicLink
        default: .other
        }
    }

    /// The file's status: size and modification time in nanoseconds since 1970.
    static func status(_ info: stat) -> FileStatus {
        #if canImport(Darwin)
        let t = info.st_mtimespec
        #else
        let t = info.st_mtim
        #endif
        return FileStatus(length: Int64(info.st_size), modificationTime: Int64(t.tv_sec) * 1_000_000_000 + Int64(t.tv_nsec))
    }

    static func closeDescriptor(_ fd: Int32) { _ = close(fd) }
}
