// BEP 5: the peers other nodes announced to us (announce_peer), served back by get_peers, and sampled by
// BEP 51's sample_infohashes.
import PeerBase

/// Peers announced to this node, per info-hash, bounded and expiring.
///
/// At most `maxInfoHashes` info-hashes and `maxPeersPerInfoHash` peers each; a peer not re-announced within
/// `peerLifetime` (30 minutes, as libtorrent) is dropped. When a list is full the peer announced longest ago
/// makes room; when the table is full the info-hash announced to longest ago does. Every choice that reaches
/// the network is made in a reproducible order (never in a dictionary's iteration order).
public struct PeerStore: Sendable {
    public struct Limits: Equatable, Sendable {
        public var maxInfoHashes: Int
        public var maxPeersPerInfoHash: Int
        public var peerLifetime: Duration

        public init(maxInfoHashes: Int = 2000, maxPeersPerInfoHash: Int = 100, peerLifetime: Duration = .seconds(1800)) {
            precondition(maxInfoHashes > 0 && maxPeersPerInfoHash > 0)
            self.maxInfoHashes = maxInfoHashes
            self.maxPeersPerInfoHash = maxPeersPerInfoHash
            self.peerLifetime = peerLifetime
        }
    }

    private struct Swarm: Sendable {
        var peers: [(endpoint: DHTEndpoint, seen: Instant)] = []
        var lastAnnounce: Instant
    }

    public let limits: Limits
    private var swarms: [NodeID: Swarm] = [:]
    /// Total peers over all info-hashes.
    public private(set) var peerCount = 0

    public init(limits: Limits = Limits()) { self.limits = limits }

    /// Info-hashes with at least one peer.
    public var infoHashCount: Int { self.swarms.count }

    /// Records that `peer` announced `infoHash`.
    public mutating func store(_ peer: DHTEndpoint, for infoHash: NodeID, at now: Instant) {
        if self.swarms[infoHash] == nil {
            if self.swarms.count >= self.limits.maxInfoHashes { self.expire(at: now) }
            if self.swarms.count >= self.limits.maxInfoHashes, let oldest = self.oldestSwarm() {
                self.peerCount -= self.swarms[oldest]!.peers.count
                self.swarms[oldest] = nil
            }
            self.swarms[infoHash] = Swarm(lastAnnounce: now)
        }
        var swarm = self.swarms[infoHash]!
        swarm.lastAnnounce = now
        if let i = swarm.peers.firstIndex(where: { $0.endpoint == peer }) {
            swarm.peers[i].seen = now
        } else {
            if swarm.peers.count >= self.limits.maxPeersPerInfoHash {
                let oldest = swarm.peers.indices.min(by: { swarm.peers[$0].seen < swarm.peers[$1].seen })!
                swarm.peers.remove(at: oldest)
                self.peerCount -= 1
            }
            swarm.peers.append((peer, now))
            self.peerCount += 1
        }
        self.swarms[infoHash] = swarm
    }

    /// Up to `limit` peers of `family` for `infoHash`, a random choice when there are more.
    public func peers(
        for infoHash: NodeID, family: DHTEndpoint.Family, limit: Int, using rng: inout some RandomNumberGenerator
    ) -> [DHTEndpoint] {
        guard limit > 0, let swarm = self.swarms[infoHash] else { return [] }
        var found = swarm.peers.compactMap { $0.endpoint.family == family ? $0.endpoint : nil }
        if found.count > limit {
            found.shuffle(using: &rng)
            found.removeLast(found.count - limit)
        }
        return found
    }

    /// All peers stored for `infoHash`, oldest announce first.
    public func allPeers(for infoHash: NodeID) -> [DHTEndpoint] {
        (self.swarms[infoHash]?.peers ?? []).map(\.endpoint)
    }

    /// Drops peers not announced within `peerLifetime`, and info-hashes left without peers.
    public mutating func expire(at now: Instant) {
        for key in Array(self.swarms.keys) {
            var swarm = self.swarms[key]!
            let before = swarm.peers.count
            swarm.peers.removeAll { now - $0.seen >= self.limits.peerLifetime }
            self.peerCount -= before - swarm.peers.count
            self.swarms[key] = swarm.peers.isEmpty ? nil : swarm
        }
    }

    /// Up to `count` stored info-hashes chosen at random (BEP 51 samples).
    public func sample(count: Int, using rng: inout some RandomNumberGenerator) -> [NodeID] {
        var keys = self.swarms.keys.sorted()
        if keys.count > count {
            keys.shuffle(using: &rng)
            keys.removeLast(keys.count - count)
        }
        return keys
    }

    private func oldestSwarm() -> NodeID? {
        self.swarms.min(by: { ($0.value.lastAnnounce, $0.key) < ($1.value.lastAnnounce, $1.key) })?.key
    }
}
