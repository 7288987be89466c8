#if canImport(Glibc)
import Glibc
#endif
import AsyncHTTPClient
import NIOCore
import NIOPosix
import PeerBase
import Tracker

/// One tracker endpoint as the announcer and `peer scrape` see it: an announce or a scrape in, a parsed
/// answer out. Results complete on the transport's event loop. The URL, the bytes and the parsing are the
/// Tracker core's; a transport only moves bytes.
protocol TrackerTransport: AnyObject, Sendable {
    var url: String { get }
    /// Announces; fails with the tracker's failure reason, a transport error or a timeout.
    func announce(_ request: AnnounceRequest, timeout: Duration) -> EventLoopFuture<AnnounceResponse>
    /// Asks for the swarm counts of 1 to 74 torrents (20-byte info-hashes).
    func scrape(_ infoHashes: [[UInt8]], timeout: Duration) -> EventLoopFuture<ScrapeResponse>
    /// Releases the socket, if any; requests still in flight fail.
    func close()
}

/// Why a tracker could not be asked at all.
struct TrackerTransportError: Error, CustomStringConvertible, Equatable {
    var description: String
    init(_ description: String) { self.description = description }
}

enum TrackerTransports {
    /// True for the URLs a transport exists for: udp://, http:// and https://.
    static func supports(_ url: String) -> Bool {
        HTTPTrackerTransport.handles(url) || UDPTrackerTransport.endpoint(url) != nil
    }

    /// A transport for `url` whose results complete on `eventLoop`, or nil for an unsupported URL.
    static func make(url: String, eventLoop: any EventLoop, client: HTTPClient, bindHost: String?)
        -> (any TrackerTransport)?
    {
        if HTTPTrackerTransport.handles(url) { return HTTPTrackerTransport(url: url, client: client, eventLoop: eventLoop) }
        if UDPTrackerTransport.endpoint(url) != nil {
            return UDPTrackerTransport(url: url, eventLoop: eventLoop, bindHost: bindHost)
        }
        return nil
    }
}

extension EventLoopFuture where Value: Sendable {
    /// This future, or a failure with `error` when it has not completed after `timeout`. (A promise keeps its
    /// first result; the later completion is ignored.)
    func failing(after timeout: Duration, with error: @escaping @Sendable () -> any Error) -> EventLoopFuture<Value> {
        let promise = self.eventLoop.makePromise(of: Value.self)
        let timer = self.eventLoop.scheduleTask(in: PeerHTTP.timeAmount(timeout)) { promise.fail(error()) }
        self.whenComplete { result in
            timer.cancel()
            promise.completeWith(result)
        }
        return promise.futureResult
    }
}

/// An HTTP or HTTPS tracker (BEP 3 announce, BEP 48 scrape) through the node's shared `HTTPClient`; bodies
/// are bounded by `TrackerLimits.maxBodyLength` before they are buffered.
///
/// Every request says `Connection: close`, as libtorrent's do: announces are minutes apart, so a kept
/// connection saves nothing, and trackers such as opentracker answer HTTP/1.1 without `Connection: close`
/// and then hang up; a pooled connection could be picked for the next announce just as it closes.
final class HTTPTrackerTransport: TrackerTransport {
    let url: String
    private let client: HTTPClient
    private let eventLoop: any EventLoop

    init(url: String, client: HTTPClient, eventLoop: any EventLoop) {
        self.url = url
        self.client = client
        self.eventLoop = eventLoop
    }

    /// True for http:// and https:// URLs.
    static func handles(_ url: String) -> Bool {
        let lower = url.lowercased()
        return lower.hasPrefix("http://") || lower.hasPrefix("https://")
    }

    func announce(_ request: AnnounceRequest, timeout: Duration) -> EventLoopFuture<AnnounceResponse> {
        let target = HTTPTracker.announceURL(base: self.url, request: request)
        return self.get(target, timeout: timeout).flatMapThrowing { try AnnounceResponse(httpBody: $0) }
    }

