import ArgumentParser
import AsyncHTTPClient
import Bencode
import Crypto
import DHT
import Foundation
import PeerBase
import PeerKit

/// `peer dht …`: the Mainline DHT by hand, on a temporary node started from the saved routing table.
struct DHTCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dht",
        abstract: "Ask the Mainline DHT directly: ping a node, find peers, store and fetch BEP 44 items.",
        discussion: """
            When a daemon (`peer serve`) runs on the state folder, every command uses its node, which has \
            joined the DHT already (--no-daemon, --bind, --port or --dht-bootstrap say otherwise); put signs a \
            mutable item here and hands the daemon the signed item, never the key. Else each command starts a \
            temporary DHT node (on --bind, UDP --port), joins the DHT from the nodes saved in the state folder \
            and the bootstrap nodes, does its work and saves the routing table again.

            Examples:
              peer dht ping 127.0.0.2:6881
              peer dht peers 4d753474429d817b80ff9e0c441ca660ec5d2450 --dht-bootstrap 127.0.0.2:6881
              peer dht keygen -o me.key
              peer dht put --mutable 'hello' --key me.key --salt notes
              peer dht get --mutable $(peer dht keygen --public me.key) --salt notes
            """,
        subcommands: [Ping.self, Peers.self, Put.self, Get.self, Sample.self, Stats.self, Keygen.self])

    struct Options: ParsableArguments {
        @Option(help: "Local address for the DHT's UDP socket (tests give each node its own 127.0.0.x).")
        var bind: String?

        @Option(help: "UDP port (0 picks a free one).")
        var port: Int = 0

        @Option(name: .customLong("dht-bootstrap"), help: ArgumentHelp("Join through this node (HOST:PORT); repeatable.",
            valueName: "HOST:PORT"))
        var bootstrap: [String] = []

        @Option(help: "State folder (the saved routing table); default $PEER_HOME, else ~/.local/share/peer.")
        var state: String?

        @Option(help: "Give up after this many seconds.")
        var timeout: Int = 30

        @Flag(name: .customLong("no-daemon"), help: "Start a temporary node even when a daemon runs.")
        var noDaemon = false

        @Flag(help: "Print JSON.")
        var json = false

        /// The same defaults as `peer get`'s DHT.
        var network: NetworkOptions {
            var n = try! NetworkOptions.parse(["--port", String(self.port)])
            n.bind = self.bind
            n.state = self.state
            n.discovery.dhtBootstrap = self.bootstrap
            return n
        }
    }

    /// Runs `body` with a started DHT node, bounded by `--timeout`, and saves the routing table afterwards.
    static func withNode<T: Sendable>(_ options: Options, _ command: String,
        _ body: @escaping @Sendable (DHTService) async throws -> T) async throws -> T
    {
        let node = PeerNode(bindHost: options.bind, loops: 1)
        var network = options.network
        network.discovery.noDHT = false
        guard let service = await startDHT(node, network: network, port: options.port, command: "dht \(command)") else {
            await node.shutdown()
            throw ExitCode(1)
        }
        let result: Result<T, any Error>
        do {
            result = .success(try await withThrowingTaskGroup(of: T.self) { group in
                group.addTask { try await body(service) }
                group.addTask {
                    try await Task.sleep(for: .seconds(options.timeout))
                    throw DHTCommandError.timedOut(options.timeout)
                }
                defer { group.cancelAll() }
                return try await group.next()!
            })
        } catch {
            result = .failure(error)
        }
        await saveDHTNodes(service, network: network)
        await node.shutdown()
        switch result {
        case .success(let value): return value
        case .failure(let error):
            Terminal.error("dht \(command)", "\(error)")
            throw ExitCode(1)
        }
    }

    /// Runs `body` against the running daemon's node when the command should use it (a daemon answers on the
    /// state folder, and no option asks for a node of its own); nil when it should not, or none answers.
    static func viaDaemon<T>(_ options: Options, _ command: String, _ body: (DaemonClient) async throws -> T)
        async throws -> T?
    {
        let state = stateDirectory(options.state)
        guard !options.noDaemon, options.bind == nil, options.port == 0, options.bootstrap.isEmpty,
            FileManager.default.fileExists(atPath: state + "/" + DaemonClient.Endpoint.addressFile)
        else { return nil }
        let http = HTTPClient(eventLoopGroupProvider: .singleton)
        let client: DaemonClient
        do {
            client = DaemonClient(try Daemon.endpoint(options.state), http: http)
            _ = try await client.send(.GET, "/api/dht", timeout: .seconds(3))
        } catch {
            Terminal.stderr("dht \(command): not using the daemon (\(error)); starting a temporary node\n")
            try? await http.shutdown()
            return nil
        }
        let result: Result<T, any Error>
        do { result = .success(try await body(client)) } catch { result = .failure(error) }
        try? await http.shutdown()
        switch result {
        case .success(let value): return value
        case .failure(let error):
            if error is ExitCode { throw error }
            Terminal.error("dht \(command)", "\(error)")
            throw ExitCode(1)
        }
    }

    static func endpoint(_ text: String) throws -> DHTEndpoint {
        guard let ep = DHTEndpoint(text: text) else { throw ValidationError("\(text): expected IP:PORT") }
        return ep
    }

    static func nodeID(_ text: String, _ what: String) throws -> NodeID {
        guard text.count == 40, let id = NodeID(hex: text) else { throw ValidationError("\(what) must be 40 hex digits") }
        return id
    }

    /// Checks a request's fields before any node starts: a bad one is a usage error.
    static func checked<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as SessionError { throw ValidationError(error.description) }
    }

    static func fail(_ failure: LookupFailure) -> DHTCommandError { .failed(failure.description) }

    struct Ping: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Ping a DHT node.")
        @Argument(help: "The node, IP:PORT.") var node: String
        @OptionGroup var options: Options

        func run() async throws {
            let target = try DHTCommand.endpoint(self.node)
            let started = ContinuousClock.now
            if let pong = try await DHTCommand.viaDaemon(self.options, "ping", { client in
                try DaemonClient.decode(DHTReport.Pong.self,
                    try await client.send(.POST, "/api/dht/ping", json: NodeBody(node: self.node), timeout: .seconds(60)))
            }) {
                let ms = (ContinuousClock.now - started).components.attoseconds / 1_000_000_000_000_000
                print(self.options.json ? try Terminal.json(pong) : "pong from \(pong.id) at \(pong.node) (\(ms) ms, the daemon's node)")
                return
            }
            let outcome = try await DHTCommand.withNode(self.options, "ping") { try await $0.run(.ping(target), joinFirst: false) }
            guard case .pong(let info) = outcome else {
                Terminal.error("dht ping", "\(self.node) did not answer")
                throw ExitCode(1)
            }
            let ms = (ContinuousClock.now - started).components.attoseconds / 1_000_000_000_000_000
            print(self.options.json ? try Terminal.json(DHTReport.Pong(id: "\(info.id)", node: self.node))
                : "pong from \(info.id) at \(self.node) (\(ms) ms)")
        }
    }

    struct Peers: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Find peers of an info-hash (get_peers).")
        @Argument(help: "The info-hash, 40 hex digits (v1, or a v2 hash truncated).") var infoHash: String
        @OptionGroup var options: Options

        func run() async throws {
            let id = try DHTCommand.nodeID(self.infoHash, "the info-hash")
            var report = try await DHTCommand.viaDaemon(self.options, "peers") { client in
                try DaemonClient.decode(DHTReport.Peers.self, try await client.send(.POST, "/api/dht/peers",
                    json: ["info_hash": self.infoHash.lowercased()], timeout: .seconds(120)))
            }
            if report == nil {
                let outcome = try await DHTCommand.withNode(self.options, "peers") { try await $0.run(.getPeers(infoHash: id), joinFirst: true) }
                switch outcome {
                case .peers(_, let peers, let closest):
                    report = DHTReport.Peers(peers: peers.map(\.description), closestNodes: closest.map(\.node.endpoint.description))
                case .failed(let f): throw DHTCommand.fail(f)
                default: throw DHTCommandError.failed("unexpected answer")
                }
            }
            let found = report!
            if self.options.json {
                print(try Terminal.json(found))
            } else {
                for p in found.peers { print(p) }
                Terminal.stderr("dht peers: \(found.peers.count) peers, asked \(found.closestNodes.count) closest nodes\n")
            }
            if found.peers.isEmpty { throw ExitCode(1) }
        }
    }

    /// BEP 44 gets and puts, on the daemon's node or a temporary one.
    struct Items: Sendable {
        /// The item, or nil when no node has it.
        let get: @Sendable (DHTReport.GetRequest) async throws -> DHTReport.Item?
        let put: @Sendable (DHTReport.PutRequest) async throws -> DHTReport.Stored
    }

    static func withItems<T: Sendable>(_ options: Options, _ command: String,
        _ body: @escaping @Sendable (Items) async throws -> T) async throws -> T
    {
        if let result = try await viaDaemon(options, command, { client in
            try await body(Items(
                get: { request in
                    do {
                        return try DaemonClient.decode(DHTReport.Item.self, try await client.send(.POST, "/api/dht/get",
                            json: request, timeout: .seconds(120)))
                    } catch let e as DaemonClientError where e.status == 404 {
                        return nil
                    }
                },
                put: { request in
                    try DaemonClient.decode(DHTReport.Stored.self, try await client.send(.POST, "/api/dht/put",
                        json: request, timeout: .seconds(120)))
                }))
        }) {
            return result
        }
        return try await withNode(options, command) { service in
            try await body(Items(
                get: { request in
                    let (target, salt) = try request.lookup()
                    switch try await service.run(.get(target: target, salt: salt), joinFirst: true) {
                    case .item(_, let item, _): return item.map(DHTReport.Item.init)
                    case .failed(let f): throw DHTCommand.fail(f)
                    default: throw DHTCommandError.failed("unexpected answer")
                    }
                },
                put: { request in
                    switch try await service.run(.put(try request.item(), cas: request.cas), joinFirst: true) {
                    case .stored(let target, let accepted, let refusals):
                        return DHTReport.Stored(target: target, acceptedBy: accepted, refusals: refusals)
                    case .failed(let f): throw DHTCommand.fail(f)
                    default: throw DHTCommandError.failed("unexpected answer")
                    }
                }))
        }
    }

    struct Put: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Store a BEP 44 item (a text value).")
        @Option(help: "Store this text as an immutable item (its target is the SHA-1 of its bencoding).")
        var immutable: String?
        @Option(help: "Store this text as a mutable item signed with --key.")
        var mutable: String?
        @Option(help: "The key file (a hex ed25519 seed, as `peer dht keygen` writes). It stays here: a daemon gets the signed item.")
        var key: String?
        @Option(help: "Salt for a mutable item (text), so one key can hold several items.")
        var salt: String = ""
        @OptionGroup var options: Options

        func validate() throws {
            guard (self.immutable == nil) != (self.mutable == nil) else { throw ValidationError("give --immutable or --mutable") }
            if self.mutable != nil && self.key == nil { throw ValidationError("--mutable needs --key FILE") }
            if self.salt.utf8.count > DHTItem.maxSaltLength { throw ValidationError("--salt: at most 64 bytes") }
        }

        func run() async throws {
            let stored: DHTReport.Stored
            if let text = self.immutable {
                let request = DHTReport.PutRequest(.immutable(.text(text)))
                _ = try DHTCommand.checked { try request.item() }
                stored = try await DHTCommand.withItems(self.options, "put") { try await $0.put(request) }
            } else {
                let privateKey = try Keygen.load(self.key!)
                let publicKey = Hex.encode(Array(privateKey.publicKey.rawRepresentation))
                let salt = self.salt.isEmpty ? nil : self.salt
                let value = BencodeValue.text(self.mutable!)
                stored = try await DHTCommand.withItems(self.options, "put") { items in
                    // The next sequence number after the one stored now (compare-and-swap on it).
                    let current = try await items.get(DHTReport.GetRequest(publicKey: publicKey, salt: salt))?.seq
                    let item = try MutableItem.signed(value: value, sequence: current.map { $0 + 1 } ?? 0,
                        salt: Array((salt ?? "").utf8), privateKey: privateKey)
                    return try await items.put(DHTReport.PutRequest(.mutable(item), cas: current))
                }
            }
            if self.options.json {
                print(try Terminal.json(stored))
            } else {
                print(stored.target)
                Terminal.stderr("dht put: stored on \(stored.storedOn) nodes"
                    + (stored.refusal.map { ", refused by \(stored.refusedBy) (\($0))" } ?? "") + "\n")
            }
            if stored.storedOn == 0 { throw ExitCode(1) }
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Fetch a BEP 44 item (checked against its target and signature).")
        @Option(help: "The target of an immutable item, 40 hex digits.") var immutable: String?
        @Option(help: "The public key of a mutable item, 64 hex digits.") var mutable: String?
        @Option(help: "The mutable item's salt (text).") var salt: String = ""
        @OptionGroup var options: Options

        func validate() throws {
            guard (self.immutable == nil) != (self.mutable == nil) else { throw ValidationError("give --immutable or --mutable") }
        }

        func run() async throws {
            let request = DHTReport.GetRequest(target: self.immutable?.lowercased(), publicKey: self.mutable?.lowercased(),
                salt: self.mutable != nil && !self.salt.isEmpty ? self.salt : nil)
            let (target, _) = try DHTCommand.checked { try request.lookup() }
            guard let item = try await DHTCommand.withItems(self.options, "get", { try await $0.get(request) }) else {
                Terminal.error("dht get", "no node has \(target)")
                throw ExitCode(1)
            }
            if self.options.json {
                print(try Terminal.json(item))
            } else {
                print(item.value)
                if let seq = item.seq { Terminal.stderr("dht get: sequence number \(seq)\n") }
            }
        }
    }

    struct Sample: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Ask a node for a sample of the info-hashes it stores (BEP 51).")
        @Argument(help: "The node, IP:PORT.") var node: String
        @OptionGroup var options: Options

        func run() async throws {
            let target = try DHTCommand.endpoint(self.node)
            var report = try await DHTCommand.viaDaemon(self.options, "sample") { client in
                try DaemonClient.decode(DHTReport.Samples.self, try await client.send(.POST, "/api/dht/sample",
                    json: NodeBody(node: self.node), timeout: .seconds(60)))
            }
            if report == nil {
                let random = NodeID(bytes: (0..<20).map { _ in UInt8.random(in: .min ... .max) })!
                let outcome = try await DHTCommand.withNode(self.options, "sample") {
                    try await $0.run(.sampleInfohashes(from: target, target: random), joinFirst: false)
                }
                guard case .samples(let s) = outcome else {
                    if case .failed(let f) = outcome { throw DHTCommand.fail(f) }
                    throw DHTCommandError.failed("unexpected answer")
                }
                report = DHTReport.Samples(samples: s.samples.map(\.description), available: s.available)
            }
            let s = report!
            if self.options.json {
                print(try Terminal.json(s))
            } else {
                for h in s.samples { print(h) }
                Terminal.stderr("dht sample: \(s.samples.count) of \(s.available.map(String.init) ?? "?") info-hashes\n")
            }
        }
    }

    struct Stats: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Join the DHT and show the routing table and traffic.")
        @OptionGroup var options: Options

        func run() async throws {
            var report = try await DHTCommand.viaDaemon(self.options, "stats") { client in
                try DaemonClient.decode(DHTReport.Stats.self, try await client.send(.GET, "/api/dht"))
            }
            if report == nil {
                report = try await DHTCommand.withNode(self.options, "stats") { service -> DHTReport.Stats in
                    _ = try await service.run(.findNode(NodeID(bytes: (0..<20).map { _ in UInt8.random(in: .min ... .max) })!),
                        joinFirst: true)
                    guard let stats = await service.stats() else { throw DHTCommandError.failed("no figures") }
                    return DHTReport.Stats(stats)
                }
            }
            if self.options.json {
                print(try Terminal.json(report!))
            } else {
                for (k, v) in report!.rows { print("\(k):".padding(toLength: 20, withPad: " ", startingAt: 0) + v) }
            }
        }
    }

    struct Keygen: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make an ed25519 key for mutable items, or show a key's public half.")
        @Option(name: .shortAndLong, help: "Write the new key (a hex seed) to this file (mode 600).") var output: String?
        @Option(name: .customLong("public"), help: "Print the public key of this key file instead.") var publicOf: String?

        func run() async throws {
            if let file = self.publicOf {
                print(NodeKey.publicHex(try Self.load(file)))
                return
            }
            guard let output = self.output else { throw ValidationError("give -o FILE (or --public FILE)") }
            let key = Curve25519.Signing.PrivateKey()
            do { try NodeKey.write(key, to: output) } catch {
                Terminal.error("dht keygen", "\(error)")
                throw ExitCode(1)
            }
            print(NodeKey.publicHex(key))
        }

        static func load(_ file: String) throws -> Curve25519.Signing.PrivateKey {
            do { return try NodeKey.load(file) } catch {
                Terminal.error("dht", "\(error)")
                throw ExitCode(1)
            }
        }
    }
}

enum DHTCommandError: Error, CustomStringConvertible {
    case timedOut(Int)
    case failed(String)

    var description: String {
        switch self {
        case .timedOut(let s): "no answer within \(s) s (--timeout)"
        case .failed(let why): why
        }
    }
}

private struct NodeBody: Encodable { var node: String }
