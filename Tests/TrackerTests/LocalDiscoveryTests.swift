import Testing

@testable import Tracker

@Suite("Local service discovery (BEP 14)")
struct LocalDiscoveryTests {
    let hash = [UInt8](repeating: 0xAB, count: 20)

    @Test("an announce round-trips, with the exact text BEP 14 gives")
    func roundTrip() {
        let a = LocalDiscovery.Announce(port: 6881, infoHashes: [self.hash, [UInt8](repeating: 1, count: 20)], cookie: "c00k1e")
        let bytes = LocalDiscovery.encode(a)
        #expect(String(decoding: bytes, as: UTF8.self).hasPrefix(
            "BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: 6881\r\nInfohash: " + String(repeating: "ab", count: 20) + "\r\n"))
        #expect(LocalDiscovery.decode(bytes) == a)
    }

    @Test("other clients' spellings: header case, spaces, no cookie, upper-case hex")
    func lenient() {
        let text = "BT-SEARCH * HTTP/1.1\r\nhost: 239.192.152.143:6771\r\nport:  51413 \r\nINFOHASH: "
            + String(repeating: "AB", count: 20) + "\r\n\r\n\r\n"
        #expect(LocalDiscovery.decode(Array(text.utf8)) == .init(port: 51413, infoHashes: [self.hash], cookie: nil))
    }

    @Test("anything else is ignored", arguments: [
        "M-SEARCH * HTTP/1.1\r\nPort: 1\r\nInfohash: " + String(repeating: "ab", count: 20) + "\r\n\r\n",
        "BT-SEARCH * HTTP/1.1\r\nPort: 0\r\nInfohash: " + String(repeating: "ab", count: 20) + "\r\n\r\n",
        "BT-SEARCH * HTTP/1.1\r\nPort: 99999\r\nInfohash: " + String(repeating: "ab", count: 20) + "\r\n\r\n",
        "BT-SEARCH * HTTP/1.1\r\nPort: 6881\r\nInfohash: abc\r\n\r\n",
        "BT-SEARCH * HTTP/1.1\r\nPort: 6881\r\n\r\n",
    ])
    func refused(_ text: String) {
        #expect(LocalDiscovery.decode(Array(text.utf8)) == nil)
    }

    @Test("size and hash-count bounds")
    func bounds() {
        #expect(LocalDiscovery.decode([UInt8](repeating: 65, count: 5000)) == nil)
        let many = LocalDiscovery.Announce(port: 1, infoHashes: (0..<40).map { [UInt8](repeating: UInt8($0), count: 20) },
            cookie: nil)
        #expect(LocalDiscovery.decode(LocalDiscovery.encode(many))?.infoHashes.count == LocalDiscovery.maxHashes)
    }
}
