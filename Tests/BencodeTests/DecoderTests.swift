import Bencode
import Testing

@Suite("Bencode decoding")
struct DecoderTests {
    let decoder = BencodeDecoder()

    @Test(
        "integers",
        arguments: [
            ("i0e", Int64(0)), ("i1e", 1), ("i-1e", -1), ("i42e", 42), ("i-42e", -42), ("i1234567890e", 1_234_567_890),
            ("i9223372036854775807e", .max), ("i-9223372036854775808e", .min),
            ("i9223372036854775806e", .max - 1), ("i-9223372036854775807e", .min + 1),
        ])
    func integers(_ text: String, _ expected: Int64) throws {
        let node = try self.decoder.decode(bytes(text))
        #expect(node.integer == expected)
        #expect(node.value == .integer(expected))
        #expect(node.span == 0..<text.utf8.count)
        #expect(node.typeName == "integer")
        #expect(node.bytes == nil && node.list == nil && node.entries == nil)
    }

    @Test("byte strings, including empty, binary and non-UTF-8 ones")
    func strings() throws {
        #expect(try self.decoder.decodeValue(bytes("0:")) == .string([]))
        #expect(try self.decoder.decodeValue(bytes("4:spam")) == "spam")
        #expect(try self.decoder.decodeValue(bytes("3:a:e")) == "a:e")
        let binary: [UInt8] = [0x00, 0xff, 0xfe, 0x80, 0x0a]
        let node = try self.decoder.decode(bytes("5:") + binary)
        #expect(node.bytes == binary)
        #expect(node.utf8 == nil)  // not valid UTF-8
        #expect(node.typeName == "string")
        let long = [UInt8](repeating: 0x61, count: 1000)
        #expect(try self.decoder.decodeValue(bytes("1000:") + long) == .string(long))
        let utf8 = try self.decoder.decode(bytes("6:h\u{e9}llo"))
        #expect(utf8.utf8 == "h\u{e9}llo")
    }

    @Test("lists and dictionaries")
    func containers() throws {
        #expect(try self.decoder.decodeValue(bytes("le")) == .list([]))
        #expect(try self.decoder.decodeValue(bytes("de")) == .dictionary(BencodeDictionary()))
        #expect(try self.decoder.decodeValue(bytes("l4:spami42ee")) == ["spam", 42])
        #expect(try self.decoder.decodeValue(bytes("d3:bar4:spam3:fooi42ee")) == ["bar": "spam", "foo": 42])
        let nested = try self.decoder.decodeValue(bytes("d4:listl1:ai1eli2eedee3:subd1:xleee"))
        let expected: BencodeValue = [
            "list": ["a", 1, [2], .dictionary(BencodeDictionary())],
            "sub": ["x": .list([])],
        ]
        #expect(nested == expected)
        #expect(nested["list"]?.list?.count == 4)
        #expect(nested["sub"]?["x"] == .list([]))
    }

    @Test("typed accessors on nodes and values")
    func accessors() throws {
        let node = try self.decoder.decode(bytes("d1:ai1e1:bl1:xe1:c3:abce"))
        #expect(node.typeName == "dictionary")
        #expect(node.entries?.map(\.key) == [bytes("a"), bytes("b"), bytes("c")])
        #expect(node["a"]?.integer == 1)
        #expect(node["b"]?.list?.count == 1)
        #expect(node["b"]?.typeName == "list")
        #expect(node["c"]?.utf8 == "abc")
        #expect(node["missing"] == nil)
        #expect(node["a"]?["x"] == nil)  // subscript on a non-dictionary
        let value = node.value
        #expect(value["a"]?.integer == 1)
        #expect(value["b"]?.list == ["x"])
        #expect(value["c"]?.bytes == bytes("abc"))
        #expect(value["c"]?.utf8 == "abc")
        #expect(value.dictionary?.count == 3)
        #expect(value["a"]?.dictionary == nil)
        #expect(BencodeValue.integer(3)["a"] == nil)
    }

    @Test("spans of every node in a nested document")
    func nestedSpans() throws {
        let text = "d1:ali1ei-20e3:xyzd1:kdeee1:bi7ee"
        let node = try self.decoder.decode(bytes(text))
        #expect(node.span == 0..<text.utf8.count)
        let list = try #require(node["a"])
        #expect(list.span == 4..<26)
        let items = try #require(list.list)
        #expect(items.map(\.span) == [5..<8, 8..<13, 13..<18, 18..<25])
        let inner = items[3]
        #expect(inner["k"]?.span == 22..<24)
        #expect(node["b"]?.span == 29..<32)
        // Every span, re-encoded, gives back exactly its bytes (the document is canonical).
        let input = bytes(text)
        for n in node.allNodes {
            #expect(BencodeEncoder.encode(n.value) == Array(input[n.span]))
        }
    }

