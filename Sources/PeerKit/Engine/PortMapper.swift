import AsyncHTTPClient
import Foundation
import NIOCore
import NIOPosix
import PortMap
import Synchronization

/// Maps the node's listen port, TCP and UDP, on the home router: PCP first, then NAT-PMP (RFC 6887, 6886, both on
/// the default gateway's UDP port 5351), then UPnP IGD (SSDP, then the `WANIPConnection` SOAP actions). Leases are
/// renewed at half their life, and deleted on `stop()`. The driver of `PortMap`'s messages; a router that refuses
/// or does not answer costs a line in the log and a state in the API, nothing else.
public final class PortMapper: Sendable {
    /// What the API shows.
    public struct Status: Codable, Sendable, Equatable {
        /// "discovering", "mapped", "failed" or "stopped".
        public var state: String
        /// "pcp", "natpmp" or "upnp", once mapped.
        public var method: String?
        public var gateway: String?
        /// The router's external address, when it told.
        public var externalAddress: String?
        public var mappings: [Mapping]
        /// Why the last attempt failed.
        public var error: String?

        enum CodingKeys: String, CodingKey {
            case state, method, gateway, mappings, error
            case externalAddress = "external_address"
        }
    }

    public struct Mapping: Codable, Sendable, Equatable {
        public var proto: MappedProtocol
        public var internalPort: Int
        public var externalPort: Int
        /// Seconds granted; 0 for a permanent UPnP mapping.
        public var lifetime: Int

        enum CodingKeys: String, CodingKey {
            case proto = "protocol"
            case lifetime
            case internalPort = "internal_port"
            case externalPort = "external_port"
        }
    }

    private enum Method: String { case pcp, natpmp, upnp }

    private struct Granted {
        var mappings: [Mapping]
        var externalAddress: String?
        /// UPnP: the control URL and service type the mappings were made with.
        var service: UPnPIGD.Service?
    }

    private let group: any EventLoopGroup
    private let httpClient: HTTPClient
    private let bindHost: String?
    private let port: Int
    private let gatewayOverride: String?
    private let log: @Sendable (String) -> Void
    private let state = Mutex<Status>(Status(state: "discovering", mappings: []))
    private let task = Mutex<Task<Void, Never>?>(nil)
    private let nonce: [UInt8] = (0..<12).map { _ in UInt8.random(in: 0...255) }

