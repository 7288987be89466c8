import NIOCore
import Testing

@testable import PeerWire

@Suite("ut_holepunch messages (BEP 55)")
struct HolePunchTests {
    @Test("round trip of each kind, IPv4 and IPv6; the error code is 0 outside errors")
    func roundTrip() throws {
        let v4 = PEXPeer(ip: [20, 1, 0, 1], port: 6881)
        let v6 = PEXPeer(ip: [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [1], port: 51413)
        for m in [HolePunchMessage(.rendezvous, peer: v4), HolePunchMessage(.connect, peer: v6),
                  HolePunchMessage(.error, peer: v4, error: .noSupport)] {
            #expect(try HolePunchMessage(decoding: m.encoded()) == m)
        }
        let bytes = Array(buffer: HolePunchMessage(.connect, peer: v4).encoded())
        #expect(bytes == [1, 0, 20, 1, 0, 1, 0x1A, 0xE1, 0, 0, 0, 0])
        #expect(Array(buffer: HolePunchMessage(.error, peer: v4, error: .noSelf).encoded()).suffix(4) == [0, 0, 0, 4])
    }

    @Test("libtorrent's messages without the error field are read; garbage is an error")
    func tolerant() throws {
        let short = try HolePunchMessage(decoding: ByteBuffer(bytes: [0, 0, 10, 0, 0, 2, 0x1A, 0xE1]))
        #expect(short.kind == .rendezvous && short.peer.description == "10.0.0.2:6881" && short.errorCode == 0)
        for bad: [UInt8] in [[], [0], [3, 0, 1, 2, 3, 4, 0, 1], [0, 2, 1, 2, 3, 4, 0, 1], [0, 0, 1, 2, 3], [0, 1, 1, 2]] {
            #expect(throws: PeerWireError.self) { try HolePunchMessage(decoding: ByteBuffer(bytes: bad)) }
        }
    }
}