    func scrape(_ infoHashes: [[UInt8]], timeout: Duration) -> EventLoopFuture<ScrapeResponse> {
        guard let target = HTTPTracker.scrapeURL(announce: self.url, infoHashes: infoHashes) else {
            return self.eventLoop.makeFailedFuture(TrackerTransportError(
                "no scrape URL: the last path component does not start with \"announce\" (BEP 48)"))
        }
        return self.get(target, timeout: timeout).flatMapThrowing { try ScrapeResponse(httpBody: $0) }
    }

    /// One bounded GET on a connection of its own.
    private func get(_ url: String, timeout: Duration) -> EventLoopFuture<[UInt8]> {
        let client = self.client
        return self.eventLoop.makeFutureWithTask {
            try await PeerHTTP.get(client, url: url, headers: [("Connection", "close")],
                limit: TrackerLimits.maxBodyLength, timeout: timeout).body
        }
    }

    func close() {}
}

/// A UDP tracker (BEP 15). `UDPTrackerSession` holds the protocol; this owns one datagram socket, connected
/// to the tracker so that a closed port is reported at once (ICMP port unreachable), and the session's
/// timer. Confined to its event loop.
///
/// Retransmissions are quicker than BEP 15's 15 × 2ⁿ s: 5, 10 and 20 s, so a silent tracker is given up
/// after 35 s and the next tracker of its tier is asked (BEP 12).
final class UDPTrackerTransport: TrackerTransport, @unchecked Sendable {
    let url: String
    private let eventLoop: any EventLoop
    private let bindHost: String?
    private var session: UDPTrackerSession?
    private var channel: (any Channel)?
    private var opening: EventLoopFuture<any Channel>?
    private var pending: [(command: UDPTrackerSession.Command, promise: EventLoopPromise<UDPTrackerSession.Event>)] = []
    private var timer: Scheduled<Void>?
    private var closed = false
    private let epoch = ContinuousClock.now

    static let sessionConfiguration = UDPTrackerSession.Configuration(baseTimeout: .seconds(5), maxRetransmissions: 2)

