import DHT
import PeerBase
import Testing

@testable import PeerKit

@Suite struct HarvestPlanTests {
    let t0 = Instant.zero
    func hash(_ n: UInt8) -> [UInt8] { [UInt8](repeating: n, count: 20) }
    func node(_ n: UInt8) -> DHTEndpoint { DHTEndpoint(ip: .v4(0x0A00_0000 | UInt32(n)), port: 6881) }

    @Test func aNodeIsSampledAgainOnlyAfterTheIntervalItAskedFor() {
        var plan = HarvestPlan(budget: .init())
        plan.addNodes([self.node(1)], at: t0)
        #expect(plan.nextSample(at: t0) == self.node(1))
        #expect(plan.nextSample(at: t0) == nil)
        plan.sampled(self.node(1), samples: [self.hash(9)], interval: 300, at: t0 + .seconds(1))
        #expect(plan.nextSample(at: t0 + .seconds(300)) == nil)
        #expect(plan.nextSample(at: t0 + .seconds(301)) == self.node(1))
        // No interval given: the default (6 hours); no answer: 10 minutes.
        plan.sampled(self.node(1), samples: [], interval: nil, at: t0 + .seconds(302))
        #expect(plan.nextSample(at: t0 + .seconds(302 + 21599)) == nil)
        plan.addNodes([self.node(2)], at: t0)
        #expect(plan.nextSample(at: t0 + .seconds(400)) == self.node(2))
        plan.sampleFailed(self.node(2), at: t0 + .seconds(400))
        #expect(plan.nextSample(at: t0 + .seconds(999)) == nil)
        #expect(plan.nextSample(at: t0 + .seconds(1000)) == self.node(2))
    }

    @Test func queriesStayWithinTheBudgetInAnyOneSecond() {
        var budget = HarvestPlan.Budget()
        budget.queriesPerSecond = 20
        var plan = HarvestPlan(budget: budget)
        plan.addNodes((1...100).map { self.node(UInt8($0)) }, at: t0)
        for h in 1...5 { plan.saw(self.hash(UInt8(h)), peer: nil) }
        var now = t0
        var sent: [(Instant, Double)] = []
        while now < t0 + .seconds(10) {
            while plan.nextSample(at: now) != nil { sent.append((now, 1)) }
            if plan.nextLookup(at: now) != nil { sent.append((now, budget.lookupCost)) }
            now = now + .milliseconds(50)
        }
        for (at, _) in sent {
            let inWindow = sent.filter { $0.0 >= at && $0.0 - at < .seconds(1) }.reduce(0) { $0 + $1.1 }
            #expect(inWindow <= 20)
        }
        #expect(plan.maxQueriesPerSecond <= 20)
        #expect(sent.count > 50)
    }

    @Test func fetchesAreBoundedAtOnceAndOnePerAddress() {
        var budget = HarvestPlan.Budget()
        budget.concurrentFetches = 4
        var plan = HarvestPlan(budget: budget)
        for h in 1...10 { plan.saw(self.hash(UInt8(h)), peer: "10.0.0.\(h <= 6 ? 1 : h):6881") }
        var started: [([UInt8], String)] = []
        while let f = plan.nextFetch(at: t0) { started.append(f) }
        #expect(started.count == 4)
        #expect(Set(started.map { HarvestPlan.host($0.1) }).count == 4)
        // One that fails goes to another peer if one is known; one that succeeds is never fetched again.
        plan.fetchEnded(started[0].0, ok: true)
        plan.saw(started[0].0, peer: "10.0.0.99:1")
        #expect(plan.maxFetchesPerAddress == 1 && plan.maxConcurrentFetches == 4)
        let next = plan.nextFetch(at: t0)
        #expect(next != nil && next?.0 != started[0].0)
    }

    @Test func aHashAnnouncedOrAskedAboutOftenGoesFirst() {
        var plan = HarvestPlan(budget: .init())
        plan.saw(self.hash(1), peer: nil)
        plan.saw(self.hash(2), peer: nil)
        plan.saw(self.hash(2), peer: nil)
        #expect(plan.nextLookup(at: t0) == self.hash(2))
    }
}
