import PeerBase
import Testing

@Suite("Hex")
struct HexTests {
    @Test("known vectors encode in lower case")
    func knownVectors() {
        #expect(Hex.encode([UInt8]()) == "")
        #expect(Hex.encode([0x00]) == "00")
        #expect(Hex.encode([0x0f, 0xf0]) == "0ff0")
        #expect(Hex.encode([0xde, 0xad, 0xbe, 0xef]) == "deadbeef")
        #expect(Hex.encode(Array(0...15 as ClosedRange<UInt8>)) == "000102030405060708090a0b0c0d0e0f")
        #expect(Hex.encode([0xff] + [0x7f, 0x80]) == "ff7f80")
    }

    @Test("decoding accepts both cases")
    func decodeCases() {
        #expect(Hex.decode("deadbeef") == [0xde, 0xad, 0xbe, 0xef])
        #expect(Hex.decode("DEADBEEF") == [0xde, 0xad, 0xbe, 0xef])
        #expect(Hex.decode("DeAdBeEf") == [0xde, 0xad, 0xbe, 0xef])
        #expect(Hex.decode("") == [])
        #expect(Hex.decode("00ff"[...]) == [0x00, 0xff])
    }

    @Test("bad input returns nil", arguments: ["a", "abc", "0g", "g0", "zz", " 0", "0 ", "0x00", "é0", "-1", "++"])
    func badInput(_ text: String) {
        #expect(Hex.decode(text) == nil)
    }

    @Test("round trip over every byte value and many lengths")
    func roundTrip() {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        for length in 0..<300 {
            var bytes: [UInt8] = []
            for _ in 0..<length {
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                bytes.append(UInt8(truncatingIfNeeded: state >> 56))
            }
            let text = Hex.encode(bytes)
            #expect(text.utf8.count == 2 * length)
            #expect(Hex.decode(text) == bytes)
            #expect(Hex.decode(text.uppercased()) == bytes)
        }
        let all = (0...255).map { UInt8($0) }
        #expect(Hex.decode(Hex.encode(all)) == all)
    }
}
