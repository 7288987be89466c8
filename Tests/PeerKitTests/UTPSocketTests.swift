import NIOCore
import NIOPosix
import PeerBase
import Synchronization
import Testing
import UTP

@testable import PeerKit

@Suite("UTPSocket: uTP connections as NIO channels over UDP")
struct UTPSocketTests {
    /// Collects what a stream channel reads, and whether it went inactive.
    final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let bytes = Mutex<[UInt8]>([])
        let inactive = Mutex(false)
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = Self.unwrapInboundIn(data)
            self.bytes.withLock { $0 += buffer.readableBytesView }
        }
        func channelInactive(context: ChannelHandlerContext) {
            self.inactive.withLock { $0 = true }
            context.fireChannelInactive()
        }
    }

    static func udp(_ group: any EventLoopGroup, accept: @escaping @Sendable (any Channel) -> EventLoopFuture<Void>)
        async throws -> (any Channel, UTPSocket)
    {
        let loop = group.next()
        let socket = UTPSocket(on: loop, accept: accept)
        let channel = try await DatagramBootstrap(group: loop)
            .channelInitializer { ch in ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(socket) } }
            .bind(host: "127.0.0.1", port: 0).get()
        return (channel, socket)
    }

    static func wait(_ what: String, timeout: Duration = .seconds(20), _ check: () -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while !check() {
            guard ContinuousClock.now < deadline else {
                Issue.record("timed out waiting for \(what)")
                return
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    @Test("a connection each way over loopback UDP: every byte through the channels' pipelines, and close reaches the other side")
    func transfer() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let server = Collector()
        let up = SeededGenerator.bytes(3_000_000, seed: 1)
        let down = SeededGenerator.bytes(700_001, seed: 2)
        let (bChannel, bSocket) = try await Self.udp(group) { stream in
            stream.eventLoop.makeCompletedFuture {
                try stream.pipeline.syncOperations.addHandler(server)
                stream.writeAndFlush(ByteBuffer(bytes: down), promise: nil)
            }
        }
        let (aChannel, aSocket) = try await Self.udp(group) { stream in stream.close() }
        let client = Collector()
        let stream = try await aSocket.connect(to: bChannel.localAddress!) { stream in
            stream.eventLoop.makeCompletedFuture { try stream.pipeline.syncOperations.addHandler(client) }
        }.get()
        #expect(stream.isActive && stream.remoteAddress == bChannel.localAddress)
        // Written in pieces, as a peer wire writes messages.
        for start in stride(from: 0, to: up.count, by: 16_397) {
            stream.write(ByteBuffer(bytes: up[start..<min(up.count, start + 16_397)]), promise: nil)
        }
        stream.flush()
        try await Self.wait("both directions") { server.bytes.withLock { $0.count } == up.count && client.bytes.withLock { $0.count } == down.count }
        let got = (server.bytes.withLock { $0.count }, client.bytes.withLock { $0.count })
        print("utp test: server has \(got.0) of \(up.count), client \(got.1) of \(down.count)")
        if got != (up.count, down.count) {
            print("a: \(try await aChannel.eventLoop.submit { aSocket.summaries }.get())")
            print("b: \(try await bChannel.eventLoop.submit { bSocket.summaries }.get())")
        }
        #expect(got == (up.count, down.count))
        #expect(server.bytes.withLock { $0 == up }, "the bytes a sent")
        #expect(client.bytes.withLock { $0 == down }, "the bytes b sent")
        try await stream.close()
        try await Self.wait("the server's side to end") { server.inactive.withLock { $0 } }
        try await Self.wait("both sockets to let go") {
            (try? aChannel.eventLoop.submit { aSocket.count }.wait()) == 0
                && (try? bChannel.eventLoop.submit { bSocket.count }.wait()) == 0
        }
        try await aChannel.close()
        try await bChannel.close()
        try await group.shutdownGracefully()
    }

    @Test("a connect to a port where nobody answers fails, and a datagram that is not uTP goes on down the pipeline")
    func noAnswer() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var configuration = UTPEndpoint<SocketAddress>.Configuration()
        configuration.connection.connectTimeout = .milliseconds(100)
        let loop = group.next()
        let socket = UTPSocket(on: loop, configuration: configuration) { $0.close() }
        let other = Collector()
        let channel = try await DatagramBootstrap(group: loop)
            .channelInitializer { ch in
                ch.eventLoop.makeCompletedFuture {
                    try ch.pipeline.syncOperations.addHandler(socket)
                    try ch.pipeline.syncOperations.addHandler(OtherDatagrams(collector: other))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let silent = try await DatagramBootstrap(group: loop).bind(host: "127.0.0.1", port: 0).get()
        await #expect(throws: (any Error).self) {
            _ = try await socket.connect(to: silent.localAddress!) { $0.eventLoop.makeSucceededVoidFuture() }.get()
        }
        try await silent.writeAndFlush(AddressedEnvelope(remoteAddress: channel.localAddress!,
            data: ByteBuffer(string: "d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe")))
        try await Self.wait("the DHT's datagram passed on") { other.bytes.withLock { $0.count } > 0 }
        try await silent.close()
        try await channel.close()
        try await group.shutdownGracefully()
    }

    final class OtherDatagrams: ChannelInboundHandler, Sendable {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        let collector: Collector
        init(collector: Collector) { self.collector = collector }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let envelope = Self.unwrapInboundIn(data)
            self.collector.bytes.withLock { $0 += envelope.data.readableBytesView }
        }
    }
}
