import Bencode
import Testing

@Suite("Bencode decoding errors")
struct DecoderErrorTests {
    @Test(
        "truncated inputs",
        arguments: [
            ("", BencodeError.unexpectedEnd(expected: "a value", offset: 0)),
            ("i", .unexpectedEnd(expected: "a digit or '-'", offset: 1)),
            ("i-", .unexpectedEnd(expected: "a digit or 'e'", offset: 2)),
            ("i12", .unexpectedEnd(expected: "a digit or 'e'", offset: 3)),
            ("5", .unexpectedEnd(expected: "a digit or ':'", offset: 1)),
            ("5:ab", .stringPastEnd(declared: 5, remaining: 2, offset: 0)),
            ("5:", .stringPastEnd(declared: 5, remaining: 0, offset: 0)),
            ("l", .unexpectedEnd(expected: "a list item or 'e'", offset: 1)),
            ("li1e", .unexpectedEnd(expected: "a list item or 'e'", offset: 4)),
            ("d", .unexpectedEnd(expected: "a dictionary key or 'e'", offset: 1)),
            ("d3:foo", .unexpectedEnd(expected: "a value", offset: 6)),
            ("d3:fooi1e", .unexpectedEnd(expected: "a dictionary key or 'e'", offset: 9)),
            ("d3:fo", .stringPastEnd(declared: 3, remaining: 2, offset: 1)),
            ("lli1e", .unexpectedEnd(expected: "a list item or 'e'", offset: 5)),
        ])
    func truncated(_ text: String, _ expected: BencodeError) {
        let error = decodeError(text)
        #expect(error == expected)
        #expect(error?.offset == expected.offset)
    }

    @Test(
        "bad bytes",
        arguments: [
            (
                "x",
                BencodeError.unexpectedByte(UInt8(ascii: "x"), expected: "'i', 'l', 'd' or a string length", offset: 0)
            ),
            ("e", .unexpectedByte(UInt8(ascii: "e"), expected: "'i', 'l', 'd' or a string length", offset: 0)),
            ("-1:a", .unexpectedByte(UInt8(ascii: "-"), expected: "'i', 'l', 'd' or a string length", offset: 0)),
            ("i1x2e", .unexpectedByte(UInt8(ascii: "x"), expected: "a digit or 'e'", offset: 2)),
            ("i+1e", .unexpectedByte(UInt8(ascii: "+"), expected: "a digit or 'e'", offset: 1)),
            ("i--1e", .unexpectedByte(UInt8(ascii: "-"), expected: "a digit or 'e'", offset: 2)),
            ("i 1e", .unexpectedByte(UInt8(ascii: " "), expected: "a digit or 'e'", offset: 1)),
            ("i1.5e", .unexpectedByte(UInt8(ascii: "."), expected: "a digit or 'e'", offset: 2)),
            ("3x:abc", .unexpectedByte(UInt8(ascii: "x"), expected: "a digit or ':'", offset: 1)),
            ("li1eXe", .unexpectedByte(UInt8(ascii: "X"), expected: "'i', 'l', 'd' or a string length", offset: 4)),
            ("d1:a\u{0}e", .unexpectedByte(0, expected: "'i', 'l', 'd' or a string length", offset: 4)),
        ])
    func badBytes(_ text: String, _ expected: BencodeError) {
        #expect(decodeError(text) == expected)
    }

    @Test(
        "non-canonical and malformed integers",
        arguments: [
            ("i03e", BencodeError.invalidInteger(reason: "leading zero", offset: 0)),
            ("i00e", .invalidInteger(reason: "leading zero", offset: 0)),
            ("i-03e", .invalidInteger(reason: "leading zero", offset: 0)),
            ("i-0e", .invalidInteger(reason: "negative zero", offset: 0)),
            ("ie", .invalidInteger(reason: "no digits", offset: 0)),
            ("i-e", .invalidInteger(reason: "no digits", offset: 0)),
            ("li1ei03ee", .invalidInteger(reason: "leading zero", offset: 4)),
            ("i9223372036854775808e", .integerOverflow(offset: 0)),
            ("i-9223372036854775809e", .integerOverflow(offset: 0)),
            ("i18446744073709551616e", .integerOverflow(offset: 0)),
            ("i99999999999999999999999999e", .integerOverflow(offset: 0)),
            ("l1:ai9223372036854775808ee", .integerOverflow(offset: 4)),
        ])
    func integers(_ text: String, _ expected: BencodeError) {
        #expect(decodeError(text) == expected)
    }

    @Test("the extreme 64-bit integers decode")
    func extremes() throws {
        #expect(try BencodeDecoder().decode(bytes("i9223372036854775807e")).integer == .max)
        #expect(try BencodeDecoder().decode(bytes("i-9223372036854775808e")).integer == .min)
    }

    @Test("string lengths")
    func stringLengths() {
        #expect(decodeError("03:abc") == .invalidInteger(reason: "string length with a leading zero", offset: 0))
        #expect(decodeError("00:") == .invalidInteger(reason: "string length with a leading zero", offset: 0))
        #expect(decodeError("l1:a01:be") == .invalidInteger(reason: "string length with a leading zero", offset: 4))
        #expect(decodeError("99999999999999999999999:x") == .integerOverflow(offset: 0))
        #expect(decodeError("0:") == nil)
    }

