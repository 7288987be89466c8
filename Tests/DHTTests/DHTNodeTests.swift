import Bencode
import Crypto
import DHT
import PeerBase
import Testing

extension DHTNode {
    /// Every datagram queued so far.
    mutating func sent() -> [DHTDatagram] {
        var out: [DHTDatagram] = []
        while let d = self.pollTransmit() { out.append(d) }
        return out
    }

    /// Every event queued so far.
    mutating func drainEvents() -> [Event] {
        var out: [Event] = []
        while let e = self.pollEvent() { out.append(e) }
        return out
    }

    /// Sends `method` from `sender` at `from` and returns every datagram the node sends in return.
    mutating func ask(
        _ method: KRPCQuery.Method, from: DHTEndpoint, sender: NodeID, t: [UInt8] = bytes("aa"), want: Want = [],
        readOnly: Bool = false, at now: Instant = .zero
    ) -> [DHTDatagram] {
        let q = KRPCMessage(
            transactionID: t, kind: .query(KRPCQuery(sender: sender, method: method, want: want)), readOnly: readOnly)
        self.receive(q.encoded, from: from, at: now)
        return self.sent()
    }

    /// Makes the node know `node`: it pings it and `node` answers.
    mutating func learn(_ node: NodeInfo, at now: Instant = .zero) {
        self.handle(.ping(node.endpoint), at: now)
        guard let ping = self.sent().last, let t = try? KRPCMessage.decode(ping.bytes).transactionID else { return }
        let pong = KRPCMessage(transactionID: t, kind: .response(KRPCResponse(sender: node.id)))
        self.receive(pong.encoded, from: node.endpoint, at: now)
        _ = self.sent()
        _ = self.drainEvents()
    }
}

extension DHTDatagram {
    /// The datagram decoded.
    func message() throws -> KRPCMessage { try KRPCMessage.decode(self.bytes) }
}

@Suite("DHT node: answering")
struct DHTNodeAnswerTests {
    let remote = v4(1, 2, 3, 4, port: 4000)
    let remoteID = idStarting(0xaa)

    func makeNode(_ configure: (inout DHTNode.Configuration) -> Void = { _ in }) -> DHTNode {
        var c = DHTNode.Configuration(nodeID: idStarting(0x11))
        configure(&c)
        return DHTNode(configuration: c, at: .zero, seed: 1)
    }

    @Test("ping is answered with our ID, the transaction id and the requester's address (BEP 42 ip)")
    func ping() throws {
        var node = self.makeNode()
        let out = node.ask(.ping, from: self.remote, sender: self.remoteID)
        try #require(out.count == 2, "the answer, and a ping to verify the unknown node")
        let answer = try out[0].message()
        #expect(out[0].destination == self.remote)
        #expect(answer.transactionID == bytes("aa"))
        #expect(answer.response == KRPCResponse(sender: idStarting(0x11)))
        #expect(answer.requesterAddress == self.remote)
        let verify = try out[1].message()
        #expect(verify.query?.method == .ping)
        #expect(out[1].destination == self.remote)
    }

