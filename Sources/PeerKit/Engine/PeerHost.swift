import NIOCore
import PeerWire
import Tracker

/// What the node needs of anything that takes peer connections for an info-hash: a torrent's engine, or a
/// magnet link's metadata fetcher. Every method runs on `eventLoop`.
protocol PeerHost: AnyObject, Sendable {
    var eventLoop: any EventLoop { get }
    /// The 20-byte hashes peers may name in their handshake.
    var handshakeHashes: [[UInt8]] { get }
    func attach(_ channel: any Channel, role: PeerWireSession.Role)
    func key(of channel: any Channel) -> Int
    func received(_ key: Int, _ bytes: ByteBuffer)
    func disconnected(_ key: Int)
    /// The channel's writability changed (backpressure from a slow reader).
    func writabilityChanged(_ key: Int)
    func announceRequest(event: AnnounceRequest.Event) -> AnnounceRequest?
    func log(_ line: String)
    func stop() -> EventLoopFuture<Void>
}

extension TorrentEngine: PeerHost {}

/// Bridges one channel to its host: bytes in, close out.
final class PeerChannelHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    let host: any PeerHost
    let key: Int

    init(host: any PeerHost, key: Int) {
        self.host = host
        self.key = key
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.host.received(self.key, self.unwrapInboundIn(data))
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { self.host.writabilityChanged(self.key) }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.host.disconnected(self.key)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
