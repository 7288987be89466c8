import AsyncHTTPClient
import Foundation
import Metainfo
import NIOCore
import NIOHTTP1
import NIOPosix
import PeerBase
import PeerKit
import Synchronization
import Testing

@Suite("WebSeed: URLs and Range requests (BEP 19)")
struct WebSeedURLTests {
    static func file(_ path: [String]) -> TorrentFile { TorrentFile(index: 0, path: path, length: 1, offset: 0) }

    @Test("single file: a URL ending in / gets the name, any other is the file itself")
    func single() {
        let f = Self.file(["movie 1.mkv"])
        #expect(WebSeed.fileURL(base: "http://m/pub/", file: f, name: "movie 1.mkv", isMultiFile: false)
            == "http://m/pub/movie%201.mkv")
        #expect(WebSeed.fileURL(base: "http://m/get?id=7", file: f, name: "movie 1.mkv", isMultiFile: false)
            == "http://m/get?id=7")
    }

    @Test("multi-file: folder + name + path, each component percent-encoded; a / is added when missing")
    func multi() {
        let f = Self.file(["album", "cd 1", "été#1?.flac"])
        let want = "http://m/pub/album/cd%201/%C3%A9t%C3%A9%231%3F.flac"
        #expect(WebSeed.fileURL(base: "http://m/pub/", file: f, name: "album", isMultiFile: true) == want)
        #expect(WebSeed.fileURL(base: "http://m/pub", file: f, name: "album", isMultiFile: true) == want)
        #expect(WebSeed.percentEncode("a-b_c.d~e") == "a-b_c.d~e")
    }

    @Test("a piece across three files is three Range requests; empty files are skipped")
    func spans() throws {
        try withTempDir { dir in
            try dir.write("set/a.bin", SeededGenerator.bytes(10_000, seed: 1))
            try dir.write("set/b.bin", SeededGenerator.bytes(3_000, seed: 2))
            try dir.write("set/c.bin", SeededGenerator.bytes(0, seed: 3))
            try dir.write("set/d.bin", SeededGenerator.bytes(20_000, seed: 4))
            let t = try create(dir.path + "/set") { $0.version = .v1 }.metainfo
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let client = HTTPClient(eventLoopGroupProvider: .shared(group))
            defer {
                try? client.syncShutdown()
                try? group.syncShutdownGracefully()
            }
            let seed = WebSeed(url: "http://h/w/", metainfo: t, client: client)
            let r0 = try #require(seed.requests(piece: 0))
            #expect(r0.map(\.url) == ["http://h/w/set/a.bin", "http://h/w/set/b.bin", "http://h/w/set/d.bin"])
            #expect(r0.map(\.rangeHeader) == ["bytes=0-9999", "bytes=0-2999", "bytes=0-3383"])
            #expect(r0.map(\.pieceOffset) == [0, 10_000, 13_000])
            #expect(seed.requests(piece: 1)
                == [.init(url: "http://h/w/set/d.bin", fileOffset: 3384, length: 16_384, pieceOffset: 0)])
            #expect(seed.requests(piece: 2)
                == [.init(url: "http://h/w/set/d.bin", fileOffset: 19_768, length: 232, pieceOffset: 0)])
            #expect(seed.pieceSize(2) == 232)
            #expect(seed.requests(piece: 3) == nil)
        }
    }

    @Test("padding files (BEP 47) are never requested")
    func padding() throws {
        try withTempDir { dir in
            try dir.write("set/a.bin", SeededGenerator.bytes(10_000, seed: 1))
            try dir.write("set/b.bin", SeededGenerator.bytes(3_000, seed: 2))
            let t = try create(dir.path + "/set") { $0.version = .hybrid }.metainfo
            #expect(t.files.contains { $0.isPadding })
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let client = HTTPClient(eventLoopGroupProvider: .shared(group))
            defer {
                try? client.syncShutdown()
                try? group.syncShutdownGracefully()
            }
            let seed = WebSeed(url: "http://h/", metainfo: t, client: client)
            #expect(seed.requests(piece: 0)?.map(\.url) == ["http://h/set/a.bin"])
            #expect(seed.requests(piece: 1)?.map(\.url) == ["http://h/set/b.bin"])
            #expect(seed.pieceSize(0) == 16_384)
        }
    }
}

