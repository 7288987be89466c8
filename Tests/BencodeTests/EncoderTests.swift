import Bencode
import Testing

@Suite("Bencode encoding")
struct EncoderTests {
    @Test(
        "known encodings",
        arguments: [
            (BencodeValue.integer(0), "i0e"),
            (.integer(-1), "i-1e"),
            (.integer(.max), "i9223372036854775807e"),
            (.integer(.min), "i-9223372036854775808e"),
            (.string([]), "0:"),
            ("spam", "4:spam"),
            (.list([]), "le"),
            (["spam", "eggs"], "l4:spam4:eggse"),
            (.dictionary(BencodeDictionary()), "de"),
            (["cow": "moo", "spam": "eggs"], "d3:cow3:moo4:spam4:eggse"),
            (["spam": ["a", "b"]], "d4:spaml1:a1:bee"),
            ([[1, [2]], ["k": [:] as BencodeValue]], "lli1eli2eeed1:kdeee"),
        ] as [(BencodeValue, String)])
    func known(_ value: BencodeValue, _ expected: String) {
        #expect(BencodeEncoder.encode(value) == bytes(expected))
        #expect(value.encoded == bytes(expected))
    }

    @Test("keys are written in ascending byte order whatever the insertion order")
    func sortsKeys() {
        let value: BencodeValue = ["zeta": 1, "alpha": 2, "Beta": 3, "a": 4, "": 5, "\u{e9}": 6]
        #expect(value.encoded == bytes("d0:i5e4:Betai3e1:ai4e5:alphai2e4:zetai1e2:\u{e9}i6ee"))
        var d = BencodeDictionary()
        d[[0xff]] = 1
        d[[0x00]] = 2
        d[[0x7f, 0x00]] = 3
        d[[0x7f]] = 4
        #expect(
            BencodeValue.dictionary(d).encoded
                == bytes("d1:") + [0x00] + bytes("i2e1:") + [0x7f] + bytes("i4e2:") + [0x7f, 0x00] + bytes("i3e1:")
                + [0xff] + bytes("i1ee"))
    }

    @Test("append and appendString")
    func appendAPI() {
        var out = bytes("xx")
        BencodeEncoder.append(["a": 1], to: &out)
        #expect(out == bytes("xxd1:ai1ee"))
        var s: [UInt8] = []
        BencodeEncoder.appendString([0, 1, 2], to: &s)
        #expect(s == bytes("3:") + [0, 1, 2])
    }

    @Test("decoding a canonical document and encoding it again gives the same bytes")
    func canonicalRoundTrip() throws {
        let docs = [
            "d8:announce3:url4:infod6:lengthi5e4:name1:a12:piece lengthi16384e6:pieces0:ee",
            "li-5ei0e0:lede2:\u{0}\u{1}e",
            "d0:i0e1:ad1:bl1:ceee",
        ]
        for doc in docs {
            let node = try BencodeDecoder().decode(bytes(doc))
            #expect(node.isCanonicalDeep)
            #expect(node.value.encoded == bytes(doc))
        }
    }

    @Test("description renders values readably")
    func description() {
        let v: BencodeValue = ["a": [1, "x"], "b": .string([0x00, 0xff])]
        #expect(v.description == "{\"a\": [1, \"x\"], \"b\": 0x00ff}")
    }
}

@Suite("BencodeDictionary")
struct DictionaryTests {
    @Test("behaves like a sorted map")
    func sortedMap() {
        var d = BencodeDictionary()
        #expect(d.isEmpty && d.count == 0)
        d["b"] = 2
        d["a"] = 1
        d["c"] = 3
        #expect(d.count == 3 && !d.isEmpty)
        #expect(d.map { String(decoding: $0.key, as: UTF8.self) } == ["a", "b", "c"])
        #expect(d.map(\.value) == [1, 2, 3])
        // Replace.
        d["b"] = "two"
        #expect(d.count == 3)
        #expect(d["b"] == "two")
        // Remove.
        d["a"] = nil
        #expect(d.count == 2)
        #expect(d["a"] == nil)
        #expect(d.map(\.key) == [bytes("b"), bytes("c")])
        // Removing a missing key changes nothing.
        d["zz"] = nil
        #expect(d.count == 2)
        // Lookup by String and by bytes agree.
        #expect(d[bytes("c")] == 3)
        #expect(d["c"] == d[bytes("c")])
        d[[0xff, 0x00]] = 9
        #expect(d[[0xff, 0x00]] == 9)
        #expect(d[[0xff]] == nil)
        #expect(d.map(\.key).last == [0xff, 0x00])
    }

    @Test("initializer from pairs: a later duplicate replaces an earlier one")
    func pairs() {
        let d = BencodeDictionary([("x", 1), ("a", 2), ("x", 3)])
        #expect(d.count == 2)
        #expect(d["x"] == 3)
        #expect(d.map(\.key) == [bytes("a"), bytes("x")])
    }

    @Test("equality and hashing do not depend on insertion order")
    func equality() {
        var a = BencodeDictionary()
        a["one"] = 1
        a["two"] = 2
        var b = BencodeDictionary()
        b["two"] = 2
        b["one"] = 1
        #expect(a == b)
        #expect(Set([BencodeValue.dictionary(a), .dictionary(b)]).count == 1)
        b["two"] = 3
        #expect(a != b)
    }

    @Test("iteration order matches a sorted reference for many random insertions and removals")
    func randomizedAgainstReference() {
        var d = BencodeDictionary()
        var reference: [[UInt8]: Int64] = [:]
        var state: UInt64 = 42
        func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state >> 33
        }
        for step in 0..<2000 {
            let length = Int(next() % 3)
            let key = (0..<length).map { _ in UInt8(next() % 4) + 0x61 }
            if next() % 4 == 0 {
                d[key] = nil
                reference[key] = nil
            } else {
                d[key] = .integer(Int64(step))
                reference[key] = Int64(step)
            }
        }
        let sortedKeys = reference.keys.sorted { $0.lexicographicallyPrecedes($1) }
        #expect(d.map(\.key) == sortedKeys)
        #expect(d.map(\.value) == sortedKeys.map { .integer(reference[$0]!) })
        #expect(d.count == reference.count)
        for (k, v) in reference { #expect(d[k] == .integer(v)) }
    }
}
