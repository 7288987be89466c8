#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import PeerBase
import UTP

/// Runs the sans-I/O `UTPEndpoint` on a UDP channel: the driver of uTP (BEP 29), holding no protocol logic.
///
/// A handler in the UDP channel's pipeline. Datagrams that `UTPPacket.looksLikeUTP` accepts go to the endpoint;
/// every other one goes on down the pipeline (the DHT's and the UDP trackers' handlers share the socket, as in
/// libtorrent). Each connection is a `UTPStreamChannel`: incoming ones are handed to `accept` (which sets up their
/// pipeline, as a TCP server's child initializer does), outgoing ones come from `connect(to:initializer:)`.
/// Confined to the UDP channel's event loop.
final class UTPSocket: ChannelDuplexHandler, @unchecked Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias InboundOut = AddressedEnvelope<ByteBuffer>
    typealias OutboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>
    typealias Key = UTPEndpoint<SocketAddress>.ConnectionKey

    private var endpoint: UTPEndpoint<SocketAddress>
    private var streams: [Key: UTPStreamChannel] = [:]
    private var connecting: [Key: EventLoopPromise<any Channel>] = [:]
    private let accept: @Sendable (any Channel) -> EventLoopFuture<Void>
    let eventLoop: any EventLoop
    private var context: ChannelHandlerContext?
    private var timer: Scheduled<Void>?
    private var timerAt: Instant?
    private let epoch = NIODeadline.now()
    private var unflushed = false

    /// - Parameters:
    ///   - eventLoop: the UDP channel's.
    ///   - accept: sets up an incoming connection's pipeline; the connection is dropped if it fails.
    init(on eventLoop: any EventLoop, configuration: UTPEndpoint<SocketAddress>.Configuration = .init(),
        accept: @escaping @Sendable (any Channel) -> EventLoopFuture<Void>)
    {
        self.eventLoop = eventLoop
        self.endpoint = UTPEndpoint(configuration: configuration, seed: UInt64.random(in: .min ... .max), at: .zero)
        self.accept = accept
    }

    private var now: Instant { Instant(offset: .nanoseconds((NIODeadline.now() - self.epoch).nanoseconds)) }

    /// Connections held.
    var count: Int { self.endpoint.count }
    /// Their summaries (on the event loop).
    var summaries: [String] { self.endpoint.summaries + ["timer at \(self.timerAt.map { "\($0)" } ?? "-"), now \(self.now)"] }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.timer?.cancel()
        self.context = nil
        // The UDP socket is closing: its connections end with it, quietly, as a closing node's would.
        for stream in self.streams.values { stream.ended(.local) }
        for promise in self.connecting.values { promise.fail(ChannelError.ioOnClosedChannel) }
        self.connecting.removeAll()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = self.unwrapInboundIn(data)
        guard UTPPacket.looksLikeUTP(envelope.data.readableBytesView) else {
            context.fireChannelRead(data)
            return
        }
        // Cut short by the read (see `UDPPort.readCapacity`): its payload would be taken for a shorter one.
        guard envelope.data.readableBytes < UDPPort.readCapacity else { return }
        self.endpoint.receive(Array(envelope.data.readableBytesView), from: envelope.remoteAddress, at: self.now)
        self.pump()
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.flush()
        context.fireChannelReadComplete()
    }

    /// Opens a uTP connection to `address`; `initializer` sets up its pipeline before it is active. The future
    /// succeeds once the other side answers (its channel is then active), and fails if it does not.
    func connect(to address: SocketAddress, initializer: @escaping @Sendable (any Channel) -> EventLoopFuture<Void>)
        -> EventLoopFuture<any Channel>
    {
        let promise = self.eventLoop.makePromise(of: (any Channel).self)
        self.eventLoop.execute {
            guard let context = self.context else { return promise.fail(ChannelError.ioOnClosedChannel) }
            let key = self.endpoint.connect(to: address, at: self.now)
            let stream = UTPStreamChannel(socket: self, key: key, parent: context.channel)
            self.streams[key] = stream
            self.endpoint.handle(.pathLimit(Self.pathLimit(to: address)), for: key, at: self.now)
            self.connecting[key] = promise
            initializer(stream).whenFailure { error in
                self.connecting.removeValue(forKey: key)?.fail(error)
                stream.close(promise: nil)
            }
            self.pump()
            self.flush()
        }
        return promise.futureResult
    }

    // MARK: from the streams

    func write(_ buffer: ByteBuffer, for key: Key) {
        self.endpoint.handle(.write(Array(buffer.readableBytesView)), for: key, at: self.now)
        self.pump()
    }

    func consumed(_ count: Int, for key: Key) {
        self.endpoint.handle(.consumed(count), for: key, at: self.now)
        self.pump()
    }

    func close(_ key: Key) {
        self.endpoint.handle(.close, for: key, at: self.now)
        self.pump()
        self.flush()
    }

    func isWritable(_ key: Key) -> Bool { self.endpoint.connection(key)?.isWritable ?? false }

    /// The stream is gone from the pipeline's side: its events are not delivered any more.
    func forget(_ key: Key) {
        self.streams[key] = nil
        self.connecting.removeValue(forKey: key)?.fail(ChannelError.ioOnClosedChannel)
    }

    /// Sends the datagrams written since the last flush.
    func flush() {
        guard self.unflushed, let context = self.context else { return }
        self.unflushed = false
        context.flush()
    }

    // MARK: driving the endpoint

    /// Carries out what the endpoint asks: datagrams out, events to the streams, the timer.
    private func pump() {
        guard let context = self.context else { return }
        while let (address, bytes) = self.endpoint.pollTransmit() {
            var buffer = context.channel.allocator.buffer(capacity: bytes.count)
            buffer.writeBytes(bytes)
            context.write(self.wrapOutboundOut(AddressedEnvelope(remoteAddress: address, data: buffer)), promise: nil)
            self.unflushed = true
        }
        while let event = self.endpoint.pollEvent() {
            switch event {
            case .accepted(let key):
                let stream = UTPStreamChannel(socket: self, key: key, parent: context.channel)
                self.streams[key] = stream
                self.endpoint.handle(.pathLimit(Self.pathLimit(to: key.address)), for: key, at: self.now)
                self.accept(stream).whenFailure { _ in stream.close(promise: nil) }
            case .connection(let key, let e):
                self.deliver(e, to: key)
            }
        }
        self.arm(context)
    }

    private func deliver(_ event: UTPConnection.Event, to key: Key) {
        guard let stream = self.streams[key] else { return }
        switch event {
        case .connected:
            stream.activate()
            self.connecting.removeValue(forKey: key)?.succeed(stream)
        case .data(let bytes): stream.received(bytes)
        case .writable: stream.becameWritable()
        case .packetSize(let size): stream.packetSize.store(size, ordering: .relaxed)
        case .closed(let reason):
            self.streams[key] = nil
            if let promise = self.connecting.removeValue(forKey: key) {
                promise.fail(reason == .timedOut ? ChannelError.connectTimeout(.seconds(0)) : ChannelError.eof)
            }
            stream.ended(reason)
        }
    }

    /// The largest datagram a probe may try: Ethernet's MTU less the IPv4 and UDP headers, whatever the route.
    /// A receiver reads a datagram into a buffer of its own and a longer one is cut short without a word, which
    /// uTP cannot tell (it has no length field): libtorrent took a 2 346-byte probe over loopback as a packet with
    /// a shorter payload, and the stream it fed was corrupt. So packets grow past this only towards a peer known
    /// to read them whole, which the wire does not say yet.
    static let largestDatagram = 1_472

    /// The largest datagram a probe may try towards `address`: the MTU of the kernel's route to it (which knows
    /// the interface and any path MTU an ICMP message taught it) less the IP and UDP headers, at most
    /// `largestDatagram`; under 1 400 on a tunnel or PPPoE route, which packets then shrink to.
    static func pathLimit(to address: SocketAddress) -> Int {
        let ipv6 = address.protocol == .inet6
        let headers = ipv6 ? 48 : 28
        let mtu = address.withSockAddr { sockaddr, length -> Int? in
            let fd = Glibc.socket(ipv6 ? AF_INET6 : AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            guard fd >= 0 else { return nil }
            defer { Glibc.close(fd) }
            // A UDP connect sends nothing: it only looks up the route.
            guard Glibc.connect(fd, sockaddr, socklen_t(length)) == 0 else { return nil }
            var value: Int32 = 0
            var size = socklen_t(MemoryLayout<Int32>.size)
            // IP_MTU (14) and IPV6_MTU (24) from <linux/in.h> and <linux/in6.h>: Glibc's module does not export them.
            let ok = ipv6
                ? getsockopt(fd, Int32(IPPROTO_IPV6), 24, &value, &size)
                : getsockopt(fd, Int32(IPPROTO_IP), 14, &value, &size)
            return ok == 0 && value > 0 ? Int(value) : nil
        }
        return min((mtu ?? 1_500) - headers, Self.largestDatagram)
    }

    private func arm(_ context: ChannelHandlerContext) {
        guard let next = self.endpoint.nextTimeout else {
            self.timer?.cancel()
            self.timer = nil
            self.timerAt = nil
            return
        }
        guard next != self.timerAt else { return }
        self.timer?.cancel()
        self.timerAt = next
        let delay = max(.zero, next - self.now)
        self.timer = context.eventLoop.scheduleTask(in: .nanoseconds(Int64(delay.seconds * 1e9))) {
            self.timerAt = nil
            self.endpoint.handleTimeout(at: self.now)
            self.pump()
            self.flush()
        }
    }
}
