// BEP 11: peer exchange, the part that decides what to tell one peer.
import PeerBase
import PeerWire

/// What one peer has heard from us through ut_pex: the peers we last told it about, and when. Each message
/// carries the changes since the one before, at most once a minute (BEP 11), the first soon after connecting.
struct PEXDiff {
    /// How often each peer hears from us, and how soon after connecting.
    static let interval: Duration = .seconds(60)
    static let first: Duration = .seconds(2)

    private(set) var sent: Set<PEXPeer> = []
    private(set) var last: Instant?

    /// The message due now for a peer connected since `connectedAt`, given the peers we are connected to now
    /// (with their flags; the peer itself left out); nil when none is due or nothing changed.
    mutating func next(current peers: [PEXPeer], connectedAt: Instant, at now: Instant) -> PEXMessage? {
        let due = self.last.map { now - $0 >= Self.interval } ?? (now - connectedAt >= Self.first)
        guard due else { return nil }
        let current = Set(peers.map { PEXPeer(ip: $0.ip, port: $0.port) })
        let flags = Dictionary(peers.map { (PEXPeer(ip: $0.ip, port: $0.port), $0.flags) }) { a, _ in a }
        let added = current.subtracting(self.sent).prefix(PEXMessage.maxPeers)
        let dropped = self.sent.subtracting(current).prefix(PEXMessage.maxPeers)
        self.last = now
        guard !added.isEmpty || !dropped.isEmpty else { return nil }
        self.sent.formUnion(added)
        self.sent.subtract(dropped)
        return PEXMessage(added: added.map { PEXPeer(ip: $0.ip, port: $0.port, flags: flags[$0] ?? []) },
            dropped: Array(dropped))
    }
}
