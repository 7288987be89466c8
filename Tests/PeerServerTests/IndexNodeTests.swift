import Bencode
import Crypto
import Foundation
import Hummingbird
import HummingbirdTesting
import PeerBase
import PeerKit
import Search
import Testing

#if canImport(FoundationXML)
import FoundationXML
#endif

@testable import PeerServer

// The index node's HTTP face over a real socket on 127.0.0.1 (an announcer's address is where its announce came
// from): announces refused for their size, rows, form, signature, time and rate; claims that fail their checks;
// `/search`; and the Torznab API, read back with an XML parser.

@Suite("The index node: announces, /search and the Torznab API")
struct IndexNodeTests {
    static let apiKey = "torznab-test-key-0123456789"

    /// An index node on a fresh folder, its server on 127.0.0.1 (a free port), and a client of it.
    func withIndexNode(configure: (inout IndexNode.Configuration) -> Void = { _ in },
        _ body: @escaping @Sendable (any TestClientProtocol, IndexNode) async throws -> Void) async throws
    {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("peer-index-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let peers = PeerNode(bindHost: "127.0.0.1", loops: 1)
        var c = IndexNode.Configuration(directory: root)
        c.checkTimeout = .seconds(5)
        configure(&c)
        let node = try IndexNode(configuration: c, node: peers, listenPort: 0)
        let app = Application(router: PeerServer.indexRouter(node: node, apiKey: Self.apiKey), server: PeerServer.http1,
            configuration: PeerServer.configuration(host: "127.0.0.1", port: 0))
        var failure: (any Error)?
        do { try await app.test(.live) { client in try await body(client, node) } } catch { failure = error }
        await node.shutdown()
        await peers.shutdown()
        if let failure { throw failure }
    }

    static var now: Int64 { Int64(Date().timeIntervalSince1970) }

    static func torrent(_ n: Int, _ name: String) -> IndexAnnounce.Torrent {
        IndexAnnounce.Torrent(infoHash: (0..<20).map { UInt8(truncatingIfNeeded: n &* 31 &+ $0) }, name: name,
            size: Int64(1000 + n), files: 1 + n, seeding: n % 2 == 0)
    }

    static func body(_ key: Curve25519.Signing.PrivateKey, _ torrents: [IndexAnnounce.Torrent], port: Int = 6881,
        time: Int64 = Self.now) throws -> [UInt8]
    {
        try IndexAnnounce(publicKey: Array(key.publicKey.rawRepresentation), port: port, time: time, torrents: torrents)
            .signed(with: key)
    }

    static func post(_ client: any TestClientProtocol, _ body: [UInt8]) async throws -> TestResponse {
        try await client.execute(uri: "/announce", method: .post, headers: [.contentType: "application/octet-stream"],
            body: ByteBuffer(bytes: body))
    }

    @Test("an announce is refused when oversized, too long, malformed, badly signed, stale, replayed or too frequent")
    func refusals() async throws {
        try await self.withIndexNode { client, _ in
            let key = Curve25519.Signing.PrivateKey()
            let first = try Self.body(key, [])
            let taken = try await Self.post(client, first)
            #expect(taken.status == .ok, "\(taken.text)")
            #expect(try taken.json() == .object(["accepted": .number(0), "new": .number(0), "checking": .number(0),
                "interval": .number(60)]))
            // The same bytes again: a replay; a fresh one within the minute: too frequent, with when to come back.
            expectError(try await Self.post(client, first), .conflict, "replay", mentioning: "replay")
            let again = try await Self.post(client, try Self.body(key, [], time: Self.now + 1))
            expectError(again, .tooManyRequests, "too_frequent", mentioning: "interval")
            #expect((50...60).contains(Int(again.headers[.retryAfter] ?? "") ?? -1), "\(again.headers)")