/// A small HTTP server on 127.0.0.1 for the web seed tests: serves files by path, with Range support, or
/// misbehaves as `mode` says.
final class RangeServer: Sendable {
    enum Mode: Sendable {
        case ranges, ignoreRange, wrongRange, shortBody, longBody
        case status(Int)
    }

    let files: [String: [UInt8]]
    let mode: Mode
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let requests = Mutex<[String]>([])
    private let channel: Mutex<(any Channel)?> = Mutex(nil)

    init(files: [String: [UInt8]], mode: Mode = .ranges) {
        self.files = files
        self.mode = mode
    }

    /// Starts listening; returns the port.
    func start() async throws -> Int {
        let channel = try await ServerBootstrap(group: self.group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMap {
                    channel.pipeline.addHandler(RangeHandler(server: self))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        self.channel.withLock { $0 = channel }
        return channel.localAddress!.port!
    }

    func stop() async {
        let channel = self.channel.withLock { $0 }
        try? await channel?.close()
        try? await self.group.shutdownGracefully()
    }

    /// The response to a GET of `path` with an optional `Range: bytes=a-b`.
    func respond(path: String, range: String?) -> (HTTPResponseHead, [UInt8]) {
        self.requests.withLock { $0.append("\(path) \(range ?? "-")") }
        var head = HTTPResponseHead(version: .http1_1, status: .ok)
        if case .status(let code) = self.mode {
            head.status = .init(statusCode: code)
            head.headers.add(name: "Content-Length", value: "0")
            return (head, [])
        }
        guard let file = self.files[path.removingPercentEncoding ?? path] else {
            head.status = .notFound
            head.headers.add(name: "Content-Length", value: "0")
            return (head, [])
        }
        if case .ignoreRange = self.mode { return self.whole(file, head) }
        return self.partial(file, range: range, head: head)
    }

    private func whole(_ file: [UInt8], _ head: HTTPResponseHead) -> (HTTPResponseHead, [UInt8]) {
        var head = head
        head.headers.add(name: "Content-Length", value: "\(file.count)")
        return (head, file)
    }

    private func partial(_ file: [UInt8], range: String?, head: HTTPResponseHead) -> (HTTPResponseHead, [UInt8]) {
        guard let range, range.hasPrefix("bytes="), case let parts = range.dropFirst(6).split(separator: "-"),
            parts.count == 2, let a = Int(parts[0]), let b = Int(parts[1]), a <= b, b < file.count
        else { return self.whole(file, head) }
        var head = head
        head.status = .partialContent
        var body = Array(file[a...b])
        switch self.mode {
        case .wrongRange:
            body = Array(file[0..<body.count])
            head.headers.add(name: "Content-Range", value: "bytes 0-\(body.count - 1)/\(file.count)")
            head.headers.add(name: "Content-Length", value: "\(body.count)")
        case .shortBody, .longBody:
            // No Content-Length: the body is chunked, and its length is whatever the server sends.
            head.headers.add(name: "Content-Range", value: "bytes \(a)-\(b)/\(file.count)")
            if case .shortBody = self.mode { body.removeLast(body.count / 2) } else { body += [1, 2, 3] }
        default:
            head.headers.add(name: "Content-Range", value: "bytes \(a)-\(b)/\(file.count)")
            head.headers.add(name: "Content-Length", value: "\(body.count)")
        }
        return (head, body)
    }
}

private final class RangeHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    let server: RangeServer
    var request: HTTPRequestHead?

    init(server: RangeServer) { self.server = server }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.request = head
        case .body:
            break
        case .end:
            guard let request = self.request else { return }
            let (head, body) = self.server.respond(path: request.uri, range: request.headers.first(name: "Range"))
            context.write(self.wrapOutboundOut(.head(head)), promise: nil)
            if !body.isEmpty { context.write(self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: body)))), promise: nil) }
            context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
        }
    }
}

