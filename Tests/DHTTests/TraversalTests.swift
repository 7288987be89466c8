import PeerBase
import Testing

@testable import DHT

@Suite("Traversal")
struct TraversalTests {
    func node(_ first: UInt8) -> NodeInfo { NodeInfo(id: idStarting(first), endpoint: v4(1, 1, 1, first)) }

    func make(k: Int = 2, alpha: Int = 2, maxQueries: Int = 100) -> Traversal {
        Traversal(target: .zero, family: .ipv4, k: k, alpha: alpha, maxQueries: maxQueries, maxCandidates: 8)
    }

    @Test("at most alpha queries in flight, closest first; a stalled query frees its slot")
    func alpha() {
        var t = self.make()
        t.add([self.node(0x40), self.node(0x10), self.node(0x20), self.node(0x30)], isCompliant: { _ in true })
        #expect(t.next().map(\.endpoint) == [self.node(0x10).endpoint, self.node(0x20).endpoint])
        #expect(t.next().isEmpty)
        t.stalled(self.node(0x10).endpoint)
        #expect(t.next().map(\.endpoint) == [self.node(0x30).endpoint])
        #expect(!t.isFinished)
    }

    @Test("finished once the k closest answered; farther candidates are left alone")
    func termination() {
        var t = self.make()
        t.add([self.node(0x10), self.node(0x20), self.node(0x30)], isCompliant: { _ in true })
        _ = t.next()
        t.responded(self.node(0x10), token: [1], compliant: true)
        t.responded(self.node(0x20), token: nil, compliant: true)
        #expect(t.isFinished)
        #expect(t.next().isEmpty)
        #expect(t.closest.map(\.node) == [self.node(0x10), self.node(0x20)])
        #expect(t.closestWithTokens.map(\.node) == [self.node(0x10)])
    }

    @Test("closer nodes learnt from answers are asked next; failures are skipped")
    func convergence() {
        var t = self.make(k: 1, alpha: 1)
        t.add([self.node(0x80)], isCompliant: { _ in true })
        _ = t.next()
        t.responded(self.node(0x80), token: nil, compliant: true)
        t.add([self.node(0x08), self.node(0x04)], isCompliant: { _ in true })
        #expect(!t.isFinished)
        #expect(t.next().map(\.endpoint) == [self.node(0x04).endpoint])
        t.failed(self.node(0x04).endpoint)
        #expect(t.next().map(\.endpoint) == [self.node(0x08).endpoint])
        t.responded(self.node(0x08), token: nil, compliant: true)
        #expect(t.isFinished)
        #expect(t.closest.map(\.node) == [self.node(0x08)])
    }

    @Test("non-compliant answers (BEP 42) do not count towards the k closest")
    func compliance() {
        var t = self.make(k: 1, alpha: 3)
        t.add([self.node(0x10), self.node(0x20)], isCompliant: { $0.id == idStarting(0x20) })
        _ = t.next()
        t.responded(self.node(0x10), token: [1], compliant: false)
        #expect(!t.isFinished)
        t.responded(self.node(0x20), token: [2], compliant: true)
        #expect(t.isFinished)
        #expect(t.closestWithTokens.map(\.node) == [self.node(0x20)])
    }

    @Test("seeds go first and a router seed is not a result; maxQueries caps the lookup")
    func seedsAndCap() {
        var t = self.make(k: 8, alpha: 3, maxQueries: 3)
        t.addSeeds([v4(9, 9, 9, 9), v6(1)])
        t.add([self.node(0x10), self.node(0x20), self.node(0x30)], isCompliant: { _ in true })
        let first = t.next()
        #expect(first.count == 3)
        #expect(first[0].endpoint == v4(9, 9, 9, 9) && first[0].id == nil)
        t.responded(NodeInfo(id: idStarting(0x01), endpoint: v4(9, 9, 9, 9)), token: nil, compliant: true, router: true)
        t.responded(self.node(0x10), token: nil, compliant: true)
        t.responded(self.node(0x20), token: nil, compliant: true)
        #expect(t.next().isEmpty, "three queries sent: the cap")
        #expect(t.isFinished)
        #expect(!t.closest.contains { $0.node.id == idStarting(0x01) })
    }

    @Test("the candidate list is bounded, keeping the closest")
    func bounded() {
        var t = self.make()
        t.add((1...20).map { self.node(UInt8($0)) }, isCompliant: { _ in true })
        #expect(t.candidates.count == 8)
        #expect(t.candidates.last?.node.id == idStarting(8))
    }
}
