// BEP 48 (HTTP scrape) and BEP 15 (UDP scrape).
import Bencode
import PeerBase

/// Swarm counts a tracker reports for one torrent.
public struct ScrapeStats: Hashable, Sendable, CustomStringConvertible {
    /// Peers that have the whole torrent (seeders).
    public var complete: Int
    /// Peers that ever completed the download (`downloaded`, UDP `completed`).
    public var downloaded: Int
    /// Peers still downloading (leechers).
    public var incomplete: Int

    public init(complete: Int, downloaded: Int, incomplete: Int) {
        self.complete = complete
        self.downloaded = downloaded
        self.incomplete = incomplete
    }

    public var description: String {
        "complete=\(self.complete) downloaded=\(self.downloaded) incomplete=\(self.incomplete)"
    }
}

/// A scrape answer: counts per 20-byte info-hash.
public struct ScrapeResponse: Equatable, Sendable {
    /// Counts keyed by the 20-byte info-hash the tracker knows the torrent by.
    public var files: [[UInt8]: ScrapeStats]
    /// Problems found in entries that were dropped or read as 0 (empty for a clean response).
    public var ignored: [TrackerError]

    public init(files: [[UInt8]: ScrapeStats], ignored: [TrackerError] = []) {
        self.files = files
        self.ignored = ignored
    }

    /// The counts for one info-hash, if the tracker reported it.
    public subscript(infoHash: [UInt8]) -> ScrapeStats? { self.files[infoHash] }
}

extension ScrapeResponse {
    /// Parses the body of an HTTP scrape response: `files`, a dictionary from 20-byte info-hash to
    /// `complete`/`downloaded`/`incomplete` (BEP 48).
    ///
    /// Entries whose key is not 20 bytes or whose value is not a dictionary are dropped; a missing or
    /// malformed count reads as 0. Each is noted in `ignored`.
    /// - Throws: `.failure` with the tracker's `failure reason`; `.bencode`, `.wrongType`, `.missingKey("files")`
    ///   or `.tooLarge` for a body that cannot be read.
    public init(httpBody: [UInt8]) throws(TrackerError) {
        let root = try HTTPTracker.decodeBody(httpBody)
        guard let filesNode = root["files"] else { throw .missingKey("files") }
        guard let entries = filesNode.entries else {
            throw .wrongType(key: "files", expected: "a dictionary", found: filesNode.typeName)
        }
        guard entries.count <= TrackerLimits.maxScrapeEntries else {
            throw .tooLarge(what: "files", count: entries.count, limit: TrackerLimits.maxScrapeEntries)
        }
        var problems = ProblemList()
        var files: [[UInt8]: ScrapeStats] = [:]
        for entry in entries {
            guard entry.key.count == 20 else {
                problems.add(
                    .invalidValue(key: "files", reason: "a key of \(entry.key.count) bytes is not a 20-byte info-hash"))
                continue
            }
            let path = "files.\(Hex.encode(entry.key))"
            guard entry.value.entries != nil else {
                problems.add(.wrongType(key: path, expected: "a dictionary", found: entry.value.typeName))
                continue
            }
            let count = { (key: String) -> Int in
                problems.nonNegative(entry.value, key, keyPath: "\(path).\(key)") ?? 0
            }
            files[entry.key] = ScrapeStats(
                complete: count("complete"), downloaded: count("downloaded"), incomplete: count("incomplete"))
        }
        self.init(files: files, ignored: problems.items)
    }
}
