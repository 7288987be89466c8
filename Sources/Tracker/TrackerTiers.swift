// BEP 12: tiers of trackers, shuffled once, the working one moved to the front of its tier.

/// The trackers of a torrent in the order to try them (BEP 12).
///
/// Each tier is shuffled once at creation; tiers keep their order. An announce round tries `next()`,
/// reports the result with `markFailed(_:)` or `markSucceeded(_:)`, and asks `next()` again until it
/// returns nil (every tracker failed this round). A tracker that answers moves to the front of its tier
/// and starts a new round, so it is tried first from then on.
public struct TrackerTiers: Equatable, Sendable {
    /// The tiers in their current order.
    public private(set) var tiers: [[String]]
    /// Trackers that failed since the round started.
    private var failed: Set<String> = []

    /// Builds tiers from lists of URLs, shuffling each tier with `generator`.
    ///
    /// Empty URLs, URLs listed before (in any tier) and tiers left empty are dropped.
    /// - Parameters:
    ///   - tiers: Tracker URLs by tier, as `TorrentMetainfo.trackers` gives them.
    ///   - generator: The source of the shuffle (seeded in tests and simulations).
    public init(_ tiers: [[String]], using generator: inout some RandomNumberGenerator) {
        var seen = Set<String>()
        self.tiers = tiers.compactMap { tier in
            let kept = tier.filter { !$0.isEmpty && seen.insert($0).inserted }
            return kept.isEmpty ? nil : kept.shuffled(using: &generator)
        }
    }

    /// Builds tiers from a torrent's `announce` and `announce-list`: the list wins when it has any URL.
    public init(announce: String?, announceList: [[String]]?, using generator: inout some RandomNumberGenerator) {
        self.init(announceList ?? [], using: &generator)
        if self.tiers.isEmpty, let one = announce, !one.isEmpty { self.tiers = [[one]] }
    }

    /// True when there is no tracker at all.
    public var isEmpty: Bool { self.tiers.isEmpty }

    /// Every tracker, first tier first, in the order to try them.
    public var order: [String] { self.tiers.flatMap { $0 } }

    /// The tracker to try now: the first one that has not failed this round, or nil when all have.
    public func next() -> String? {
        self.order.first { !self.failed.contains($0) }
    }

    /// Records that `url` did not answer; `next()` moves past it until the next round.
    public mutating func markFailed(_ url: String) {
        guard self.tier(of: url) != nil else { return }
        self.failed.insert(url)
    }

    /// Records that `url` answered: it moves to the front of its tier and a new round starts.
    public mutating func markSucceeded(_ url: String) {
        guard let t = self.tier(of: url), let i = self.tiers[t].firstIndex(of: url) else { return }
        self.tiers[t].remove(at: i)
        self.tiers[t].insert(url, at: 0)
        self.failed.removeAll()
    }

    /// Starts a new round (for the next announce after every tracker failed): nothing counts as failed.
    public mutating func startRound() {
        self.failed.removeAll()
    }

    /// The tier `url` is in, or nil when it is not one of these trackers.
    public func tier(of url: String) -> Int? {
        self.tiers.firstIndex { $0.contains(url) }
    }
}
