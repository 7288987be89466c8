/// Who sent blocks of which piece, and what became of those pieces. A host whose pieces fail their hash
/// check loses trust and is banned after repeats, unless its good pieces far outnumber the bad (in end-game
/// an honest seed can share a piece with a bad peer).
///
/// Hosts are IP addresses as text: a peer that reconnects from another port is the same host.
public struct TrustLedger: Sendable {
    private var senders: [Int: Set<String>] = [:]
    private var failures: [String: Int] = [:]
    private var good: [String: Int] = [:]
    public private(set) var banned: Set<String> = []

    public init() {}

    public func isBanned(_ host: String) -> Bool { self.banned.contains(host) }

    /// `host` sent a block of `piece` (or the whole piece).
    public mutating func sent(piece: Int, by host: String) {
        self.senders[piece, default: []].insert(host)
    }

    /// `piece` passed its check: each host that sent some of it gains a good piece.
    public mutating func verified(piece: Int) {
        for host in self.senders.removeValue(forKey: piece) ?? [] { self.good[host, default: 0] += 1 }
    }

    /// `piece` failed its check.
    /// - Returns: the hosts that sent it (sorted) and those of them banned by this failure.
    public mutating func failed(piece: Int) -> (senders: [String], banned: [String]) {
        let hosts = (self.senders.removeValue(forKey: piece) ?? []).sorted()
        var newlyBanned: [String] = []
        for host in hosts {
            let n = (self.failures[host] ?? 0) + 1
            self.failures[host] = n
            if n >= 2 && n * 4 > (self.good[host] ?? 0) && self.banned.insert(host).inserted {
                newlyBanned.append(host)
            }
        }
        return (hosts, newlyBanned)
    }

    /// Forgets who sent `piece` (it was given up, as when a write failed: no one's fault).
    public mutating func forget(piece: Int) { self.senders[piece] = nil }

    /// Pieces that failed their check with blocks from `host`.
    public func failures(of host: String) -> Int { self.failures[host] ?? 0 }
}