    @Test("find_node returns the closest nodes of the requester's family, or both with want")
    func findNode() throws {
        var node = self.makeNode { $0.families = [.ipv4, .ipv6] }
        for i in 0..<12 { node.learn(NodeInfo(id: idStarting(0x80 + UInt8(i)), endpoint: v4(5, 5, 5, UInt8(i)))) }
        for i in 0..<3 { node.learn(NodeInfo(id: idStarting(0x40 + UInt8(i)), endpoint: v6(UInt16(i + 1)))) }
        let target = idStarting(0x83)
        var r = try #require(try node.ask(.findNode(target: target), from: self.remote, sender: self.remoteID)[0].message().response)
        #expect(r.nodes.count == 8)
        #expect(r.nodes.first?.id == target)
        #expect(r.nodes6.isEmpty)
        r = try #require(
            try node.ask(.findNode(target: target), from: self.remote, sender: self.remoteID, want: [.n4, .n6])[0]
                .message().response)
        #expect(r.nodes.count == 8 && r.nodes6.count == 3)
        r = try #require(try node.ask(.findNode(target: target), from: v6(99), sender: self.remoteID)[0].message().response)
        #expect(r.nodes.isEmpty && r.nodes6.count == 3)
    }

    @Test("get_peers gives a token; announce_peer with it stores the peer; a bad token gets 203")
    func announce() throws {
        var node = self.makeNode()
        let ih = idStarting(0x77)
        let first = try #require(try node.ask(.getPeers(infoHash: ih), from: self.remote, sender: self.remoteID)[0].message().response)
        let token = try #require(first.token)
        #expect(first.values.isEmpty)

        let bad = node.ask(
            .announcePeer(infoHash: ih, port: 6881, impliedPort: false, token: [1, 2, 3]), from: self.remote,
            sender: self.remoteID)
        #expect(try bad[0].message().errorCode == 203)
        let otherIP = node.ask(
            .announcePeer(infoHash: ih, port: 6881, impliedPort: false, token: token), from: v4(1, 2, 3, 5),
            sender: idStarting(0xab))
        #expect(try otherIP[0].message().errorCode == 203, "the token is bound to the requester's IP")

        let ok = node.ask(
            .announcePeer(infoHash: ih, port: 6881, impliedPort: false, token: token), from: self.remote,
            sender: self.remoteID)
        #expect(try ok[0].message().response != nil)
        let implied = node.ask(
            .announcePeer(infoHash: ih, port: 1, impliedPort: true, token: token),
            from: DHTEndpoint(ip: self.remote.ip, port: 5555), sender: self.remoteID)
        #expect(try implied[0].message().response != nil)
        #expect(
            node.drainEvents() == [
                // The get_peers that fetched the token: a crawler may look into what others ask about.
                .infoHashAsked(ih),
                .peerAnnounced(infoHash: ih, peer: v4(1, 2, 3, 4, port: 6881)),
                .peerAnnounced(infoHash: ih, peer: v4(1, 2, 3, 4, port: 5555)),
            ])
        let later = try #require(
            try node.ask(.getPeers(infoHash: ih), from: v4(9, 9, 9, 9), sender: idStarting(0xcc))[0].message().response)
        #expect(Set(later.values) == [v4(1, 2, 3, 4, port: 6881), v4(1, 2, 3, 4, port: 5555)])
        #expect(node.stats.storedPeers == 2)
    }

    @Test("tokens outlive one rotation (5 min) and not two")
    func tokenLifetime() throws {
        var node = self.makeNode()
        let ih = idStarting(0x77)
        let token = try #require(try node.ask(.getPeers(infoHash: ih), from: self.remote, sender: self.remoteID)[0].message().response?.token)
        node.handleTimeout(at: at(301))
        _ = node.sent()
        var out = node.ask(
            .announcePeer(infoHash: ih, port: 1, impliedPort: false, token: token), from: self.remote,
            sender: self.remoteID, at: at(302))
        #expect(try out[0].message().response != nil)
        node.handleTimeout(at: at(610))
        _ = node.sent()
        out = node.ask(
            .announcePeer(infoHash: ih, port: 1, impliedPort: false, token: token), from: self.remote,
            sender: self.remoteID, at: at(611))
        #expect(try out[0].message().errorCode == 203)
    }

    @Test("malformed queries get a short fixed 203; a huge t, garbage and answers nobody asked for get nothing")
    func malformed() throws {
        var node = self.makeNode()
        node.receive(bytes("d1:ad2:id3:abce1:q4:ping1:t2:xy1:y1:qe"), from: self.remote, at: .zero)
        let out = node.sent()
        try #require(out.count == 1)
        let m = try out[0].message()
        #expect(m.transactionID == bytes("xy"))
        #expect(m.errorCode == 203)
        #expect(out[0].bytes.count < 80)

        let huge = "d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t9:1234567891:y1:qe"
        node.receive(bytes(huge), from: self.remote, at: .zero)
        node.receive(bytes("garbage"), from: self.remote, at: .zero)
        node.receive([UInt8](repeating: 0x64, count: 5000), from: self.remote, at: .zero)
        node.receive(bytes("d1:rd2:id20:abcdefghij0123456789e1:t2:aa1:y1:re"), from: self.remote, at: .zero)
        node.receive(bytes("d1:eli201e1:xe1:t2:aa1:y1:ee"), from: self.remote, at: .zero)
        node.receive(bytes("d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe"), from: v4(1, 2, 3, 4, port: 0), at: .zero)
        #expect(node.sent().isEmpty)
        #expect(node.stats.malformed == 5)
        #expect(node.stats.unmatched == 2)
    }

    @Test("an unknown method gets 204, or a find_node answer when it names a target")
    func unknownMethod() throws {
        var node = self.makeNode()
        node.learn(NodeInfo(id: idStarting(0x80), endpoint: v4(5, 5, 5, 5)))
        let plain = node.ask(.unknown(name: "vote", target: nil), from: self.remote, sender: self.remoteID)
        #expect(try plain[0].message().errorCode == 204)
        let targeted = node.ask(.unknown(name: "vote", target: idStarting(0x80)), from: self.remote, sender: self.remoteID)
        #expect(try targeted[0].message().response?.nodes.count == 1)
    }

    @Test("replies are rate-limited per source IP: a burst of 20, then 5 per second")
    func replyRateLimit() {
        var node = self.makeNode()
        var answered = 0
        for _ in 0..<30 {
            answered += node.ask(.ping, from: self.remote, sender: self.remoteID).filter { $0.destination == self.remote }
                .count(where: { (try? $0.message().response) != nil })
        }
        #expect(answered == 20)
        #expect(node.stats.rateLimited == 10)
        // Another source is not affected; the first gets 5 more a second later.
        #expect(node.ask(.ping, from: v4(7, 7, 7, 7), sender: idStarting(0xbb)).count >= 1)
        var later = 0
        for _ in 0..<10 {
            later += node.ask(.ping, from: self.remote, sender: self.remoteID, at: at(1)).count(where: {
                (try? $0.message().response) != nil
            })
        }
        #expect(later == 5)
    }

    @Test("answers never exceed 1500 bytes, even with 100 peers stored and both node lists")
    func replySize() throws {
        var node = self.makeNode {
            $0.families = [.ipv4, .ipv6]
            $0.version = bytes("PE01")
        }
        for i in 0..<8 { node.learn(NodeInfo(id: idStarting(0x80 + UInt8(i)), endpoint: v4(5, 5, 5, UInt8(i)))) }
        for i in 0..<8 { node.learn(NodeInfo(id: idStarting(0x40 + UInt8(i)), endpoint: v6(UInt16(i + 1)))) }
        let ih = idStarting(0x77)
        for (family, source) in [(DHTEndpoint.Family.ipv4, self.remote), (.ipv6, v6(500))] {
            for i in 0..<100 {
                let peerSource = family == .ipv4 ? v4(6, 0, 0, UInt8(i)) : v6(UInt16(1000 + i))
                let token = try #require(
                    try node.ask(.getPeers(infoHash: ih), from: peerSource, sender: idStarting(0xa0), at: at(Double(i) * 2))[0]
                        .message().response?.token)
                _ = node.ask(
                    .announcePeer(infoHash: ih, port: 6881, impliedPort: false, token: token), from: peerSource,
                    sender: idStarting(0xa0), at: at(Double(i) * 2))
            }
            let out = node.ask(
                .getPeers(infoHash: ih), from: source, sender: self.remoteID, t: [1, 2, 3, 4, 5, 6, 7, 8],
                want: [.n4, .n6], at: at(300))
            let r = try #require(try out[0].message().response)
            #expect(out[0].bytes.count <= 1500, "\(family): \(out[0].bytes.count) bytes")
            #expect(r.values.allSatisfy { $0.family == family })
            // The requester's own family's nodes come first, then peers, then the other family's nodes as far as
            // they fit.
            if family == .ipv4 {
                #expect(r.values.count == 100 && r.nodes.count == 8)
            } else {
                #expect(r.values.count >= 40 && r.nodes6.count == 8)
            }
        }
    }

    @Test("a read-only node answers nothing and marks its queries ro (BEP 43)")
    func readOnlyNode() throws {
        var node = self.makeNode { $0.readOnly = true }
        #expect(node.ask(.ping, from: self.remote, sender: self.remoteID).isEmpty)
        node.receive(bytes("d1:ad2:id3:abce1:q4:ping1:t2:xy1:y1:qe"), from: self.remote, at: .zero)
        #expect(node.sent().isEmpty)
        node.handle(.ping(self.remote), at: .zero)
        let q = try #require(node.sent().first)
        #expect(try q.message().readOnly)
        #expect(String(decoding: q.bytes, as: UTF8.self).contains("2:roi1e"))
    }

    @Test("a read-only querier is answered but not pinged or added; others are verified by a ping first")
    func readOnlyQuerier() throws {
        var node = self.makeNode()
        let ro = node.ask(.ping, from: self.remote, sender: self.remoteID, readOnly: true)
        #expect(ro.count == 1)
        let normal = node.ask(.ping, from: v4(8, 8, 8, 8), sender: idStarting(0xbb))
        try #require(normal.count == 2)
        #expect(node.routingTable(.ipv4)?.count == 0)
        let verify = try normal[1].message()
        let pong = KRPCMessage(transactionID: verify.transactionID, kind: .response(KRPCResponse(sender: idStarting(0xbb))))
        node.receive(pong.encoded, from: v4(8, 8, 8, 8), at: .zero)
        #expect(node.routingTable(.ipv4)?.contains(idStarting(0xbb)) == true)
        // An answer from the wrong address is not taken.
        let again = node.ask(.ping, from: v4(8, 8, 8, 9), sender: idStarting(0xbc))
        let t = try again[1].message().transactionID
        node.receive(
            KRPCMessage(transactionID: t, kind: .response(KRPCResponse(sender: idStarting(0xbc)))).encoded,
            from: v4(8, 8, 8, 10), at: .zero)
        #expect(node.routingTable(.ipv4)?.contains(idStarting(0xbc)) == false)
    }

    @Test("BEP 44 through the node: get gives a token, put stores, get returns the item; errors carry BEP 44 codes")
    func items() throws {
        var node = self.makeNode()
        let key = try Curve25519.Signing.PrivateKey(rawRepresentation: SeededGenerator.bytes(32, seed: 3))
        let item = DHTItem.mutable(try MutableItem.signed(value: "v1", sequence: 1, privateKey: key))
        let token = try #require(try node.ask(.get(target: item.target, sequence: nil), from: self.remote, sender: self.remoteID)[0].message().response?.token)
        var out = node.ask(.put(token: token, item: item, cas: nil), from: self.remote, sender: self.remoteID)
        #expect(try out[0].message().response != nil)
        out = node.ask(.put(token: [0], item: item, cas: nil), from: self.remote, sender: self.remoteID)
        #expect(try out[0].message().errorCode == 203)
        out = node.ask(.put(token: token, item: item, cas: 0), from: self.remote, sender: self.remoteID)
        #expect(try out[0].message().errorCode == 301)
        let older = DHTItem.mutable(try MutableItem.signed(value: "v0", sequence: 0, privateKey: key))
        out = node.ask(.put(token: token, item: older, cas: nil), from: self.remote, sender: self.remoteID)
        #expect(try out[0].message().errorCode == 302)
        out = node.ask(.put(token: token, item: .immutable(.string([UInt8](repeating: 0, count: 1200))), cas: nil), from: self.remote, sender: self.remoteID)
        #expect(try out[0].message().errorCode == 205)

        let got = try #require(try node.ask(.get(target: item.target, sequence: nil), from: self.remote, sender: self.remoteID)[0].message().response)
        #expect(DHTNode.verifiedItem(got, target: item.target, salt: []) == item)
        let notNewer = try #require(try node.ask(.get(target: item.target, sequence: 1), from: self.remote, sender: self.remoteID)[0].message().response)
        #expect(notNewer.sequence == 1 && notNewer.value == nil && notNewer.signature == nil)
    }

    @Test("sample_infohashes answers from the peer store, with num and interval, and keeps its sample for the interval")
    func samples() throws {
        var node = self.makeNode { $0.sampleInterval = .seconds(600) }
        for i in 0..<30 {
            let ih = idStarting(UInt8(i), 1)
            let token = try #require(try node.ask(.getPeers(infoHash: ih), from: v4(6, 0, 0, UInt8(i)), sender: idStarting(0xa0))[0].message().response?.token)
            _ = node.ask(.announcePeer(infoHash: ih, port: 1, impliedPort: false, token: token), from: v4(6, 0, 0, UInt8(i)), sender: idStarting(0xa0))
        }
        let r = try #require(try node.ask(.sampleInfohashes(target: .zero), from: self.remote, sender: self.remoteID)[0].message().response)
        #expect(r.samples?.count == 20)
        #expect(r.sampleCount == 30)
        #expect(r.interval == 600)
        let again = try #require(try node.ask(.sampleInfohashes(target: .zero), from: self.remote, sender: self.remoteID, at: at(100))[0].message().response)
        #expect(again.samples == r.samples)
        #expect(again.interval == 500)
    }

    @Test("BEP 42 enforcement keeps non-compliant nodes out of the table but answers them")
    func enforcement() throws {
        var node = self.makeNode { $0.enforceNodeIDs = true }
        let ip = DHTEndpoint.IP.ipv4(124, 31, 75, 21)
        let liar = NodeInfo(id: idStarting(0x99), endpoint: DHTEndpoint(ip: ip, port: 1))
        let out = node.ask(.ping, from: liar.endpoint, sender: liar.id)
        #expect(out.count == 1, "answered, but not pinged for the table")
        node.learn(liar)
        #expect(node.routingTable(.ipv4)?.count == 0)
        let honest = NodeInfo(id: hexID("5fbfbff10c5d6a4ec8a88e4c6ab4c28b95eee401"), endpoint: DHTEndpoint(ip: ip, port: 2))
        node.learn(honest)
        #expect(node.routingTable(.ipv4)?.contains(honest.id) == true)
        let local = NodeInfo(id: idStarting(0x98), endpoint: v4(192, 168, 1, 2))
        node.learn(local)
        #expect(node.routingTable(.ipv4)?.contains(local.id) == true, "local addresses are exempt")
    }
}

