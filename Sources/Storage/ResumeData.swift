import Metainfo
import Bencode
import PeerBase

/// What a restart needs to skip re-checking a torrent (DESIGN.md §5): the pieces verified so far and,
/// for each file, its size and modification time when they were recorded. Files whose size and time
/// still match are trusted; the pieces of any other file are verified again. Pure; kept apart from the
/// piece data (STYLE.md rule 12).
public struct ResumeData: Equatable, Sendable {
    /// The torrent's info-hash (v1, 20 bytes, or v2, 32 bytes): resume data of another torrent is refused.
    public var infoHash: [UInt8]
    /// The pieces verified.
    public var pieces: Bitfield
    /// Per file index: its status when the bitfield was saved, nil for files absent and padding.
    public var files: [FileStatus?]

    public init(infoHash: [UInt8], pieces: Bitfield, files: [FileStatus?]) {
        self.infoHash = infoHash
        self.pieces = pieces
        self.files = files
    }

    /// The format's name and version, written first so another program's file is not mistaken for one.
    static let format = "peer resume"
    static let version: Int64 = 1

    /// The bencoded form: `{format, version, info-hash, piece count, pieces (bitfield bytes), files:
    /// [[length, mtime] or [] per file]}`.
    public var encoded: [UInt8] {
        var d = BencodeDictionary()
        d["format"] = .text(Self.format)
        d["version"] = .integer(Self.version)
        d["info-hash"] = .string(self.infoHash)
        d["piece count"] = .integer(Int64(self.pieces.count))
        d["pieces"] = .string(self.pieces.bytes)
        d["files"] = .list(self.files.map { status in
            guard let status else { return .list([]) }
            return .list([.integer(status.length), .integer(status.modificationTime)])
        })
        return BencodeEncoder.encode(.dictionary(d))
    }

    /// Decodes resume data written by `encoded`.
    /// - Parameters:
    ///   - pieceCount: the torrent's piece count; other counts are refused.
    ///   - fileCount: the torrent's file count (padding included); other counts are refused.
    /// - Throws: `StorageError.invalidResumeData` or `.invalidBitfield`.
    public init(bytes: [UInt8], pieceCount: Int, fileCount: Int) throws(StorageError) {
        let value: BencodeValue
        do { value = try BencodeDecoder().decodeValue(bytes) } catch { throw .invalidResumeData("\(error)") }
        guard let d = value.dictionary, d["format"]?.utf8 == Self.format else {
            throw .invalidResumeData("not peer resume data")
        }
        guard d["version"]?.integer == Self.version else { throw .invalidResumeData("unknown version") }
        guard let hash = d["info-hash"]?.bytes, hash.count == 20 || hash.count == 32 else {
            throw .invalidResumeData("no info-hash")
        }
        guard let count = d["piece count"]?.integer, count == Int64(pieceCount) else {
            throw .invalidResumeData("the piece count is not \(pieceCount)")
        }
        guard let bits = d["pieces"]?.bytes else { throw .invalidResumeData("no pieces") }
        let pieces: Bitfield
        do { pieces = try Bitfield(bytes: bits, count: pieceCount) } catch { throw .invalidBitfield(error.description) }
        guard let list = d["files"]?.list, list.count == fileCount else {
            throw .invalidResumeData("the file count is not \(fileCount)")
        }
        var files: [FileStatus?] = []
        files.reserveCapacity(fileCount)
        for (i, entry) in list.enumerated() {
            guard let pair = entry.list else { throw .invalidResumeData("file \(i) is not a list") }
            if pair.isEmpty {
                files.append(nil)
                continue
            }
            guard pair.count == 2, let length = pair[0].integer, let time = pair[1].integer, length >= 0 else {
                throw .invalidResumeData("file \(i) is not [length, mtime]")
            }
            files.append(FileStatus(length: length, modificationTime: time))
        }
        self.init(infoHash: hash, pieces: pieces, files: files)
    }

    /// Which files are unchanged since the data was saved: present then and now with the same status.
    /// - Parameter current: the files' statuses now (`TorrentStorage.fileStatuses()`).
    public func unchangedFiles(current: [FileStatus?]) -> [Bool] {
        precondition(current.count == self.files.count, "one status per file")
        return zip(self.files, current).map { saved, now in saved != nil && saved == now }
    }

    /// The pieces a restart may trust without reading them: recorded as verified, and every file they
    /// touch (padding aside) unchanged. The rest must be verified again (or downloaded).
    public func trustedPieces(current: [FileStatus?], map: PieceMap) -> Bitfield {
        precondition(map.pieceCount == self.pieces.count, "resume data of this torrent")
        let unchanged = self.unchangedFiles(current: current)
        var out = Bitfield(count: self.pieces.count)
        for i in self.pieces.setIndices {
            let piece = map.index(i)!
            if map.files(inPiece: piece).allSatisfy({ unchanged[$0] }) { out[i] = true }
        }
        return out
    }
}
