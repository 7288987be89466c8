import Foundation
import Hummingbird
import HummingbirdTesting
import PeerKit
import Testing

#if canImport(Glibc)
import Glibc
#endif

@testable import PeerServer

// Issue 13, found by attacking a running daemon: the Host header, bodies that are too large, Range headers,
// malformed requests, and the mode of the database. Each test failed before its fix.

@Suite("Issue 13: the daemon's HTTP face under attack")
struct Issue13Tests {
    @Test("Host is parsed strictly: userinfo, lists, a bad port, none or two are 400")
    func strictHost() async throws {
        let auth = APIAuth(token: testToken, allowedHosts: [])
        for host in ["127.0.0.1:9091@evil.com", "host, evil.com", "127.0.0.1:9091, evil.com", "127.0.0.1:99999",
            "127.0.0.1:", "127.0.0.1:90a", "127.0.0.1 :9091", "[::1", "[::1]x", "local host", "127.0.0.1/x"]
        {
            #expect(auth.refusal(hosts: [host], origin: nil)?.status == .badRequest, "\(host)")
        }
        #expect(auth.refusal(hosts: [], origin: nil)?.status == .badRequest, "no Host")
        #expect(auth.refusal(hosts: ["127.0.0.1:9091", "127.0.0.1:9091"], origin: nil)?.status == .badRequest)
        #expect(auth.refusal(hosts: ["evil.example:9091"], origin: nil)?.status == .forbidden)
        #expect(auth.refusal(hosts: ["127.0.0.1:9091"], origin: nil) == nil)

        try await LiveTests().withLiveAPI { port, _ in
            let bearer = "Authorization: Bearer \(testToken)"
            func send(_ hostLines: [String]) async throws -> String {
                let lines = ["GET /api/session HTTP/1.1"] + hostLines + [bearer, "Connection: close"]
                return try await rawHTTP(port: port, lines.joined(separator: "\r\n") + "\r\n\r\n")
            }
            #expect(try await send(["Host: 127.0.0.1:\(port)"]).hasPrefix("HTTP/1.1 200"))
            for lines in [["Host: 127.0.0.1:\(port)@evil.com"], ["Host: 127.0.0.1, evil.com"], [],
                ["Host: 127.0.0.1:\(port)", "Host: 127.0.0.1:\(port)"], ["Host: 127.0.0.1:\(port)", "Host: evil.com"]]
            {
                let r = try await send(lines)
                #expect(r.hasPrefix("HTTP/1.1 400"), "\(lines): \(r.prefix(100))")
                #expect(r.contains(#""code":"bad_request""#), "\(lines)")
            }
        }
    }

    @Test("413 says Connection: close and closes, without waiting for the rest of the body")
    func tooLargeCloses() async throws {
        try await LiveTests().withLiveAPI { port, _ in
            let head = ["POST /api/torrents HTTP/1.1", "Host: 127.0.0.1:\(port)", "Authorization: Bearer \(testToken)",
                "Content-Type: application/json", "Content-Length: \(64 << 20)"]
            let start = ContinuousClock.now
            let r = try await rawHTTP(port: port, head.joined(separator: "\r\n") + "\r\n\r\n{\"magnet\": \"")
            let waited = ContinuousClock.now - start
            #expect(r.hasPrefix("HTTP/1.1 413"), "\(r.prefix(100))")
            #expect(r.lowercased().contains("connection: close"))
            #expect(r.contains(#""code":"payload_too_large""#))
            // rawHTTP gives up after 5 s; a closed connection ends the read at once.
            #expect(waited < .seconds(3), "the connection stayed open for \(waited)")
        }
    }

