import Crypto

/// Who sent which blocks of which piece, and what became of those pieces: the basis for banning peers that
/// send corrupt data, without banning the honest peers that shared a piece with them.
///
/// - A piece from one host that fails its check counts against that host; two such failures (unless its good
///   pieces far outnumber them) ban it.
/// - A piece from several hosts that fails cannot be blamed on anyone yet: the hash of each of its blocks is
///   kept, with who sent it. When the piece later passes, each block is compared with the good one: a host
///   whose block differed is banned at once, the others are cleared (libtorrent's "smart ban" reasons alike).
///
/// Hosts are IP addresses as text: a peer that reconnects from another port is the same host.
public struct TrustLedger: Sendable {
    /// Who sent each block (by block index) of pieces in progress.
    private var senders: [Int: [Int: String]] = [:]
    /// Blocks of failed pieces from several hosts: their SHA-1 and sender, by piece and block index.
    private var suspects: [Int: [Int: (hash: Insecure.SHA1Digest, host: String)]] = [:]
    private var failures: [String: Int] = [:]
    private var good: [String: Int] = [:]
    public private(set) var banned: Set<String> = []

    public init() {}

    public func isBanned(_ host: String) -> Bool { self.banned.contains(host) }

    /// `host` sent block `block` of `piece` (for a whole piece from one source, block 0 stands for it all).
    public mutating func sent(piece: Int, block: Int, by host: String) {
        self.senders[piece, default: [:]][block] = host
    }

    /// `piece` passed its check with these bytes: its senders gain a good piece, and if it had failed before
    /// with blocks from several hosts, those whose blocks differ from these are banned.
    /// - Returns: hosts banned by this.
    public mutating func verified(piece: Int, bytes: [UInt8], blockSize: Int) -> [String] {
        for host in Set((self.senders.removeValue(forKey: piece) ?? [:]).values) { self.good[host, default: 0] += 1 }
        guard let blocks = self.suspects.removeValue(forKey: piece) else { return [] }
        var guilty: Set<String> = []
        for (index, suspect) in blocks where !guilty.contains(suspect.host) {
            if let hash = Self.hash(of: index, in: bytes, blockSize: blockSize), hash != suspect.hash {
                guilty.insert(suspect.host)
            }
        }
        return guilty.sorted().filter { self.banned.insert($0).inserted }
    }

    /// `piece` failed its check with these bytes.
    /// - Returns: the hosts that sent it (sorted), and those of them banned by this failure.
    public mutating func failed(piece: Int, bytes: [UInt8], blockSize: Int) -> (senders: [String], banned: [String]) {
        let blocks = self.senders.removeValue(forKey: piece) ?? [:]
        let hosts = Set(blocks.values).sorted()
        guard hosts.count == 1, let host = hosts.first else {
            // Several senders: keep each block's hash until a good copy says whose was wrong.
            var kept: [Int: (hash: Insecure.SHA1Digest, host: String)] = [:]
            for (index, host) in blocks {
                if let hash = Self.hash(of: index, in: bytes, blockSize: blockSize) { kept[index] = (hash, host) }
            }
            self.suspects[piece] = kept
            return (hosts, [])
        }
        let n = (self.failures[host] ?? 0) + 1
        self.failures[host] = n
        // Banned after repeated failures, unless its good pieces far outnumber them.
        if n >= 2 && n * 4 > (self.good[host] ?? 0) && self.banned.insert(host).inserted { return (hosts, [host]) }
        return (hosts, [])
    }

    /// Forgets who sent `piece` (it was given up, as when a write failed: no one's fault).
    public mutating func forget(piece: Int) { self.senders[piece] = nil }

    /// The SHA-1 of block `index` of a piece's bytes; nil past the piece's end.
    private static func hash(of index: Int, in bytes: [UInt8], blockSize: Int) -> Insecure.SHA1Digest? {
        let range = index * blockSize..<min(bytes.count, (index + 1) * blockSize)
        return range.isEmpty ? nil : Insecure.SHA1.hash(data: bytes[range])
    }
}
