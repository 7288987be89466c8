/// Turns path components from a torrent into names that are safe to create under a download folder
/// (DESIGN.md §6), the way mainstream clients do: `.`, `..` and empty components are dropped, separators
/// and NUL are replaced by `_`, invalid UTF-8 becomes `_`, and names over 255 bytes are shortened while
/// keeping their extension. Nothing here touches the file system.
public enum PathSanitizer {
    /// The longest file name most file systems accept, in UTF-8 bytes.
    public static let maxComponentBytes = 255

    /// Sanitizes one component; nil means the component is to be dropped.
    public static func component(_ raw: [UInt8]) -> String? {
        var s = String(decoding: raw, as: UTF8.self)
        if s.unicodeScalars.contains(where: { $0 == "/" || $0 == "\\" || $0 == "\0" || $0 == "\u{FFFD}" }) {
            s = String(
                String.UnicodeScalarView(
                    s.unicodeScalars.map { ($0 == "/" || $0 == "\\" || $0 == "\0" || $0 == "\u{FFFD}") ? "_" : $0 }))
        }
        if s.isEmpty || s == "." || s == ".." { return nil }
        if s.utf8.count > Self.maxComponentBytes {
            s = Self.shorten(s)
            // Shortening cuts whole characters; what is left must still be an ordinary name.
            if s.isEmpty || s == "." || s == ".." { s = "_" }
        }
        return s
    }

    /// Sanitizes a list of components, dropping the ones that must go.
    public static func components(_ raw: [[UInt8]]) -> [String] {
        raw.compactMap(Self.component)
    }

    /// Shortens a name to `maxComponentBytes` UTF-8 bytes, keeping a short extension.
    static func shorten(_ name: String) -> String {
        var stem = Substring(name)
        var ext = Substring("")
        if let dot = name.lastIndex(of: "."), dot != name.startIndex {
            let candidate = name[dot...]
            if candidate.utf8.count <= 16 {
                stem = name[..<dot]
                ext = candidate
            }
        }
        let budget = Self.maxComponentBytes - ext.utf8.count
        var out = ""
        var used = 0
        for ch in stem {
            let n = String(ch).utf8.count
            if used + n > budget { break }
            out.append(ch)
            used += n
        }
        return out + ext
    }
}
