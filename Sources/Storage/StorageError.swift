import SystemPackage

/// Why a storage operation, a path or a piece of resume data was refused. Each case names the file (as
/// an absolute path for `FileStorage`, the torrent path for `MemoryStorage`) and, for system calls, the
/// operation and the error number.
public enum StorageError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A system call that can fail on a file or folder.
    public enum Operation: String, Sendable {
        case open, read, write, stat, resize, close
        case createFolder = "create folder"
        case openFolder = "open folder"
    }

    /// A path component that could lead outside the download folder (`..`, `.`, empty, `/`, NUL).
    case unsafePath(path: String, component: String)
    /// The download folder is not an absolute path.
    case relativeDownloadFolder(String)
    /// A folder or file inside the download folder is a symbolic link; it is not followed.
    case symbolicLink(path: String)
    /// Something that should be a folder (or a regular file) is something else.
    case notAFolder(path: String)
    case notARegularFile(path: String)
    /// The file has not been created yet (nothing was written to it).
    case missingFile(path: String)
    /// The file on disk is shorter than the torrent says.
    case unexpectedEndOfFile(path: String, offset: Int64)
    /// The disk (or the user's quota) is full.
    case diskFull(path: String)
    /// Any other failure of a system call.
    case system(operation: Operation, path: String, errno: Errno)
    /// A byte range outside a piece, or a piece of another torrent.
    case outOfRange(piece: Int, offset: Int, length: Int, pieceSize: Int)
    /// The storage was closed.
    case closed
    /// A bitfield whose length or spare bits are wrong.
    case invalidBitfield(String)
    /// Resume data that cannot be read.
    case invalidResumeData(String)

    /// The error for a failed system call: ENOSPC and EDQUOT become `diskFull`, ELOOP (a symbolic link met
    /// with `O_NOFOLLOW`) becomes `symbolicLink`, ENOENT on open becomes `missingFile`.
    public init(errno: Errno, operation: Operation, path: String) {
        switch errno {
        case .noSpace, .diskQuotaExceeded: self = .diskFull(path: path)
        case .tooManySymbolicLinkLevels: self = .symbolicLink(path: path)
        case .noSuchFileOrDirectory where operation == .open: self = .missingFile(path: path)
        case .notDirectory where operation == .openFolder: self = .notAFolder(path: path)
        default: self = .system(operation: operation, path: path, errno: errno)
        }
    }

    public var description: String {
        switch self {
        case .unsafePath(let path, let component):
            "refused path \"\(path)\": the component \"\(component)\" could lead outside the download folder"
        case .relativeDownloadFolder(let path): "the download folder \"\(path)\" must be an absolute path"
        case .symbolicLink(let path):
            "\"\(path)\" is a symbolic link inside the download folder; it is not followed"
        case .notAFolder(let path): "\"\(path)\" should be a folder but is not"
        case .notARegularFile(let path): "\"\(path)\" should be a regular file but is not"
        case .missingFile(let path): "\"\(path)\" does not exist"
        case .unexpectedEndOfFile(let path, let offset):
            "\"\(path)\" ends before byte \(offset): it is shorter than the torrent says"
        case .diskFull(let path): "no space left on the device (or quota exceeded) while writing \"\(path)\""
        case .system(let operation, let path, let errno):
            "cannot \(operation.rawValue) \"\(path)\": \(errno.description) (errno \(errno.rawValue))"
        case .outOfRange(let piece, let offset, let length, let size):
            "bytes [\(offset), +\(length)) are outside piece \(piece) of \(size) bytes"
        case .closed: "the storage is closed"
        case .invalidBitfield(let why): "invalid bitfield: \(why)"
        case .invalidResumeData(let why): "invalid resume data: \(why)"
        }
    }
}
