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
    func announceRequest(event: AnnounceRequest.Event) -> AnnounceRequest?
    func log(_ line: String)
    func stop() -> EventLoopFuture<Void>
}

extension TorrentEngine: PeerHost {}
