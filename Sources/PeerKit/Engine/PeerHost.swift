import NIOCore
import PeerWire
import Tracker

/// What the node needs of anything that takes peer connections for an info-hash: a torrent's engine, or a
/// magnet link's metadata fetcher. Every method runs on `eventLoop`.
protocol PeerHost: AnyObject, Sendable {
    var eventLoop: any EventLoop { get }
    /// The 20-byte hashes peers may name in their handshake.
    var handshakeHashes: [[UInt8]] { get }
    /// Adopts a connected channel. Without `key` it installs the channel's handler itself (the channel is on the
    /// host's loop); with a key from `reserveKey()` the handler is already in place (an accepted channel on
    /// another loop, whose reads hop to the host's).
    func attach(_ channel: any Channel, role: PeerWireSession.Role, key: Int?)
    /// A key for a channel not attached yet; callable from any thread.
    func reserveKey() -> Int
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
        let bytes = self.unwrapInboundIn(data)
        if self.host.eventLoop.inEventLoop {
            self.host.received(self.key, bytes)
        } else {
            // The channel lives on another loop than its torrent: hand the bytes over, in order.
            let (host, key) = (self.host, self.key)
            host.eventLoop.execute { host.received(key, bytes) }
        }
    }

    /// Runs `body` on the host's loop: now if this is it, else in order after what was handed over before.
    private func onHostLoop(_ body: @escaping @Sendable () -> Void) {
        if self.host.eventLoop.inEventLoop { body() } else { self.host.eventLoop.execute(body) }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            let (host, key) = (self.host, self.key)
            self.onHostLoop { host.writabilityChanged(key) }
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        let (host, key) = (self.host, self.key)
        self.onHostLoop { host.disconnected(key) }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