    @Test("the info dictionary's span is the byte range of its encoding")
    func infoSpan() throws {
        let info: BencodeValue = [
            "length": 12345, "name": "file.bin", "piece length": 16384,
            "pieces": .string([UInt8](repeating: 0xab, count: 20)),
            "files": [["length": 1, "path": ["a", "b"]], ["length": 2, "path": ["c"]]],
        ]
        let torrent: BencodeValue = [
            "announce": "http://tracker.example/announce", "comment": "hi", "info": info, "zzz": [1, 2, 3],
        ]
        let encoded = torrent.encoded
        let infoBytes = info.encoded
        let node = try self.decoder.decode(encoded)
        let infoNode = try #require(node["info"])
        #expect(Array(encoded[infoNode.span]) == infoBytes)
        // And the span is where the encoding really lies: right after the "4:info" key.
        let key = bytes("4:info")
        let keyStart = try #require(
            (0...(encoded.count - key.count)).first { Array(encoded[$0..<$0 + key.count]) == key })
        #expect(infoNode.span == (keyStart + key.count)..<(keyStart + key.count + infoBytes.count))
        #expect(infoNode["files"]?.list?[1]["path"]?.list?[0].utf8 == "c")
    }

    @Test("decodePrefix returns the end of the first value")
    func decodePrefix() throws {
        let (node, end) = try self.decoder.decodePrefix(bytes("d1:ai1eeXYZ"))
        #expect(end == 8)
        #expect(node.value == ["a": 1])
        let (n2, e2) = try self.decoder.decodePrefix(bytes("i42ei43e"))
        #expect(n2.integer == 42 && e2 == 4)
        let (n3, e3) = try self.decoder.decodePrefix(bytes("3:abc") + [0xff, 0x00])
        #expect(n3.bytes == bytes("abc") && e3 == 5)
        let (n4, e4) = try self.decoder.decodePrefix(bytes("le"))
        #expect(n4.list?.isEmpty == true && e4 == 2)
        // ut_metadata style: a header dictionary followed by raw data.
        let header: BencodeValue = ["msg_type": 1, "piece": 0, "total_size": 3]
        let message = header.encoded + [1, 2, 3]
        let (h, hEnd) = try self.decoder.decodePrefix(message)
        #expect(h.value == header)
        #expect(Array(message[hEnd...]) == [1, 2, 3])
        // decode() refuses what decodePrefix() accepts.
        #expect(decodeError("i42ei43e") == .trailingData(offset: 4))
    }

    @Test("unsorted keys are accepted by default and marked non-canonical")
    func unsortedKeys() throws {
        let node = try self.decoder.decode(bytes("d1:bi1e1:ai2ee"))
        #expect(node.isCanonical == false)
        #expect(node.isCanonicalDeep == false)
        #expect(node.entries?.map(\.key) == [bytes("b"), bytes("a")])  // input order is kept
        #expect(node.value == ["a": 2, "b": 1])
        #expect(node.value.encoded == bytes("d1:ai2e1:bi1ee"))
        // Sorted keys are canonical; a non-canonical dictionary deep inside makes the root non-canonical deep.
        let sorted = try self.decoder.decode(bytes("d1:ai2e1:bi1ee"))
        #expect(sorted.isCanonical && sorted.isCanonicalDeep)
        let deep = try self.decoder.decode(bytes("d1:ald1:yi0e1:xi0eeee"))
        #expect(deep.isCanonical == true)
        #expect(deep.isCanonicalDeep == false)
        // Keys compare as raw bytes: "B" (0x42) < "a" (0x61), "a" < "aa", "\u{7f}" < 0x80.
        #expect(try self.decoder.decode(bytes("d1:Bi0e1:ai0e2:aai0ee")).isCanonical)
        #expect(try self.decoder.decode(bytes("d1:\u{7f}i0e1:") + [0x80] + bytes("i0ee")).isCanonical)
        #expect(try self.decoder.decode(bytes("d2:aai0e1:ai0ee")).isCanonical == false)
        // Strict mode refuses them with the offset of the offending key.
        let strict = BencodeLimits(requireSortedKeys: true)
        #expect(decodeError("d1:bi1e1:ai2ee", limits: strict) == .unsortedKey(offset: 7))
        #expect(decodeError("d1:ai2e1:bi1ee", limits: strict) == nil)
        #expect(decodeError("d2:aai0e1:ai0ee", limits: strict) == .unsortedKey(offset: 8))
    }

    @Test("limits presets")
    func presets() {
        #expect(BencodeLimits.default == BencodeLimits())
        #expect(BencodeLimits.default.maxDepth == 100)
        #expect(BencodeLimits.default.requireSortedKeys == false)
        #expect(BencodeLimits.message.maxDepth == 32)
        #expect(BencodeLimits.message.maxStringLength == 64 << 10)
        #expect(BencodeLimits.message.maxInputLength == 1 << 20)
        // A 100 KiB string passes the default limits and fails the message limits.
        let big = bytes("102400:") + [UInt8](repeating: 0x41, count: 102_400)
        #expect(decodeError(big) == nil)
        #expect(decodeError(big, limits: .message) == .stringTooLong(declared: 102_400, limit: 65_536, offset: 0))
    }
}
