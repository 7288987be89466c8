import ArgumentParser
import Foundation
import PeerKit
import PeerServer

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the daemon: torrents that survive restarts, an HTTP JSON API, live events, streaming and a web UI.",
        discussion: """
            Torrents, their options and resume data live in STATE/peer.sqlite: after a restart, or a crash, every \
            torrent comes back where it was. The API (docs/api.md; /api/openapi.json) needs the token in \
            STATE/api-token, created on first start and readable only by you; STATE/api-address names the API. \
            `peer add`, `ls`, `show`, `pause`, `resume`, `rm` and `stats` read both.

            The web UI is at the API's address. At start a one-time login link is printed; the login page also \
            takes the token. Reaching the daemon under a name other than localhost (from a phone on the LAN) \
            needs --api 0.0.0.0:9091 and --allow-host THAT-NAME: pages under other names are refused, so that a \
            web site cannot drive the daemon through DNS rebinding.

            The API saves torrents only inside the download folder and the folders given with --allow-path \
            (after following `..` and symbolic links), so that the token does not open the whole file system.

            Index nodes (optional; nothing needs one): --index makes this daemon one, on a listener of its own \
            (--index-listen). Nodes announce what they share there in signed announces (POST /announce; at most \
            1000 torrents and 256 KiB, one a key a minute); it checks a sample of each announce's claims by \
            fetching their metadata from the announcer, and answers GET /search?q= (JSON, no token) and the \
            Torznab API at /api/torznab (t=caps, t=search&q=&apikey=KEY; add it to Prowlarr, Sonarr or Radarr \
            as a Torznab indexer with the key from STATE/index-apikey). --index-server URL makes this daemon \
            announce its downloading and seeding torrents (never private ones) to that index node (signed with \
            STATE/node-key; at start, soon after a change, and every 10 minutes) and ask it in remote searches (`peer search \
            --remote`), checking its hits like a neighbour's.

            Examples:
              peer serve                                  API and UI on http://127.0.0.1:9091
              peer serve --download-dir ~/Downloads --port 51413
              peer serve --api 0.0.0.0:9091 --allow-host mybox.local
              peer serve --download-dir ~/Downloads --allow-path /srv/media
              peer serve --index --index-listen 0.0.0.0:9092
              peer serve --index-server http://192.168.1.10:9092
            """)

    @Option(help: ArgumentHelp("Where the API and web UI listen.", valueName: "HOST:PORT"))
    var api = "127.0.0.1:9091"

    @Option(help: "Local address to listen on for peers and to connect from.")
    var bind: String?

    @Option(help: "Port to listen on for peers (0 picks a free one).")
    var port: Int = 6881

    @Option(help: "State folder (database, token); default $PEER_HOME, else ~/.local/share/peer.")
    var state: String?

    @Option(name: .customLong("download-dir"), help: "Where torrents are saved unless added with a save path (default ~/Downloads; kept in the settings).")
    var downloadDir: String?

    @Option(name: .customLong("allow-host"), help: ArgumentHelp("Accept API requests that name this host (besides localhost and IP addresses); repeatable.", valueName: "NAME"))
    var allowHosts: [String] = []

    @Option(name: .customLong("allow-path"), help: ArgumentHelp("Let the API save torrents in this folder too (besides the download folder); repeatable.", valueName: "DIR"))
    var allowPaths: [String] = []

    @OptionGroup var discovery: DiscoveryOptions
    @OptionGroup var wire: WireOptions
    @OptionGroup var search: SearchOptions
    @OptionGroup var index: IndexOptions
    @OptionGroup var channels: ChannelOptions
    @OptionGroup var compat: CompatOptions

    func validate() throws {
        guard PeerNode.splitHostPort(self.api) != nil || self.api.hasSuffix(":0") else {
            throw ValidationError("--api \(self.api): expected HOST:PORT")
        }
        guard (0...65535).contains(self.port) else { throw ValidationError("--port must be 0 to 65535") }
    }

    func run() async throws {
        raiseOpenFileLimit()
        let stateDir = absolute(stateDirectory(self.state))
        let home = ProcessInfo.processInfo.environment["HOME"] ?? "/tmp"
        var config = Session.Configuration(stateDirectory: stateDir,
            downloadDirectory: absolute(self.downloadDir ?? home + "/Downloads"))
        config.allowedSavePaths = self.allowPaths.map(absolute)
        config.bindHost = self.bind
        config.port = self.port
        config.dht = self.discovery.dhtEnabled
        (config.dhtRouters, config.dhtNodes) = self.discovery.dhtJoin
        config.dhtPolicy = self.discovery.dhtPolicy
        config.localDiscovery = self.discovery.localDiscovery
        config.encryption = self.wire.encryption
        config.transports = self.wire.transports.order
        config.portMapping = self.wire.portMapping
        config.log = { line in Terminal.stderr("\(line)\n") }
        self.search.apply(to: &config)
        self.index.apply(to: &config)
        self.channels.apply(to: &config)
        let session: Session
        let token: String
        do {
            session = try Session(configuration: config)
            token = try APIAuth.loadOrCreateToken(stateDirectory: stateDir)
        } catch {
            Terminal.error("serve", "cannot open the state folder \(stateDir): \(error)")
            throw ExitCode(1)
        }
        if let dir = self.downloadDir {
            var s = await session.currentSettings()
            s.downloadDir = absolute(dir)
            _ = try? await session.updateSettings(s)
        }
        do { try await session.start() } catch {
            Terminal.error("serve", "cannot listen for peers on \(self.bind ?? "0.0.0.0"):\(self.port): \(error)")
            await session.shutdown()
            throw ExitCode(1)
        }
        let indexListener: IndexListener?
        do { indexListener = try await self.index.listener(session, stateDirectory: stateDir) } catch {
            Terminal.error("serve", "cannot open the index node in \(stateDir)/index-node: \(error)")
            await session.shutdown()
            throw ExitCode(1)
        }
        let compatLogin: CompatLogin?
        do { compatLogin = try self.compat.login() } catch {
            Terminal.error("serve", "\(error)")
            await session.shutdown()
            throw ExitCode(1)
        }
        let (host, apiPort) = PeerNode.splitHostPort(self.api) ?? (String(self.api.dropLast(2)), 0)
        let auth = APIAuth(token: token, allowedHosts: self.allowHosts)
        let addressFile = stateDir + "/api-address"
        do {
            try await PeerServer.run(session: session, auth: auth, host: host, port: apiPort, index: indexListener,
                compat: compatLogin) { bound in
                let shown = host == "0.0.0.0" || host == "::" ? "127.0.0.1" : (host.contains(":") ? "[\(host)]" : host)
                let url = "http://\(shown):\(bound)"
                try? (url + "\n").write(toFile: addressFile, atomically: true, encoding: .utf8)
                let code = auth.makeLoginCode()
                let listen = await session.listenPort
                Terminal.stderr("serve: API and web UI on \(url) (token in \(stateDir)/api-token); peers on port \(listen)\n"
                    + "serve: log in from a browser with this one-time link: \(url)/login?code=\(code)\n")
            }
        } catch {
            let index = indexListener == nil ? "" : " or the index node on \(self.index.listen)"
            Terminal.error("serve", "cannot serve the API on \(self.api)\(index): \(error)")
            await indexListener?.node.shutdown()
            await session.shutdown()
            throw ExitCode(1)
        }
        Terminal.stderr("serve: stopping: saving resume data\n")
        try? FileManager.default.removeItem(atPath: addressFile)
        await indexListener?.node.shutdown()
        await session.shutdown()
    }
}

