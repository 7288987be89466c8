import Testing
import Tracker

@Suite("Tracker tiers (BEP 12)")
struct TrackerTiersTests {
    static let urls = (1...6).map { "http://t\($0)/announce" }

    @Test("each tier is shuffled once, tiers keep their order, and a seed fixes the result")
    func shuffle() {
        let input = [Array(Self.urls[0..<5]), [Self.urls[5]]]
        var seen = Set<[String]>()
        for seed in 1...20 as ClosedRange<UInt64> {
            var rng = TestRNG(seed: seed)
            let tiers = TrackerTiers(input, using: &rng)
            #expect(tiers.tiers.count == 2)
            #expect(Set(tiers.tiers[0]) == Set(input[0]))
            #expect(tiers.tiers[1] == input[1])
            seen.insert(tiers.tiers[0])
            var again = TestRNG(seed: seed)
            #expect(TrackerTiers(input, using: &again) == tiers)
        }
        #expect(seen.count > 1, "20 seeds never changed the order: the tier is not shuffled")
    }

    @Test("BEP 12's example: the tracker that answers moves to the front of its tier")
    func moveToFront() throws {
        var rng = TestRNG(seed: 9)
        var tiers = TrackerTiers([Array(Self.urls[0..<3])], using: &rng)
        let shuffled = tiers.tiers[0]
        let (t1, t2, t3) = (shuffled[0], shuffled[1], shuffled[2])

        #expect(tiers.next() == t1)
        tiers.markFailed(t1)
        #expect(tiers.next() == t2)
        tiers.markSucceeded(t2)
        #expect(tiers.tiers == [[t2, t1, t3]])
        #expect(tiers.next() == t2)

        tiers.markFailed(t2)
        tiers.markFailed(t1)
        #expect(tiers.next() == t3)
        tiers.markSucceeded(t3)
        #expect(tiers.tiers == [[t3, t2, t1]])
        #expect(tiers.order == [t3, t2, t1])
    }

    @Test("a later tier is tried only after every tracker of the earlier ones failed")
    func tierOrder() {
        var rng = TestRNG(seed: 4)
        var tiers = TrackerTiers([[Self.urls[0], Self.urls[1]], [Self.urls[2]]], using: &rng)
        let first = tiers.tiers[0]
        tiers.markFailed(first[0])
        #expect(tiers.next() == first[1])
        tiers.markFailed(first[1])
        #expect(tiers.next() == Self.urls[2])
        tiers.markFailed(Self.urls[2])
        #expect(tiers.next() == nil)
        tiers.startRound()
        #expect(tiers.next() == first[0])
        // Succeeding in tier 2 does not move it ahead of tier 1.
        tiers.markSucceeded(Self.urls[2])
        #expect(tiers.tier(of: Self.urls[2]) == 1)
        #expect(tiers.next() == first[0])
        tiers.markFailed("http://unknown/announce")
        #expect(tiers.next() == first[0])
    }

    @Test("duplicates, empty URLs and empty tiers are dropped; announce-list wins over announce")
    func cleanup() {
        var rng = TestRNG(seed: 1)
        let tiers = TrackerTiers([[Self.urls[0], ""], [], [Self.urls[0], Self.urls[1]]], using: &rng)
        #expect(tiers.tiers == [[Self.urls[0]], [Self.urls[1]]])
        let listed = TrackerTiers(announce: "http://a/announce", announceList: [[Self.urls[2]]], using: &rng)
        #expect(listed.order == [Self.urls[2]])
        let lone = TrackerTiers(announce: "http://a/announce", announceList: [[]], using: &rng)
        #expect(lone.order == ["http://a/announce"])
        #expect(TrackerTiers(announce: nil, announceList: nil, using: &rng).isEmpty)
    }
}
