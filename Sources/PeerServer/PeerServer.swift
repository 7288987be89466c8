import Foundation
import Hummingbird
import Logging
import PeerKit

/// The daemon's HTTP face (docs/api.md): the JSON API, live events, streams and the web UI of a PeerKit
/// `Session`, served by Hummingbird.
public enum PeerServer {
    /// The router of the whole server: API, metrics, login, and the web UI's files.
    public static func router(session: Session, auth: APIAuth) -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: GuardMiddleware(auth: auth))
        Self.addAPI(to: router, session: session, auth: auth)
        Self.addDHT(to: router, session: session)
        router.get("/") { _, _ in Assets.page("index.html") }
        router.get(":file") { _, context -> Response in
            let name = try context.parameters.require("file")
            guard Assets.web[name] != nil else { throw APIError.notFound("no \(name)") }
            return Assets.page(name)
        }
        return router
    }

    /// Serves `session` on `host:port` until SIGINT or SIGTERM; `onRunning` gets the bound port.
    public static func run(session: Session, auth: APIAuth, host: String, port: Int,
        onRunning: @escaping @Sendable (Int) async -> Void) async throws
    {
        var logger = Logger(label: "peer.api")
        logger.logLevel = .warning
        let app = Application(router: Self.router(session: session, auth: auth),
            configuration: .init(address: .hostname(host, port: port), serverName: "Peer"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? port) },
            logger: logger)
        try await app.runService()
    }
}
