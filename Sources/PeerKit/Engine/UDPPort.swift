import NIOCore
import NIOPosix
import Synchronization
import UTP

/// The node's UDP socket of one address family, on the same port as its TCP listener: uTP connections (its
/// `UTPSocket`, first in the pipeline) and, behind them, every other datagram for whoever shares the port (the
/// DHT). A datagram is told apart by its first bytes (`UTPPacket.looksLikeUTP`), as libtorrent does, so peers
/// reach the node's uTP, DHT and TCP on the one port they learn from trackers and the DHT.
final class UDPPort: Sendable {
    let channel: any Channel
    let utp: UTPSocket
    private let others: OtherDatagrams

    private init(channel: any Channel, utp: UTPSocket, others: OtherDatagrams) {
        (self.channel, self.utp, self.others) = (channel, utp, others)
    }

    /// The largest datagram read whole, and one byte more: a datagram that fills the buffer was cut short, and
    /// is dropped (uTP has no length field to tell). Room for a uTP packet from a jumbo-frame link (9 000 less
    /// the IPv4 and UDP headers). A DHT message may be 2 048 bytes; its decoder refuses longer ones itself.
    static let readCapacity = 8_973

    /// Binds `host:port` on `loop`. Incoming uTP connections go to `accept`, which sets up their pipeline.
    static func open(on loop: any EventLoop, host: String, port: Int, ipv6Only: Bool = false,
        configuration: UTPEndpoint<SocketAddress>.Configuration = .init(),
        accept: @escaping @Sendable (any Channel) -> EventLoopFuture<Void>) async throws -> UDPPort
    {
        let utp = UTPSocket(on: loop, configuration: configuration, accept: accept)
        let others = OtherDatagrams()
        var bootstrap = DatagramBootstrap(group: loop)
            .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: Self.readCapacity))
            // Room for bursts: a uTP window of a few megabytes arrives faster than one loop turn drains it.
            .channelOption(.socketOption(.so_rcvbuf), value: 4 << 20)
            .channelOption(.socketOption(.so_sndbuf), value: 4 << 20)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(utp)
                    try channel.pipeline.syncOperations.addHandler(others)
                }
            }
        if ipv6Only { bootstrap = bootstrap.channelOption(.ipv6Only, value: 1) }
        let channel = try await bootstrap.bind(host: host, port: port).get()
        return UDPPort(channel: channel, utp: utp, others: others)
    }

    /// Where the datagrams that are not uTP go from now on (nil: dropped).
    func deliverOthers(to sink: (@Sendable ([UInt8], SocketAddress) -> Void)?) {
        self.others.sink.withLock { $0 = sink }
    }

    var localAddress: SocketAddress? { self.channel.localAddress }

    func close() async { try? await self.channel.close() }

    /// The end of the pipeline: hands what uTP passed on to the sink.
    private final class OtherDatagrams: ChannelInboundHandler, Sendable {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        let sink = Mutex<(@Sendable ([UInt8], SocketAddress) -> Void)?>(nil)

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let envelope = Self.unwrapInboundIn(data)
            guard let sink = self.sink.withLock({ $0 }) else { return }
            sink(Array(envelope.data.readableBytesView), envelope.remoteAddress)
        }
    }
}
