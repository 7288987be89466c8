import DHT
import PeerBase
import Testing

@Suite("NodeID and BEP 42")
struct NodeIDTests {
    @Test("bytes, hex and ordering agree with big-endian numbers")
    func basics() {
        let a = hexID("0000000000000000000000000000000000000001")
        let b = hexID("0000000000000000000000000000000000000100")
        let c = hexID("8000000000000000000000000000000000000000")
        #expect(a < b && b < c)
        #expect(c.bytes == [0x80] + [UInt8](repeating: 0, count: 19))
        #expect(c.description == "8000000000000000000000000000000000000000")
        #expect(NodeID(bytes: [UInt8](repeating: 0, count: 19)) == nil)
        #expect(NodeID(hex: "xyz") == nil)
        let mixed = hexID("0102030405060708090a0b0c0d0e0f1011121314")
        #expect((0..<20).map { mixed[byte: $0] } == Array(1...20))
        #expect(NodeID(bytes: mixed.bytes) == mixed)
    }

    @Test("XOR distance, common prefix and closeness")
    func distance() {
        let target = hexID("f000000000000000000000000000000000000000")
        let near = hexID("f100000000000000000000000000000000000000")
        let far = hexID("0f00000000000000000000000000000000000000")
        #expect(near.distance(to: target) == hexID("0100000000000000000000000000000000000000"))
        #expect(near.isCloser(to: target, than: far))
        #expect(!far.isCloser(to: target, than: near))
        #expect(target.distance(to: target) == .zero)
        #expect(target.commonPrefixLength(with: target) == 160)
        #expect(target.commonPrefixLength(with: near) == 7)
        #expect(target.commonPrefixLength(with: far) == 0)
        let low = hexID("0000000000000000000000000000000000000000")
        let lowBit = hexID("0000000000000000000000000000000000000001")
        #expect(low.commonPrefixLength(with: lowBit) == 159)
        #expect(NodeID.max.leadingZeroBitCount == 0)
    }

    @Test("random IDs sharing a prefix keep exactly that prefix", arguments: [0, 1, 7, 63, 64, 65, 127, 128, 129, 159, 160])
    func randomPrefix(bits: Int) {
        var rng = SeededGenerator(seed: UInt64(bits))
        let base = NodeID.random(using: &rng)
        for _ in 0..<50 {
            let r = NodeID.random(sharingFirst: bits, with: base, using: &rng)
            #expect(r.commonPrefixLength(with: base) >= bits)
        }
    }

    @Test("CRC32C check value")
    func crc32c() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([]) == 0)
    }

    static let vectors: [(DHTEndpoint.IP, UInt8, String)] = [
        (.ipv4(124, 31, 75, 21), 1, "5fbfbff10c5d6a4ec8a88e4c6ab4c28b95eee401"),
        (.ipv4(21, 75, 31, 124), 86, "5a3ce9c14e7a08645677bbd1cfe7d8f956d53256"),
        (.ipv4(65, 23, 51, 170), 22, "a5d43220bc8f112a3d426c84764f8c2a1150e616"),
        (.ipv4(84, 124, 73, 14), 65, "1b0321dd1bb1fe518101ceef99462b947a01ff41"),
        (.ipv4(43, 213, 53, 83), 90, "e56f6cbf5b7c4be0237986d5243b87aa6d51305a"),
    ]

    @Test("BEP 42 test vectors verify, and generating for the same IP and rand gives the same 21-bit prefix",
          arguments: 0..<5)
    func bep42Vectors(index: Int) {
        let (ip, rand, hex) = Self.vectors[index]
        let expected = hexID(hex)
        #expect(expected.isSecure(for: ip))
        var rng = SeededGenerator(seed: 99)
        let made = NodeID.secure(for: ip, lastByte: rand, using: &rng)
        #expect(made.commonPrefixLength(with: expected) >= 21)
        #expect(made[byte: 19] == rand)
        #expect(made.isSecure(for: ip))
        // Another IP's ID does not pass (the vectors' prefixes are all different).
        let (otherIP, _, _) = Self.vectors[(index + 1) % 5]
        #expect(!expected.isSecure(for: otherIP))
    }

    @Test("changing r in the last byte breaks the match")
    func lastByteMatters() {
        var id = hexID("5fbfbff10c5d6a4ec8a88e4c6ab4c28b95eee401").bytes
        id[19] = 0x02
        #expect(!NodeID(bytes: id)!.isSecure(for: .ipv4(124, 31, 75, 21)))
        id[19] = 0x09  // same low three bits as 0x01: still valid
        #expect(NodeID(bytes: id)!.isSecure(for: .ipv4(124, 31, 75, 21)))
    }

    @Test("IPv6 IDs round-trip; only the high 64 bits of the address count")
    func ipv6() {
        var rng = SeededGenerator(seed: 3)
        let ip = DHTEndpoint.IP.v6(high: 0x2001_0db8_1234_5678, low: 0x9abc)
        for _ in 0..<20 {
            let id = NodeID.secure(for: ip, using: &rng)
            #expect(id.isSecure(for: ip))
            #expect(id.isSecure(for: .v6(high: 0x2001_0db8_1234_5678, low: 0xffff)))
        }
    }

    @Test("local addresses are exempt from the check")
    func localExempt() {
        let random = hexID("0000000000000000000000000000000000000000")
        for ip: DHTEndpoint.IP in [
            .ipv4(10, 1, 2, 3), .ipv4(172, 16, 0, 1), .ipv4(172, 31, 255, 255), .ipv4(192, 168, 1, 1),
            .ipv4(169, 254, 0, 1), .ipv4(127, 0, 0, 1), .v6(high: 0, low: 1), .v6(high: 0xfd00 << 48, low: 1),
            .v6(high: 0xfe80 << 48, low: 1),
        ] {
            #expect(ip.isLocal, "\(ip)")
            #expect(random.isSecure(for: ip))
        }
        for ip: DHTEndpoint.IP in [.ipv4(172, 32, 0, 1), .ipv4(11, 0, 0, 1), .v6(high: 0x2001 << 48, low: 1)] {
            #expect(!ip.isLocal, "\(ip)")
        }
    }

    @Test("endpoints: compact forms and text")
    func endpoints() {
        let a = v4(1, 2, 3, 4, port: 0x1a1b)
        #expect(a.compact == [1, 2, 3, 4, 0x1a, 0x1b])
        #expect(DHTEndpoint(compact: a.compact) == a)
        #expect(a.description == "1.2.3.4:6683")
        let b = v6(1, port: 80)
        #expect(b.compact.count == 18)
        #expect(DHTEndpoint(compact: b.compact) == b)
        #expect(b.description == "[2001:db8::1]:80")
        #expect(DHTEndpoint(compact: [1, 2, 3]) == nil)
        let n = NodeInfo(id: idStarting(9), endpoint: b)
        #expect(n.compact.count == 38)
        #expect(NodeInfo(compact: n.compact) == n)
    }
}
