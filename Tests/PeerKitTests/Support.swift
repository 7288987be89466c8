import Foundation
import Metainfo

/// Lower-case hex, for comparing hashes in failure messages.
func hex(_ bytes: [UInt8]) -> String { bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined() }


/// A folder under the system's temporary directory, removed by `remove()`.
struct TempDir {
    let url: URL
    var path: String { self.url.path }

    init() throws {
        self.url = FileManager.default.temporaryDirectory.appendingPathComponent("peerkit-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: self.url, withIntermediateDirectories: true)
    }

    /// Writes `data` at `relative` (a "/"-separated path), creating folders on the way.
    @discardableResult
    func write(_ relative: String, _ data: [UInt8]) throws -> URL {
        let file = self.url.appendingPathComponent(relative)
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(data).write(to: file)
        return file
    }

    func mkdir(_ relative: String) throws {
        try FileManager.default.createDirectory(
            at: self.url.appendingPathComponent(relative), withIntermediateDirectories: true)
    }

    func symlink(_ relative: String, to destination: String) throws {
        try FileManager.default.createSymbolicLink(
            atPath: self.url.appendingPathComponent(relative).path, withDestinationPath: destination)
    }

    func remove() { try? FileManager.default.removeItem(at: self.url) }
}

/// Runs `body` with a fresh temporary folder and removes it afterwards.
func withTempDir<R>(_ body: (TempDir) throws -> R) throws -> R {
    let dir = try TempDir()
    defer { dir.remove() }
    return try body(dir)
}

// MARK: - Independent expectations (in-test SHA-1/SHA-256, no PeerKit or Metainfo hashing code)

enum Independent {
    static let block = 16 * 1024

    /// SHA-1 of each `pieceLength` slice of `stream`.
    static func v1Pieces(_ stream: [UInt8], pieceLength: Int) -> [UInt8] {
        stride(from: 0, to: stream.count, by: pieceLength).flatMap {
            Digest.sha1(stream[$0..<min($0 + pieceLength, stream.count)])
        }
    }

    static func reduce(_ hashes: [[UInt8]], width: Int) -> [UInt8] {
        var level = hashes + Array(repeating: [UInt8](repeating: 0, count: 32), count: width - hashes.count)
        while level.count > 1 {
            level = stride(from: 0, to: level.count, by: 2).map { Digest.sha256(level[$0] + level[$0 + 1]) }
        }
        return level[0]
    }

    static func leaves(_ data: ArraySlice<UInt8>) -> [[UInt8]] {
        stride(from: data.startIndex, to: data.endIndex, by: block).map {
            Digest.sha256(data[$0..<min($0 + block, data.endIndex)])
        }
    }

    /// BEP 52 pieces root: the file's 16 KiB leaves padded with zero leaves to a power of two.
    static func fileRoot(_ data: [UInt8]) -> [UInt8] {
        let l = leaves(data[...])
        var width = 1
        while width < l.count { width *= 2 }
        return reduce(l, width: width)
    }

    /// BEP 52 piece layer.
    static func pieceLayer(_ data: [UInt8], pieceLength: Int) -> [UInt8] {
        stride(from: 0, to: data.count, by: pieceLength).flatMap { start in
            reduce(leaves(data[start..<min(start + pieceLength, data.count)]), width: pieceLength / block)
        }
    }
}
