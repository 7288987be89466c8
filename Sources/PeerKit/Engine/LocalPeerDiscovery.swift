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

/// Local service discovery (BEP 14) for a node: UDP sockets on port 6771 in the IPv4 group 239.192.152.143
/// and the IPv6 group [ff15::efc0:988f], announcing the node's torrents when they are added and every
/// 5 minutes, and dialling peers on the local network that announce a torrent the node has. With `--bind ADDR`
/// only that address's family is used, and the group is joined, and announces are sent, on that address's
/// interface only (tests on 127.0.0.x or ::1 stay on loopback); without it, both families on the default
/// interface (a machine without IPv6 multicast has the IPv4 group alone).
final class LocalPeerDiscovery: @unchecked Sendable {
    private struct Entry {
        let host: any PeerHost
        let hashes: [[UInt8]]
        let port: UInt16
    }

    /// One address family's group: `receiver` is in the group on port 6771; `sender` sends from the bound
    /// address (peers take the datagram's source as the announcer's address), or is the receiver without --bind.
    private struct Membership {
        let receiver: any Channel
        let sender: any Channel
        let group: SocketAddress
        /// BEP 14's Host header: the group and port.
        let hostHeader: String

        func close() async {
            try? await self.receiver.close()
            if self.sender !== self.receiver { try? await self.sender.close() }
        }
    }

    static let interval: TimeAmount = .minutes(5)

    private let memberships: [Membership]
    /// Told to every announce, so that our own announces coming back over the loop are ignored.
    let cookie: String
    private let entries = Mutex<[Entry]>([])
    private var timer: RepeatedTask?

    private init(memberships: [Membership], cookie: String) {
        self.memberships = memberships
        self.cookie = cookie
    }

    /// Opens the sockets and joins the groups. `onPeer` gets (host, "ip:port") for each matching announce.
    static func start(
        group loops: any EventLoopGroup, bindHost: String?, onPeer: @escaping @Sendable (any PeerHost, String) -> Void
    ) async throws -> LocalPeerDiscovery {
        let cookie = Hex.encode((0..<6).map { _ in UInt8.random(in: .min ... .max) })
        let box = Mutex<LocalPeerDiscovery?>(nil)
        let deliver: @Sendable (LocalDiscovery.Announce, SocketAddress) -> Void = { announce, source in
            box.withLock { $0 }?.received(announce, from: source, onPeer: onPeer)
        }
        let family: NIOBSDSocket.ProtocolFamily? = bindHost.flatMap { try? SocketAddress(ipAddress: $0, port: 0) }?.protocol
        var memberships: [Membership] = []
        if family != .inet6 {
            memberships.append(try await Self.join(.inet, bindHost: bindHost, loops: loops, cookie: cookie, deliver: deliver))
        }
        if family != .inet {
            do {
                memberships.append(try await Self.join(.inet6, bindHost: bindHost, loops: loops, cookie: cookie,
                    deliver: deliver))
            } catch where family == nil {
                // No IPv6 multicast here: the IPv4 group alone.
            } catch {
                for m in memberships { await m.close() }
                throw error
            }
        }
        let service = LocalPeerDiscovery(memberships: memberships, cookie: cookie)
        box.withLock { $0 = service }
        service.timer = memberships[0].receiver.eventLoop.scheduleRepeatedTask(initialDelay: Self.interval,
            delay: Self.interval) { _ in service.announceAll() }
        return service
    }

    /// Opens one family's sockets and joins its group.
    private static func join(
        _ family: NIOBSDSocket.ProtocolFamily, bindHost: String?, loops: any EventLoopGroup, cookie: String,
        deliver: @escaping @Sendable (LocalDiscovery.Announce, SocketAddress) -> Void
    ) async throws -> Membership {
        let v6 = family == .inet6
        var bootstrap = DatagramBootstrap(group: loops)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            // One byte over the announce limit, so that a longer datagram is seen as too long, not cut.
            .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: LocalDiscovery.maxDatagram + 1))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Receiver(cookie: cookie, deliver: deliver))
                }
            }
        if v6 {
            bootstrap = bootstrap.channelOption(.ipv6Only, value: 1)
        }
        let receiver = try await bootstrap.bind(host: v6 ? "::" : "0.0.0.0", port: LocalDiscovery.port).get()
        let groupText = v6 ? LocalDiscovery.ipv6Group : LocalDiscovery.ipv4Group
        let groupAddress = try SocketAddress(ipAddress: groupText, port: LocalDiscovery.port)
        var sender: any Channel = receiver
        do {
            var device: NIONetworkDevice?
            if let bindHost {
                // The interface that holds the address; any 127.x address is loopback's.
                let devices = try NIOCore.System.enumerateDevices().filter { $0.address?.protocol == family }
                device = devices.first { $0.address?.ipAddress == bindHost }
                    ?? (bindHost.hasPrefix("127.") ? devices.first { $0.address?.ipAddress?.hasPrefix("127.") == true } : nil)
                sender = try await DatagramBootstrap(group: receiver.eventLoop).bind(host: bindHost, port: 0).get()
                if let provider = sender as? any SocketOptionProvider {
                    if v6, let device {
                        try await provider.setIPv6MulticastIF(CUnsignedInt(device.interfaceIndex)).get()
                    } else if !v6, let address = in_addr(ipv4: device?.address?.ipAddress ?? bindHost) {
                        try await provider.setIPMulticastIF(address).get()
                    }
                }
            }
            guard let multicast = receiver as? any MulticastChannel else { throw ChannelError.operationUnsupported }
            try await multicast.joinGroup(groupAddress, device: device).get()
        } catch {
            try? await receiver.close()
            if sender !== receiver { try? await sender.close() }
            throw error
        }
        let header = v6 ? "[\(groupText)]:\(LocalDiscovery.port)" : "\(groupText):\(LocalDiscovery.port)"
        return Membership(receiver: receiver, sender: sender, group: groupAddress, hostHeader: header)
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
        let announce = LocalDiscovery.Announce(port: entry.port, infoHashes: entry.hashes, cookie: self.cookie)
        for m in self.memberships {
            let bytes = LocalDiscovery.encode(announce, host: m.hostHeader)
            m.sender.writeAndFlush(AddressedEnvelope(remoteAddress: m.group, data: ByteBuffer(bytes: bytes))).whenFailure {
                error in
                entry.host.eventLoop.execute { entry.host.log("local discovery: cannot announce on \(m.group): \(error)") }
            }
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
        for m in self.memberships { await m.close() }
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