            let other = Curve25519.Signing.PrivateKey()
            var forged = try Self.body(other, [Self.torrent(1, "x")])
            forged[forged.count - 2] ^= 0x20  // the signature's last bytes
            expectError(try await Self.post(client, forged), .forbidden, "bad_signature", mentioning: "signature")
            expectError(try await Self.post(client, try Self.body(other, [], time: Self.now - 3600)), .badRequest, "stale",
                mentioning: "clock")
            let many = try Self.body(other, (0...1000).map { Self.torrent($0, "t\($0)") })
            expectError(try await Self.post(client, many), .contentTooLarge, "too_many_torrents", mentioning: "1000")
            // Refused on its Content-Length, before a byte of the body is read (none is sent), and without one as
            // soon as more than 256 KiB came.
            let port = try #require(client.port)
            let head = try await rawHTTP(port: port, "POST /announce HTTP/1.1\r\nHost: x\r\nContent-Length: \(IndexAnnounce.maxBytes + 1)\r\n\r\n")
            #expect(head.hasPrefix("HTTP/1.1 413"), "\(head)")
            #expect(head.contains(#""code":"payload_too_large""#) && head.contains("262144"))
            let chunk = String(repeating: "x", count: 64 << 10)
            let chunked = try await rawHTTP(port: port, "POST /announce HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                + String(repeating: "10000\r\n\(chunk)\r\n", count: 5) + "0\r\n\r\n")
            #expect(chunked.hasPrefix("HTTP/1.1 413"), "\(chunked.prefix(300))")
            expectError(try await Self.post(client, Array("not an announce".utf8)), .badRequest, "bad_announce")
            // None of those counted against the other key: its first good announce is taken.
            #expect(try await Self.post(client, try Self.body(other, [])).status == .ok)
            let method = try await client.execute(uri: "/announce", method: .get)
            #expect(method.status == .methodNotAllowed)
        }
    }

    @Test("a key whose claims fail their checks is refused, and its claims are dropped")
    func failedChecks() async throws {
        try await self.withIndexNode { client, node in
            let key = Curve25519.Signing.PrivateKey()
            // Port 1 on 127.0.0.1: nothing listens, every check fails at once.
            let torrents = (1...4).map { Self.torrent($0, "Fake.Movie.\($0).2160p") }
            let taken = try await Self.post(client, try Self.body(key, torrents, port: 1))
            #expect(taken.status == .ok, "\(taken.text)")
            #expect(try taken.json()["checking"]?.int == 3)
            try await poll("the key to be refused", timeout: .seconds(15)) {
                try await node.statistics().refusedKeys == 1
            }
            let stats = try await node.statistics()
            #expect(stats.rows == 0 && stats.claims == 0 && stats.announcers == 0 && stats.checksFailed == 3)
            #expect(try await client.execute(uri: "/search?q=fake", method: .get).json()["hits"] == .array([]))
            let refused = try await Self.post(client, try Self.body(key, torrents, port: 1, time: Self.now + 1))
            expectError(refused, .forbidden, "refused_key", mentioning: "failed their checks")
            #expect(Int(refused.headers[.retryAfter] ?? "") ?? 0 > 86_000)
        }
    }

    @Test("/search and the Torznab API answer with the announced torrents, escaped, and refuse a wrong apikey")
    func searchAndTorznab() async throws {
        // No checks: the claims stay (unverified) for the queries to find.
        try await self.withIndexNode(configure: { $0.gate.minChecks = 0; $0.gate.checkShare = 0 }) { client, _ in
            let key = Curve25519.Signing.PrivateKey()
            let names = ["Tom & Jerry <1080p> \"Special\" 'Edition'\u{1}", "Ubuntu 24.04 Desktop", "Big Buck Bunny"]
            let torrents = names.enumerated().map { Self.torrent($0.offset, $0.element) }
            #expect(try await Self.post(client, try Self.body(key, torrents, port: 6881)).status == .ok)

            let json = try await client.execute(uri: "/search?q=jerry%201080p", method: .get).json()
            let hit = try #require(json["hits"]?[0])
            #expect(json["hits"]?.array?.count == 1)
            #expect(hit["name"]?.string == names[0])
            #expect(hit["peers"] == .array([.string("127.0.0.1:6881")]))
            #expect(hit["seeders"]?.int == 1 && hit["leechers"]?.int == 0)
            #expect(hit["verified"]?.bool == false && hit["sources"] == .array([.string("index")]))
            #expect(hit["magnet"]?.string?.hasSuffix("&x.pe=127.0.0.1:6881") == true)
            let newest = try await client.execute(uri: "/search", method: .get).json()
            #expect(newest["hits"]?.array?.compactMap { $0["name"]?.string } == names.reversed())
            expectError(try await client.execute(uri: "/search?q=x&limit=0", method: .get), .badRequest, "bad_request")

            let caps = try XMLTree(try await client.execute(uri: "/api/torznab?t=caps", method: .get).text)
            #expect(caps.root?.name == "caps")
            #expect(caps.all("limits").first?.attributes == ["default": "100", "max": "100"])
            #expect(caps.all("search").first?.attributes["available"] == "yes")
            #expect(caps.all("category").first?.attributes["id"] == "8000")

            let feed = try XMLTree(try await client.execute(
                uri: "/api/torznab?t=search&q=jerry&apikey=\(Self.apiKey)", method: .get).text)
            #expect(feed.root?.name == "rss")
            let items = feed.all("item")
            #expect(items.count == 1)
            let item = try #require(items.first)
            // The control character is left out; everything else comes back as it was.
            #expect(item.child("title")?.text == "Tom & Jerry <1080p> \"Special\" 'Edition'")
            var attrs: [String: String] = [:]
            for a in item.children where a.name == "attr" && a.namespace == Torznab.namespace {
                attrs[a.attributes["name"] ?? "?"] = a.attributes["value"]
            }
            let ih = Hex.encode(torrents[0].infoHash)
            #expect(attrs["infohash"] == ih)
            #expect(attrs["seeders"] == "1" && attrs["peers"] == "1" && attrs["size"] == "1000" && attrs["files"] == "1")
            #expect(attrs["magneturl"]?.hasPrefix("magnet:?xt=urn:btih:\(ih)&dn=Tom%20%26%20Jerry") == true)
            #expect(item.child("enclosure")?.attributes["url"] == attrs["magneturl"])
            #expect(item.child("guid")?.text == "urn:btih:\(ih)")

            // An empty query: the newest rows, newest first; limit and offset page through them.
            let all = try XMLTree(try await client.execute(uri: "/api/torznab?t=search&q=&apikey=\(Self.apiKey)",
                method: .get).text)
            #expect(all.all("item").compactMap { $0.child("title")?.text }
                == ["Big Buck Bunny", "Ubuntu 24.04 Desktop", "Tom & Jerry <1080p> \"Special\" 'Edition'"])
            let page = try XMLTree(try await client.execute(
                uri: "/api/torznab?t=tvsearch&apikey=\(Self.apiKey)&limit=1&offset=1", method: .get).text)
            #expect(page.all("item").compactMap { $0.child("title")?.text } == ["Ubuntu 24.04 Desktop"])

            for (uri, code) in [
                ("/api/torznab?t=search&q=jerry&apikey=wrong", "100"), ("/api/torznab?t=search&q=jerry", "100"),
                ("/api/torznab?q=jerry", "200"), ("/api/torznab?t=music&apikey=\(Self.apiKey)", "202"),
                ("/api/torznab?t=search&apikey=\(Self.apiKey)&offset=-1", "201"),
                ("/api/torznab?t=search&apikey=\(Self.apiKey)&q=\(String(repeating: "word%20", count: 200))", "201"),
            ] {
                let r = try await client.execute(uri: uri, method: .get)
                let error = try XMLTree(r.text)
                #expect(error.root?.name == "error", "\(uri): \(r.text)")
                #expect(error.root?.attributes["code"] == code, "\(uri): \(r.text)")
                let description = error.root?.attributes["description"] ?? ""
                #expect(!description.isEmpty)
            }
        }
    }

    @Test("Torznab text is escaped for XML, and characters XML cannot hold are left out")
    func escaping() throws {
        #expect(Torznab.escape("a&b<c>d\"e'f") == "a&amp;b&lt;c&gt;d&quot;e&apos;f")
        #expect(Torznab.escape("tab\tline\nend\r\u{0}\u{8}\u{1F}\u{FFFE}é東") == "tab&#9;line&#10;end&#13;é東")
        #expect(Torznab.rfc822(Date(timeIntervalSince1970: 1_000_000_000)) == "Sun, 09 Sep 2001 01:46:40 +0000")
        let error = try XMLTree(Torznab.error(.badCredentials, "a \"quoted\" <word> & \u{7}bell"))
        #expect(error.root?.attributes["description"] == "a \"quoted\" <word> & bell")
    }
}