@Suite("DHT node: asking")
struct DHTNodeQueryTests {
    @Test("a query is resent once after 2 s and given up after 4 s")
    func retries() throws {
        var node = DHTNode(configuration: .init(nodeID: idStarting(0x11)), at: .zero, seed: 2)
        let target = v4(1, 2, 3, 4)
        let lookup = node.handle(.ping(target), at: .zero)
        let first = node.sent()
        try #require(first.count == 1)
        #expect(node.nextTimeout == at(2))
        node.handleTimeout(at: at(1))
        #expect(node.sent().isEmpty)
        node.handleTimeout(at: at(2))
        #expect(node.sent() == first, "the same bytes, same transaction id")
        node.handleTimeout(at: at(4))
        #expect(node.drainEvents() == [.finished(lookup, .failed(.timedOut))])
        #expect(node.stats.timeouts == 1)
        // A late answer is unmatched.
        let t = try first[0].message().transactionID
        node.receive(KRPCMessage(transactionID: t, kind: .response(KRPCResponse(sender: idStarting(0x22)))).encoded, from: target, at: at(5))
        #expect(node.drainEvents().isEmpty)
    }

    @Test("a lookup passes over a node slower than the short timeout: it asks the next one and ends without it")
    func shortTimeout() throws {
        var node = DHTNode(configuration: .init(nodeID: idStarting(0x11)), at: .zero, seed: 7)
        let nodes = (0..<4).map { NodeInfo(id: idStarting(0x40 + UInt8($0)), endpoint: v4(30, 0, 0, UInt8($0))) }
        for n in nodes { node.learn(n, at: .zero) }  // answered at once: the round-trip estimate is tiny
        #expect(node.shortTimeout == .milliseconds(300), "the lower bound")
        let lookup = node.handle(.getPeers(infoHash: idStarting(0x40)), at: at(1))
        let first = node.sent()
        #expect(first.count == 3, "alpha")
        func answer(_ d: DHTDatagram, at time: Double) throws {
            let id = nodes.first { $0.endpoint == d.destination }!.id
            let r = KRPCMessage(transactionID: try d.message().transactionID,
                kind: .response(KRPCResponse(sender: id, token: bytes("tk"))))
            node.receive(r.encoded, from: d.destination, at: at(time))
        }
        // Two answer; the third query is lost.
        try answer(first[0], at: 1.1)
        try answer(first[1], at: 1.1)
        let fourth = node.sent()
        #expect(fourth.count == 1 && !first.map(\.destination).contains(fourth[0].destination))
        try answer(fourth[0], at: 1.2)
        #expect(node.drainEvents().isEmpty, "still waiting on the lost one")
        #expect(node.nextTimeout == at(1.3))
        node.handleTimeout(at: at(1.3))
        let events = node.drainEvents()
        guard case .finished(lookup, .peers(_, let peers, let closest))? = events.last else {
            Issue.record("the lookup did not end at the short timeout: \(events)")
            return
        }
        #expect(peers.isEmpty && closest.count == 3 && !closest.contains { $0.node.endpoint == first[2].destination })
        // The lost query is not resent for a lookup that is over, and its node is counted as failing.
        node.handleTimeout(at: at(3))
        #expect(node.sent().isEmpty)
        #expect(node.stats.timeouts == 1)
    }

