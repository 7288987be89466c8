// BEP 3 (announce response), BEP 23 (compact peers), BEP 7 (peers6).
import Bencode

/// What a tracker answers to an announce: when to come back, swarm counts, and peers.
///
/// Parsed leniently, as mainstream clients do: a malformed peer entry or field is dropped and recorded in
/// `ignored`; parsing fails only when the body is not bencode, is a `failure reason`, or has nothing usable
/// (neither an `interval` nor a readable peer list).
public struct AnnounceResponse: Equatable, Sendable {
    /// How long to wait before the next regular announce.
    public var interval: Duration?
    /// The shortest wait the tracker accepts between announces (`min interval`).
    public var minInterval: Duration?
    /// An id to send back as `trackerid` on the next HTTP announce.
    public var trackerID: [UInt8]?
    /// Seeders (`complete`; UDP `seeders`).
    public var complete: Int?
    /// Leechers (`incomplete`; UDP `leechers`).
    public var incomplete: Int?
    /// Peers that ever completed the torrent (`downloaded`, sent by some trackers).
    public var downloaded: Int?
    /// The tracker's `warning message`: the announce worked but something deserves attention.
    public var warning: String?
    /// Peers: IPv4 ones (`peers`) first, then IPv6 ones (`peers6`), at most `TrackerLimits.maxPeers`.
    public var peers: [PeerAddress]
    /// Problems found in entries that were dropped (at most `HTTPTracker.maxReportedProblems`).
    public var ignored: [TrackerError]

    public init(
        interval: Duration? = nil,
        minInterval: Duration? = nil,
        trackerID: [UInt8]? = nil,
        complete: Int? = nil,
        incomplete: Int? = nil,
        downloaded: Int? = nil,
        warning: String? = nil,
        peers: [PeerAddress] = [],
        ignored: [TrackerError] = []
    ) {
        self.interval = interval
        self.minInterval = minInterval
        self.trackerID = trackerID
        self.complete = complete
        self.incomplete = incomplete
        self.downloaded = downloaded
        self.warning = warning
        self.peers = peers
        self.ignored = ignored
    }

    /// Parses the body of an HTTP announce response (a bencoded dictionary).
    /// - Parameter httpBody: The response body, at most `TrackerLimits.maxBodyLength` bytes.
    /// - Throws: `.failure` with the tracker's `failure reason`; `.bencode`, `.wrongType`, `.tooLarge` for
    ///   a body that cannot be read; `.missingKey("peers")` when it holds neither an interval nor peers.
    public init(httpBody: [UInt8]) throws(TrackerError) {
        let root = try HTTPTracker.decodeBody(httpBody)
        var problems = ProblemList()
        self.init()

        self.warning = root["warning message"].map(HTTPTracker.text)
        self.interval = problems.seconds(root, "interval")
        self.minInterval = problems.seconds(root, "min interval")
        self.complete = problems.nonNegative(root, "complete")
        self.incomplete = problems.nonNegative(root, "incomplete")
        self.downloaded = problems.nonNegative(root, "downloaded")
        if let id = root["tracker id"] {
            if let bytes = id.bytes {
                self.trackerID = bytes
            } else {
                problems.add(.wrongType(key: "tracker id", expected: "a string", found: id.typeName))
            }
        }

        var peers = PeerCollector()
        var readablePeers = false
        if let node = root["peers"] {
            switch node.kind {
            case .string(let bytes):
                readablePeers = true
                peers.addCompact(bytes, key: "peers", stride: 6, problems: &problems)
            case .list(let items):
                readablePeers = true
                peers.addDictionaries(items, problems: &problems)
            default:
                problems.add(.wrongType(key: "peers", expected: "a string or a list", found: node.typeName))
            }
        }
        if let node = root["peers6"] {
            if let bytes = node.bytes {
                readablePeers = true
                peers.addCompact(bytes, key: "peers6", stride: 18, problems: &problems)
            } else {
                problems.add(.wrongType(key: "peers6", expected: "a string", found: node.typeName))
            }
        }
        peers.reportOverflow(problems: &problems)

        guard readablePeers || self.interval != nil else {
            throw problems.items.first { $0.key == "peers" || $0.key == "peers6" } ?? .missingKey("peers")
        }
        self.peers = peers.peers
        self.ignored = problems.items
    }
}

