/// One entry of a torrent's file list.
///
/// `index` is the one definition of a file's index used everywhere (`so` in magnet links, `--files`,
/// the API): the position in the v1 `files` list, padding files included (they are never selectable),
/// or the position in file-tree order for v2-only torrents.
public struct TorrentFile: Hashable, Sendable {
    public var index: Int
    /// Sanitized path relative to the download folder, starting with the torrent's name for multi-file
    /// torrents (`["album", "cd1", "01.flac"]`) and equal to `[name]` for single-file torrents.
    public var path: [String]
    public var length: Int64
    /// Offset of the file's first byte in the torrent's piece space (v2 files start on piece boundaries).
    public var offset: Int64
    /// BEP 47 attributes as written (`p` padding, `x` executable, `h` hidden, `l` symlink).
    public var attributes: String
    /// The v2 Merkle root (32 bytes) for non-empty files of v2 and hybrid torrents.
    public var piecesRoot: [UInt8]?
    /// BEP 47 symlink target, sanitized, relative to the torrent's root.
    public var symlinkTarget: [String]?

    public var isPadding: Bool { self.attributes.contains("p") }
    public var isExecutable: Bool { self.attributes.contains("x") }
    public var isHidden: Bool { self.attributes.contains("h") }
    public var isSymlink: Bool { self.attributes.contains("l") }

    /// The path joined with `/`.
    public var displayPath: String { self.path.joined(separator: "/") }

    public init(
        index: Int, path: [String], length: Int64, offset: Int64, attributes: String = "",
        piecesRoot: [UInt8]? = nil, symlinkTarget: [String]? = nil
    ) {
        self.index = index
        self.path = path
        self.length = length
        self.offset = offset
        self.attributes = attributes
        self.piecesRoot = piecesRoot
        self.symlinkTarget = symlinkTarget
    }
}

/// Lays files out in piece space the way each torrent version requires.
public enum FileLayout {
    /// A file or padding file in creation order.
    public struct Entry: Equatable, Sendable {
        /// Path below the torrent's root folder (for a single file, just its name).
        public var path: [String]
        public var length: Int64
        public var offset: Int64
        public var isPadding: Bool
        /// Index in the caller's list of real files; nil for padding.
        public var source: Int?
    }

    /// Places files end to end (v1) or each on a piece boundary with BEP 47 padding files between them
    /// (hybrid), as libtorrent 2.0 does: in a multi-file hybrid every non-empty file that does not end on a
    /// piece boundary is followed by a padding file, the last one included; a single file is never padded.
    public static func plan(
        files: [(path: [String], length: Int64)], pieceLength: Int, version: TorrentVersion
    ) -> [Entry] {
        var out: [Entry] = []
        var offset: Int64 = 0
        let pl = Int64(pieceLength)
        for (i, f) in files.enumerated() {
            out.append(Entry(path: f.path, length: f.length, offset: offset, isPadding: false, source: i))
            offset += f.length
            if version != .v1 && files.count > 1 && f.length > 0 && offset % pl != 0 {
                let pad = pl - offset % pl
                out.append(Entry(path: [".pad", String(pad)], length: pad, offset: offset, isPadding: true, source: nil))
                offset += pad
            }
        }
        return out
    }

    /// Chooses a piece length for `totalLength` bytes like mainstream clients: a power of two from 16 KiB
    /// to 16 MiB that keeps the piece count at or below 1 024 (1 GiB gets 1 MiB pieces, 16 MiB the cap).
    public static func automaticPieceLength(totalLength: Int64) -> Int {
        var pl: Int64 = 16 * 1024
        // The piece count rounded up, written so that it cannot overflow near Int64.max.
        while pl < 16 * 1024 * 1024 && totalLength / pl + (totalLength % pl == 0 ? 0 : 1) > 1024 { pl *= 2 }
        return Int(pl)
    }
}