    @Test("Range: malformed is 416, another unit is ignored; of several, the first satisfiable is answered")
    func ranges() async throws {
        try await withAPI { api in
            let media = try Media(in: api.downloads)
            _ = try await api.addTorrent(media.bytes, seeding: true)
            let data = try #require(media.data["clip.webm"])
            let uri = "/api/torrents/\(media.id)/files/\(media.index("clip.webm"))/stream"
            let other = try await api.call(.get, uri, headers: [.range: "items=0-5"])
            #expect(other.status == .ok && other.bytes == Array(data), "another unit is ignored (RFC 9110 §14.2)")
            for header in ["bytes=abc", "bytes=0-5, junk", "bytes=0-5,-", "bytes=+1-5", "bytes=0-+5",
                "bytes=", "bytes=-", "bytes", "0-5", "bytes=0-5;x", "bytes=0x10-20", "bytes=5-3,0-1"]
            {
                let r = try await api.call(.get, uri, headers: [.range: header])
                expectError(r, .rangeNotSatisfiable, "range_not_satisfiable")
                #expect(r.headers[.contentRange] == "bytes */\(data.count)", "\(header)")
            }
            let answered: [(header: String, range: ClosedRange<Int>)] = [
                ("bytes=40000-,0-9", 0...9), ("bytes=0-9,20-29", 0...9), ("Bytes=10-19", 10...19),
                ("bytes= 10-19 , 30-39", 10...19), ("bytes=99999999999999999999-,-10", 39990...39999),
            ]
            for (header, range) in answered {
                let r = try await api.call(.get, uri, headers: [.range: header])
                #expect(r.status == .partialContent, "\(header): \(r.text.prefix(200))")
                #expect(r.headers[.contentRange] == "bytes \(range.lowerBound)-\(range.upperBound)/\(data.count)", "\(header)")
                #expect(r.bytes == Array(data[range]), "\(header)")
            }
        }
    }

    @Test("a malformed request line gets a JSON 400 and the connection closes")
    func malformedRequestLine() async throws {
        try await LiveTests().withLiveAPI { port, _ in
            for request in ["NONSENSE\r\n\r\n", "GET /api/session HTTP/9.9\r\nHost: 127.0.0.1\r\n\r\n",
                "GET /api/session HTTP/1.1\r\nHost 127.0.0.1\r\n\r\n"]
            {
                let r = try await rawHTTP(port: port, request)
                #expect(r.hasPrefix("HTTP/1.1 400"), "\(request.debugDescription): \(r.prefix(100))")
                #expect(r.contains(#""code":"bad_request""#), "\(request.debugDescription): \(r)")
                #expect(r.lowercased().contains("connection: close"))
            }
        }
    }

    @Test("HTTP/1.0 without keep-alive, and Connection: Close in 1.1, close after the answer")
    func closeAfterAnswer() async throws {
        try await LiveTests().withLiveAPI { port, _ in
            for (version, extra) in [("HTTP/1.0", [String]()), ("HTTP/1.1", ["Connection: Close"])] {
                let lines = ["GET /api/session \(version)", "Host: 127.0.0.1:\(port)", "Authorization: Bearer \(testToken)"]
                let start = ContinuousClock.now
                let r = try await rawHTTP(port: port, (lines + extra).joined(separator: "\r\n") + "\r\n\r\n")
                let waited = ContinuousClock.now - start
                #expect(r.hasPrefix("HTTP/1.1 200"), "\(version): \(r.prefix(100))")
                // rawHTTP gives up after 5 s; a closed connection ends the read at once.
                #expect(waited < .seconds(3), "\(version): the connection stayed open for \(waited)")
            }
        }
    }

    @Test("peer.sqlite and its -wal and -shm are readable only by the user, like the token; also from an older run")
    func databaseMode() async throws {
        let names = ["peer.sqlite", "peer.sqlite-wal", "peer.sqlite-shm"]
        func expectPrivate(_ state: String) {
            for name in names {
                var s = stat()
                #expect(stat(state + "/" + name, &s) == 0, "\(name) is missing")
                #expect(s.st_mode & 0o777 == 0o600, "\(name): mode \(String(s.st_mode & 0o777, radix: 8))")
            }
        }
        try await withSession { session, root in
            _ = try await session.add(.magnet(magnet(randomHex(20), name: "x")), options: AddOptions(paused: true))
            expectPrivate(root + "/state")
        }
        // Files an older version left readable by all (empty ones are a valid database, WAL and index).
        try await withSession(configure: { c in
            try? FileManager.default.createDirectory(atPath: c.stateDirectory, withIntermediateDirectories: true)
            for name in names {
                #expect(FileManager.default.createFile(atPath: c.stateDirectory + "/" + name, contents: nil,
                    attributes: [.posixPermissions: 0o644]))
            }
        }) { _, root in expectPrivate(root + "/state") }
    }
}
