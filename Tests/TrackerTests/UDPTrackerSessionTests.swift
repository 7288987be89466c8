import NIOCore
import PeerBase
import Testing
import Tracker

/// Drives a session in virtual time and records what it sends.
struct UDPHarness {
    var session: UDPTrackerSession
    var now: Instant = .zero

    init(family: AddressFamily = .ipv4, seed: UInt64 = 7) {
        self.session = UDPTrackerSession(addressFamily: family, seed: seed)
    }

    /// Every datagram queued so far.
    mutating func sent() -> [[UInt8]] {
        var out: [[UInt8]] = []
        while let d = self.session.pollTransmit() { out.append(d) }
        return out
    }

    /// Every event queued so far.
    mutating func events() -> [UDPTrackerSession.Event] {
        var out: [UDPTrackerSession.Event] = []
        while let e = self.session.pollEvent() { out.append(e) }
        return out
    }

    /// Exactly one datagram, as the test expects.
    mutating func one(_ comment: Comment? = nil) throws -> [UInt8] {
        let all = self.sent()
        try #require(all.count == 1, comment)
        return all[0]
    }

    mutating func receive(_ datagram: [UInt8], at seconds: Double) {
        self.now = at(seconds)
        self.session.receive(datagram, at: self.now)
    }

    mutating func handle(_ command: UDPTrackerSession.Command, at seconds: Double) {
        self.now = at(seconds)
        self.session.handle(command, at: self.now)
    }

    /// Connects (answering the connect request) and returns the connection id used.
    mutating func connect(at seconds: Double, cid: UInt64 = 0x0102_0304_0506_0708) throws -> UInt64 {
        let request = try self.one("a connect request")
        try #require(readBE(request, 8, 4) == 0)
        self.receive(UDP.connect(tid: UInt32(readBE(request, 12, 4)), cid: cid), at: seconds)
        return cid
    }
}

/// The transaction id of a request datagram (offset 12).
func tid(_ request: [UInt8]) -> UInt32 { UInt32(readBE(request, 12, 4)) }

/// The action of a request datagram (offset 8).
func action(_ request: [UInt8]) -> UInt64 { readBE(request, 8, 4) }

@Suite("UDP tracker session (BEP 15)")
struct UDPTrackerSessionTests {
    @Test("connect then announce, byte by byte")
    func fullExchange() throws {
        var h = UDPHarness()
        let request = sampleRequest(event: .started)
        h.handle(.announce(request), at: 0)

        // Connect request: protocol id, action 0, transaction id; 16 bytes.
        let connect = try h.one()
        #expect(connect.count == 16)
        #expect(Array(connect[0..<8]) == [0x00, 0x00, 0x04, 0x17, 0x27, 0x10, 0x19, 0x80])
        #expect(Array(connect[8..<12]) == [0, 0, 0, 0])
        #expect(h.session.nextTimeout == at(15))
        #expect(h.events().isEmpty)

        // Connect response: action 0, the same transaction id, the connection id.
        h.receive([0, 0, 0, 0] + connect[12..<16] + [0xC1, 0xC2, 0xC3, 0xC4, 0xC5, 0xC6, 0xC7, 0xC8], at: 1)
        let announce = try h.one()
        let expected: [UInt8] =
            [0xC1, 0xC2, 0xC3, 0xC4, 0xC5, 0xC6, 0xC7, 0xC8]  // 0: connection_id
            + [0, 0, 0, 1]  // 8: action announce
            + Array(announce[12..<16])  // 12: transaction_id (checked below)
            + hash20(0xa0)  // 16: info_hash
            + bytes("-PE0001-abcdefghijkl")  // 36: peer_id
            + [0, 0, 0, 0, 0, 0, 0x03, 0xE8]  // 56: downloaded 1000
            + [0, 0, 0, 0x01, 0, 0, 0, 0x05]  // 64: left 0x1_0000_0005
            + [0, 0, 0, 0, 0, 0, 0x0A, 0x0B]  // 72: uploaded 0x0A0B
            + [0, 0, 0, 2]  // 80: event started
            + [0, 0, 0, 0]  // 84: IP address (default)
            + [0xDE, 0xAD, 0xBE, 0xEF]  // 88: key
            + [0xFF, 0xFF, 0xFF, 0xFF]  // 92: num_want -1
            + [0x1A, 0xE1]  // 96: port 6881
        #expect(announce.count == 98)
        #expect(announce == expected)
        #expect(tid(announce) != tid(connect))
        #expect(h.session.nextTimeout == at(16))

        // Announce response: interval, leechers, seeders, then 6-byte peers.
        h.receive(
            UDP.announce(
                tid: tid(announce), interval: 1800, leechers: 3, seeders: 7,
                peers: [[1, 2, 3, 4, 0x1A, 0xE1], [10, 0, 0, 1, 0xC8, 0xD5]]),
            at: 2)
        let events = h.events()
        try #require(events.count == 1)
        guard case .announced(let echoed, let response) = events[0] else {
            Issue.record("expected .announced, got \(events[0])")
            return
        }
        #expect(echoed == request)
        #expect(response.interval == .seconds(1800))
        #expect(response.incomplete == 3)
        #expect(response.complete == 7)
        #expect(response.peers.map(\.description) == ["1.2.3.4:6881", "10.0.0.1:51413"])
        #expect(h.session.nextTimeout == nil)
        #expect(h.session.inFlight == 0)
        #expect(h.sent().isEmpty)
        #expect(h.session.ignoredDatagrams == 0)
    }

