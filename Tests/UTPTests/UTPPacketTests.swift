import Testing

@testable import UTP

@Suite("uTP packets (BEP 29)")
struct UTPPacketTests {
    @Test("a packet with a selective ACK and a payload reads back as written")
    func roundTrip() throws {
        let p = UTPPacket(type: .data, connectionID: 0xBEEF, timestamp: 0x0102_0304, timestampDifference: 7,
            windowSize: 1 << 20, seq: 65_535, ack: 12, selectiveAck: [0b101, 0, 0, 1], payload: Array("hello".utf8))
        let bytes = p.bytes
        #expect(bytes[0] == 0x01 && bytes[1] == 1)  // ST_DATA, version 1; a selective ACK follows
        #expect(try UTPPacket(bytes: bytes) == p)
        #expect(p.selectivelyAcks(14) && !p.selectivelyAcks(15) && p.selectivelyAcks(16) && p.selectivelyAcks(14 + 24))
        #expect(!p.selectivelyAcks(12) && !p.selectivelyAcks(13) && !p.selectivelyAcks(14 + 32))
    }

    @Test("a selective ACK of any length is taken (libtorrent sends ceil(window/8) bytes), unknown extensions skipped")
    func oddExtensions() throws {
        var bytes = UTPPacket(type: .state, connectionID: 1, seq: 5, ack: 9).bytes
        bytes[1] = 3  // close_reason first, as libtorrent sends it
        bytes += [1, 4, 0, 0, 0, 7]  // then a selective ACK of 3 bytes, then nothing
        bytes += [0, 3, 0b1, 0, 0]
        bytes += Array("xy".utf8)
        let p = try UTPPacket(bytes: bytes)
        #expect(p.selectiveAck == [1, 0, 0])
        #expect(p.selectivelyAcks(11))
        #expect(p.payload == Array("xy".utf8))
    }

    @Test("a path MTU probe's padding: extensions of at most 255 bytes, to the exact size, read back as padding")
    func padding() throws {
        for padding in [0, 2, 3, 256, 257, 258, 514, 7_572] {
            for sack: [UInt8] in [[], [0b101, 0, 0, 1]] {
                let p = UTPPacket(type: .data, connectionID: 9, seq: 3, ack: 2, selectiveAck: sack, padding: padding,
                    payload: [1, 2, 3])
                let bytes = p.bytes
                #expect(bytes.count == 20 + (sack.isEmpty ? 0 : 6) + padding + 3)
                let back = try UTPPacket(bytes: bytes)
                #expect(back == p)
            }
        }
    }

    @Test("truncated headers, wrong versions and types, runaway extension chains are errors, never traps")
    func badInput() {
        let good = UTPPacket(type: .syn, connectionID: 1, seq: 1, ack: 0).bytes
        #expect(throws: UTPError.truncated(19)) { try UTPPacket(bytes: Array(good.prefix(19))) }
        var v2 = good
        v2[0] = 0x42
        #expect(throws: UTPError.version(2)) { try UTPPacket(bytes: v2) }
        var t9 = good
        t9[0] = 0x91
        #expect(throws: UTPError.type(9)) { try UTPPacket(bytes: t9) }
        var cut = good
        cut[1] = 1
        cut += [0, 8, 1, 2]
        #expect(throws: UTPError.truncatedExtension(at: 22)) { try UTPPacket(bytes: cut) }
        var chain = good
        chain[1] = 5
        for _ in 0..<70 { chain += [5, 0] }
        #expect(throws: UTPError.tooManyExtensions) { try UTPPacket(bytes: chain) }
        #expect(throws: UTPError.tooLong(70_000)) { try UTPPacket(bytes: [UInt8](repeating: 1, count: 70_000)) }
    }

    @Test("one UDP port: uTP is told apart from the DHT's bencode and from UDP trackers' answers")
    func demux() {
        #expect(UTPPacket.looksLikeUTP(UTPPacket(type: .state, connectionID: 1, seq: 1, ack: 1).bytes))
        #expect(!UTPPacket.looksLikeUTP(Array("d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe".utf8)))
        #expect(!UTPPacket.looksLikeUTP([0, 0, 0, 1] + [UInt8](repeating: 0, count: 16)))  // a tracker's announce
        #expect(!UTPPacket.looksLikeUTP([0x01, 0, 0]))
    }

    @Test("sequence numbers compare across the wrap")
    func wrap() {
        #expect(Seq.less(65_535, 0) && Seq.less(65_000, 100) && !Seq.less(100, 65_000))
        #expect(Seq.distance(65_535, to: 1) == 2 && Seq.distance(1, to: 65_535) == -2)
    }
}