@Suite("WebSeed: fetching pieces from a real HTTP server", .serialized)
struct WebSeedFetchTests {
    /// A three-file v1 torrent (piece 0 spans all three) and its files by URL path.
    static func torrent(_ dir: TempDir, big: Int = 0) throws -> (TorrentMetainfo, [String: [UInt8]], [UInt8]) {
        var files: [String: [UInt8]] = [:]
        var stream: [UInt8] = []
        for (name, size, seed) in [("1 a.bin", 10_000, 1), ("2 é.bin", 3_000, 2), ("3 z.bin", 20_000 + big, 3)] {
            let bytes = SeededGenerator.bytes(size, seed: UInt64(seed))
            try dir.write("set/\(name)", bytes)
            files["/pub/set/\(name)"] = bytes
            stream += bytes
        }
        return (try create(dir.path + "/set") { $0.version = .v1 }.metainfo, files, stream)
    }

    /// Runs `body` with a server in `mode` and a client, both stopped afterwards.
    static func with(
        _ mode: RangeServer.Mode, big: Int = 0,
        _ body: (WebSeed, RangeServer, [UInt8], TorrentMetainfo) async throws -> Void
    ) async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let (t, files, stream) = try Self.torrent(dir, big: big)
        let server = RangeServer(files: files, mode: mode)
        let port = try await server.start()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let client = PeerHTTP.makeClient(group: group, bindHost: "127.0.0.1")
        let seed = WebSeed(url: "http://127.0.0.1:\(port)/pub/", metainfo: t, client: client, timeout: .seconds(10))
        do {
            try await body(seed, server, stream, t)
        } catch {
            try? await client.shutdown()
            try? await group.shutdownGracefully()
            await server.stop()
            throw error
        }
        try? await client.shutdown()
        try? await group.shutdownGracefully()
        await server.stop()
    }

    @Test("every piece arrives whole, a piece across files as one Range request per file")
    func ranges() async throws {
        try await Self.with(.ranges) { seed, server, stream, t in
            for piece in 0..<t.pieceCount {
                let bytes = try await seed.fetch(piece: piece)
                let start = piece * t.pieceLength
                #expect(bytes == Array(stream[start..<min(start + t.pieceLength, stream.count)]), "piece \(piece)")
            }
            let log = server.requests.withLock { $0 }
            #expect(log.first == "/pub/set/1%20a.bin bytes=0-9999")
            #expect(log.count == 5, "3 files in piece 0, 1 in pieces 1 and 2")
        }
    }

    @Test("a server that ignores Range still serves the bytes near a file's start")
    func ignoredRangeNearStart() async throws {
        try await Self.with(.ignoreRange) { seed, _, stream, t in
            let first = try await seed.fetch(piece: 0)
            let second = try await seed.fetch(piece: 1)
            #expect(first == Array(stream[0..<t.pieceLength]))
            #expect(second == Array(stream[t.pieceLength..<2 * t.pieceLength]))
        }
    }

    @Test("a server that ignores Range is refused far into a big file")
    func ignoredRangeFarIn() async throws {
        try await Self.with(.ignoreRange, big: 5 << 20) { seed, _, _, t in
            let last = t.pieceCount - 1
            await #expect(throws: WebSeedError.rangeIgnored(url: seed.url + "set/3%20z.bin")) {
                try await seed.fetch(piece: last)
            }
        }
    }

    @Test("wrong Content-Range, short and long bodies, and error statuses are clear errors")
    func misbehaving() async throws {
        try await Self.with(.wrongRange) { seed, _, _, _ in
            do {
                _ = try await seed.fetch(piece: 1)
                Issue.record("a wrong Content-Range was accepted")
            } catch let e as WebSeedError {
                #expect("\(e)".contains("is not the bytes=") && e.isPermanent)
            }
        }
        try await Self.with(.shortBody) { seed, _, _, _ in
            await #expect(throws: WebSeedError.http(url: seed.url + "set/3%20z.bin",
                .shortBody(expected: 16_384, received: 8_192))) { try await seed.fetch(piece: 1) }
        }
        try await Self.with(.longBody) { seed, _, _, _ in
            await #expect(throws: WebSeedError.http(url: seed.url + "set/3%20z.bin", .tooLarge(limit: 16_384))) {
                try await seed.fetch(piece: 1)
            }
        }
        try await Self.with(.status(404)) { seed, _, _, _ in
            do {
                _ = try await seed.fetch(piece: 0)
                Issue.record("a 404 was accepted")
            } catch let e as WebSeedError {
                #expect(e == .http(url: seed.url + "set/1%20a.bin", .status(404, "Not Found")) && e.isPermanent)
            }
        }
    }
}
