import DHT
import PeerBase
import Testing

@Suite("Routing table")
struct RoutingTableTests {
    /// A node whose ID starts with `first`, `second`, at a distinct public IPv4 address.
    func node(_ first: UInt8, _ second: UInt8 = 0, ip: UInt8? = nil) -> NodeInfo {
        NodeInfo(id: idStarting(first, second), endpoint: v4(1, 0, first, ip ?? second))
    }

    func checkInvariants(_ table: RoutingTable) {
        var perBucket: [Int: Int] = [:]
        for e in table.entries {
            let b = table.bucketIndex(for: e.node.id)
            perBucket[b, default: 0] += 1
            let cpl = table.ownID.commonPrefixLength(with: e.node.id)
            if b < table.bucketCount - 1 { #expect(cpl == b) } else { #expect(cpl >= b) }
        }
        #expect(perBucket.values.allSatisfy { $0 <= table.configuration.k })
    }

    @Test("the bucket holding our ID splits; a full far bucket does not")
    func splitting() {
        var table = RoutingTable(ownID: .zero, at: .zero)
        for i in 0..<8 { #expect(table.heardFrom(self.node(0x80 + UInt8(i)), at: .zero) == .added) }
        #expect(table.bucketCount == 1)
        // The ninth far node: the only bucket splits, but the node still falls in the (full) far half.
        #expect(table.heardFrom(self.node(0x90), at: .zero) == .cached(ping: nil))
        #expect(table.bucketCount == 2)
        #expect(table.count == 8)
        // Nodes near us go to the near bucket, which keeps splitting as it fills.
        for i in 0..<8 { #expect(table.heardFrom(self.node(0x40 + UInt8(i)), at: .zero) == .added) }
        for i in 0..<8 { #expect(table.heardFrom(self.node(0x01, UInt8(i)), at: .zero) == .added) }
        #expect(table.count == 24)
        #expect(table.bucketCount >= 3)
        self.checkInvariants(table)
        // Many random nodes keep the invariants.
        var rng = SeededGenerator(seed: 4)
        for i in 0..<2000 {
            let id = NodeID.random(sharingFirst: Int(rng.next() % 20), with: .zero, using: &rng)
            table.heardFrom(NodeInfo(id: id, endpoint: v4(2, UInt8(i / 256), UInt8(i % 256), 1)), at: .zero)
        }
        self.checkInvariants(table)
        #expect(table.bucketCount > 10)
    }

    @Test("good, questionable and bad follow BEP 5's 15 minutes and failures in a row")
    func states() {
        var table = RoutingTable(ownID: .zero, at: .zero)
        let n = self.node(0x80)
        table.heardFrom(n, at: .zero)
        #expect(table.status(of: n.id, at: at(899)) == .good)
        #expect(table.status(of: n.id, at: at(900)) == .questionable)
        table.queried(by: n, at: at(950))  // it answered once and queried recently: good again
        #expect(table.status(of: n.id, at: at(1000)) == .good)
        table.failed(n, at: at(1000))
        #expect(table.status(of: n.id, at: at(1000)) == .good)
        table.failed(n, at: at(1001))
        #expect(table.status(of: n.id, at: at(1001)) == .bad)
        #expect(table.closest(to: .zero, count: 8).isEmpty, "bad nodes are not handed out")
        table.heardFrom(n, at: at(1002))
        #expect(table.status(of: n.id, at: at(1002)) == .good)
        // A query from another address does not count for the known node.
        table.queried(by: NodeInfo(id: n.id, endpoint: v4(9, 9, 9, 9)), at: at(2000))
        #expect(table.status(of: n.id, at: at(2000)) == .questionable)
    }

    @Test("a bad node gives its place to the freshest replacement")
    func replacementCache() {
        var table = RoutingTable(ownID: .zero, at: .zero)
        for i in 0..<8 { table.heardFrom(self.node(0x80 + UInt8(i)), at: .zero) }
        table.heardFrom(self.node(0x01), at: .zero)  // splits: the far bucket is full
        #expect(table.heardFrom(self.node(0xa0), at: at(1)) == .cached(ping: nil))
        #expect(table.heardFrom(self.node(0xa1), at: at(2)) == .cached(ping: nil))
        let victim = self.node(0x83)
        table.failed(victim, at: at(3))
        #expect(table.contains(victim.id))
        table.failed(victim, at: at(4))
        #expect(!table.contains(victim.id))
        #expect(table.contains(self.node(0xa1).id), "the freshest replacement moved in")
        #expect(!table.contains(self.node(0xa0).id))
        #expect(table.count == 9)
    }

    @Test("a bad node is replaced by a newcomer when there is no replacement; questionable ones get pinged")
    func badAndQuestionable() {
        var table = RoutingTable(
            ownID: .zero, configuration: RoutingTable.Configuration(replacementCacheSize: 0), at: .zero)
        for i in 0..<8 { table.heardFrom(self.node(0x80 + UInt8(i)), at: .zero) }
        table.heardFrom(self.node(0x01), at: .zero)
        let victim = self.node(0x85)
        table.failed(victim, at: at(1))
        table.failed(victim, at: at(1))
        #expect(table.contains(victim.id), "no replacement: the bad node stays until a newcomer comes")
        #expect(table.hasRoom(for: self.node(0xb0).id, ip: self.node(0xb0).endpoint.ip, at: at(2)))
        #expect(table.heardFrom(self.node(0xb0), at: at(2)) == .added)
        #expect(!table.contains(victim.id))
        // After 15 minutes of silence the least recently seen questionable node is offered for a ping.
        table.heardFrom(self.node(0x81), at: at(500))
        let result = table.heardFrom(self.node(0xb1), at: at(1000))
        #expect(result == .cached(ping: self.node(0x80)))
        #expect(!table.hasRoom(for: self.node(0xb2).id, ip: self.node(0xb2).endpoint.ip, at: at(1000)))
    }

    @Test("one entry per public IP; local addresses are exempt; a known ID at a new address is ignored while good")
    func addressRules() {
        var table = RoutingTable(ownID: .zero, at: .zero)
        let a = NodeInfo(id: idStarting(0x80), endpoint: v4(1, 2, 3, 4, port: 1))
        let sameIP = NodeInfo(id: idStarting(0x81), endpoint: v4(1, 2, 3, 4, port: 2))
        #expect(table.heardFrom(a, at: .zero) == .added)
        #expect(table.heardFrom(sameIP, at: .zero) == .ignored)
        #expect(!table.hasRoom(for: sameIP.id, ip: sameIP.endpoint.ip, at: .zero))
        let l1 = NodeInfo(id: idStarting(0x90), endpoint: v4(127, 0, 0, 1, port: 1))
        let l2 = NodeInfo(id: idStarting(0x91), endpoint: v4(127, 0, 0, 1, port: 2))
        #expect(table.heardFrom(l1, at: .zero) == .added)
        #expect(table.heardFrom(l2, at: .zero) == .added)
        let moved = NodeInfo(id: a.id, endpoint: v4(5, 6, 7, 8))
        #expect(table.heardFrom(moved, at: at(1)) == .ignored)
        #expect(table.heardFrom(moved, at: at(901)) == .updated, "a questionable node may have moved")
        #expect(table.entry(for: a.id)?.node.endpoint == moved.endpoint)
        #expect(table.heardFrom(sameIP, at: at(902)) == .added, "its old address is free again")
        #expect(table.heardFrom(NodeInfo(id: .zero, endpoint: v4(9, 9, 9, 9)), at: .zero) == .ignored)
    }

    @Test("closest orders by XOR distance")
    func closest() {
        var table = RoutingTable(ownID: .zero, at: .zero)
        for i: UInt8 in [0x10, 0x20, 0x30, 0x80, 0x90, 0xf0] { table.heardFrom(self.node(i), at: .zero) }
        let target = idStarting(0x31)
        #expect(table.closest(to: target, count: 3).map { $0.id[byte: 0] } == [0x30, 0x20, 0x10])
        #expect(table.closest(to: idStarting(0x95), count: 2).map { $0.id[byte: 0] } == [0x90, 0x80])
    }

    @Test("stale buckets are refreshed with a random ID in their range, once per 15 minutes")
    func refresh() {
        var table = RoutingTable(ownID: idStarting(0x55), at: .zero)
        var rng = SeededGenerator(seed: 8)
        for i in 0..<40 {
            let id = NodeID.random(using: &rng)
            table.heardFrom(NodeInfo(id: id, endpoint: v4(3, 0, 0, UInt8(i))), at: .zero)
        }
        #expect(table.refreshTargets(at: at(899), using: &rng).isEmpty)
        let targets = table.refreshTargets(at: at(900), using: &rng)
        #expect(targets.count == table.bucketCount)
        for (i, t) in targets.enumerated() { #expect(table.bucketIndex(for: t) == i) }
        #expect(table.refreshTargets(at: at(901), using: &rng).isEmpty)
        for i in 0..<table.bucketCount {
            #expect(table.bucketIndex(for: table.randomID(inBucket: i, using: &rng)) == i)
        }
    }

    @Test("questionable nodes are handed out for pinging, least recently seen first, then not again for a while")
    func questionablePings() {
        var table = RoutingTable(ownID: .zero, at: .zero)
        for i in 0..<4 { table.heardFrom(self.node(0x80 + UInt8(i)), at: at(Double(i))) }
        #expect(table.questionableNodes(at: at(100), limit: 2, notPingedWithin: .seconds(60)).isEmpty)
        let first = table.questionableNodes(at: at(1000), limit: 2, notPingedWithin: .seconds(60))
        #expect(first == [self.node(0x80), self.node(0x81)])
        let second = table.questionableNodes(at: at(1001), limit: 5, notPingedWithin: .seconds(60))
        #expect(second == [self.node(0x82), self.node(0x83)])
        #expect(table.questionableNodes(at: at(1002), limit: 5, notPingedWithin: .seconds(60)).isEmpty)
        #expect(table.questionableNodes(at: at(1061), limit: 5, notPingedWithin: .seconds(60)).count == 4)
    }
}

extension RoutingTableTests {
    @Test("newcomers to a full bucket do not get the same questionable node pinged over and over")
    func pingOncePerInterval() {
        var table = RoutingTable(ownID: .zero, at: .zero)
        for i in 0..<8 { table.heardFrom(self.node(0x80 + UInt8(i)), at: .zero) }
        table.heardFrom(self.node(0x01), at: .zero)
        for i in 1..<8 { table.heardFrom(self.node(0x80 + UInt8(i)), at: at(10)) }
        #expect(table.heardFrom(self.node(0xc0), at: at(1000)) == .cached(ping: self.node(0x80)))
        #expect(table.heardFrom(self.node(0xc1), at: at(1001)) == .cached(ping: self.node(0x81)))
        #expect(table.heardFrom(self.node(0xc2), at: at(1061)) == .cached(ping: self.node(0x80)))
    }
}
