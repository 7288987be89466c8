import PeerBase
import Testing

@testable import Swarm

@Suite("Choker")
struct ChokerTests {
    typealias C = Choker.Candidate

    @Test("leeching: the peers that sent us most get the regular slots, plus one optimistic")
    func titForTat() {
        var choker = Choker(slots: 2)
        var rng = SeededGenerator(seed: 7)
        let peers = [
            C(key: 1, interested: true, received: 100), C(key: 2, interested: true, received: 900),
            C(key: 3, interested: true, received: 500), C(key: 4, interested: true, received: 0),
            C(key: 5, interested: false, received: 10_000),
        ]
        let unchoked = choker.round(peers, seeding: false, using: &rng)
        #expect(unchoked.isSuperset(of: [2, 3]))
        #expect(unchoked.count == 3)
        let optimistic = try! #require(choker.optimistic)
        #expect([1, 4].contains(optimistic))
        #expect(!unchoked.contains(5))  // not interested: nothing to give it
    }

    @Test("seeding ranks by what we upload to each peer")
    func seeding() {
        var choker = Choker(slots: 1)
        var rng = SeededGenerator(seed: 1)
        let peers = [C(key: 1, interested: true, received: 0, sent: 10), C(key: 2, interested: true, sent: 99)]
        let unchoked = choker.round(peers, seeding: true, using: &rng)
        #expect(unchoked == [2, 1])  // 2 by rank, 1 as the optimistic slot
    }

    @Test("a snubbed peer loses its regular slot while we download")
    func snubbed() {
        var choker = Choker(slots: 1)
        var rng = SeededGenerator(seed: 3)
        let peers = [C(key: 1, interested: true, received: 5000, snubbed: true), C(key: 2, interested: true, received: 1)]
        _ = choker.round(peers, seeding: false, using: &rng)
        let unchoked = choker.round(peers, seeding: false, using: &rng)
        #expect(unchoked.contains(2))
        #expect(choker.optimistic == 1)  // it may still come back through the optimistic slot
    }

    @Test("the optimistic slot moves every third round, to every choked peer in time")
    func rotation() {
        var choker = Choker(slots: 1, optimisticRounds: 3)
        var rng = SeededGenerator(seed: 11)
        let peers = (1...6).map { C(key: $0, interested: true, received: $0 == 1 ? 1000 : 0) }
        var seen: Set<Int> = []
        var previous: Int?
        var changes = 0
        for _ in 0..<60 {
            let unchoked = choker.round(peers, seeding: false, using: &rng)
            #expect(unchoked.contains(1) && unchoked.count == 2)
            let o = try! #require(choker.optimistic)
            if o != previous { changes += 1 }
            previous = o
            seen.insert(o)
        }
        #expect(seen == [2, 3, 4, 5, 6])
        #expect(changes <= 20)  // at most one change per three rounds
    }

    @Test("a free slot may be filled at once")
    func freeSlot() {
        let choker = Choker(slots: 2)
        #expect(choker.hasFreeSlot(unchoked: 2))
        #expect(!choker.hasFreeSlot(unchoked: 3))
    }
}

@Suite("Rate limiter")
struct RateLimiterTests {
    func at(_ ms: Int64) -> Instant { Instant(offset: .milliseconds(ms)) }

    @Test("unlimited always allows")
    func unlimited() {
        var r = RateLimiter(rate: nil)
        for i in 0..<100 {
            let ok = r.canSpend(at: self.at(0))
            #expect(ok)
            r.spend(1 << 30, at: self.at(Int64(i)))
        }
    }

    @Test("over time, what is spent matches the rate")
    func rate() {
        var r = RateLimiter(rate: 100_000)  // 100 kB/s
        var sent = 0
        // Try to send a 16 KiB block every millisecond for ten seconds.
        for ms in 0..<10_000 where r.canSpend(at: self.at(Int64(ms))) {
            r.spend(16384, at: self.at(Int64(ms)))
            sent += 16384
        }
        // 10 s at 100 kB/s, plus the initial burst (32 KiB) and one block of overdraft.
        #expect(sent >= 1_000_000 - 16384 && sent <= 1_000_000 + 32768 + 16384)
    }

    @Test("a debt is repaid before the next transfer")
    func debt() {
        var r = RateLimiter(rate: 16384, burst: 16384)
        let answers = [0, 1000, 1990, 2010].map { ms in
            defer { if ms == 0 { r.spend(3 * 16384, at: self.at(0)) } }  // 2 blocks of debt
            return r.canSpend(at: self.at(Int64(ms)))
        }
        #expect(answers == [true, false, false, true])
    }
}
