import ArgumentParser
import Bencode
import Foundation
import Metainfo
import PeerBase
import PeerKit

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show what a .torrent file or a magnet link holds.",
        discussion: """
            For a torrent: name, total size, piece length and count, version (v1, v2, hybrid), info-hashes, \
            trackers by tier, web seeds, private flag, creator, date and the file tree with each file's index \
            (the index that --files, `so` and the API use). For a magnet link: its parsed fields.

            A torrent that cannot be used is reported in one line naming the problem and, where there is one, \
            the byte offset; the exit status is then 1. Paths that would escape the download folder are shown \
            sanitized, with a warning.

            --json prints a stable document; docs/json.md describes every field.

            Examples:
              peer info ubuntu.torrent
              peer info ubuntu.torrent --json | jq .info_hash_v1
              peer info 'magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567&dn=x'
            """)

    @Argument(help: "A .torrent file (or - for standard input) or a magnet link.")
    var source: String

    @Flag(help: "Print JSON instead of text.")
    var json = false

    func run() throws {
        if self.source.lowercased().hasPrefix("magnet:") {
            let magnet: MagnetLink
            do { magnet = try MagnetLink(parsing: self.source) } catch {
                Terminal.error("info", error.description)
                throw ExitCode(1)
            }
            if self.json { print(try Terminal.json(MagnetSummary(magnet))) } else { Self.show(magnet) }
            return
        }
        let bytes: [UInt8]
        do { bytes = try Self.read(self.source, limit: BencodeLimits.default.maxInputLength) } catch {
            Terminal.error("info", "\(self.source): \(error.description)")
            throw ExitCode(1)
        }
        let torrent: TorrentMetainfo
        do { torrent = try TorrentMetainfo(bytes: bytes) } catch {
            Terminal.error("info", "\(self.source): \(error.description)")
            throw ExitCode(1)
        }
        for w in torrent.warnings { Terminal.warn(w.message) }
        if self.json { print(try Terminal.json(TorrentSummary(torrent))) } else { Self.show(torrent) }
    }

    /// Reads a file whose size is checked before anything is allocated for it.
    static func read(_ path: String, limit: Int) throws(CreateError) -> [UInt8] {
        if path == "-" {
            let data = FileHandle.standardInput.readData(ofLength: limit + 1)
            guard data.count <= limit else { throw CreateError("larger than the limit of \(limit) bytes") }
            return [UInt8](data)
        }
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isFolder), isFolder.boolValue {
            throw CreateError("is a folder, not a torrent file (to make a torrent of it: peer create \(path))")
        }
        guard let handle = FileHandle(forReadingAtPath: path) else {
            let exists = FileManager.default.fileExists(atPath: path)
            throw CreateError(exists ? "cannot read the file" : "no such file")
        }
        defer { try? handle.close() }
        let size = (try? handle.seekToEnd()) ?? 0
        guard size <= UInt64(limit) else {
            throw CreateError("the file is \(size) bytes, larger than the limit of \(limit) bytes for a torrent")
        }
        try? handle.seek(toOffset: 0)
        guard let data = try? handle.readToEnd() else { return [] }
        return [UInt8](data)
    }

    static func show(_ t: TorrentMetainfo) {
        let real = t.files.filter { !$0.isPadding }
        print("name:         \(t.name)")
        print("size:         \(ByteCount.format(t.totalLength)) (\(t.totalLength) bytes) in \(real.count) file\(real.count == 1 ? "" : "s")")
        print("version:      \(t.version.rawValue)")
        print("pieces:       \(t.pieceCount) × \(ByteCount.format(Int64(t.pieceLength))) (\(t.pieceLength) bytes)")
        if let v1 = t.infoHashes.v1 { print("info-hash v1: \(v1.hex)") }
        if let v2 = t.infoHashes.v2 { print("info-hash v2: \(v2.hex)") }
        print("private:      \(t.isPrivate ? "yes" : "no")")
        if let c = t.createdBy { print("created by:   \(c)") }
        if let d = t.creationDate {
            let f = ISO8601DateFormatter()
            print("created on:   \(f.string(from: Date(timeIntervalSince1970: TimeInterval(d))))")
        }
        if let c = t.comment { print("comment:      \(c)") }
        if let s = t.source { print("source:       \(s)") }
        if t.trackers.isEmpty {
            print("trackers:     none")
        } else {
            print("trackers:")
            for (i, tier) in t.trackers.enumerated() {
                print("  tier \(i + 1):    \(tier.joined(separator: "\n              "))")
            }
        }
        if !t.webSeeds.isEmpty {
            print("web seeds:")
            for w in t.webSeeds { print("  \(w)") }
        }
        print("magnet:       \(MagnetLink(t))")
        print("files:")
        Self.showTree(real)
    }

    /// Prints files as an indented tree, each with its size and index.
    static func showTree(_ files: [TorrentFile]) {
        var printed: [String] = []
        for f in files {
            let dirs = Array(f.path.dropLast())
            var common = 0
            while common < min(dirs.count, printed.count) && dirs[common] == printed[common] { common += 1 }
            for depth in common..<dirs.count {
                print(String(repeating: "  ", count: depth + 1) + dirs[depth] + "/")
            }
            printed = dirs
            let line = String(repeating: "  ", count: dirs.count + 1) + f.path.last!
            let pad = max(1, 50 - line.count)
            print(line + String(repeating: " ", count: pad) + "\(ByteCount.format(f.length))  [\(f.index)]")
        }
    }

    static func show(_ m: MagnetLink) {
        print("magnet link")
        if let n = m.displayName { print("name:         \(n)") }
        if let v1 = m.infoHashes.v1 { print("info-hash v1: \(v1.hex)") }
        if let v2 = m.infoHashes.v2 { print("info-hash v2: \(v2.hex)") }
        if let l = m.exactLength { print("size:         \(ByteCount.format(l)) (\(l) bytes)") }
        if !m.trackers.isEmpty { print("trackers:     \(m.trackers.joined(separator: "\n              "))") }
        if !m.webSeeds.isEmpty { print("web seeds:    \(m.webSeeds.joined(separator: "\n              "))") }
        if !m.peers.isEmpty { print("peers:        \(m.peers.joined(separator: ", "))") }
        if !m.selectedFiles.isEmpty { print("files:        \(m.selectedFiles.map(String.init).joined(separator: ","))") }
    }
}
