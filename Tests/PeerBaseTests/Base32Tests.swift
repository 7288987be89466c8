import PeerBase
import Testing

@Suite("Base32 (RFC 4648)")
struct Base32Tests {
    /// RFC 4648 §10 test vectors (the encoder writes no padding, the decoder accepts it).
    static let vectors: [(plain: String, padded: String)] = [
        ("", ""),
        ("f", "MY======"),
        ("fo", "MZXQ===="),
        ("foo", "MZXW6==="),
        ("foob", "MZXW6YQ="),
        ("fooba", "MZXW6YTB"),
        ("foobar", "MZXW6YTBOI======"),
    ]

    @Test("RFC 4648 vectors encode without padding", arguments: Self.vectors)
    func encodeVectors(_ v: (plain: String, padded: String)) {
        let unpadded = String(v.padded.prefix(while: { $0 != "=" }))
        #expect(Base32.encode(Array(v.plain.utf8)) == unpadded)
    }

    @Test("RFC 4648 vectors decode with and without padding, in either case", arguments: Self.vectors)
    func decodeVectors(_ v: (plain: String, padded: String)) {
        let unpadded = String(v.padded.prefix(while: { $0 != "=" }))
        #expect(Base32.decode(v.padded) == Array(v.plain.utf8))
        #expect(Base32.decode(unpadded) == Array(v.plain.utf8))
        #expect(Base32.decode(v.padded.lowercased()) == Array(v.plain.utf8))
    }

    @Test("a 20-byte info-hash is 32 characters")
    func infoHashLength() throws {
        let hash = (0..<20).map { UInt8($0 * 13 & 0xff) }
        let text = Base32.encode(hash)
        #expect(text.count == 32)
        #expect(text.allSatisfy { "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".contains($0) })
        #expect(Base32.decode(text) == hash)
        // All zero bits and all one bits.
        #expect(Base32.encode([UInt8](repeating: 0, count: 20)) == String(repeating: "A", count: 32))
        #expect(Base32.encode([UInt8](repeating: 0xff, count: 20)) == String(repeating: "7", count: 32))
    }

    @Test("bad input returns nil", arguments: ["0", "1", "8", "9", "MZXW6!", "MZ XW", "MZ-W", "é", "MZXW6YQ\u{0}"])
    func badInput(_ text: String) {
        #expect(Base32.decode(text) == nil)
    }

    @Test("round trip for every length up to 64")
    func roundTrip() {
        var state: UInt32 = 12345
        for length in 0...64 {
            let bytes = (0..<length).map { _ -> UInt8 in
                state = state &* 1_103_515_245 &+ 12345
                return UInt8(truncatingIfNeeded: state >> 16)
            }
            let text = Base32.encode(bytes)
            #expect(text.count == (length * 8 + 4) / 5)
            #expect(Base32.decode(text) == bytes)
        }
    }
}
