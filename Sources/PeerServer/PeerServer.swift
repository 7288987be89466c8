import Foundation
import Hummingbird
import Logging
import PeerKit
import ServiceLifecycle

/// The daemon's HTTP face (docs/api.md): the JSON API, live events, streams and the web UI of a PeerKit
/// `Session`, served by Hummingbird.
public enum PeerServer {
    /// The router of the whole server: API, metrics, login, and the web UI's files.
    /// - Parameter compat: the login of Transmission's RPC (`/transmission/rpc`) and qBittorrent's Web API
    ///   (`/api/v2/`); without one both are off.
    public static func router(session: Session, auth: APIAuth, compat: CompatLogin? = nil) -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: GuardMiddleware(auth: auth, compatOn: compat != nil))
        if let compat { Self.addCompat(to: router, session: session, login: compat) }
        Self.addAPI(to: router, session: session, auth: auth)
        Self.addDHT(to: router, session: session)
        Self.addSearch(to: router, session: session)
        Self.addChannels(to: router, session: session)
        Self.addLive(to: router, session: session)
        router.get("/") { _, _ in Assets.page("index.html") }
        router.get(":file") { _, context -> Response in
            let name = try context.parameters.require("file")
            guard Assets.web[name] != nil else { throw APIError.notFound("no \(name)") }
            return Assets.page(name)
        }
        Self.refuseOtherMethods(router)
        return router
    }

    /// Hummingbird answers a method a path does not take as an unknown path (404); HTTP says 405 with
    /// `Allow`, which tells a client its path is right and its method wrong. Added after the guard, so an
    /// unauthorized request still gets 401 first.
    static func refuseOtherMethods<Context: RequestContext>(_ router: Router<Context>) {
        var taken: [String: (path: RouterPath, methods: Set<HTTPRequest.Method>)] = [:]
        for route in router.routes { taken[route.path.description, default: (route.path, [])].methods.insert(route.method) }
        for (path, methods) in taken.values {
            let allow = methods.map(\.rawValue).sorted().joined(separator: ", ")
            for method in [HTTPRequest.Method.get, .post, .put, .patch, .delete] where !methods.contains(method) {
                router.on(path, method: method) { _, _ -> Response in
                    var e = APIError(.methodNotAllowed, "method_not_allowed", "this path takes \(allow)")
                    e.headers[.allow] = allow
                    throw e
                }
            }
        }
    }

    /// Serves `session` on `host:port`, and the index node on its own listener when given, until SIGINT or
    /// SIGTERM; `onRunning` gets the bound port.
    public static func run(session: Session, auth: APIAuth, host: String, port: Int, index: IndexListener? = nil,
        compat: CompatLogin? = nil, onRunning: @escaping @Sendable (Int) async -> Void) async throws
    {
        var logger = Logger(label: "peer.api")
        logger.logLevel = .warning
        let app = Application(router: Self.router(session: session, auth: auth, compat: compat), server: Self.http1,
            configuration: Self.configuration(host: host, port: port),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? port) },
            logger: logger)
        let services: [any Service] = [app] + (index.map { [Self.indexService($0)] } ?? [])
        try await ServiceGroup(configuration: .init(services: services,
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)).run()
    }
}

extension PeerServer {
    /// The surfaces other tools speak, behind the compat login.
    static func addCompat<Context: RequestContext>(to router: Router<Context>, session: Session, login: CompatLogin) {
        let gate = CompatGate(login)
        let transmission = TransmissionRPC(session: session, gate: gate, numbers: TorrentNumbers())
        router.post("transmission/rpc") { request, _ in try await transmission.respond(request) }
        router.get("transmission/rpc") { request, _ in try await transmission.respond(request) }
        let qbittorrent = QBittorrentAPI(session: session, gate: gate)
        let handler = { @Sendable (request: Request, context: Context) async throws -> Response in
            try await qbittorrent.respond(request, context.parameters.require("group"), context.parameters.require("call"))
        }
        router.get("api/v2/:group/:call", use: handler)
        router.post("api/v2/:group/:call", use: handler)
    }
}
