import Testing
import Tracker

@Suite("PeerAddress")
struct PeerAddressTests {
    @Test(
        "text forms round-trip to the RFC 5952 form",
        arguments: [
            ("1.2.3.4:6881", "1.2.3.4:6881"),
            ("255.255.255.255:65535", "255.255.255.255:65535"),
            ("0.0.0.0:1", "0.0.0.0:1"),
            ("[::1]:6881", "[::1]:6881"),
            ("[::]:1", "[::]:1"),
            ("[1::]:1", "[1::]:1"),
            ("[2001:0db8:0000:0000:0000:0000:0000:0001]:80", "[2001:db8::1]:80"),
            ("[2001:db8:0:0:1:0:0:1]:80", "[2001:db8::1:0:0:1]:80"),
            ("[2001:db8:0:1:1:1:1:1]:80", "[2001:db8:0:1:1:1:1:1]:80"),
            ("[FE80::A]:80", "[fe80::a]:80"),
            ("[::ffff:192.0.2.1]:80", "[::ffff:192.0.2.1]:80"),
            ("[64:ff9b::192.0.2.33]:80", "[64:ff9b::c000:221]:80"),
            ("[1:2:3:4:5:6:7::]:9", "[1:2:3:4:5:6:7:0]:9"),
        ])
    func roundTrip(_ input: String, _ printed: String) throws {
        let address = try PeerAddress(parsing: input)
        #expect(address.description == printed)
        #expect(try PeerAddress(parsing: printed) == address)
        #expect(PeerAddress(compact: address.compact) == address)
    }

    @Test(
        "bad text fails with a reason",
        arguments: [
            ("1.2.3.4", "missing \":port\""),
            ("1.2.3.4:0", "port 0 cannot be connected to"),
            ("1.2.3.4:65536", "port 65536 is larger than 65535"),
            ("1.2.3.4:http", "the port is not a decimal number"),
            ("256.1.1.1:1", "256 is larger than 255"),
            ("01.2.3.4:1", "leading zero in \"01\""),
            ("1.2.3:4", "an IPv4 address has four dot-separated numbers"),
            ("::1:80", "an IPv6 address needs brackets: [address]:port"),
            ("[::1]80", "missing \":port\" after \"]\""),
            ("[::1:80", "missing \"]\" after the IPv6 address"),
            ("[1.2.3.4]:80", "brackets hold IPv6 addresses only"),
            ("[1:2:3:4:5:6:7:8:9]:1", "more than eight groups"),
            ("[1:2:3:4:5:6:7]:1", "an IPv6 address has eight groups, found 7"),
            ("[1::2::3]:1", "\"::\" appears more than once"),
            ("[fe80::1%eth0]:1", "zone identifiers are not supported"),
            ("[12345::]:1", "group \"12345\" has more than 4 digits"),
            ("[::g]:1", "\"g\" is not hexadecimal"),
            ("[:1::]:1", "empty group (a lone ':' at an end or ':::')"),
            ("[1.2.3.4::]:1", "an embedded IPv4 address must come last"),
            ("example.com:80", "\"example.com\" is not an IP address (host names are not resolved here)"),
            ("1.2.3.:80", "\"\" is not a number 0-255"),
        ])
    func failures(_ input: String, _ reason: String) {
        #expect(throws: PeerAddress.ParseError(input: input, reason: reason)) { try PeerAddress(parsing: input) }
        #expect(PeerAddress(input) == nil)
    }

    @Test("compact forms are 6 and 18 bytes, big-endian")
    func compact() throws {
        let v4 = try #require(PeerAddress(compact: [192, 168, 1, 2, 0x1a, 0xe1]))
        #expect(v4 == PeerAddress(ip: .v4(0xc0a8_0102), port: 6881))
        #expect(v4.ip.bytes == [192, 168, 1, 2])
        let v6Bytes: [UInt8] = [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [1, 0xc8, 0xd5]
        let v6 = try #require(PeerAddress(compact: v6Bytes))
        #expect(v6.description == "[2001:db8::1]:51413")
        #expect(v6.compact == v6Bytes)
        #expect(PeerAddress(compact: [1, 2, 3, 4, 5]) == nil)
        #expect(PeerAddress(compact: [UInt8](repeating: 0, count: 7)) == nil)
    }
}
