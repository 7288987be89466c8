import Foundation

/// The folders a torrent may be saved in: the download folder and those `peer serve --allow-path` names.
///
/// The API's token is enough to add a torrent, move one or change the download folder; without this a
/// client holding it (or a page that stole it) could have the daemon write files into `/etc`, `~/.ssh` or
/// `/`. A path is judged where it really leads: `..` and symbolic links are followed as the kernel would
/// (also links whose target does not exist yet), so neither can lead out of an allowed folder.
struct SaveFolders: Sendable {
    /// The allowed folders as given; resolved at every check, so that a folder replaced by a link is
    /// judged by where it leads now.
    let roots: [String]

    /// Linux's `PATH_MAX`: no longer path can be opened.
    static let maxPathBytes = 4096

    /// Refuses `path` unless it is absolute, free of NUL bytes, at most `maxPathBytes` long, and leads into
    /// one of the roots. `field` names it in the message (`save_path`, `download_dir`).
    func check(_ path: String, field: String) throws(SessionError) {
        // Checked first: C calls would cut the path at the NUL and use a folder nobody checked.
        guard !path.utf8.contains(0) else { throw .badRequest("\(field) must not contain a NUL byte") }
        guard path.utf8.count <= Self.maxPathBytes else {
            throw .badRequest("\(field) is longer than \(Self.maxPathBytes) bytes")
        }
        guard path.hasPrefix("/") else { throw .badRequest("\(field) must be an absolute path, got \"\(path)\"") }
        guard let real = Self.resolve(path) else {
            throw .badRequest("\(field) \(path): too many symbolic links")
        }
        let inside = self.roots.contains { root in
            guard let r = Self.resolve(root) else { return false }
            return real == r || real.hasPrefix(r == "/" ? "/" : r + "/")
        }
        guard inside else {
            let allowed = self.roots.joined(separator: ", ")
            throw .badRequest("\(field) \(path) leads to \(real), outside the folders torrents may be saved in "
                + "(\(allowed)); start peer serve with --allow-path DIR to allow another")
        }
    }

    /// Where an absolute path leads: `.` and `..` applied and every symbolic link replaced by its target,
    /// component by component as the kernel walks it; components that do not exist are kept as written
    /// (creating them makes the same path). Nil after 40 links, the kernel's limit (a loop).
    static func resolve(_ path: String) -> String? {
        var pending = Array(path.split(separator: "/").map(String.init).reversed())
        var resolved: [String] = []
        var links = 0
        while let part = pending.popLast() {
            if part == "." { continue }
            if part == ".." {
                _ = resolved.popLast()
                continue
            }
            let candidate = "/" + (resolved + [part]).joined(separator: "/")
            guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: candidate) else {
                resolved.append(part)
                continue
            }
            links += 1
            guard links <= 40 else { return nil }
            if target.hasPrefix("/") { resolved = [] }
            pending.append(contentsOf: target.split(separator: "/").map(String.init).reversed())
        }
        return "/" + resolved.joined(separator: "/")
    }
}
