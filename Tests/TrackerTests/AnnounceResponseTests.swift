import Bencode
import Testing
import Tracker

@Suite("HTTP announce responses (BEP 3, 7, 23)")
struct AnnounceResponseTests {
    static let p1: [UInt8] = [1, 2, 3, 4, 0x1a, 0xe1]  // 1.2.3.4:6881
    static let p2: [UInt8] = [10, 0, 0, 1, 0xc8, 0xd5]  // 10.0.0.1:51413

    @Test("compact peers and every field")
    func compact() throws {
        let response = try AnnounceResponse(
            httpBody: body([
                "complete": 5, "incomplete": 3, "downloaded": 40, "interval": 1800, "min interval": 900,
                "tracker id": "T-1", "warning message": "be nice", "peers": .string(Self.p1 + Self.p2),
            ]))
        #expect(response.interval == .seconds(1800))
        #expect(response.minInterval == .seconds(900))
        #expect(response.complete == 5)
        #expect(response.incomplete == 3)
        #expect(response.downloaded == 40)
        #expect(response.trackerID == bytes("T-1"))
        #expect(response.warning == "be nice")
        #expect(response.peers.map(\.description) == ["1.2.3.4:6881", "10.0.0.1:51413"])
        #expect(response.ignored.isEmpty)
    }

    @Test("a raw body as trackers send it, with a trailing newline")
    func rawBody() throws {
        let raw = bytes("d8:intervali60e5:peers6:") + Self.p1 + bytes("e\r\n")
        let response = try AnnounceResponse(httpBody: raw)
        #expect(response.interval == .seconds(60))
        #expect(response.peers == [PeerAddress(ip: .v4(0x0102_0304), port: 6881)])
    }

    @Test("peers6 (BEP 7): 18 bytes each, after the IPv4 peers")
    func peers6() throws {
        let v6: [UInt8] = [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [1, 0x1a, 0xe1]
        let response = try AnnounceResponse(
            httpBody: body(["interval": 1800, "peers": .string(Self.p1), "peers6": .string(v6)]))
        #expect(response.peers.map(\.description) == ["1.2.3.4:6881", "[2001:db8::1]:6881"])
    }

    @Test("dictionary peers: good ones kept, bad ones dropped and reported")
    func dictionaryForm() throws {
        let response = try AnnounceResponse(
            httpBody: body([
                "interval": 900,
                "peers": [
                    ["ip": "10.0.0.2", "port": 6881, "peer id": .string(hash20(1))],
                    ["ip": "2001:db8::5", "port": 51413],
                    ["ip": "10.0.0.3", "port": 0],
                    ["ip": "tracker.example", "port": 1],
                    ["ip": "10.0.0.4"],
                    ["ip": "10.0.0.5", "port": 70000],
                    ["ip": 5, "port": 1],
                    "not a dictionary",
                ],
            ]))
        #expect(response.peers.map(\.description) == ["10.0.0.2:6881", "[2001:db8::5]:51413"])
        #expect(response.ignored.count == 6)
        #expect(response.ignored.contains(.invalidValue(key: "peers[2].port", reason: "0 is not a port 1-65535")))
        #expect(response.ignored.contains(.missingKey("peers[4].port")))
        #expect(response.ignored.contains(.wrongType(key: "peers[6].ip", expected: "a UTF-8 string", found: "integer")))
        #expect(response.ignored.contains(.wrongType(key: "peers[7]", expected: "a dictionary", found: "string")))
    }

    @Test("a failure reason is an error carrying the tracker's text")
    func failure() {
        #expect(throws: TrackerError.failure("unregistered torrent")) {
            try AnnounceResponse(httpBody: body(["failure reason": "unregistered torrent", "interval": 1800]))
        }
    }

    @Test("a compact list that is not a multiple of 6 keeps the whole entries")
    func compactBadLength() throws {
        let response = try AnnounceResponse(httpBody: body(["interval": 1, "peers": .string(Self.p1 + Self.p2 + [9])]))
        #expect(response.peers.count == 2)
        #expect(response.ignored == [.badLength(what: "peers", length: 13, expected: "a multiple of 6")])
    }

    @Test("compact entries with port 0 are dropped")
    func compactPortZero() throws {
        let response = try AnnounceResponse(
            httpBody: body(["interval": 1, "peers": .string([5, 5, 5, 5, 0, 0] + Self.p2)]))
        #expect(response.peers.map(\.description) == ["10.0.0.1:51413"])
        #expect(response.ignored == [.invalidValue(key: "peers[0]", reason: "port 0 (5.5.5.5)")])
    }

    @Test("negative or mistyped numbers are dropped, not trusted")
    func badNumbers() throws {
        let response = try AnnounceResponse(
            httpBody: body(["interval": -5, "min interval": "60", "complete": -1, "peers": .string(Self.p1)]))
        #expect(response.interval == nil)
        #expect(response.minInterval == nil)
        #expect(response.complete == nil)
        #expect(response.peers.count == 1)
        #expect(response.ignored.contains(.invalidValue(key: "interval", reason: "-5 is negative")))
        #expect(response.ignored.contains(.wrongType(key: "min interval", expected: "an integer", found: "string")))
    }