    @Test("a string declaring 2 GiB fails at once without allocating")
    func hugeString() {
        let clock = ContinuousClock()
        let start = clock.now
        #expect(decodeError("2147483648:x") == .stringTooLong(declared: 2_147_483_648, limit: 64 << 20, offset: 0))
        // Above the limits' string length too: the remaining input is what refuses it.
        let lax = BencodeLimits(maxStringLength: .max, maxInputLength: .max)
        #expect(
            decodeError("2147483648:x", limits: lax) == .stringPastEnd(declared: 2_147_483_648, remaining: 1, offset: 0)
        )
        #expect(
            decodeError("18446744073709551615:x", limits: lax)
                == .stringTooLong(declared: .max, limit: .max, offset: 0))
        #expect(decodeError("l2147483648:xe") == .stringTooLong(declared: 2_147_483_648, limit: 64 << 20, offset: 1))
        #expect(clock.now - start < .seconds(1))
    }

    @Test("100 000 nested lists fail with tooDeep, not a stack overflow")
    func deepNesting() {
        let lists = [UInt8](repeating: UInt8(ascii: "l"), count: 100_000)
        #expect(decodeError(lists) == .tooDeep(limit: 100, offset: 100))
        let closed = lists + [UInt8](repeating: UInt8(ascii: "e"), count: 100_000)
        #expect(decodeError(closed) == .tooDeep(limit: 100, offset: 100))
        let dicts = [UInt8]((0..<50_000).flatMap { _ in bytes("d1:a") })
        #expect(decodeError(dicts) == .tooDeep(limit: 100, offset: 400))
        // Exactly at the limit is fine.
        let ok = [UInt8](repeating: UInt8(ascii: "l"), count: 100) + [UInt8](repeating: UInt8(ascii: "e"), count: 100)
        #expect(decodeError(ok) == nil)
        let small = BencodeLimits(maxDepth: 2)
        #expect(decodeError("llee", limits: small) == nil)
        #expect(decodeError("llleee", limits: small) == .tooDeep(limit: 2, offset: 2))
        #expect(decodeError("ld1:alelee", limits: small) == .tooDeep(limit: 2, offset: 5))
    }

    @Test("too many items")
    func tooManyItems() {
        let limits = BencodeLimits(maxItems: 3)
        #expect(decodeError("li1ei2ee", limits: limits) == nil)
        #expect(decodeError("li1ei2ei3ee", limits: limits) == .tooManyItems(limit: 3, offset: 7))
        // Keys count as items too: dict (1), key (2), value (3), key (4).
        #expect(decodeError("d1:ai1e1:bi2ee", limits: limits) == .tooManyItems(limit: 3, offset: 7))
        #expect(decodeError("i1e", limits: BencodeLimits(maxItems: 0)) == .tooManyItems(limit: 0, offset: 0))
    }

    @Test("dictionary keys must be strings")
    func nonStringKeys() {
        #expect(decodeError("di1ei2ee") == .nonStringKey(offset: 1))
        #expect(decodeError("dlei1ee") == .nonStringKey(offset: 1))
        #expect(decodeError("d1:ai1edeee") == .nonStringKey(offset: 7))
        #expect(decodeError("l1:xd1:ai1ei0ei1eee") == .nonStringKey(offset: 11))
    }

    @Test("duplicate keys are refused in sorted and unsorted positions")
    func duplicateKeys() {
        // Adjacent, while the keys are still sorted.
        #expect(decodeError("d1:ai1e1:ai2ee") == .duplicateKey(key: "a", offset: 7))
        // After the keys went out of order: b, a, b.
        #expect(decodeError("d1:bi1e1:ai2e1:bi3ee") == .duplicateKey(key: "b", offset: 13))
        // The duplicate is the one that puts the keys out of order: a, b, a.
        #expect(decodeError("d1:ai1e1:bi2e1:ai3ee") == .duplicateKey(key: "a", offset: 13))
        // Far apart: c, a, b, c.
        #expect(decodeError("d1:ci0e1:ai0e1:bi0e1:ci0ee") == .duplicateKey(key: "c", offset: 19))
        // In strict mode too.
        let strict = BencodeLimits(requireSortedKeys: true)
        #expect(decodeError("d1:ai1e1:ai2ee", limits: strict) == .duplicateKey(key: "a", offset: 7))
        // The same key in different dictionaries is fine.
        #expect(decodeError("d1:ad1:ai0eee") == nil)
        #expect(decodeError("ld1:ai0eed1:ai0eee") == nil)
    }

    @Test("trailing data")
    func trailingData() {
        #expect(decodeError("i1ei2e") == .trailingData(offset: 3))
        #expect(decodeError("lee") == .trailingData(offset: 2))
        #expect(decodeError("0: ") == .trailingData(offset: 2))
        #expect(decodeError("de\n") == .trailingData(offset: 2))
    }

    @Test("input too long")
    func inputTooLong() {
        let limits = BencodeLimits(maxInputLength: 10)
        #expect(decodeError("10:abcdefgh", limits: limits) == .inputTooLong(length: 11, limit: 10))
        #expect(decodeError("8:abcdefgh", limits: limits) == nil)
        #expect(throws: BencodeError.inputTooLong(length: 11, limit: 10)) {
            try BencodeDecoder(limits: limits).decodePrefix(bytes("i1e12345678"))
        }
    }

    @Test("error descriptions name the offset")
    func descriptions() {
        #expect(BencodeError.trailingData(offset: 3).description.contains("byte 3"))
        #expect(BencodeError.unexpectedByte(0x01, expected: "x", offset: 9).description.contains("0x01"))
        #expect(BencodeError.unexpectedByte(UInt8(ascii: "q"), expected: "x", offset: 9).description.contains("'q'"))
        #expect(BencodeError.duplicateKey(key: "k", offset: 2).description.contains("\"k\""))
        #expect(BencodeError.inputTooLong(length: 11, limit: 10).offset == 10)
        #expect(BencodeError.tooDeep(limit: 100, offset: 100).offset == 100)
    }
}
