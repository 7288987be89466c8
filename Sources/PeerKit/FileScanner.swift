#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A regular file found under the path given to `peer create`.
public struct ScannedFile: Sendable, Equatable {
    /// Absolute (or caller-relative) path to open.
    public var location: String
    /// Components below the shared folder; for a lone file, its name.
    public var path: [String]
    public var length: Int64
    public var isExecutable: Bool
}

/// What `FileScanner.scan` found.
public struct ScanResult: Sendable {
    public var files: [ScannedFile]
    /// True when the path was a folder.
    public var isFolder: Bool
    /// Entries that were left out, with why (symlinks not followed, sockets, excluded).
    public var skipped: [(path: String, reason: String)]
}

/// Why creating a torrent failed.
public struct CreateError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Walks a file or folder in canonical order (byte-wise by name at each level, which is v2 file-tree order).
public enum FileScanner {
    /// Scans `root`.
    /// - Parameters:
    ///   - excludes: shell globs (`*.tmp`, `.git`, `cache/*`) matched against each entry's name and its path
    ///     below the root.
    ///   - followSymlinks: follow symbolic links to files and folders (cycles are detected); by default a
    ///     link is skipped and reported.
    public static func scan(_ root: String, excludes: [String], followSymlinks: Bool) throws(CreateError)
        -> ScanResult
    {
        var st = stat()
        guard lstat(root, &st) == 0 else { throw CreateError("cannot read \(root): \(Self.errnoText())") }
        if Self.isLink(st) {
            guard followSymlinks else {
                throw CreateError("\(root) is a symbolic link; pass --follow-symlinks to share what it points to")
            }
            guard stat(root, &st) == 0 else { throw CreateError("cannot follow \(root): \(Self.errnoText())") }
        }
        let name = Self.baseName(root)
        if Self.isRegular(st) {
            return ScanResult(
                files: [ScannedFile(location: root, path: [name], length: Int64(st.st_size),
                    isExecutable: st.st_mode & 0o111 != 0)],
                isFolder: false, skipped: [])
        }
        guard Self.isDirectory(st) else { throw CreateError("\(root) is neither a file nor a folder") }
        var result = ScanResult(files: [], isFolder: true, skipped: [])
        var visited: Set<[UInt64]> = [[UInt64(st.st_dev), UInt64(st.st_ino)]]
        try Self.walk(root, relative: [], excludes: excludes, follow: followSymlinks, visited: &visited,
            into: &result)
        return result
    }

    private static func walk(
        _ dir: String, relative: [String], excludes: [String], follow: Bool, visited: inout Set<[UInt64]>,
        into result: inout ScanResult
    ) throws(CreateError) {
        guard let handle = opendir(dir) else { throw CreateError("cannot open folder \(dir): \(Self.errnoText())") }
        var names: [[UInt8]] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                Array(raw.prefix(while: { $0 != 0 }))
            }
            if name == [UInt8(ascii: ".")] || name == [UInt8(ascii: "."), UInt8(ascii: ".")] { continue }
            names.append(name)
        }
        closedir(handle)
        names.sort { $0.lexicographicallyPrecedes($1) }
        for raw in names {
            guard let name = String(validating: raw, as: UTF8.self) else {
                // Such a name cannot be written into a torrent as it is, nor opened through a String path.
                let shown = (relative + [String(decoding: raw, as: UTF8.self)]).joined(separator: "/")
                result.skipped.append((shown, "name is not valid UTF-8"))
                continue
            }
            let rel = relative + [name]
            let relText = rel.joined(separator: "/")
            let full = dir + "/" + name
            if excludes.contains(where: { fnmatch($0, name, 0) == 0 || fnmatch($0, relText, 0) == 0 }) {
                result.skipped.append((relText, "excluded"))
                continue
            }
            var st = stat()
            guard lstat(full, &st) == 0 else { throw CreateError("cannot read \(full): \(Self.errnoText())") }
            if Self.isLink(st) {
                guard follow else {
                    result.skipped.append((relText, "symbolic link (use --follow-symlinks)"))
                    continue
                }
                guard stat(full, &st) == 0 else {
                    result.skipped.append((relText, "broken symbolic link"))
                    continue
                }
            }
            if Self.isRegular(st) {
                result.files.append(ScannedFile(location: full, path: rel, length: Int64(st.st_size),
                    isExecutable: st.st_mode & 0o111 != 0))
            } else if Self.isDirectory(st) {
                let key = [UInt64(st.st_dev), UInt64(st.st_ino)]
                guard visited.insert(key).inserted else {
                    result.skipped.append((relText, "folder already included (link cycle)"))
                    continue
                }
                try Self.walk(full, relative: rel, excludes: excludes, follow: follow, visited: &visited,
                    into: &result)
            } else {
                result.skipped.append((relText, "not a regular file"))
            }
        }
    }

    /// The name a path gives a torrent: its last component after resolving `.`, `..` and links.
    static func baseName(_ path: String) -> String {
        if let resolved = realpath(path, nil) {
            defer { free(resolved) }
            if let last = String(cString: resolved).split(separator: "/").last { return String(last) }
        }
        return path.split(separator: "/").last.map(String.init) ?? "files"
    }

    private static func isLink(_ st: stat) -> Bool { st.st_mode & S_IFMT == S_IFLNK }
    private static func isRegular(_ st: stat) -> Bool { st.st_mode & S_IFMT == S_IFREG }
    private static func isDirectory(_ st: stat) -> Bool { st.st_mode & S_IFMT == S_IFDIR }
    static func errnoText() -> String { String(cString: strerror(errno)) }
}