    @Test("our own queries are rate-limited: they wait, they are not dropped")
    func queryRateLimit() throws {
        var c = DHTNode.Configuration(nodeID: idStarting(0x11))
        c.queryBurst = 2
        c.queriesPerSecond = 2
        var node = DHTNode(configuration: c, at: .zero, seed: 3)
        for i in 0..<5 { node.handle(.ping(v4(1, 1, 1, UInt8(i))), at: .zero) }
        #expect(node.sent().count == 2)
        #expect(node.nextTimeout == at(0.5))
        node.handleTimeout(at: at(0.5))
        #expect(node.sent().count == 1)
        node.handleTimeout(at: at(1.5))
        #expect(node.sent().count == 2)
    }

    @Test("enough nodes agreeing on our address change externalIP (BEP 42 ip)")
    func externalAddressVote() throws {
        var node = DHTNode(configuration: .init(nodeID: idStarting(0x11)), at: .zero, seed: 4)
        let me = v4(99, 1, 2, 3, port: 6881)
        for i in 0..<4 {
            let peer = v4(20, 0, 0, UInt8(i))
            node.handle(.ping(peer), at: .zero)
            let t = try node.sent()[0].message().transactionID
            let pong = KRPCMessage(
                transactionID: t, kind: .response(KRPCResponse(sender: idStarting(0x30 + UInt8(i)))), requesterAddress: me)
            node.receive(pong.encoded, from: peer, at: .zero)
        }
        #expect(node.externalIP == me.ip)
        #expect(node.drainEvents().contains(.externalAddressChanged(me.ip)))
        #expect(node.id == idStarting(0x11), "a configured ID is kept")
    }

