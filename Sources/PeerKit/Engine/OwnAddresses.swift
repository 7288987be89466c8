import Synchronization
import Tracker

/// Addresses ("host:port") that are this node: its listening address, and those a handshake showed to be it (our
/// own peer id came back). Trackers and the DHT name every node to itself too, so without this the node would
/// dial itself at every announce and lookup. One per node, shared by its torrents and overlays; any thread.
final class OwnAddresses: Sendable {
    private let addresses = Mutex<Set<String>>([])
    /// At most this many: a peer we dial can echo our peer id back, and each such peer would add one.
    static let limit = 1024

    func insert(_ address: String) {
        let canonical = Self.canonical(address)
        self.addresses.withLock { if $0.count < Self.limit { $0.insert(canonical) } }
    }

    func contains(_ address: String) -> Bool {
        let canonical = Self.canonical(address)
        return self.addresses.withLock { $0.contains(canonical) }
    }

    /// One spelling per address: PEX writes IPv6 in full, trackers and the DHT in RFC 5952's short form.
    private static func canonical(_ address: String) -> String { PeerAddress(address)?.description ?? address }
}