    @Test(
        "unusable bodies are errors",
        arguments: [
            (
                bytes("garbage"),
                TrackerError.bencode(
                    .unexpectedByte(UInt8(ascii: "g"), expected: "'i', 'l', 'd' or a string length", offset: 0))
            ),
            (bytes("li1ee"), .wrongType(key: "(response)", expected: "a dictionary", found: "list")),
            (bytes("d3:fooi1ee"), .missingKey("peers")),
            (bytes("d5:peersi5ee"), .wrongType(key: "peers", expected: "a string or a list", found: "integer")),
            (bytes("d8:intervali5eeXYZ"), .bencode(.trailingData(offset: 15))),
            (
                bytes("d5:peers99999999999:"),
                .bencode(.stringTooLong(declared: 99_999_999_999, limit: 256 << 10, offset: 8))
            ),
        ] as [([UInt8], TrackerError)])
    func unusable(_ input: [UInt8], _ expected: TrackerError) {
        #expect(thrown { () throws(TrackerError) in try AnnounceResponse(httpBody: input) } == expected)
    }

    @Test("an interval alone is usable (a typical answer to 'stopped')")
    func intervalOnly() throws {
        let response = try AnnounceResponse(httpBody: body(["interval": 1800]))
        #expect(response.peers.isEmpty)
        #expect(response.interval == .seconds(1800))
    }

    @Test("at most 10 000 peers are kept")
    func peerLimit() throws {
        var many: [UInt8] = []
        for i in 0..<10_001 {
            let a = UInt8(i >> 8)
            let b = UInt8(i & 0xff)
            many += [10, 0, a, b, 0, 80]
        }
        let response = try AnnounceResponse(httpBody: body(["interval": 1, "peers": .string(many)]))
        #expect(response.peers.count == TrackerLimits.maxPeers)
        #expect(response.ignored == [.tooLarge(what: "peers", count: 10_001, limit: 10_000)])
    }

    @Test("an oversized body is refused before decoding")
    func oversized() {
        let huge = [UInt8](repeating: UInt8(ascii: "d"), count: TrackerLimits.maxBodyLength + 1)
        #expect(
            thrown { () throws(TrackerError) in try AnnounceResponse(httpBody: huge) }
                == .tooLarge(what: "response body bytes", count: huge.count, limit: TrackerLimits.maxBodyLength))
    }

    @Test("errors describe themselves")
    func descriptions() {
        #expect(TrackerError.failure("nope").description == "tracker failure: nope")
        #expect(
            TrackerError.badLength(what: "peers", length: 13, expected: "a multiple of 6").description
                == "peers has 13 bytes, expected a multiple of 6")
        #expect(TrackerError.missingKey("peers").description.contains("\"peers\""))
    }
}

@Suite("HTTP scrape responses (BEP 48)")
struct ScrapeResponseTests {
    /// The example body of BEP 48, with the two `e`s its text lacks
    /// (one closing the first entry, one closing the top-level dictionary).
    @Test("the BEP 48 example")
    func example() throws {
        let x = [UInt8](repeating: UInt8(ascii: "x"), count: 20)
        let y = [UInt8](repeating: UInt8(ascii: "y"), count: 20)
        let raw = bytes(
            "d5:filesd20:xxxxxxxxxxxxxxxxxxxxd8:completei11e10:downloadedi13772e10:incompletei19ee"
                + "20:yyyyyyyyyyyyyyyyyyyyd8:completei21e10:downloadedi206e10:incompletei20eeee")
        let response = try ScrapeResponse(httpBody: raw)
        #expect(response[x] == ScrapeStats(complete: 11, downloaded: 13772, incomplete: 19))
        #expect(response[y] == ScrapeStats(complete: 21, downloaded: 206, incomplete: 20))
        #expect(response.files.count == 2)
        #expect(response.ignored.isEmpty)
    }

    @Test("bad entries are dropped or read as 0")
    func badEntries() throws {
        let good = hash20(0)
        let response = try ScrapeResponse(
            httpBody: body([
                "files": .dictionary(
                    BencodeDictionary([
                        ("short-key", ["complete": 1] as BencodeValue),
                        (String(decoding: good, as: UTF8.self), ["complete": 2, "incomplete": -3] as BencodeValue),
                    ]))
            ]))
        #expect(response[good] == ScrapeStats(complete: 2, downloaded: 0, incomplete: 0))
        #expect(response.files.count == 1)
        #expect(response.ignored.count == 2)
    }

    @Test("failure reason and missing files")
    func errors() {
        #expect(
            thrown { () throws(TrackerError) in try ScrapeResponse(httpBody: body(["failure reason": "no"])) }
                == .failure("no"))
        #expect(
            thrown { () throws(TrackerError) in try ScrapeResponse(httpBody: body(["flags": 1])) }
                == .missingKey("files"))
        #expect(
            thrown { () throws(TrackerError) in try ScrapeResponse(httpBody: body(["files": 1])) }
                == .wrongType(key: "files", expected: "a dictionary", found: "integer"))
    }
}
