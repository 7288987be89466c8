// DESIGN.md §6: the final path must stay under the download folder; existing symbolic links are not followed.
import Metainfo
import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Turns a torrent file's path into a path under the download folder, refusing anything that could
/// lead elsewhere.
///
/// `TorrentMetainfo` already sanitizes every component; this checks again, because a path that escapes
/// is the one storage bug that harms the user's other files. `resolve` checks the components only;
/// `checkOnDisk` also looks at what exists (with `lstat`, never following a link) and refuses a symbolic
/// link anywhere between the download folder and the file. `FileStorage` opens each folder with
/// `O_NOFOLLOW` as well, so a link swapped in after the check is still not followed.
public struct PathResolver: Sendable {
    /// The download folder (absolute). It may itself be, or sit under, a symbolic link: that is the user's choice.
    public let root: FilePath

    /// - Throws: `StorageError.relativeDownloadFolder` when `root` is not absolute.
    /// `root` as text, without a trailing `/` (empty for `/` itself), to which `/name…` is appended.
    private let rootPrefix: String

    public init(root: FilePath) throws(StorageError) {
        guard root.isAbsolute else { throw .relativeDownloadFolder(root.string) }
        self.root = root.lexicallyNormalized()
        let text = self.root.string
        self.rootPrefix = text.hasSuffix("/") ? String(text.dropLast()) : text
    }

    /// Whether a name can be one component below a folder: not empty, `.` or `..`, and without `/` or NUL.
    /// (Any other name is a regular component: paths here are built from checked names joined with `/`, with
    /// no `FilePath` parsing per file, which costs milliseconds a file in debug builds of swift-system.)
    @inline(__always)
    static func isSafe(_ name: String) -> Bool {
        !name.isEmpty && name != "." && name != ".." && !name.utf8.contains(UInt8(ascii: "/")) && !name.utf8.contains(0)
    }

    /// Checks one path component.
    /// - Returns: the component as a `FilePath.Component`.
    /// - Throws: `StorageError.unsafePath` for `..`, `.`, empty names and names holding `/` or NUL.
    public static func checkComponent(_ name: String, in path: [String]) throws(StorageError) -> FilePath.Component {
        guard Self.isSafe(name), let component = FilePath.Component(name), component.kind == .regular else {
            throw .unsafePath(path: path.joined(separator: "/"), component: name)
        }
        return component
    }

    /// Checks every component of `path`.
    public func check(_ path: [String]) throws(StorageError) {
        guard !path.isEmpty else { throw .unsafePath(path: "", component: "") }
        for name in path where !Self.isSafe(name) {
            throw .unsafePath(path: path.joined(separator: "/"), component: name)
        }
    }

    /// The components of `path`, each checked.
    public func components(_ path: [String]) throws(StorageError) -> [FilePath.Component] {
        guard !path.isEmpty else { throw .unsafePath(path: "", component: "") }
        var out: [FilePath.Component] = []
        out.reserveCapacity(path.count)
        for name in path { out.append(try Self.checkComponent(name, in: path)) }
        return out
    }

    /// The absolute path of a torrent file, after checking its components (no disk access).
    public func resolve(_ path: [String]) throws(StorageError) -> FilePath {
        FilePath(try self.resolvedText(path))
    }

    /// The absolute path of the first `count` components of `path`, as text; the components must be checked.
    func text(_ path: [String], count: Int) -> String {
        var out = self.rootPrefix
        for name in path.prefix(count) {
            out += "/"
            out += name
        }
        return out
    }

    private func resolvedText(_ path: [String]) throws(StorageError) -> String {
        try self.check(path)
        return self.text(path, count: path.count)
    }

    /// Resolves `path` and checks what already exists on disk: each folder between the download folder
    /// and the file must be a real folder, and the file, if present, a regular file. Nothing is followed.
    /// - Returns: the absolute path.
    /// - Throws: `StorageError.symbolicLink`, `.notAFolder`, `.notARegularFile`, or `.system(.stat, …)`.
    @discardableResult
    public func checkOnDisk(_ path: [String]) throws(StorageError) -> FilePath {
        let target = FilePath(try self.resolvedText(path))
        var current = self.rootPrefix
        for (i, name) in path.enumerated() {
            current += "/"
            current += name
            let isLast = i == path.count - 1
            var info = stat()
            if lstat(current, &info) != 0 {
                let e = Errno(rawValue: errno)
                if e == .noSuchFileOrDirectory { return target }  // nothing below can exist
                throw StorageError(errno: e, operation: .stat, path: current)
            }
            let kind = info.st_mode & S_IFMT
            if kind == S_IFLNK { throw .symbolicLink(path: current) }
            if !isLast && kind != S_IFDIR { throw .notAFolder(path: current) }
            if isLast && kind != S_IFREG { throw .notARegularFile(path: current) }
        }
        return target
    }
}
