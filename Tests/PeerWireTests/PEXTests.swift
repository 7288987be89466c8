import Bencode
import NIOCore
import Testing

@testable import PeerWire

@Suite("PEX messages (BEP 11)")
struct PEXTests {
    @Test("IPv4 and IPv6 peers with flags round-trip")
    func roundTrip() throws {
        let v6 = PEXPeer(ip: [0x20, 0x01, 0x0d, 0xb8] + Array(repeating: 0, count: 11) + [1], port: 6881, flags: [.seed])
        let m = PEXMessage(added: [PEXPeer(ip: [127, 0, 0, 2], port: 51413, flags: [.reachable, .seed]), v6],
            dropped: [PEXPeer(ip: [10, 0, 0, 9], port: 1)])
        let back = try PEXMessage(decoding: m.encoded())
        #expect(back == m)
        #expect(back.added[0].description == "127.0.0.2:51413")
        #expect(v6.description == "[2001:db8:0:0:0:0:0:1]:6881")
    }

    @Test("what libtorrent sends decodes, flags lined up with peers")
    func fromBencode() throws {
        let d: BencodeValue = ["added": .string([1, 2, 3, 4, 0x1A, 0xE1, 5, 6, 7, 8, 0, 80]), "added.f": .string([0x10]),
            "dropped": .string([])]
        let m = try PEXMessage(decoding: ByteBuffer(bytes: BencodeEncoder.encode(d)))
        #expect(m.added.map(\.description) == ["1.2.3.4:6881", "5.6.7.8:80"])
        #expect(m.added.map(\.flags.rawValue) == [0x10, 0])
    }

    @Test("malformed messages are refused, long ones cut, port 0 skipped")
    func bounds() throws {
        for bad: BencodeValue in [["added": .string([1, 2, 3])], ["added6": .string(Array(repeating: 1, count: 17))],
            ["added": 5], .list([])]
        {
            #expect(throws: PeerWireError.self) { try PEXMessage(decoding: ByteBuffer(bytes: BencodeEncoder.encode(bad))) }
        }
        #expect(throws: PeerWireError.self) { try PEXMessage(decoding: ByteBuffer(bytes: Array("d5:added".utf8))) }
        let many: [UInt8] = (0..<1000).flatMap { (i: Int) -> [UInt8] in [10, 0, UInt8(i >> 8), UInt8(i & 0xFF), 0, 1] }
        let cut = try PEXMessage(decoding: ByteBuffer(bytes: BencodeEncoder.encode(["added": .string(many)])))
        #expect(cut.added.count == PEXMessage.maxAccepted)
        let zero = try PEXMessage(decoding: ByteBuffer(bytes: BencodeEncoder.encode(["added": .string([1, 1, 1, 1, 0, 0])])))
        #expect(zero.added.isEmpty)
    }
}