/// Collects peers up to `TrackerLimits.maxPeers`, dropping unusable entries.
struct PeerCollector {
    var peers: [PeerAddress] = []
    /// Usable entries seen beyond the limit.
    var overflow = 0

    mutating func add(_ peer: PeerAddress, key: String, problems: inout ProblemList) {
        guard peer.port != 0 else {
            problems.add(.invalidValue(key: key, reason: "port 0 (\(peer.ip))"))
            return
        }
        if self.peers.count < TrackerLimits.maxPeers {
            self.peers.append(peer)
        } else {
            self.overflow += 1
        }
    }

    /// Reads a compact list: `stride` bytes per peer (6 for IPv4, 18 for IPv6); a trailing partial entry is dropped.
    mutating func addCompact(_ bytes: [UInt8], key: String, stride: Int, problems: inout ProblemList) {
        if bytes.count % stride != 0 {
            problems.add(.badLength(what: key, length: bytes.count, expected: "a multiple of \(stride)"))
        }
        var offset = 0
        while offset + stride <= bytes.count {
            if let peer = PeerAddress(compact: bytes[offset..<offset + stride]) {
                self.add(peer, key: "\(key)[\(offset / stride)]", problems: &problems)
            }
            offset += stride
        }
    }

    /// Reads the original form: a list of dictionaries with `ip` (text), `port` and an optional `peer id`.
    /// Host names are dropped: this target resolves nothing.
    mutating func addDictionaries(_ items: [BencodeNode], problems: inout ProblemList) {
        for (index, item) in items.enumerated() {
            let key = "peers[\(index)]"
            guard item.entries != nil else {
                problems.add(.wrongType(key: key, expected: "a dictionary", found: item.typeName))
                continue
            }
            guard let ipNode = item["ip"] else {
                problems.add(.missingKey("\(key).ip"))
                continue
            }
            guard let ipText = ipNode.utf8 else {
                problems.add(.wrongType(key: "\(key).ip", expected: "a UTF-8 string", found: ipNode.typeName))
                continue
            }
            guard let portNode = item["port"] else {
                problems.add(.missingKey("\(key).port"))
                continue
            }
            guard let port = portNode.integer else {
                problems.add(.wrongType(key: "\(key).port", expected: "an integer", found: portNode.typeName))
                continue
            }
            guard port > 0 && port <= 65535 else {
                problems.add(.invalidValue(key: "\(key).port", reason: "\(port) is not a port 1-65535"))
                continue
            }
            let ip: PeerAddress.IP
            do {
                ip = try PeerAddress.IP(parsing: ipText)
            } catch {
                problems.add(.invalidValue(key: "\(key).ip", reason: error.reason))
                continue
            }
            self.add(PeerAddress(ip: ip, port: UInt16(port)), key: key, problems: &problems)
        }
    }

    func reportOverflow(problems: inout ProblemList) {
        guard self.overflow > 0 else { return }
        problems.add(
            .tooLarge(what: "peers", count: self.peers.count + self.overflow, limit: TrackerLimits.maxPeers))
    }
}

/// Problems found while parsing leniently, kept to a bounded number.
struct ProblemList {
    private(set) var items: [TrackerError] = []

    mutating func add(_ problem: TrackerError) {
        if self.items.count < HTTPTracker.maxReportedProblems { self.items.append(problem) }
    }

    /// A non-negative integer field, or nil (with a problem noted) when absent, mistyped or negative.
    mutating func nonNegative(_ dict: BencodeNode, _ key: String, keyPath: String? = nil) -> Int? {
        guard let node = dict[key] else { return nil }
        let path = keyPath ?? key
        guard let v = node.integer else {
            self.add(.wrongType(key: path, expected: "an integer", found: node.typeName))
            return nil
        }
        guard v >= 0 else {
            self.add(.invalidValue(key: path, reason: "\(v) is negative"))
            return nil
        }
        return Int(v)
    }

    /// A non-negative number of seconds as a `Duration`.
    mutating func seconds(_ dict: BencodeNode, _ key: String) -> Duration? {
        self.nonNegative(dict, key).map { .seconds($0) }
    }
}

extension TrackerError {
    /// The response key a problem is about, when it names one.
    var key: String? {
        switch self {
        case .wrongType(let key, _, _), .missingKey(let key), .invalidValue(let key, _): key
        case .badLength(let what, _, _), .tooLarge(let what, _, _): what
        default: nil
        }
    }
}