    @Test(
        "the connection id is reused for 60 s after it arrived, then renewed",
        arguments: [(30.0, true), (60.999, true), (61.0, false), (200.0, false)])
    func connectionReuse(_ later: Double, _ reused: Bool) throws {
        var h = UDPHarness()
        h.handle(.announce(sampleRequest()), at: 0)
        let cid = try h.connect(at: 1)
        let first = try h.one()
        h.receive(UDP.announce(tid: tid(first), interval: 60, leechers: 0, seeders: 0, peers: []), at: 2)
        #expect(h.events().count == 1)

        h.handle(.announce(sampleRequest(event: .none)), at: later)
        let next = try h.one()
        if reused {
            #expect(action(next) == 1)
            #expect(readBE(next, 0, 8) == cid)
        } else {
            #expect(next.count == 16)
            #expect(action(next) == 0)
            #expect(readBE(next, 0, 8) == 0x417_2710_1980)
        }
    }

    @Test("an unanswered connect is retransmitted after 15, 30, 60 … 3840 s, then fails")
    func retransmissionSchedule() throws {
        var h = UDPHarness()
        let request = sampleRequest()
        h.handle(.announce(request), at: 0)
        var sendTimes: [Int64] = []
        var tids = Set<UInt32>()
        for d in h.sent() {
            sendTimes.append(0)
            tids.insert(tid(d))
        }
        var failure: UDPTrackerSession.Event?
        var steps = 0
        while let deadline = h.session.nextTimeout, steps < 20 {
            steps += 1
            // A spurious early call changes nothing.
            h.session.handleTimeout(at: deadline + .milliseconds(-1))
            #expect(h.sent().isEmpty)
            h.session.handleTimeout(at: deadline)
            for d in h.sent() {
                sendTimes.append(deadline.offset.components.seconds)
                tids.insert(tid(d))
                #expect(action(d) == 0)
            }
            if let e = h.session.pollEvent() { failure = e }
        }
        #expect(sendTimes == [0, 15, 45, 105, 225, 465, 945, 1905, 3825])
        #expect(tids.count == 1)  // the same connect, retransmitted
        #expect(failure == .failed(.announce(request), .timedOut(request: "announce", attempts: 9)))
        #expect(h.session.nextTimeout == nil)
        #expect(h.session.inFlight == 0)
    }

    @Test("BEP 15 'announce times out': retransmits, then reconnects once the connection id expired")
    func announceTimesOut() throws {
        var h = UDPHarness()
        h.handle(.announce(sampleRequest()), at: 0)
        _ = try h.connect(at: 1)  // connection id valid until t=61
        let announce = try h.one()
        var log: [(Int64, UInt64, UInt32)] = []
        for _ in 0..<4 {
            let t = try #require(h.session.nextTimeout)
            h.session.handleTimeout(at: t)
            for d in h.sent() { log.append((t.offset.components.seconds, action(d), tid(d))) }
        }
        #expect(log.map(\.0) == [16, 46, 106, 226])
        #expect(log.map(\.1) == [1, 1, 0, 0])
        #expect(log[0].2 == tid(announce) && log[1].2 == tid(announce))
        #expect(log[2].2 == log[3].2)

        // The new connection id arrives: the announce goes out at once, still at n = 4 (240 s).
        h.receive(UDP.connect(tid: log[3].2, cid: 99), at: 230)
        let again = try h.one()
        #expect(action(again) == 1)
        #expect(readBE(again, 0, 8) == 99)
        #expect(tid(again) == tid(announce))
        #expect(h.session.nextTimeout == at(470))
    }

    @Test("an error message fails the request it answers")
    func errorAction() throws {
        var h = UDPHarness()
        let request = sampleRequest()
        h.handle(.announce(request), at: 0)
        _ = try h.connect(at: 1)
        let announce = try h.one()
        h.receive(UDP.error(tid: tid(announce), "unregistered torrent\0"), at: 2)
        #expect(h.events() == [.failed(.announce(request), .failure("unregistered torrent"))])
        #expect(h.session.nextTimeout == nil)
    }

