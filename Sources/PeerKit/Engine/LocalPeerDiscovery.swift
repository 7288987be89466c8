#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import NIOPosix
import PeerBase
import Synchronization
import Tracker

/// Local service discovery (BEP 14) for a node: one UDP socket on port 6771 in the IPv4 multicast group,
/// announcing the node's torrents when they are added and every 5 minutes, and dialling peers on the local
/// network that announce a torrent the node has. With `--bind ADDR` the group is joined, and announces are
/// sent, on that address's interface only (tests on 127.0.0.x stay on loopback).
final class LocalPeerDiscovery: @unchecked Sendable {
    private struct Entry {
        let host: any PeerHost
        let hashes: [[UInt8]]
        let port: UInt16
    }

    static let interval: TimeAmount = .minutes(5)

    /// Receives on the group's port; `sender` sends from the bound address (peers take the datagram's source
    /// as the announcer's address), or is the same socket without --bind.
    private let channel: any Channel
    private let sender: any Channel
    private let group: SocketAddress
    /// Told to every announce, so that our own announces coming back over the loop are ignored.
    let cookie: String
    private let entries = Mutex<[Entry]>([])
    private var timer: RepeatedTask?

    private init(channel: any Channel, sender: any Channel, group: SocketAddress, cookie: String) {
        self.channel = channel
        self.sender = sender
        self.group = group
        self.cookie = cookie
    }

    /// Opens the socket and joins the group. `onPeer` gets (host, "ip:port") for each matching announce.
    static func start(
        group loops: any EventLoopGroup, bindHost: String?, onPeer: @escaping @Sendable (any PeerHost, String) -> Void
    ) async throws -> LocalPeerDiscovery {
        let cookie = Hex.encode((0..<6).map { _ in UInt8.random(in: .min ... .max) })
        let box = Mutex<LocalPeerDiscovery?>(nil)
        let channel = try await DatagramBootstrap(group: loops)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            // One byte over the announce limit, so that a longer datagram is seen as too long, not cut.
            .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: LocalDiscovery.maxDatagram + 1))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Receiver(cookie: cookie) { announce, source in
                        guard let service = box.withLock({ $0 }) else { return }
                        service.received(announce, from: source, onPeer: onPeer)
                    })
                }
            }
            .bind(host: "0.0.0.0", port: LocalDiscovery.port).get()
        let groupAddress = try SocketAddress(ipAddress: LocalDiscovery.ipv4Group, port: LocalDiscovery.port)
        var sender: any Channel = channel
        do {
            var device: NIONetworkDevice?
            if let bindHost {
                // The interface that holds the address; any 127.x address is loopback's.
                let devices = try NIOCore.System.enumerateDevices().filter { $0.address?.protocol == .inet }
                device = devices.first { $0.address?.ipAddress == bindHost }
                    ?? (bindHost.hasPrefix("127.") ? devices.first { $0.address?.ipAddress?.hasPrefix("127.") == true } : nil)
                sender = try await DatagramBootstrap(group: loops).bind(host: bindHost, port: 0).get()
                if let provider = sender as? any SocketOptionProvider,
                    let address = in_addr(ipv4: device?.address?.ipAddress ?? bindHost)
                {
                    try await provider.setIPMulticastIF(address).get()
                }
            }
            guard let multicast = channel as? any MulticastChannel else { throw ChannelError.operationUnsupported }
            try await multicast.joinGroup(groupAddress, device: device).get()
        } catch {
            try? await channel.close()
            if sender !== channel { try? await sender.close() }
            throw error
        }
        let service = LocalPeerDiscovery(channel: channel, sender: sender, group: groupAddress, cookie: cookie)
        box.withLock { $0 = service }
        service.timer = channel.eventLoop.scheduleRepeatedTask(initialDelay: Self.interval, delay: Self.interval) { _ in
            service.announceAll()
        }
        return service
    }

    /// Announces a torrent now and with every later round.
    func add(_ host: any PeerHost, port: Int) {
        let entry = Entry(host: host, hashes: host.handshakeHashes, port: UInt16(port))
        self.entries.withLock { $0.append(entry) }
        self.announce(entry)
    }

    /// Stops announcing `host` and dialling for it.
    func remove(_ host: any PeerHost) {
        self.entries.withLock { $0.removeAll { $0.host === host } }
    }

    private func announceAll() {
        for entry in self.entries.withLock({ $0 }) { self.announce(entry) }
    }

    private func announce(_ entry: Entry) {
        let bytes = LocalDiscovery.encode(.init(port: entry.port, infoHashes: entry.hashes, cookie: self.cookie))
        let envelope = AddressedEnvelope(remoteAddress: self.group, data: ByteBuffer(bytes: bytes))
        self.sender.writeAndFlush(envelope).whenFailure { error in
            entry.host.eventLoop.execute { entry.host.log("local discovery: cannot announce: \(error)") }
        }
    }

    private func received(_ announce: LocalDiscovery.Announce, from source: SocketAddress,
        onPeer: @Sendable (any PeerHost, String) -> Void)
    {
        guard let ip = source.ipAddress else { return }
        let address = source.protocol == .inet6 ? "[\(ip)]:\(announce.port)" : "\(ip):\(announce.port)"
        for entry in self.entries.withLock({ $0 }) where entry.hashes.contains(where: announce.infoHashes.contains) {
            onPeer(entry.host, address)
        }
    }

    func stop() async {
        self.timer?.cancel()
        try? await self.channel.close()
        if self.sender !== self.channel { try? await self.sender.close() }
    }

    /// Decodes datagrams and drops our own.
    private final class Receiver: ChannelInboundHandler, Sendable {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        let cookie: String
        let deliver: @Sendable (LocalDiscovery.Announce, SocketAddress) -> Void

        init(cookie: String, deliver: @escaping @Sendable (LocalDiscovery.Announce, SocketAddress) -> Void) {
            self.cookie = cookie
            self.deliver = deliver
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let envelope = Self.unwrapInboundIn(data)
            guard let announce = LocalDiscovery.decode(Array(envelope.data.readableBytesView)),
                announce.cookie != self.cookie
            else { return }
            self.deliver(announce, envelope.remoteAddress)
        }
    }
}

extension in_addr {
    /// Parses dotted IPv4 text.
    fileprivate init?(ipv4 text: String) {
        var address = in_addr()
        guard inet_pton(AF_INET, text, &address) == 1 else { return nil }
        self = address
    }
}
