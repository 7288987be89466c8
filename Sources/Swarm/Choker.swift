import PeerBase

/// Decides which peers may download from us (BEP 3's choking), every `round`:
/// - tit-for-tat while downloading: the interested peers that sent us the most in the last round get the
///   regular slots (snubbed peers, which stopped sending, do not);
/// - seeding: the peers we upload to fastest keep their slots (they can take the most);
/// - one optimistic slot, moved to a random choked interested peer every `optimisticRounds` rounds, lets a
///   newcomer show what it can do;
/// - a peer whose connection takes nothing (stalled: it asks and never reads) gets no slot at all.
///
/// Pure: the engine passes the peers' figures and the time, and applies the answer.
public struct Choker: Sendable {
    public typealias PeerKey = Int

    /// One peer as the choker sees it.
    public struct Candidate: Sendable, Equatable {
        public var key: PeerKey
        public var interested: Bool
        /// Bytes the peer sent us in the last round.
        public var received: Int64
        /// Bytes we sent the peer in the last round.
        public var sent: Int64
        public var snubbed: Bool
        /// Its connection has taken nothing for a while (it does not read): it gets no slot while it stays so.
        public var stalled: Bool

        public init(key: PeerKey, interested: Bool, received: Int64 = 0, sent: Int64 = 0, snubbed: Bool = false,
            stalled: Bool = false)
        {
            self.key = key
            self.interested = interested
            self.received = received
            self.sent = sent
            self.snubbed = snubbed
            self.stalled = stalled
        }
    }

    /// Regular upload slots (the optimistic one comes on top).
    public var slots: Int
    public var optimisticRounds: Int
    public private(set) var optimistic: PeerKey?
    private var roundsSinceRotation = Int.max / 2

    public init(slots: Int = 8, optimisticRounds: Int = 3) {
        precondition(slots >= 1 && optimisticRounds >= 1)
        self.slots = slots
        self.optimisticRounds = optimisticRounds
    }

    /// A full round (every 10 s): the set of peers to unchoke; every other peer is choked.
    public mutating func round<G: RandomNumberGenerator>(
        _ candidates: [Candidate], seeding: Bool, using rng: inout G
    ) -> Set<PeerKey> {
        let interested = candidates.filter { $0.interested && !$0.stalled }
        let ranked = interested.filter { seeding || !$0.snubbed }.shuffled(using: &rng).sorted {
            seeding ? $0.sent > $1.sent : $0.received > $1.received
        }
        var unchoked = Set(ranked.prefix(self.slots).map(\.key))
        self.roundsSinceRotation += 1
        let current = self.optimistic.flatMap { key in interested.first { $0.key == key } }
        if current == nil || self.roundsSinceRotation >= self.optimisticRounds || unchoked.contains(current!.key) {
            let choked = interested.filter { !unchoked.contains($0.key) }
            self.optimistic = choked.randomElement(using: &rng)?.key
            self.roundsSinceRotation = 0
        }
        if let o = self.optimistic { unchoked.insert(o) }
        return unchoked
    }

    /// Between rounds: whether a peer that just became interested may be unchoked at once, given how many
    /// are unchoked now (a free slot need not wait for the next round).
    public func hasFreeSlot(unchoked: Int) -> Bool { unchoked < self.slots + 1 }
}
