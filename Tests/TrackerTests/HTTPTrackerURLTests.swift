import Testing
import Tracker

@Suite("HTTP tracker URLs (BEP 3, BEP 48)")
struct HTTPTrackerURLTests {
    @Test("the classic info_hash vector: unreserved bytes kept, the rest %XX upper case")
    func classicVector() {
        let hash: [UInt8] = [
            0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf1, 0x23, 0x45,
            0x67, 0x89, 0xab, 0xcd, 0xef, 0x12, 0x34, 0x56, 0x78, 0x9a,
        ]
        #expect(HTTPTracker.percentEncode(hash) == "%124Vx%9A%BC%DE%F1%23Eg%89%AB%CD%EF%124Vx%9A")
    }

    @Test(
        "byte patterns",
        arguments: [
            ([UInt8](repeating: 0x00, count: 20), String(repeating: "%00", count: 20)),
            ([UInt8](repeating: 0xff, count: 20), String(repeating: "%FF", count: 20)),
            (
                Array(0x00...0x13),
                (0x00...0x13).map { "%" + ($0 < 16 ? "0" : "") + String($0, radix: 16).uppercased() }
                    .joined()
            ),
            (Array("AZaz09.-_~".utf8), "AZaz09.-_~"),
            (Array(" /?&=%+#:@".utf8), "%20%2F%3F%26%3D%25%2B%23%3A%40"),
            (Array("ß".utf8), "%C3%9F"),
        ] as [([UInt8], String)])
    func patterns(_ input: [UInt8], _ expected: String) {
        #expect(HTTPTracker.percentEncode(input) == expected)
    }

    @Test("all 256 byte values")
    func allBytes() {
        let keep = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~".utf8)
        let hex = Array("0123456789ABCDEF")
        let expected = (0...255).map { (b: Int) -> String in
            keep.contains(UInt8(b)) ? String(UnicodeScalar(UInt8(b))) : "%\(hex[b / 16])\(hex[b % 16])"
        }.joined()
        let encoded = HTTPTracker.percentEncode((0...255).map { UInt8($0) })
        #expect(encoded == expected)
        #expect(encoded.count == 66 + 3 * 190)
    }

    @Test("announce URL: every parameter, in order")
    func announceURL() {
        var request = sampleRequest(event: .started, hash: Array(0x00...0x13))
        request.numWant = 50
        let url = HTTPTracker.announceURL(base: "http://t.example:6969/announce", request: request)
        let hash = (0x00...0x13).map { "%" + ($0 < 16 ? "0" : "") + String($0, radix: 16).uppercased() }.joined()
        #expect(
            url == "http://t.example:6969/announce?info_hash=\(hash)&peer_id=-PE0001-abcdefghijkl&port=6881"
                + "&uploaded=2571&downloaded=1000&left=4294967301&event=started&numwant=50&key=DEADBEEF&compact=1")
    }

    @Test("event none is omitted; trackerid, ip and ipv6 are encoded")
    func optionalParameters() {
        var request = sampleRequest(event: .none)
        request.trackerID = [0x61, 0x00, 0x7a]
        request.ip = "10.0.0.1"
        request.ipv6 = "2001:db8::1"
        request.key = 0x1F
        let url = HTTPTracker.announceURL(base: "http://t/a", request: request)
        #expect(!url.contains("event="))
        #expect(url.contains("&key=0000001F&"))
        #expect(url.hasSuffix("&compact=1&trackerid=a%00z&ip=10.0.0.1&ipv6=2001%3Adb8%3A%3A1"))
    }

    @Test(
        "the query joins an existing one",
        arguments: [
            ("http://t/announce", "http://t/announce?info_hash="),
            ("http://t/announce?passkey=abc", "http://t/announce?passkey=abc&info_hash="),
            ("http://t/announce?", "http://t/announce?info_hash="),
            ("http://t/announce.php?a=b&", "http://t/announce.php?a=b&info_hash="),
            ("http://t/announce#frag", "http://t/announce?info_hash="),
        ])
    func existingQuery(_ base: String, _ prefix: String) {
        let url = HTTPTracker.announceURL(base: base, request: sampleRequest())
        #expect(url.hasPrefix(prefix))
        #expect(url.filter { $0 == "?" }.count == 1)
    }

    @Test(
        "scrape URL derivation",
        arguments: [
            ("http://t/announce", "http://t/scrape"),
            ("http://t/x/announce.php?a=b", "http://t/x/scrape.php?a=b"),
            ("https://t:443/path/announce?passkey=x/announce", "https://t:443/path/scrape?passkey=x/announce"),
            ("http://t/announce/x", nil),
            ("http://t/a", nil),
            ("http://t/x/notannounce", nil),
            ("http://t", nil),
            ("http://t?announce", nil),
            ("udp://t:80/announce", nil),
            ("not a url", nil),
        ] as [(String, String?)])
    func scrapeDerivation(_ announce: String, _ expected: String?) {
        #expect(HTTPTracker.scrapeURL(announce: announce) == expected)
    }

    @Test("scrape URL carries one info_hash per torrent")
    func scrapeWithHashes() {
        let url = HTTPTracker.scrapeURL(
            announce: "http://t/x/announce.php?a=b", infoHashes: [[UInt8](repeating: 0x41, count: 20), hash20(0)])
        let zeroUp = (0..<20).map { "%" + ($0 < 16 ? "0" : "") + String($0, radix: 16).uppercased() }.joined()
        #expect(url == "http://t/x/scrape.php?a=b&info_hash=\(String(repeating: "A", count: 20))&info_hash=\(zeroUp)")
    }
}
