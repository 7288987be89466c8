import Foundation
import Hummingbird
import Logging
import NIOCore
import PeerKit
import Search
import ServiceLifecycle

/// A request to the index node, with the address it came from (an announcer's peer address is that host).
public struct IndexRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.remoteAddress = source.channel.remoteAddress
    }
}

extension PeerServer {
    /// The index node's HTTP face (`peer serve --index`, its own listener; docs/api.md, "The index node"):
    /// `POST /announce`, `GET /search`, `GET /stats` and the Torznab API `GET /api/torznab`. Searching needs no
    /// token; Torznab searches need `apikey`.
    public static func indexRouter(node: IndexNode, apiKey: String) -> Router<IndexRequestContext> {
        let router = Router(context: IndexRequestContext.self)
        router.add(middleware: JSONErrorMiddleware())
        let key = APIAuth(token: apiKey, allowedHosts: [])

        router.post("announce") { request, context -> Response in
            guard let host = context.remoteAddress?.ipAddress else {
                throw APIError.badRequest("the announce's address is unknown")
            }
            let body = try await JSON.body(of: request, limit: IndexAnnounce.maxBytes)
            return try JSON.response(try await node.announce(Array(buffer: body), from: host))
        }
        router.get("search") { request, _ -> Response in
            let q = request.uri.queryParameters
            let limit = try Self.number(q.get("limit"), "limit", 1...500) ?? 50
            let text = q.get("q") ?? ""
            return try JSON.response(IndexAnswer(query: text, hits: try await node.search(text, limit: limit)))
        }
        router.get("stats") { _, _ -> Response in
            try JSON.response(try await node.statistics())
        }
        router.get("api/torznab") { request, _ -> Response in
            try await Self.torznab(request, node: node, key: key)
        }
        Self.refuseOtherMethods(router)
        return router
    }

    /// The Torznab API: `t=caps` (open), `t=search|tvsearch|movie` with `apikey`, `q` (empty: the newest),
    /// `limit` (at most 100) and `offset`. Errors are the newznab error element (with status 200, as indexers
    /// answer: clients read the element).
    static func torznab(_ request: Request, node: IndexNode, key: APIAuth) async throws -> Response {
        let q = request.uri.queryParameters
        func xml(_ text: String) -> Response {
            Response(status: .ok, headers: [.contentType: "application/xml; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: text)))
        }
        guard let t = q.get("t") else { return xml(Torznab.error(.missingParameter, "Missing parameter (t)")) }
        if t == "caps" { return xml(Torznab.caps(version: Session.version)) }
        guard ["search", "tvsearch", "movie"].contains(t) else {
            return xml(Torznab.error(.noSuchFunction, "No such function (\(t)); this indexer has caps, search, tvsearch, movie"))
        }
        guard let given = q.get("apikey"), !given.isEmpty else {
            return xml(Torznab.error(.badCredentials, "Missing parameter (apikey): give the key from STATE/index-apikey"))
        }
        guard key.isToken(String(given)) else { return xml(Torznab.error(.badCredentials, "Incorrect user credentials")) }
        let limit: Int
        let offset: Int
        do {
            limit = min(Torznab.maxLimit, try Self.number(q.get("limit"), "limit", 0...Int.max) ?? Torznab.defaultLimit)
            offset = try Self.number(q.get("offset"), "offset", 0...400) ?? 0
        } catch let e as APIError {
            return xml(Torznab.error(.badParameter, "Incorrect parameter: \(e.message)"))
        }
        guard limit > 0 else { return xml(Torznab.feed([], offset: offset, link: "/")) }
        do {
            let hits = try await node.search(q.get("q") ?? "", limit: limit, offset: offset)
            let host = request.head.authority ?? "localhost"
            return xml(Torznab.feed(hits, offset: offset, link: "http://\(host)/"))
        } catch IndexNodeError.query(let e) {
            return xml(Torznab.error(.badParameter, "Incorrect parameter (q): \(e.description)"))
        } catch {
            return xml(Torznab.error(.unknown, "\(error)"))
        }
    }

    /// A query parameter as a number in `range`; nil when absent.
    static func number(_ text: String?, _ name: String, _ range: ClosedRange<Int>) throws -> Int? {
        guard let text else { return nil }
        guard let n = Int(text), range.contains(n) else {
            throw APIError.badRequest(range.upperBound == Int.max
                ? "\(name): expected a number of at least \(range.lowerBound)"
                : "\(name): expected a number from \(range.lowerBound) to \(range.upperBound)")
        }
        return n
    }

    /// The index node's server, to run beside the API.
    static func indexService(_ listener: IndexListener) -> some Service {
        var logger = Logger(label: "peer.index")
        logger.logLevel = .warning
        return Application(router: Self.indexRouter(node: listener.node, apiKey: listener.apiKey), server: Self.http1,
            configuration: Self.configuration(host: listener.host, port: listener.port),
            onServerRunning: { channel in await listener.onRunning(channel.localAddress?.port ?? listener.port) },
            logger: logger)
    }
}

/// Where and how `PeerServer.run` serves an index node.
public struct IndexListener: Sendable {
    public var node: IndexNode
    /// The Torznab API key.
    public var apiKey: String
    public var host: String
    public var port: Int
    /// Gets the bound port.
    public var onRunning: @Sendable (Int) async -> Void

    public init(node: IndexNode, apiKey: String, host: String, port: Int,
        onRunning: @escaping @Sendable (Int) async -> Void)
    {
        self.node = node
        self.apiKey = apiKey
        self.host = host
        self.port = port
        self.onRunning = onRunning
    }
}

extension APIError {
    /// The status and code of an index node's refusal (docs/api.md, "The index node").
    init(_ error: IndexNodeError) {
        switch error {
        case .announce(.tooLarge(let limit)): self = .tooLarge(limit)
        case .announce(.tooManyTorrents): self.init(.contentTooLarge, "too_many_torrents", error.description)
        case .announce(.malformed): self.init(.badRequest, "bad_announce", error.description)
        case .announce(.badSignature): self.init(.forbidden, "bad_signature", error.description)
        case .refused(.refusedKey(let after)):
            self.init(.forbidden, "refused_key", error.description)
            self.headers[.retryAfter] = String(after)
        case .refused(.stale): self.init(.badRequest, "stale", error.description)
        case .refused(.replay): self.init(.conflict, "replay", error.description)
        case .refused(.tooFrequent(let after)):
            self.init(.tooManyRequests, "too_frequent", error.description)
            self.headers[.retryAfter] = String(after)
        case .refused(.tooManyKeys): self.init(.tooManyRequests, "too_many_keys", error.description)
        case .refused(.full): self.init(.serviceUnavailable, "full", error.description)
        case .query: self.init(.badRequest, "bad_request", error.description)
        case .database: self.init(.internalServerError, "internal", error.description)
        }
    }
}
