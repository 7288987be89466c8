import PeerBase
import Testing

@testable import UTP

@Suite("uTP connections over a simulated path (BEP 29)")
struct UTPConnectionTests {
    static func payload(_ n: Int, seed: UInt64) -> [UInt8] { SeededGenerator.bytes(n, seed: seed) }

    /// Opens a→b, sends `up` bytes a→b and `down` bytes b→a, closes both; returns the network when done.
    static func exchange(_ net: inout UTPNetwork, up: Int, down: Int, limit: Duration = .seconds(120)) throws
        -> (UTPNetwork.Key, UTPNetwork.Key)
    {
        let key = net.a.connect(to: "b", at: net.now)
        let other = net.peerKey(key)
        let sent = (Self.payload(up, seed: 1), Self.payload(down, seed: 2))
        net.onEvent = { net, side, e in
            if side == "b", e == .accepted(other) { net.b.handle(.write(sent.1), for: other, at: net.now) }
        }
        net.a.handle(.write(sent.0), for: key, at: net.now)
        let done = net.run(for: limit) { $0.received[other]?.count == up && $0.received[key]?.count == down }
        #expect(done, "b has \(net.received[other]?.count ?? 0) of \(up), a \(net.received[key]?.count ?? 0) of \(down)")
        #expect(net.received[other] ?? [] == sent.0)
        #expect(net.received[key] ?? [] == sent.1)
        net.a.handle(.close, for: key, at: net.now)
        net.b.handle(.close, for: other, at: net.now)
        net.run(for: .seconds(30)) { $0.a.count == 0 && $0.b.count == 0 }
        #expect(net.a.count == 0 && net.b.count == 0)
        return (key, other)
    }

    @Test("both ways at once: every byte in order, and a clean close on both sides")
    func bothWays() throws {
        var net = UTPNetwork()
        let (key, other) = try Self.exchange(&net, up: 2_000_000, down: 700_001)
        #expect(net.closed("a", key) != nil && net.closed("b", other) != nil)
        #expect(net.events.contains { $0.0 == "a" && $0.1 == .connection(key, .connected) })
    }

    @Test("5% loss each way and jitter that reorders: intact, by selective ACKs and resends")
    func lossAndReordering() throws {
        var net = UTPNetwork()
        net.toB.loss = 0.05
        net.toA.loss = 0.05
        net.toB.jitter = .milliseconds(15)
        net.toA.jitter = .milliseconds(15)
        _ = try Self.exchange(&net, up: 1_000_000, down: 300_000, limit: .seconds(300))
    }

    /// Sends `bytes` a→b with `limit` given to both sides as the path's limit (nil: none given); returns a's
    /// connection's packet sizes as its events told them.
    static func probed(_ net: inout UTPNetwork, bytes: Int, limit: Int?) -> [Int] {
        let key = net.a.connect(to: "b", at: net.now)
        let other = net.peerKey(key)
        if let limit { net.a.handle(.pathLimit(limit), for: key, at: net.now) }
        net.onEvent = { net, side, e in
            if side == "b", e == .accepted(other), let limit { net.b.handle(.pathLimit(limit), for: other, at: net.now) }
        }
        let sent = Self.payload(bytes, seed: 3)
        net.a.handle(.write(sent), for: key, at: net.now)
        let done = net.run(for: .seconds(60)) { $0.received[other]?.count == bytes }
        #expect(done && net.received[other] == sent)
        return net.events.compactMap {
            if $0.0 == "a", case .connection(key, .packetSize(let size)) = $0.1 { size } else { nil }
        }
    }

    @Test("path MTU probing: packets grow to what the path carries, probes lost cost no halving, data intact")
    func pathMTU() throws {
        var net = UTPNetwork()
        (net.toB.mtu, net.toB.rate) = (4_000, 12_500_000)
        let sizes = Self.probed(&net, bytes: 8_000_000, limit: 8_972)
        // A binary search from 1 400 towards 8 972, stopping within 64 bytes of the 4 000 the path carries.
        #expect(sizes == sizes.sorted() && sizes.count >= 3)
        #expect((4_000 - 64)...4_000 ~= sizes.last ?? 0)
        #expect(net.toB.largest <= 4_000 && net.toB.droppedBySize >= 1)
        // A probe that was too big costs the resend of its data, unpadded (and maybe one more, as any lost packet
        // may), and no halving of the window: the same 100 Mbit/s path without probing takes no less time.
        let key = net.events.first { $0.0 == "a" }.flatMap { if case .connection(let k, _) = $0.1 { k } else { nil } }
        let retransmissions = key.flatMap { net.a.connection($0)?.retransmissions } ?? -1
        #expect((net.toB.droppedBySize...2 * net.toB.droppedBySize).contains(retransmissions))
        var plain = UTPNetwork()
        (plain.toB.mtu, plain.toB.rate) = (4_000, 12_500_000)
        _ = Self.probed(&plain, bytes: 8_000_000, limit: nil)
        #expect(net.now <= plain.now, "\(net.now) probing, \(plain.now) without; \(retransmissions) resent, \(net.toB.droppedBySize) dropped \(sizes) \(key.flatMap { net.a.connection($0)?.summary } ?? "")")
    }