    init(url: String, eventLoop: any EventLoop, bindHost: String?) {
        self.url = url
        self.eventLoop = eventLoop
        self.bindHost = bindHost
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

    func announce(_ request: AnnounceRequest, timeout: Duration) -> EventLoopFuture<AnnounceResponse> {
        self.run(.announce(request), timeout: timeout).flatMapThrowing { event in
            guard case .announced(_, let response) = event else { throw TrackerTransportError("unexpected answer") }
            return response
        }
    }

    func scrape(_ infoHashes: [[UInt8]], timeout: Duration) -> EventLoopFuture<ScrapeResponse> {
        guard !infoHashes.isEmpty, infoHashes.count <= TrackerLimits.maxUDPScrapeHashes else {
            return self.eventLoop.makeFailedFuture(TrackerTransportError(
                "a UDP scrape asks about 1 to \(TrackerLimits.maxUDPScrapeHashes) torrents"))
        }
        return self.run(.scrape(infoHashes), timeout: timeout).flatMapThrowing { event in
            guard case .scraped(let response) = event else { throw TrackerTransportError("unexpected answer") }
            return response
        }
    }

    func close() {
        self.eventLoop.execute {
            self.closed = true
            self.timer?.cancel()
            self.fail(all: TrackerTransportError("closed"))
            self.channel?.close(promise: nil)
            self.channel = nil
        }
    }

    private func run(_ command: UDPTrackerSession.Command, timeout: Duration) -> EventLoopFuture<UDPTrackerSession.Event> {
        let promise = self.eventLoop.makePromise(of: UDPTrackerSession.Event.self)
        self.eventLoop.execute {
            guard !self.closed else {
                promise.fail(TrackerTransportError("closed"))
                return
            }
            self.pending.append((command, promise))
            self.open().whenComplete { result in
                switch result {
                case .success:
                    guard self.pending.contains(where: { $0.promise.futureResult === promise.futureResult }) else { return }
                    self.session!.handle(command, at: self.now)
                    self.pump()
                case .failure(let error):
                    self.fail(all: error)
                }
            }
        }
        return promise.futureResult.failing(after: timeout) { HTTPFetchError.timedOut(timeout) }
    }

    /// The socket, opened on first use: bound to `bindHost`, connected to the tracker.
    private func open() -> EventLoopFuture<any Channel> {
        if let channel = self.channel { return self.eventLoop.makeSucceededFuture(channel) }
        if let opening = self.opening { return opening }
        guard let (host, port) = Self.endpoint(self.url) else {
            return self.eventLoop.makeFailedFuture(TrackerTransportError("not a UDP tracker URL"))
        }
        let resolved: SocketAddress
        do { resolved = try SocketAddress.makeAddressResolvingHost(host, port: port) } catch {
            return self.eventLoop.makeFailedFuture(TrackerTransportError("cannot resolve \(host)"))
        }
        var rng = SystemRandomNumberGenerator()
        self.session = UDPTrackerSession(addressFamily: resolved.protocol == .inet6 ? .ipv6 : .ipv4,
            configuration: Self.sessionConfiguration, using: &rng)
        let local = self.bindHost ?? (resolved.protocol == .inet6 ? "::" : "0.0.0.0")
        let future = DatagramBootstrap(group: self.eventLoop)
            // NIO's default 2 048-byte read buffer would cut a long answer (IPv6 peers are 18 bytes each) silently.
            .channelOption(.recvAllocator,
                value: FixedSizeRecvByteBufferAllocator(capacity: TrackerLimits.maxDatagramLength + 1))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(UDPTrackerHandler(transport: self))
                }
            }
            .bind(host: local, port: 0)
            .flatMap { channel in
                channel.connect(to: resolved).map { channel }
            }
        self.opening = future
        future.whenComplete { result in
            self.opening = nil
            if case .success(let channel) = result {
                if self.closed {
                    channel.close(promise: nil)
                } else {
                    self.channel = channel
                }
            }
        }
        return future
    }

    fileprivate func received(_ bytes: ByteBuffer) {
        self.session?.receive(bytes, at: self.now)
        self.pump()
    }

    /// A socket error: ECONNREFUSED when nothing listens on the tracker's port. Every request fails now, and
    /// the next one starts a new session.
    fileprivate func socketError(_ error: any Error) {
        let text: String
        if let io = error as? IOError, io.errnoCode == ECONNREFUSED {
            text = "connection refused (nothing listens on the tracker's UDP port)"
        } else {
            text = "\(error)"
        }
        self.fail(all: TrackerTransportError(text))
    }

    private func fail(all error: any Error) {
        let failed = self.pending
        self.pending.removeAll()
        self.timer?.cancel()
        self.timer = nil
        if let session = self.session {
            self.session = UDPTrackerSession(addressFamily: session.addressFamily, configuration: session.configuration,
                seed: UInt64.random(in: 0...UInt64.max))
        }
        for p in failed { p.promise.fail(error) }
    }

    private func pump() {
        guard var session = self.session else { return }
        defer { self.session = session }
        if let channel = self.channel, let remote = channel.remoteAddress {
            while let datagram = session.pollTransmit() {
                channel.writeAndFlush(AddressedEnvelope(remoteAddress: remote, data: ByteBuffer(bytes: datagram)),
                    promise: nil)
            }
        }
        while let event = session.pollEvent() {
            let index: Int?
            switch event {
            case .announced(let request, _):
                index = self.pending.firstIndex { $0.command == .announce(request) }
            case .scraped:
                index = self.pending.firstIndex { if case .scrape = $0.command { true } else { false } }
            case .failed(let command, _):
                index = self.pending.firstIndex { $0.command == command }
            }
            guard let i = index else { continue }
            let p = self.pending.remove(at: i)
            if case .failed(_, let error) = event { p.promise.fail(error) } else { p.promise.succeed(event) }
        }
        self.timer?.cancel()
        self.timer = nil
        if let deadline = session.nextTimeout {
            self.timer = self.eventLoop.scheduleTask(in: PeerHTTP.timeAmount(max(.zero, deadline - self.now))) {
                self.session?.handleTimeout(at: self.now)
                self.pump()
            }
        }
    }
}

private final class UDPTrackerHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    let transport: UDPTrackerTransport
    init(transport: UDPTrackerTransport) { self.transport = transport }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.transport.received(self.unwrapInboundIn(data).data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.transport.socketError(error)
    }
}