    @Test("a random ID becomes a BEP 42 ID for the agreed address; the table and a lookup under way are kept")
    func secureIDOnExternalAddress() throws {
        var node = DHTNode(configuration: .init(), at: .zero, seed: 4)
        let me = v4(99, 1, 2, 3, port: 6881)
        let first = node.id
        #expect(!first.isSecure(for: me.ip))
        let peers = (0..<4).map { v4(20, 0, 0, UInt8($0)) }
        for (i, peer) in peers.enumerated() {
            node.handle(.ping(peer), at: .zero)
            let t = try node.sent()[0].message().transactionID
            let pong = KRPCMessage(
                transactionID: t, kind: .response(KRPCResponse(sender: idStarting(0x30 + UInt8(i)))),
                requesterAddress: i < 3 ? me : nil)
            node.receive(pong.encoded, from: peer, at: .zero)
        }
        #expect(node.id == first, "three votes are not enough")
        let lookup = node.handle(.getPeers(infoHash: idStarting(0x31)), at: at(1))
        let asked = node.sent()
        #expect(!asked.isEmpty)
        #expect(try asked.map { try $0.message().query?.sender }.allSatisfy { $0 == first })

        // The fourth vote, from the node that has not voted yet, in its answer to the lookup.
        let query = try #require(asked.first { $0.destination == peers[3] })
        let answer = KRPCMessage(transactionID: try query.message().transactionID,
            kind: .response(KRPCResponse(sender: idStarting(0x33))), requesterAddress: me)
        node.receive(answer.encoded, from: peers[3], at: at(1))
        #expect(node.id != first && node.id.isSecure(for: me.ip))
        let events = node.drainEvents()
        #expect(events.contains(.externalAddressChanged(me.ip)) && events.contains(.idChanged(node.id)))
        #expect(node.routingTable(.ipv4)?.nodes.count == 4, "every node is kept in the rebuilt table")
        #expect(node.activeLookups >= 1 && !events.contains { if case .finished(lookup, _) = $0 { true } else { false } })
        let later = node.sent()
        let senders = try later.map { try $0.message().query?.sender }
        #expect(!later.isEmpty && senders.allSatisfy { $0 == node.id }, "queries from now on carry the new ID")
    }