/// A parsed XML document, elements with their namespace, attributes, text and children.
final class XMLTree {
    final class Element {
        let name: String
        let namespace: String?
        let attributes: [String: String]
        var text = ""
        var children: [Element] = []
        init(name: String, namespace: String?, attributes: [String: String]) {
            self.name = name
            self.namespace = namespace
            self.attributes = attributes
        }
        func child(_ name: String) -> Element? { self.children.first { $0.name == name } }
    }

    private(set) var root: Element?

    init(_ text: String) throws {
        #if canImport(FoundationXML) || canImport(Darwin)
        let parser = XMLParser(data: Data(text.utf8))
        let builder = Builder()
        parser.delegate = builder
        parser.shouldProcessNamespaces = true
        guard parser.parse() else {
            throw TimedOut(description: "not XML (\(parser.parserError.map { "\($0)" } ?? "?")): \(text)")
        }
        self.root = builder.root
        #endif
    }

    /// Every element named `name` (local name), in document order.
    func all(_ name: String) -> [Element] {
        var out: [Element] = []
        func walk(_ e: Element) {
            if e.name == name { out.append(e) }
            e.children.forEach(walk)
        }
        self.root.map(walk)
        return out
    }

    #if canImport(FoundationXML) || canImport(Darwin)
    private final class Builder: NSObject, XMLParserDelegate {
        var root: XMLTree.Element?
        var stack: [XMLTree.Element] = []

        func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
            attributes: [String: String] = [:])
        {
            let e = XMLTree.Element(name: name, namespace: namespaceURI, attributes: attributes)
            if let parent = self.stack.last { parent.children.append(e) } else { self.root = e }
            self.stack.append(e)
        }

        func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
            self.stack.removeLast()
        }

        func parser(_ parser: XMLParser, foundCharacters string: String) { self.stack.last?.text += string }
    }
    #endif
}
