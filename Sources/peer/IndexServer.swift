// `peer serve`'s options for index nodes: be one (--index), and use one (--index-server).
import ArgumentParser
import Foundation
import PeerKit
import PeerServer
import Search

struct IndexOptions: ParsableArguments {
    @Flag(name: .customLong("index"), help: ArgumentHelp(
        "Be an index node: take signed announces of what nodes share, answer searches (JSON, and the Torznab API "
            + "for Prowlarr, Sonarr and Radarr) on a listener of its own (--index-listen)."))
    var index = false

    @Option(name: .customLong("index-listen"), help: ArgumentHelp(
        "Where the index node listens (with --index); it needs no API token.", valueName: "HOST:PORT"))
    var listen = "127.0.0.1:9092"

    @Option(name: .customLong("index-apikey"), help: ArgumentHelp(
        "The Torznab API key (with --index); default: one made on first start, kept in STATE/index-apikey.",
        valueName: "KEY"))
    var apiKey: String?

    @Option(name: .customLong("index-interval"), help: ArgumentHelp(
        "Seconds between two announces the index node takes from one key (with --index).", valueName: "SECONDS"))
    var interval: Int64 = 60

    @Option(name: .customLong("index-server"), help: ArgumentHelp(
        "An index node to announce this node's torrents to (signed with STATE/node-key) and to search beside the "
            + "search neighbours.", valueName: "URL"))
    var server: String?

    func validate() throws {
        guard PeerNode.splitHostPort(self.listen) != nil || self.listen.hasSuffix(":0") else {
            throw ValidationError("--index-listen \(self.listen): expected HOST:PORT")
        }
        guard (1...86_400).contains(self.interval) else { throw ValidationError("--index-interval must be 1 to 86400") }
        if let key = self.apiKey, key.count < 16 || key.contains(where: { $0.isWhitespace }) {
            throw ValidationError("--index-apikey: at least 16 characters, no spaces")
        }
        if let url = self.server {
            guard let u = URL(string: url), u.scheme == "http" || u.scheme == "https", u.host != nil else {
                throw ValidationError("--index-server \(url): expected http://HOST:PORT")
            }
        }
    }

    /// The sharing and searching side.
    func apply(to config: inout Session.Configuration) {
        config.indexServer = self.server.map { IndexServerLink.Configuration(url: $0) }
    }

    /// The index node's listener when --index is given: the index node in STATE/index-node, checking claims over
    /// the session's node, and its Torznab key.
    func listener(_ session: Session, stateDirectory: String) async throws -> IndexListener? {
        guard self.index else { return nil }
        var config = IndexNode.Configuration(directory: stateDirectory + "/index-node")
        config.gate.interval = self.interval
        config.log = { line in Terminal.stderr("\(line)\n") }
        let node = try IndexNode(configuration: config, node: session.node, listenPort: await session.listenPort)
        await node.start()
        let keyFile = stateDirectory + "/index-apikey"
        let apiKey: String
        if let given = self.apiKey {
            apiKey = given
        } else {
            apiKey = try SecretFile.loadOrCreate(keyFile, accept: { $0.count >= 16 })
        }
        let (host, port) = PeerNode.splitHostPort(self.listen) ?? (String(self.listen.dropLast(2)), 0)
        let keyNote = self.apiKey == nil ? "Torznab API key in \(keyFile)" : "Torznab API key from --index-apikey"
        return IndexListener(node: node, apiKey: apiKey, host: host, port: port) { bound in
            let shown = host == "0.0.0.0" || host == "::" ? "127.0.0.1" : (host.contains(":") ? "[\(host)]" : host)
            Terminal.stderr("serve: index node on http://\(shown):\(bound) (\(keyNote); Torznab at "
                + "http://\(shown):\(bound)/api/torznab)\n")
        }
    }
}