    @Test("an error answering the connect fails every request waiting for it")
    func connectError() throws {
        var h = UDPHarness()
        let a = sampleRequest(hash: hash20(1))
        let b = sampleRequest(hash: hash20(2))
        h.handle(.announce(a), at: 0)
        h.handle(.announce(b), at: 0)
        let connect = try h.one("one connect for both requests")
        h.receive(UDP.error(tid: tid(connect), "go away"), at: 1)
        #expect(h.events() == [.failed(.announce(a), .failure("go away")), .failed(.announce(b), .failure("go away"))])
        #expect(h.session.inFlight == 0)
    }

    @Test("garbage is ignored and counted; the exchange still completes")
    func garbage() throws {
        var h = UDPHarness()
        h.handle(.announce(sampleRequest()), at: 0)
        let connect = try h.one()
        let t = tid(connect)
        let junk: [[UInt8]] = [
            [],
            [0, 0, 0, 0, 1, 2, 3],  // shorter than 8
            UDP.connect(tid: t, cid: 5).dropLast(1),  // connect response shorter than 16
            UDP.connect(tid: t &+ 1, cid: 5),  // unknown transaction id
            UDP.scrape(tid: t, entries: []),  // wrong action for a connect
            be(UInt32(7)) + be(t) + [1, 2, 3],  // unknown action
            [UInt8](repeating: 0, count: TrackerLimits.maxDatagramLength + 1),  // oversized
        ]
        for (i, d) in junk.enumerated() {
            h.receive(d, at: 0.5)
            #expect(h.session.ignoredDatagrams == i + 1)
        }
        #expect(h.sent().isEmpty)
        #expect(h.events().isEmpty)

        h.receive(UDP.connect(tid: t, cid: 5), at: 1)
        let announce = try h.one()
        h.receive(UDP.announce(tid: tid(announce), interval: 1, leechers: 0, seeders: 0, peers: []).dropLast(1), at: 2)
        #expect(h.session.ignoredDatagrams == junk.count + 1)
        #expect(h.events().isEmpty)
        // A late duplicate of the connect response is not mistaken for anything.
        h.receive(UDP.connect(tid: t, cid: 5), at: 2)
        #expect(h.session.ignoredDatagrams == junk.count + 2)
        h.receive(UDP.announce(tid: tid(announce), interval: 1, leechers: 0, seeders: 0, peers: []), at: 3)
        #expect(h.events().count == 1)
    }

    @Test("datagrams in a ByteBuffer are read the same way")
    func byteBuffer() throws {
        var h = UDPHarness()
        h.handle(.announce(sampleRequest()), at: 0)
        let connect = try h.one()
        var buffer = ByteBuffer()
        buffer.writeBytes(UDP.connect(tid: tid(connect), cid: 42))
        h.session.receive(buffer, at: at(1))
        #expect(readBE(try h.one(), 0, 8) == 42)
    }

    @Test("scrape: request layout and counts mapped back to the hashes")
    func scrape() throws {
        var h = UDPHarness()
        let hashes = [hash20(0x10), hash20(0x40)]
        h.handle(.scrape(hashes), at: 0)
        _ = try h.connect(at: 1, cid: 0xAABB)
        let request = try h.one()
        #expect(request.count == 16 + 40)
        #expect(readBE(request, 0, 8) == 0xAABB)
        #expect(action(request) == 2)
        #expect(Array(request[16..<36]) == hashes[0])
        #expect(Array(request[36..<56]) == hashes[1])

        h.receive(UDP.scrape(tid: tid(request), entries: [(5, 100, 2), (0, 1, 9)]), at: 2)
        let expected = ScrapeResponse(files: [
            hashes[0]: ScrapeStats(complete: 5, downloaded: 100, incomplete: 2),
            hashes[1]: ScrapeStats(complete: 0, downloaded: 1, incomplete: 9),
        ])
        #expect(h.events() == [.scraped(expected)])
    }

    @Test("a short scrape answer reports what is missing")
    func shortScrape() throws {
        var h = UDPHarness()
        let hashes = [hash20(0x10), hash20(0x40)]
        h.handle(.scrape(hashes), at: 0)
        _ = try h.connect(at: 1)
        let request = try h.one()
        h.receive(UDP.scrape(tid: tid(request), entries: [(5, 100, 2)]), at: 2)
        let events = h.events()
        guard case .scraped(let response)? = events.first else {
            Issue.record("expected .scraped, got \(events)")
            return
        }
        #expect(response.files.count == 1)
        #expect(response[hashes[0]]?.complete == 5)
        #expect(response[hashes[1]] == nil)
        #expect(response.ignored == [.badLength(what: "scrape response", length: 20, expected: "32 for 2 info-hashes")])
    }