    @Test("no path limit given: packets stay at 1 400 bytes; a path limit under it: they shrink to it at once")
    func pathLimits() throws {
        var plain = UTPNetwork()
        #expect(Self.probed(&plain, bytes: 500_000, limit: nil).isEmpty)
        #expect((1_366...1_400).contains(plain.toB.largest))
        var small = UTPNetwork()
        small.toB.mtu = 1_252
        #expect(Self.probed(&small, bytes: 500_000, limit: 1_252) == [1_252])
        #expect(small.toB.largest <= 1_252 && small.toB.droppedBySize == 0)
    }

    @Test("a lost SYN-ACK: the resent SYN gets the same connection, not a second one")
    func duplicateSYN() throws {
        var net = UTPNetwork()
        net.toA.loss = 1  // the first STATE is lost
        let key = net.a.connect(to: "b", at: net.now)
        net.run(for: .milliseconds(100))
        #expect(net.b.count == 1)
        net.toA.loss = 0
        net.run(for: .seconds(10)) { $0.events.contains { $0.0 == "a" && $0.1 == .connection(key, .connected) } }
        #expect(net.events.contains { $0.0 == "a" && $0.1 == .connection(key, .connected) })
        #expect(net.b.count == 1)
        #expect(net.events.filter { if case .accepted = $0.1 { true } else { false } }.count == 1)
    }

    @Test("an unanswered SYN gives up after its resends, with the timeouts doubling")
    func connectTimeout() {
        var net = UTPNetwork()
        net.toB.loss = 1
        let key = net.a.connect(to: "b", at: net.now)
        net.run(for: .seconds(60)) { $0.a.count == 0 }
        #expect(net.closed("a", key) == .timedOut)
        #expect(net.toB.sent == 3)  // SYN and two resends
        #expect(net.now >= Instant.zero + .seconds(21))  // 3 + 6 + 12 s
    }

    @Test("a receiver that never reads: the sender stops at its window, probes slowly, and goes on when it reads")
    func closedWindow() throws {
        var config = UTPEndpoint<String>.Configuration()
        config.connection.receiveBuffer = 64 << 10
        var net = UTPNetwork(configuration: config)
        net.consumeB = false
        let key = net.a.connect(to: "b", at: net.now)
        let other = net.peerKey(key)
        let data = Self.payload(1 << 20, seed: 9)
        net.a.handle(.write(data), for: key, at: net.now)
        net.run(for: .seconds(60))
        let held = net.received[other]?.count ?? 0
        #expect(held <= 64 << 10 && held > 32 << 10)
        // A minute of a closed window costs a handful of probes, not a stream of packets.
        let sentWhileClosed = net.toB.sent
        net.run(for: .seconds(60))
        #expect(net.toB.sent - sentWhileClosed < 20)
        #expect(net.a.count == 1 && net.b.count == 1)
        net.consumeB = true
        net.b.handle(.consumed(held), for: other, at: net.now)
        net.run(for: .seconds(120)) { $0.received[other]?.count == data.count }
        #expect(net.received[other] ?? [] == data)
    }

    @Test("a closed window whose owner falls silent: the connection goes maxSilence after the last packet heard")
    func silentClosedWindow() throws {
        var config = UTPEndpoint<String>.Configuration()
        config.connection.receiveBuffer = 64 << 10
        var net = UTPNetwork(configuration: config)
        net.consumeB = false
        let key = net.a.connect(to: "b", at: net.now)
        net.a.handle(.write(Self.payload(1 << 20, seed: 10)), for: key, at: net.now)
        // Two minutes of a closed window, its probes answered: the timeout backs off to a minute meanwhile.
        net.run(for: .seconds(120))
        #expect(net.a.count == 1)
        net.toA.loss = 1
        let silentFrom = net.now
        net.run(for: .seconds(150)) { $0.closed("a", key) != nil }
        #expect(net.closed("a", key) == .timedOut)
        #expect(net.now - silentFrom <= config.connection.maxSilence + .seconds(2))
    }

