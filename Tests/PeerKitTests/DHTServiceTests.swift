import NIOCore
import NIOPosix
import DHT
import PeerKit
import Synchronization
import Testing

@Suite("DHTService: the UDP driver")
struct DHTServiceTests {
    /// A KRPC ping with transaction id `t`, padded with an unknown key (which nodes ignore) to exactly `length` bytes.
    static func ping(t: String, length: Int) -> [UInt8] {
        let head = Array("d1:ad2:id20:".utf8) + [UInt8](repeating: 7, count: 20)
            + Array("e1:q4:ping1:t2:\(t)1:y1:q1:z".utf8)
        for n in stride(from: length, through: 0, by: -1) {
            let bytes = head + Array("\(n):".utf8) + [UInt8](repeating: UInt8(ascii: "p"), count: n)
                + [UInt8(ascii: "e")]
            if bytes.count == length { return bytes }
        }
        fatalError("no padding gives \(length) bytes")
    }

    /// Collects the transaction ids of the answers a socket receives (not of the node's own queries: it pings a
    /// new querier).
    final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        let received = Mutex<[String]>([])

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let bytes = Array(Self.unwrapInboundIn(data).data.readableBytesView)
            guard bytes.suffix(7).elementsEqual("1:y1:re".utf8) || bytes.suffix(7).elementsEqual("1:y1:ee".utf8)
            else { return }
            let marker = Array("1:t2:".utf8)
            guard let i = bytes.indices.first(where: { bytes[$0...].starts(with: marker) }), i + 7 <= bytes.count
            else { return }
            self.received.withLock { $0.append(String(decoding: bytes[(i + 5)..<(i + 7)], as: UTF8.self)) }
        }
    }

    @Test("a datagram over the decoder's 2 048 bytes is dropped, not read truncated (it may start with a query)")
    func oversizedDatagram() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let service = try await DHTService.start(
            group: group, bindHost: "127.0.0.1", port: 0, routers: [], knownNodes: [])
        let collector = Collector()
        let client = try await DatagramBootstrap(group: group)
            .channelInitializer { ch in
                ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(collector) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let node = try SocketAddress(ipAddress: "127.0.0.1", port: service.port)
        func send(_ bytes: [UInt8]) async throws {
            try await client.writeAndFlush(AddressedEnvelope(remoteAddress: node, data: ByteBuffer(bytes: bytes)))
        }
        // A valid 2 048-byte ping followed by 2 000 more bytes, then a valid ping of exactly 2 048 bytes.
        try await send(Self.ping(t: "aa", length: 2048) + [UInt8](repeating: 0, count: 2000))
        try await send(Self.ping(t: "bb", length: 2048))
        let deadline = ContinuousClock.now + .seconds(5)
        while !collector.received.withLock({ $0.contains("bb") }) && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        // Both came from one socket on loopback and are answered in order: an answer to "aa" would be here by now.
        #expect(collector.received.withLock { $0 } == ["bb"])
        try await client.close()
        await service.stop()
        try await group.shutdownGracefully()
    }

    @Test("without --bind the node has an IPv4 and an IPv6 socket on one port, and a routing table for each (BEP 32)")
    func dualStack() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let both = try await DHTService.start(group: group, bindHost: nil, port: 0, routers: [], knownNodes: [])
        let v4 = try await DHTService.start(group: group, bindHost: "127.0.0.1", port: 0, routers: [], knownNodes: [])
        let v6 = try await DHTService.start(group: group, bindHost: "::1", port: 0, routers: [], knownNodes: [])
        #expect(both.families == [.ipv4, .ipv6] && v4.families == [.ipv4] && v6.families == [.ipv6])
        for (asker, target) in [(both, "127.0.0.1:\(v4.port)"), (both, "[::1]:\(v6.port)"),
            (v4, "127.0.0.1:\(both.port)"), (v6, "[::1]:\(both.port)")]
        {
            let outcome = try await asker.run(.ping(try #require(DHTEndpoint(text: target))), joinFirst: false)
            guard case .pong = outcome else {
                Issue.record("\(target) did not answer: \(outcome)")
                continue
            }
        }
        let stats = try #require(await both.stats())
        #expect(stats.ipv4Nodes == 1 && stats.ipv6Nodes == 1, "\(stats)")
        for service in [both, v4, v6] { await service.stop() }
        try await group.shutdownGracefully()
    }

    @Test("a read-only node (BEP 43, --dht-read-only) asks and is answered, answers nobody, and stays out of tables")
    func readOnly() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let normal = try await DHTService.start(group: group, bindHost: "127.0.0.1", port: 0, routers: [], knownNodes: [])
        let quiet = try await DHTService.start(group: group, bindHost: "127.0.0.1", port: 0, routers: [], knownNodes: [],
            policy: .init(readOnly: true))
        let asked = try await quiet.run(.ping(try #require(DHTEndpoint(text: "127.0.0.1:\(normal.port)"))), joinFirst: false)
        guard case .pong = asked else {
            Issue.record("the read-only node was not answered: \(asked)")
            return
        }
        let back = try await normal.run(.ping(try #require(DHTEndpoint(text: "127.0.0.1:\(quiet.port)"))), joinFirst: false)
        #expect(back == .failed(.timedOut), "a read-only node answers nothing")
        #expect(try #require(await normal.stats()).ipv4Nodes == 0, "nor does it enter the other's table")
        #expect(try #require(await quiet.stats()).ipv4Nodes == 1, "it keeps the nodes it asked")
        for service in [normal, quiet] { await service.stop() }
        try await group.shutdownGracefully()
    }
}