    @Test("requests in flight together are told apart by transaction id")
    func concurrentRequests() throws {
        var h = UDPHarness()
        let a = sampleRequest(hash: hash20(1))
        let b = sampleRequest(hash: hash20(2))
        h.handle(.announce(a), at: 0)
        h.handle(.announce(b), at: 0.5)
        _ = try h.connect(at: 1)
        let sent = h.sent()
        try #require(sent.count == 2)
        #expect(Array(sent[0][16..<36]) == a.infoHash)
        #expect(Array(sent[1][16..<36]) == b.infoHash)
        #expect(tid(sent[0]) != tid(sent[1]))
        h.receive(UDP.announce(tid: tid(sent[1]), interval: 20, leechers: 0, seeders: 0, peers: []), at: 2)
        h.receive(UDP.announce(tid: tid(sent[0]), interval: 10, leechers: 0, seeders: 0, peers: []), at: 2)
        let events = h.events()
        #expect(
            events.map { if case .announced(let r, _) = $0 { r.infoHash } else { [] } } == [b.infoHash, a.infoHash])
        let intervals = events.map { (e: UDPTrackerSession.Event) -> Duration? in
            if case .announced(_, let r) = e { r.interval } else { nil }
        }
        #expect(intervals == [.seconds(20), .seconds(10)])
    }

    @Test("over IPv6, peers are 18 bytes and the IP field stays 0")
    func ipv6() throws {
        var h = UDPHarness(family: .ipv6)
        var request = sampleRequest()
        request.ip = "1.2.3.4"
        h.handle(.announce(request), at: 0)
        _ = try h.connect(at: 1)
        let announce = try h.one()
        #expect(Array(announce[84..<88]) == [0, 0, 0, 0])
        let peer: [UInt8] = [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [7, 0x1A, 0xE1]
        h.receive(UDP.announce(tid: tid(announce), interval: 1, leechers: 0, seeders: 0, peers: [peer, peer]), at: 2)
        guard case .announced(_, let response)? = h.events().first else {
            Issue.record("expected .announced")
            return
        }
        #expect(response.peers.map(\.description) == ["[2001:db8::7]:6881", "[2001:db8::7]:6881"])
    }

    @Test("over IPv4, an IPv4 'ip' fills the IP field and num_want is sent")
    func ipv4Field() throws {
        var h = UDPHarness(family: .ipv4)
        var request = sampleRequest()
        request.ip = "1.2.3.4"
        request.numWant = 50
        h.handle(.announce(request), at: 0)
        _ = try h.connect(at: 1)
        let announce = try h.one()
        #expect(Array(announce[84..<88]) == [1, 2, 3, 4])
        #expect(Array(announce[92..<96]) == [0, 0, 0, 50])
    }

    @Test("a full datagram of peers is capped at 10 000; negative fields are dropped")
    func absurdCounts() throws {
        var h = UDPHarness()
        h.handle(.announce(sampleRequest()), at: 0)
        _ = try h.connect(at: 1)
        let announce = try h.one()
        let count = (TrackerLimits.maxDatagramLength - 20) / 6
        let peers = (0..<count).map { i in [10, 0, UInt8(i >> 8), UInt8(i & 0xff), 0, 80] as [UInt8] }
        h.receive(UDP.announce(tid: tid(announce), interval: -1, leechers: 4, seeders: -2, peers: peers), at: 2)
        guard case .announced(_, let response)? = h.events().first else {
            Issue.record("expected .announced")
            return
        }
        #expect(count > TrackerLimits.maxPeers)
        #expect(response.peers.count == TrackerLimits.maxPeers)
        #expect(response.interval == nil)
        #expect(response.complete == nil)
        #expect(response.incomplete == 4)
        #expect(response.ignored.contains(.tooLarge(what: "peers", count: count, limit: TrackerLimits.maxPeers)))
        #expect(response.ignored.contains(.invalidValue(key: "interval", reason: "-1 is negative")))
    }

    @Test("transaction ids are deterministic for a seed and differ between seeds")
    func determinism() {
        func firstDatagrams(seed: UInt64) -> [[UInt8]] {
            var h = UDPHarness(seed: seed)
            h.handle(.announce(sampleRequest()), at: 0)
            h.handle(.scrape([hash20(0)]), at: 0)
            return h.sent()
        }
        #expect(firstDatagrams(seed: 1) == firstDatagrams(seed: 1))
        #expect(firstDatagrams(seed: 1) != firstDatagrams(seed: 2))
        var rng = TestRNG(seed: 3)
        var session = UDPTrackerSession(addressFamily: .ipv4, using: &rng)
        session.handle(.announce(sampleRequest()), at: .zero)
        #expect(session.pollTransmit()?.count == 16)
    }
}