    @Test("a SYN flood from many ports holds at most maxConnections; the rest are refused and cost nothing")
    func synFlood() {
        var config = UTPEndpoint<String>.Configuration()
        config.maxConnections = 100
        var b = UTPEndpoint<String>(configuration: config, seed: 3, at: .zero)
        for i in 0..<5_000 {
            let syn = UTPPacket(type: .syn, connectionID: UInt16(i % 60_000), seq: 1, ack: 0)
            b.receive(syn.bytes, from: "attacker:\(i)", at: .zero + .milliseconds(i))
        }
        #expect(b.count == 100)
        #expect(b.refusedSYNs == 4_900)
        var answers = 0
        while b.pollTransmit() != nil { answers += 1 }
        #expect(answers == 100)
        // A spoofed SYN's connection hears nothing more, and goes at its timeout.
        b.handleTimeout(at: .zero + .seconds(10))
        #expect(b.count == 0)
    }

    @Test("packets for no connection get a RESET, at most resetsPerSecond; garbage is counted and dropped")
    func resets() {
        var b = UTPEndpoint<String>(seed: 4, at: .zero)
        for i in 0..<100 {
            b.receive(UTPPacket(type: .state, connectionID: 7, seq: UInt16(i), ack: 0).bytes, from: "x", at: .zero)
        }
        var sent: [UTPPacket] = []
        while let (_, bytes) = b.pollTransmit() { sent.append(try! UTPPacket(bytes: bytes)) }
        #expect(sent.count == 10 && sent.allSatisfy { $0.type == .reset && $0.connectionID == 7 })
        b.receive(UTPPacket(type: .reset, connectionID: 7, seq: 1, ack: 0).bytes, from: "x", at: .zero + .seconds(5))
        #expect(b.pollTransmit() == nil)  // never a RESET for a RESET
        b.receive([0x41, 0, 1, 2], from: "x", at: .zero + .seconds(5))
        b.receive([0x21, 0] + [UInt8](repeating: 0, count: 38), from: "x", at: .zero + .seconds(5))
        #expect(b.malformed == 1 && b.count == 0)
    }

    @Test("a RESET closes the connection at once")
    func resetCloses() throws {
        var net = UTPNetwork()
        let key = net.a.connect(to: "b", at: net.now)
        net.run(for: .seconds(1))
        let other = net.peerKey(key)
        let reset = UTPPacket(type: .reset, connectionID: other.receiveID &- 1, seq: 0, ack: 0)
        net.a.receive(reset.bytes, from: "b", at: net.now)
        net.drain()
        #expect(net.closed("a", key) == .reset && net.a.count == 0)
    }

    @Test("LEDBAT over a 20 Mbit/s bottleneck with 20 ms each way: fills the link, queueing delay near 100 ms")
    func ledbat() throws {
        var net = UTPNetwork()
        let rate = 20e6 / 8
        net.toB.rate = rate
        net.toB.delay = .milliseconds(20)
        net.toA.delay = .milliseconds(20)
        let key = net.a.connect(to: "b", at: net.now)
        let other = net.peerKey(key)
        let size = 30 << 20
        net.a.handle(.write(Self.payload(size, seed: 5)), for: key, at: net.now)
        let done = net.run(for: .seconds(120)) { $0.received[other]?.count == size }
        #expect(done)
        let seconds = (net.now - Instant.zero).seconds
        let utilization = Double(size) / seconds / rate
        // After the first 3 s (slow start), the queue the sender keeps at the bottleneck.
        let steady = net.toB.queueing.filter { $0.0 > .zero + .seconds(3) }.map { $0.1.milliseconds }
        let mean = steady.reduce(0, +) / Double(max(1, steady.count))
        let sorted = steady.sorted()
        let p90 = sorted.isEmpty ? 0 : sorted[sorted.count * 9 / 10]
        let window = net.a.connection(key)?.ledbat.window ?? 0
        print("LEDBAT: \((seconds * 10).rounded() / 10) s, utilization \((utilization * 100).rounded() / 100), "
            + "queueing delay mean \(mean.rounded()) ms, p90 \(p90.rounded()) ms, window \(window)")
        #expect(utilization > 0.8)
        #expect(mean > 40 && mean < 130)
        #expect(p90 < 200)
        #expect(net.toB.droppedByQueue == 0)
    }
}