    @Test("a lookup with nobody to ask fails at once with noNodes")
    func noNodes() {
        var node = DHTNode(configuration: .init(nodeID: idStarting(0x11)), at: .zero, seed: 5)
        let lookup = node.handle(.getPeers(infoHash: idStarting(1)), at: .zero)
        #expect(node.drainEvents() == [.finished(lookup, .failed(.noNodes))])
        #expect(node.sent().isEmpty)
    }

    @Test("sample_infohashes to one node reports its answer")
    func sampleCommand() throws {
        var node = DHTNode(configuration: .init(nodeID: idStarting(0x11)), at: .zero, seed: 6)
        let other = v4(3, 3, 3, 3)
        let lookup = node.handle(.sampleInfohashes(from: other, target: idStarting(5)), at: .zero)
        let q = try node.sent()[0].message()
        #expect(q.query?.method == .sampleInfohashes(target: idStarting(5)))
        let answer = KRPCResponse(sender: idStarting(0x33), samples: [idStarting(1)], sampleCount: 7, interval: 60)
        node.receive(KRPCMessage(transactionID: q.transactionID, kind: .response(answer)).encoded, from: other, at: at(1))
        #expect(
            node.drainEvents() == [
                .finished(
                    lookup,
                    .samples(
                        InfohashSamples(
                            from: NodeInfo(id: idStarting(0x33), endpoint: other), samples: [idStarting(1)], available: 7,
                            interval: 60, nodes: [])))
            ])
    }
}