/// A daemon holds a file or two per torrent and a socket per peer: the soft limit on open files (often
/// 1024) goes up to the hard one, as servers do.
func raiseOpenFileLimit() {
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
    limit.rlim_cur = min(limit.rlim_max, 1 << 20)
    _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
}

/// `peer serve`'s options for the surfaces other tools speak (qBittorrent's Web API, Transmission's RPC).
struct CompatOptions: ParsableArguments {
    @Option(name: .customLong("compat-user"), help: ArgumentHelp(
        "Serve qBittorrent's Web API at /api/v2/ and Transmission's RPC at /transmission/rpc (Sonarr, Radarr, "
            + "Prowlarr, transmission-remote, qbittorrent-api) to this user name, with the password in "
            + "--compat-password-file. Off without both.", valueName: "NAME"))
    var user: String?

    @Option(name: .customLong("compat-password-file"), help: ArgumentHelp(
        "A file whose first line is the password of --compat-user (keep it 0600).", valueName: "FILE"))
    var passwordFile: String?

    func validate() throws {
        if (self.user == nil) != (self.passwordFile == nil) {
            throw ValidationError("--compat-user and --compat-password-file go together")
        }
        if let user = self.user, user.isEmpty || user.contains(":") {
            throw ValidationError("--compat-user: a name with no colon")
        }
    }

    /// The login, read from the password file; nil when the surfaces are off.
    func login() throws -> CompatLogin? {
        guard let user = self.user, let file = self.passwordFile else { return nil }
        guard let data = FileManager.default.contents(atPath: file) else {
            throw CommandFailure("--compat-password-file \(file): cannot read it")
        }
        let password = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
            .first.map { String($0).trimmingCharacters(in: CharacterSet(charactersIn: "\r")) } ?? ""
        guard password.count >= 8 else {
            throw CommandFailure("--compat-password-file \(file): the password must have at least 8 characters")
        }
        return CompatLogin(user: user, password: password)
    }
}
