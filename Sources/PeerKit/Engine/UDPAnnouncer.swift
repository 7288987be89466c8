import NIOCore
import NIOPosix
import PeerBase
import Tracker

/// Announces one torrent to one UDP tracker (BEP 15) and hands the peers it returns to the node.
///
/// A thin driver: `UDPTrackerSession` holds the protocol; this owns the datagram channel and the timers, on
/// the torrent's event loop.
final class UDPAnnouncer: @unchecked Sendable {
    let url: String
    private let engine: any PeerHost
    private let onPeers: @Sendable ([PeerAddress]) -> Void
    private var session: UDPTrackerSession
    private var channel: (any Channel)?
    private var tracker: SocketAddress?
    private var timer: Scheduled<Void>?
    private var reannounce: Scheduled<Void>?
    private var started = false
    private let epoch = ContinuousClock.now

    init(url: String, engine: any PeerHost, onPeers: @escaping @Sendable ([PeerAddress]) -> Void) {
        self.url = url
        self.engine = engine
        self.onPeers = onPeers
        var rng = SystemRandomNumberGenerator()
        self.session = UDPTrackerSession(addressFamily: .ipv4, using: &rng)
    }

    /// `udp://host:port[/path]` -> (host, port).
    static func endpoint(_ url: String) -> (String, Int)? {
        guard url.lowercased().hasPrefix("udp://") else { return nil }
        var rest = url.dropFirst("udp://".count)
        if let slash = rest.firstIndex(of: "/") { rest = rest[..<slash] }
        guard let colon = rest.lastIndex(of: ":"), let port = Int(rest[rest.index(after: colon)...]),
            (1...65535).contains(port)
        else { return nil }
        var host = String(rest[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return host.isEmpty ? nil : (host, port)
    }

    private var now: Instant { Instant(offset: ContinuousClock.now - self.epoch) }

    /// Opens the socket and sends `started`.
    func start(bindHost: String?) -> EventLoopFuture<Void> {
        let loop = self.engine.eventLoop
        guard let (host, port) = Self.endpoint(self.url) else {
            return loop.makeFailedFuture(CreateError("not a UDP tracker URL: \(self.url)"))
        }
        let resolved: SocketAddress
        do { resolved = try SocketAddress.makeAddressResolvingHost(host, port: port) } catch {
            return loop.makeFailedFuture(error)
        }
        return DatagramBootstrap(group: loop)
            .channelInitializer { channel in
                channel.pipeline.addHandler(DatagramHandler(announcer: self))
            }
            .bind(host: bindHost ?? "0.0.0.0", port: 0)
            .map { channel in
                self.channel = channel
                self.tracker = resolved
                self.announce(.started)
            }
    }

    func announce(_ event: AnnounceRequest.Event) {
        self.engine.eventLoop.preconditionInEventLoop()
        guard let request = self.engine.announceRequest(event: event) else { return }
        self.session.handle(.announce(request), at: self.now)
        self.pump()
    }

    func stop() {
        self.timer?.cancel()
        self.reannounce?.cancel()
        self.announce(.stopped)
        let channel = self.channel
        _ = self.engine.eventLoop.scheduleTask(in: .milliseconds(200)) { channel?.close(promise: nil) }
    }

    fileprivate func received(_ bytes: ByteBuffer) {
        self.session.receive(bytes, at: self.now)
        self.pump()
    }

    private func pump() {
        if let channel = self.channel, let tracker = self.tracker {
            while let datagram = self.session.pollTransmit() {
                channel.writeAndFlush(AddressedEnvelope(remoteAddress: tracker, data: ByteBuffer(bytes: datagram)),
                    promise: nil)
            }
        }
        while let event = self.session.pollEvent() {
            switch event {
            case .announced(let request, let response):
                if request.event != .stopped { self.onPeers(response.peers) }
                let interval = max(response.interval ?? .seconds(1800), .seconds(60))
                self.reannounce?.cancel()
                self.reannounce = self.engine.eventLoop.scheduleTask(in: .seconds(interval.components.seconds)) {
                    self.announce(.none)
                }
            case .failed(_, let error):
                self.engine.log("tracker \(self.url): \(error)")
            case .scraped:
                break
            }
        }
        self.timer?.cancel()
        if let deadline = self.session.nextTimeout {
            let delay = deadline - self.now
            let nanos = max(Int64(0), delay.components.seconds * 1_000_000_000 + delay.components.attoseconds / 1_000_000_000)
            self.timer = self.engine.eventLoop.scheduleTask(in: .nanoseconds(nanos)) {
                self.session.handleTimeout(at: self.now)
                self.pump()
            }
        }
    }
}

private final class DatagramHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    let announcer: UDPAnnouncer
    init(announcer: UDPAnnouncer) { self.announcer = announcer }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.announcer.received(self.unwrapInboundIn(data).data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {}
}
