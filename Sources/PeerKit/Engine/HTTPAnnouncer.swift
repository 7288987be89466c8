import NIOCore
import NIOHTTP1
import NIOPosix
import PeerBase
import Tracker

/// Announces one torrent to one HTTP tracker (BEP 3, compact peers BEP 23) and hands the peers it returns
/// to the node. The URL and the response are the Tracker core's; this only moves the bytes (plain HTTP/1.1,
/// one connection per announce, the body bounded by `TrackerLimits`). HTTPS comes with TLS support.
final class HTTPAnnouncer: @unchecked Sendable {
    let url: String
    private let engine: any PeerHost
    private let bindHost: String?
    private let onPeers: @Sendable ([PeerAddress]) -> Void
    private var reannounce: Scheduled<Void>?
    private var failures = 0

    init(url: String, engine: any PeerHost, bindHost: String?, onPeers: @escaping @Sendable ([PeerAddress]) -> Void) {
        self.url = url
        self.engine = engine
        self.bindHost = bindHost
        self.onPeers = onPeers
    }

    /// `http://host[:port]/path?query` -> (host, port, path-and-query).
    static func endpoint(_ url: String) -> (host: String, port: Int, target: String)? {
        guard url.lowercased().hasPrefix("http://") else { return nil }
        let rest = url.dropFirst("http://".count)
        let authority = rest.prefix { $0 != "/" && $0 != "?" }
        var target = String(rest.dropFirst(authority.count))
        if target.isEmpty || target.first == "?" { target = "/" + target }
        var host = String(authority)
        var port = 80
        if let colon = authority.lastIndex(of: ":"), !authority.hasSuffix("]") {
            guard let p = Int(authority[authority.index(after: colon)...]), (1...65535).contains(p) else { return nil }
            port = p
            host = String(authority[..<colon])
        }
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return host.isEmpty ? nil : (host, port, target)
    }

    func announce(_ event: AnnounceRequest.Event) {
        guard let request = self.engine.announceRequest(event: event),
            let (host, port, target) = Self.endpoint(HTTPTracker.announceURL(base: self.url, request: request))
        else { return }
        self.fetch(host: host, port: port, target: target).whenComplete { result in
            switch result {
            case .success(let body):
                do {
                    let response = try AnnounceResponse(httpBody: body)
                    self.failures = 0
                    if event != .stopped { self.onPeers(response.peers) }
                    self.schedule(max(response.interval ?? .seconds(1800), .seconds(60)))
                } catch {
                    self.failed("\(error)")
                }
            case .failure(let error):
                self.failed("\(error)")
            }
        }
    }

    func stop() {
        self.reannounce?.cancel()
        self.announce(.stopped)
    }

    private func failed(_ why: String) {
        self.engine.log("tracker \(self.url): \(why)")
        self.failures += 1
        self.schedule(.seconds(min(1800, 15 << min(self.failures - 1, 7))))  // 15 s, 30 s, … capped at 30 min
    }

    private func schedule(_ delay: Duration) {
        self.reannounce?.cancel()
        self.reannounce = self.engine.eventLoop.scheduleTask(in: .seconds(delay.components.seconds)) {
            self.announce(.none)
        }
    }

    private func fetch(host: String, port: Int, target: String) -> EventLoopFuture<[UInt8]> {
        let loop = self.engine.eventLoop
        let promise = loop.makePromise(of: [UInt8].self)
        var bootstrap = ClientBootstrap(group: loop).connectTimeout(.seconds(15))
        if let bindHost = self.bindHost, let local = try? SocketAddress(ipAddress: bindHost, port: 0) {
            bootstrap = bootstrap.bind(to: local)
        }
        bootstrap.channelInitializer { channel in
            channel.pipeline.addHTTPClientHandlers().flatMap {
                channel.pipeline.addHandler(ResponseCollector(promise: promise))
            }
        }.connect(host: host, port: port).whenComplete { result in
            switch result {
            case .failure(let error):
                promise.fail(error)
            case .success(let channel):
                var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: target)
                head.headers.add(name: "Host", value: port == 80 ? host : "\(host):\(port)")
                head.headers.add(name: "User-Agent", value: "Peer/0.1")
                head.headers.add(name: "Connection", value: "close")
                channel.write(HTTPClientRequestPart.head(head), promise: nil)
                channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
                _ = loop.scheduleTask(in: .seconds(20)) { channel.close(promise: nil) }
            }
        }
        return promise.futureResult
    }
}

/// Collects one HTTP response body, bounded, and fails on a non-200 status.
private final class ResponseCollector: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart
    let promise: EventLoopPromise<[UInt8]>
    var status: HTTPResponseStatus?
    var body: [UInt8] = []
    var done = false

    init(promise: EventLoopPromise<[UInt8]>) { self.promise = promise }

    struct HTTPFailure: Error, CustomStringConvertible {
        var description: String
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.status = head.status
        case .body(let buffer):
            guard self.body.count + buffer.readableBytes <= TrackerLimits.maxBodyLength else {
                self.finish(.failure(HTTPFailure(description: "response larger than \(TrackerLimits.maxBodyLength) bytes")))
                context.close(promise: nil)
                return
            }
            self.body.append(contentsOf: buffer.readableBytesView)
        case .end:
            if self.status == .ok {
                self.finish(.success(self.body))
            } else {
                self.finish(.failure(HTTPFailure(description: "HTTP status \(self.status.map { "\($0.code)" } ?? "none")")))
            }
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.finish(.failure(HTTPFailure(description: "connection closed before the response ended")))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.finish(.failure(error))
        context.close(promise: nil)
    }

    private func finish(_ result: Result<[UInt8], any Error>) {
        guard !self.done else { return }
        self.done = true
        self.promise.completeWith(result)
    }
}