    /// What the mapper asks for, in seconds (RFC 6886 recommends two hours); UPnP's lease is an hour.
    /// PEER_PORT_MAPPING_LIFETIME sets both (tests renew within seconds).
    private let requestedLifetime: UInt32
    private let upnpLease: UInt32
    /// The methods tried, in order (PEER_PORT_MAPPING_METHODS, e.g. "upnp", picks some for tests).
    private let methods: [Method]
    /// Waits between tries of a datagram to port 5351 (RFC 6886 starts at 250 ms, doubling).
    static let tries: [Duration] = [.milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2)]
    /// After a failure, the next attempt.
    static let retry: Duration = .seconds(300)

    /// - Parameters:
    ///   - gateway: the router to ask (tests); default the default route's gateway from /proc/net/route.
    public init(group: any EventLoopGroup, httpClient: HTTPClient, bindHost: String?, port: Int, gateway: String? = nil,
        log: @escaping @Sendable (String) -> Void)
    {
        (self.group, self.httpClient, self.bindHost, self.port, self.gatewayOverride, self.log) =
            (group, httpClient, bindHost, port, gateway, log)
        let environment = ProcessInfo.processInfo.environment
        let lifetime = environment["PEER_PORT_MAPPING_LIFETIME"].flatMap { UInt32($0) }.map { max(2, $0) }
        (self.requestedLifetime, self.upnpLease) = (lifetime ?? 7200, lifetime ?? 3600)
        let chosen = (environment["PEER_PORT_MAPPING_METHODS"] ?? "").split(separator: ",")
            .compactMap { Method(rawValue: String($0)) }
        self.methods = chosen.isEmpty ? [.pcp, .natpmp, .upnp] : chosen
    }

    public var status: Status { self.state.withLock { $0 } }

    /// The mapped external port and address, for announces (nil until mapped).
    public var external: (address: String?, port: Int)? {
        self.state.withLock { s in s.mappings.first { $0.proto == .tcp }.map { (s.externalAddress, $0.externalPort) } }
    }

    public func start() {
        let task = Task { await self.run() }
        self.task.withLock { $0 = task }
    }

    /// Stops renewing and deletes the mappings (waiting for the router at most a few seconds).
    public func stop() async {
        guard let task = self.task.withLock({ t in defer { t = nil }; return t }) else { return }
        task.cancel()
        await task.value
    }

    // MARK: the loop

    private func run() async {
        var granted: (Method, Granted)?
        var gateway: String?
        var local: String?
        while !Task.isCancelled {
            if granted == nil {
                gateway = self.gatewayOverride ?? Self.defaultGateway()
                guard let gw = gateway else {
                    self.fail("no default gateway (no route out)", gateway: nil)
                    try? await Task.sleep(for: Self.retry)
                    continue
                }
                local = await self.localAddress(towards: gw)
                self.state.withLock { $0.gateway = gw }
                var reasons: [String] = []
                for method in self.methods where !Task.isCancelled {
                    switch await self.map(method, gateway: gw, local: local, renewing: nil) {
                    case .success(let g):
                        granted = (method, g)
                        self.state.withLock {
                            $0 = Status(state: "mapped", method: method.rawValue, gateway: gw,
                                externalAddress: g.externalAddress, mappings: g.mappings)
                        }
                        let ports = g.mappings.map { "\($0.proto.rawValue) \($0.internalPort) -> \($0.externalPort)" }
                        self.log("port mapping: \(method.rawValue) on \(gw): \(ports.joined(separator: ", "))"
                            + (g.externalAddress.map { ", external address \($0)" } ?? ""))
                    case .failure(let why):
                        reasons.append("\(method.rawValue): \(why.text)")
                        continue
                    }
                    break
                }
                if granted == nil {
                    if Task.isCancelled { break }
                    self.fail(reasons.joined(separator: "; "), gateway: gw)
                    try? await Task.sleep(for: Self.retry)
                    continue
                }
            }
            guard let (method, current) = granted, let gw = gateway else { continue }
            let lifetime = current.mappings.map(\.lifetime).filter { $0 > 0 }.min()
            // A permanent UPnP mapping is checked again every half hour (a router that restarted forgets it).
            let wait = lifetime.map { Duration.seconds(max(1, $0 / 2)) } ?? .seconds(1800)
            do { try await Task.sleep(for: wait) } catch { break }
            switch await self.map(method, gateway: gw, local: local, renewing: current) {
            case .success(let g):
                granted = (method, g)
                self.state.withLock { $0.mappings = g.mappings; $0.externalAddress = g.externalAddress ?? $0.externalAddress }
                self.log("port mapping: renewed by \(method.rawValue) for \(g.mappings.map(\.lifetime).min() ?? 0) s")
            case .failure(let why):
                self.log("port mapping: renewing by \(method.rawValue) failed (\(why.text)); discovering again")
                granted = nil
            }
        }
        if let (method, current) = granted, let gw = gateway {
            // In a task of its own: this one is cancelled, and its requests would end before they went out.
            await Task { await self.delete(method, current, gateway: gw, local: local) }.value
        }
        self.state.withLock { $0.state = "stopped"; $0.mappings = [] }
    }

    /// Records a failure; the log gets a line only when the reason changes (the retry every 5 minutes of a router
    /// that refuses would repeat it all day).
    private func fail(_ why: String, gateway: String?) {
        let repeated = self.state.withLock { state in
            defer { state = Status(state: "failed", gateway: gateway, mappings: [], error: why) }
            return state.state == "failed" && state.error == why
        }
        if !repeated { self.log("port mapping: \(why)") }
    }

    private struct Failure: Error { var text: String }

    /// Maps (or renews) TCP and UDP by one method.
    private func map(_ method: Method, gateway: String, local: String?, renewing: Granted?) async -> Result<Granted, Failure> {
        switch method {
        case .pcp, .natpmp:
            var granted = Granted(mappings: [])
            for proto in [MappedProtocol.tcp, .udp] {
                let previous = renewing?.mappings.first { $0.proto == proto }?.externalPort
                let request = method == .pcp
                    ? NATPMP.pcpMapRequest(proto, internalPort: UInt16(self.port),
                        externalPort: UInt16(previous ?? self.port), lifetime: self.requestedLifetime,
                        client: Self.ipv4Bytes(local ?? "0.0.0.0"), nonce: self.nonce)
                    : NATPMP.mapRequest(proto, internalPort: UInt16(self.port), externalPort: UInt16(previous ?? self.port),
                        lifetime: self.requestedLifetime)
                switch await self.exchange(request, gateway: gateway, local: local) {
                case .mapped(let p, _, let ext, let lifetime, let ip, _)? where p == proto:
                    granted.mappings.append(Mapping(proto: proto, internalPort: self.port, externalPort: Int(ext),
                        lifetime: Int(lifetime)))
                    if let ip { granted.externalAddress = ip.map(String.init).joined(separator: ".") }
                case .refused(let version, _, let code)?:
                    return .failure(Failure(text: NATPMP.describe(version: version, code: code)))
                case nil:
                    return .failure(Failure(text: "no answer from \(gateway):\(NATPMP.serverPort)"))
                default:
                    return .failure(Failure(text: "an unexpected answer"))
                }
            }
            if method == .natpmp, case .externalAddress(let ip, _)? = await self.exchange(
                NATPMP.externalAddressRequest(), gateway: gateway, local: local)
            {
                granted.externalAddress = ip.map(String.init).joined(separator: ".")
            }
            return .success(granted)
        case .upnp:
            let service: UPnPIGD.Service
            if let known = renewing?.service {
                service = known
            } else {
                guard let location = await self.searchGateway(local: local) else {
                    return .failure(Failure(text: "no UPnP gateway answered the search"))
                }
                guard let description = try? await PeerHTTP.get(self.httpClient, url: location, limit: 256 << 10,
                        timeout: .seconds(5)),
                    let found = UPnPIGD.service(inDescription: description.body, at: location)
                else { return .failure(Failure(text: "\(location) offers no WAN connection service")) }
                service = found
            }
            guard let local else { return .failure(Failure(text: "no local address towards the gateway")) }
            var granted = Granted(mappings: [], service: service)
            for proto in [MappedProtocol.tcp, .udp] {
                var lease = self.upnpLease
                while true {
                    let action = UPnPIGD.addPortMapping(service: service.type, proto: proto,
                        externalPort: UInt16(self.port), internalClient: local, internalPort: UInt16(self.port),
                        description: "Peer \(proto.rawValue) \(self.port)", lease: lease)
                    switch await self.soap(action, at: service.controlURL) {
                    case .ok?:
                        granted.mappings.append(Mapping(proto: proto, internalPort: self.port, externalPort: self.port,
                            lifetime: Int(lease)))
                    case .fault(let code, _)? where lease != 0 && (code == 725 || code == 402):
                        lease = 0  // only permanent leases (725), or a router that takes no lease at all (402)
                        continue
                    case .fault(let code, let text)?:
                        return .failure(Failure(text: UPnPIGD.describe(code: code, description: text)))
                    case nil:
                        return .failure(Failure(text: "no answer from \(service.controlURL)"))
                    }
                    break
                }
            }
            if case .ok(let values)? = await self.soap(UPnPIGD.getExternalIPAddress(service: service.type),
                at: service.controlURL)
            {
                granted.externalAddress = values["NewExternalIPAddress"].flatMap { $0.isEmpty ? nil : $0 }
            }
            return .success(granted)
        }
    }

    private func delete(_ method: Method, _ granted: Granted, gateway: String, local: String?) async {
        for m in granted.mappings {
            switch method {
            case .pcp:
                _ = await self.exchange(NATPMP.pcpMapRequest(m.proto, internalPort: UInt16(m.internalPort),
                    externalPort: 0, lifetime: 0, client: Self.ipv4Bytes(local ?? "0.0.0.0"), nonce: self.nonce),
                    gateway: gateway, local: local, tries: Self.tries.prefix(2))
            case .natpmp:
                _ = await self.exchange(NATPMP.mapRequest(m.proto, internalPort: UInt16(m.internalPort), externalPort: 0,
                    lifetime: 0), gateway: gateway, local: local, tries: Self.tries.prefix(2))
            case .upnp:
                guard let service = granted.service else { continue }
                _ = await self.soap(UPnPIGD.deletePortMapping(service: service.type, proto: m.proto,
                    externalPort: UInt16(m.externalPort)), at: service.controlURL)
            }
        }
        self.log("port mapping: removed \(granted.mappings.count) mappings by \(method.rawValue)")
    }

    // MARK: I/O

    /// Sends `request` to the gateway's port 5351 and waits for an answer, resending after each of `tries`.
    private func exchange(_ request: [UInt8], gateway: String, local: String?,
        tries: ArraySlice<Duration> = PortMapper.tries[...]) async -> NATPMP.Response?
    {
        guard let target = try? SocketAddress(ipAddress: gateway, port: NATPMP.serverPort) else { return nil }
        return await self.datagrams(bind: local ?? "0.0.0.0") { channel, inbox in
            for wait in tries {
                try await channel.writeAndFlush(AddressedEnvelope(remoteAddress: target, data: ByteBuffer(bytes: request)))
                let deadline = ContinuousClock.now + wait
                while let (bytes, source) = await inbox.next(before: deadline) {
                    guard source.ipAddress == gateway, let response = try? NATPMP.decode(bytes) else { continue }
                    return response
                }
            }
            return nil
        }
    }

    /// The SSDP search: the first gateway description URL answered within 3 s.
    private func searchGateway(local: String?) async -> String? {
        guard let target = try? SocketAddress(ipAddress: UPnPIGD.multicastAddress, port: UPnPIGD.multicastPort) else {
            return nil
        }
        return await self.datagrams(bind: local ?? "0.0.0.0") { channel, inbox in
            for wait in [Duration.seconds(1), .seconds(2)] {
                try await channel.writeAndFlush(
                    AddressedEnvelope(remoteAddress: target, data: ByteBuffer(bytes: UPnPIGD.searchRequest())))
                let deadline = ContinuousClock.now + wait
                while let (bytes, _) = await inbox.next(before: deadline) {
                    if let location = UPnPIGD.location(ofSearchResponse: bytes) { return location }
                }
            }
            return nil
        }
    }

    private func soap(_ action: UPnPIGD.Action, at url: String) async -> UPnPIGD.Answer? {
        guard let response = try? await PeerHTTP.send(self.httpClient, method: .POST, url: url,
            headers: [("Content-Type", "text/xml; charset=\"utf-8\""), ("SOAPAction", action.soapAction)],
            body: Array(action.body.utf8), limit: 64 << 10, timeout: .seconds(5), accept: [200, 500])
        else { return nil }
        return UPnPIGD.answer(response.body)
    }

    /// Runs `body` with a UDP socket bound to `bind` and the datagrams it receives.
    private func datagrams<T: Sendable>(bind: String,
        _ body: @Sendable (any Channel, Inbox) async throws -> T?) async -> T?
    {
        let inbox = Inbox()
        let bootstrap = DatagramBootstrap(group: self.group).channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(inbox) }
        }
        guard let channel = try? await bootstrap.bind(host: bind, port: 0).get() else { return nil }
        defer { channel.close(promise: nil) }
        return try? await body(channel, inbox)
    }

    /// Datagrams received (at most 64 kept), polled by the one task that sent the requests.
    private final class Inbox: ChannelInboundHandler, Sendable {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        private let items = Mutex<[([UInt8], SocketAddress)]>([])

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let envelope = Self.unwrapInboundIn(data)
            self.items.withLock { q in
                if q.count < 64 { q.append((Array(envelope.data.readableBytesView), envelope.remoteAddress)) }
            }
        }

        /// The next datagram, or nil once `deadline` passes (looked for every 10 ms: a few exchanges an hour).
        func next(before deadline: ContinuousClock.Instant) async -> ([UInt8], SocketAddress)? {
            while ContinuousClock.now < deadline, !Task.isCancelled {
                if let item = self.items.withLock({ q in q.isEmpty ? nil : q.removeFirst() }) { return item }
                try? await Task.sleep(for: .milliseconds(10))
            }
            return nil
        }
    }

    // MARK: the local network

    /// The default route's gateway (IPv4) from /proc/net/route.
    static func defaultGateway(routes: String? = try? String(contentsOfFile: "/proc/net/route", encoding: .utf8))
        -> String?
    {
        for line in (routes ?? "").split(separator: "\n").dropFirst() {
            let f = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard f.count >= 4, f[1] == "00000000", let flags = Int(f[3], radix: 16), flags & 0x2 != 0,
                let gw = UInt32(f[2], radix: 16), gw != 0
            else { continue }
            // Little-endian hex.
            return [gw & 0xFF, gw >> 8 & 0xFF, gw >> 16 & 0xFF, gw >> 24].map(String.init).joined(separator: ".")
        }
        return nil
    }

    /// The address this host uses towards `gateway`: `bindHost`, or what the kernel picks for a UDP "connect".
    private func localAddress(towards gateway: String) async -> String? {
        if let bind = self.bindHost, bind != "0.0.0.0", bind != "::" { return bind }
        guard let channel = try? await DatagramBootstrap(group: self.group).connect(host: gateway, port: NATPMP.serverPort).get()
        else { return nil }
        defer { channel.close(promise: nil) }
        return channel.localAddress?.ipAddress
    }

    static func ipv4Bytes(_ text: String) -> [UInt8] {
        let parts = text.split(separator: ".").compactMap { UInt8($0) }
        return parts.count == 4 ? parts : [0, 0, 0, 0]
    }
}
