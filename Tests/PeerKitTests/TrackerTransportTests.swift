import NIOCore
import NIOPosix
import Synchronization
import Testing
import Tracker

@testable import PeerKit

/// A tracker that behaves as opentracker does: it answers one request per connection with HTTP/1.1 and no
/// `Connection: close`, then hangs up a little later. Raw bytes, so nothing is tidied on the way.
final class HangUpTracker: Sendable {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    /// Each request's head, in arrival order.
    let requests = Mutex<[String]>([])
    let connections = Mutex(0)
    private let channel: Mutex<(any Channel)?> = Mutex(nil)

    func start() async throws -> Int {
        let channel = try await ServerBootstrap(group: self.group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                self.connections.withLock { $0 += 1 }
                return channel.pipeline.addHandler(HangUpHandler(tracker: self))
            }
            .bind(host: "127.0.0.1", port: 0).get()
        self.channel.withLock { $0 = channel }
        return channel.localAddress!.port!
    }

    func stop() async {
        try? await self.channel.withLock({ $0 })?.close()
        try? await self.group.shutdownGracefully()
    }
}

private final class HangUpHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    let tracker: HangUpTracker
    var received: [UInt8] = []
    var answered = false

    init(tracker: HangUpTracker) { self.tracker = tracker }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.received += self.unwrapInboundIn(data).readableBytesView
        guard !self.answered, let end = self.received.firstRange(of: Array("\r\n\r\n".utf8)) else { return }
        self.answered = true
        self.tracker.requests.withLock { $0.append(String(decoding: self.received[..<end.lowerBound], as: UTF8.self)) }
        let body = Array("d8:intervali1800e5:peers6:".utf8) + [127, 0, 0, 1, 0x1a, 0xe1] + Array("e".utf8)
        let head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: \(body.count)\r\n\r\n"
        context.writeAndFlush(NIOAny(ByteBuffer(bytes: Array(head.utf8) + body)), promise: nil)
        let channel = context.channel
        context.eventLoop.scheduleTask(in: .milliseconds(300)) { channel.close(promise: nil) }
    }
}

@Suite("HTTP tracker transport")
struct HTTPTrackerTransportTests {
    @Test("announces in quick succession each get a connection of their own (a tracker that hangs up after answering)")
    func connectionClose() async throws {
        let tracker = HangUpTracker()
        let port = try await tracker.start()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let client = PeerHTTP.makeClient(group: group, bindHost: "127.0.0.1")
        let transport = HTTPTrackerTransport(url: "http://127.0.0.1:\(port)/announce", client: client,
            eventLoop: group.next())
        let request = AnnounceRequest(infoHash: Array(repeating: 7, count: 20), peerID: Array("-PE0001-abcdefghijkl".utf8),
            port: 6881, uploaded: 0, downloaded: 0, left: 10, event: .started, numWant: nil, key: 1)
        let outcome: Result<Void, any Error>
        do {
            for event in [AnnounceRequest.Event.started, .completed, .stopped] {
                var r = request
                r.event = event
                let response = try await transport.announce(r, timeout: .seconds(5)).get()
                #expect(response.peers.map(\.description) == ["127.0.0.1:6881"])
            }
            outcome = .success(())
        } catch {
            outcome = .failure(error)
        }
        try await client.shutdown()
        try await group.shutdownGracefully()
        await tracker.stop()
        try outcome.get()
        #expect(tracker.connections.withLock { $0 } == 3)
        let heads = tracker.requests.withLock { $0 }
        #expect(heads.count == 3)
        #expect(heads.allSatisfy { $0.lowercased().contains("\r\nconnection: close") }, "\(heads)")
    }
}
