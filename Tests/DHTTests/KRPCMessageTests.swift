import Bencode
import DHT
import Testing

@Suite("KRPC messages")
struct KRPCMessageTests {
    // MARK: BEP 5's example packets, byte for byte

    static let examples: [(String, KRPCMessage)] = [
        (
            "d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe",
            KRPCMessage(transactionID: bytes("aa"), kind: .query(KRPCQuery(sender: id("abcdefghij0123456789"), method: .ping)))
        ),
        (
            "d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re",
            KRPCMessage(transactionID: bytes("aa"), kind: .response(KRPCResponse(sender: id("mnopqrstuvwxyz123456"))))
        ),
        (
            "d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e1:q9:find_node1:t2:aa1:y1:qe",
            KRPCMessage(
                transactionID: bytes("aa"),
                kind: .query(
                    KRPCQuery(
                        sender: id("abcdefghij0123456789"), method: .findNode(target: id("mnopqrstuvwxyz123456")))))
        ),
        (
            "d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456e1:q9:get_peers1:t2:aa1:y1:qe",
            KRPCMessage(
                transactionID: bytes("aa"),
                kind: .query(
                    KRPCQuery(
                        sender: id("abcdefghij0123456789"), method: .getPeers(infoHash: id("mnopqrstuvwxyz123456")))))
        ),
        (
            "d1:rd2:id20:abcdefghij01234567895:token8:aoeusnth6:valuesl6:axje.u6:idhtnmee1:t2:aa1:y1:re",
            KRPCMessage(
                transactionID: bytes("aa"),
                kind: .response(
                    KRPCResponse(
                        sender: id("abcdefghij0123456789"), token: bytes("aoeusnth"),
                        values: [DHTEndpoint(compact: bytes("axje.u"))!, DHTEndpoint(compact: bytes("idhtnm"))!])))
        ),
        (
            "d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe",
            KRPCMessage(
                transactionID: bytes("aa"),
                kind: .query(
                    KRPCQuery(
                        sender: id("abcdefghij0123456789"),
                        method: .announcePeer(
                            infoHash: id("mnopqrstuvwxyz123456"), port: 6881, impliedPort: true, token: bytes("aoeusnth")))))
        ),
        (
            "d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee",
            KRPCMessage(transactionID: bytes("aa"), kind: .error(code: 201, message: "A Generic Error Ocurred"))
        ),
    ]

    @Test("BEP 5 example packets decode and encode byte for byte", arguments: 0..<7)
    func bep5Examples(index: Int) throws {
        let (text, message) = Self.examples[index]
        #expect(try KRPCMessage.decode(bytes(text)) == message)
        #expect(message.encoded == bytes(text))
    }

    @Test("BEP 43 ro flag, BEP 42 ip and the version key round-trip")
    func envelopeExtras() throws {
        let m = KRPCMessage(
            transactionID: [0, 1], kind: .query(KRPCQuery(sender: .zero, method: .ping)), version: bytes("PE01"),
            readOnly: true, requesterAddress: v4(1, 2, 3, 4, port: 0x1a1b))
        let encoded = m.encoded
        #expect(String(decoding: encoded, as: UTF8.self).contains("2:roi1e"))
        #expect(String(decoding: encoded, as: UTF8.self).contains("2:ip6:\u{1}\u{2}\u{3}\u{4}\u{1a}\u{1b}"))
        #expect(try KRPCMessage.decode(encoded) == m)
    }

    @Test("every query type round-trips, with want")
    func queryRoundTrips() throws {
        let key = [UInt8](repeating: 7, count: 32)
        let sig = [UInt8](repeating: 9, count: 64)
        let methods: [KRPCQuery.Method] = [
            .ping,
            .findNode(target: idStarting(1)),
            .getPeers(infoHash: idStarting(2)),
            .announcePeer(infoHash: idStarting(3), port: 0, impliedPort: true, token: [1, 2]),
            .announcePeer(infoHash: idStarting(3), port: 51413, impliedPort: false, token: [1, 2]),
            .get(target: idStarting(4), sequence: nil),
            .get(target: idStarting(4), sequence: 17),
            .put(token: [5], item: .immutable("Hello World!"), cas: nil),
            .put(
                token: [5],
                item: .mutable(MutableItem(publicKey: key, salt: bytes("salt"), sequence: 3, value: ["a", 1], signature: sig)),
                cas: 2),
            .put(token: [5], item: .mutable(MutableItem(publicKey: key, sequence: 0, value: 1, signature: sig)), cas: nil),
            .sampleInfohashes(target: idStarting(6)),
            .unknown(name: "vote", target: idStarting(7)),
            .unknown(name: "frobnicate", target: nil),
        ]
        for method in methods {
            for want: Want in [[], .n4, .n6, [.n4, .n6]] {
                let m = KRPCMessage(
                    transactionID: [1, 2, 3, 4, 5, 6, 7, 8],
                    kind: .query(KRPCQuery(sender: idStarting(0xee), method: method, want: want)))
                #expect(try KRPCMessage.decode(m.encoded) == m, "\(method)")
            }
        }
    }

    @Test("responses with nodes, nodes6, values of both families, items and samples round-trip")
    func responseRoundTrips() throws {
        let nodes = (0..<8).map { NodeInfo(id: idStarting(UInt8($0)), endpoint: v4(10, 0, 0, UInt8($0))) }
        let nodes6 = (0..<8).map { NodeInfo(id: idStarting(UInt8($0), 1), endpoint: v6(UInt16($0))) }
        let r = KRPCResponse(
            sender: idStarting(0x42), nodes: nodes, nodes6: nodes6, token: [1, 2, 3, 4], values: [v4(1, 2, 3, 4), v6(9)],
            value: ["x": 1], publicKey: [UInt8](repeating: 1, count: 32), signature: [UInt8](repeating: 2, count: 64),
            sequence: 12, samples: [idStarting(1), idStarting(2)], sampleCount: 2, interval: 60)
        let m = KRPCMessage(transactionID: [0xff], kind: .response(r), requesterAddress: v6(1))
        #expect(try KRPCMessage.decode(m.encoded) == m)
        // An empty samples string is kept apart from no samples at all (BEP 51 asks for it always).
        let empty = KRPCMessage(transactionID: [1], kind: .response(KRPCResponse(sender: .zero, samples: [])))
        #expect(try KRPCMessage.decode(empty.encoded).response?.samples == [])
    }

    // MARK: Malformed input

    @Test("every truncation of a valid message is refused")
    func truncations() {
        for (text, _) in Self.examples {
            let full = bytes(text)
            for n in 0..<full.count {
                #expect(decodeError(Array(full[..<n])) != nil, "\(n) bytes of \(text)")
            }
        }
    }

    @Test("wrong types and missing keys are refused")
    func wrongTypes() {
        let cases: [(String, DHTError)] = [
            ("le", .notADictionary("message")),
            ("i1e", .notADictionary("message")),
            ("d1:y1:qe", .missingKey("t")),
            ("d1:ti1e1:y1:qe", .wrongType(key: "t", expected: "a string")),
            ("d1:t2:aae", .missingKey("y")),
            ("d1:t2:aa1:yi1ee", .wrongType(key: "y", expected: "a string")),
            ("d1:t2:aa1:y1:xe", .unknownMessageType("x")),
            ("d1:t2:aa1:y1:qe", .missingKey("q")),
            ("d1:t2:aa1:y1:re", .missingKey("r")),
            ("d1:rle1:t2:aa1:y1:re", .notADictionary("r")),
            ("d1:rd2:id3:abce1:t2:aa1:y1:re", .badLength(key: "id", length: 3, expected: "20")),
            ("d1:t2:aa1:y1:ee", .missingKey("e")),
            ("d1:e3:abc1:t2:aa1:y1:ee", .wrongType(key: "e", expected: "a list [code, message]")),
            ("d1:eli99999999999e1:xe1:t2:aa1:y1:ee", .wrongType(key: "e", expected: "a list [code, message]")),
        ]
        for (text, expected) in cases {
            #expect(decodeError(bytes(text)) == expected, "\(text)")
        }
    }

    @Test("a query with bad arguments is refused with its transaction id, so the node can answer 203")
    func invalidQueries() {
        let cases: [(String, String, DHTError)] = [
            ("d1:q4:ping1:t2:aa1:y1:qe", "ping", .missingKey("a")),
            ("d1:ali1ee1:q4:ping1:t2:aa1:y1:qe", "ping", .notADictionary("a")),
            ("d1:ad2:idi1ee1:q4:ping1:t2:aa1:y1:qe", "ping", .wrongType(key: "id", expected: "a string")),
            ("d1:ad2:id19:abcdefghij012345678e1:q4:ping1:t2:aa1:y1:qe", "ping",
             .badLength(key: "id", length: 19, expected: "20")),
            ("d1:ad2:id20:abcdefghij0123456789e1:q9:find_node1:t2:aa1:y1:qe", "find_node", .missingKey("target")),
            ("d1:ad2:id20:abcdefghij01234567894:wanti1ee1:q4:ping1:t2:aa1:y1:qe", "ping",
             .wrongType(key: "want", expected: "a list of strings")),
            ("d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:porti0e5:token1:xe1:q13:announce_peer1:t2:aa1:y1:qe",
             "announce_peer", .invalidValue(key: "port", reason: "0 is not a port")),
            ("d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:porti65536e5:token1:xe1:q13:announce_peer1:t2:aa1:y1:qe",
             "announce_peer", .invalidValue(key: "port", reason: "65536 is not a port")),
            ("d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:porti1ee1:q13:announce_peer1:t2:aa1:y1:qe",
             "announce_peer", .missingKey("token")),
            // BEP 44: an unsorted dictionary as v MUST be rejected.
            ("d1:ad2:id20:abcdefghij01234567895:token1:x1:vd1:bi1e1:ai2eee1:q3:put1:t2:aa1:y1:qe", "put",
             .invalidValue(key: "v", reason: "not canonical bencode")),
            ("d1:ad2:id20:abcdefghij01234567891:k3:abc5:token1:x1:vi1ee1:q3:put1:t2:aa1:y1:qe", "put",
             .badLength(key: "k", length: 3, expected: "32")),
        ]
        for (text, method, reason) in cases {
            #expect(
                decodeError(bytes(text)) == .invalidQuery(transactionID: bytes("aa"), method: method, reason: reason),
                "\(text)")
        }
    }

    @Test("a transaction id longer than 8 bytes (or empty) is refused outright")
    func hugeTransactionID() {
        let long = "d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t9:123456789" + "1:y1:qe"
        #expect(decodeError(bytes(long)) == .transactionIDLength(9))
        let huge = "d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t1000:" + String(repeating: "x", count: 1000) + "1:y1:qe"
        #expect(decodeError(bytes(huge)) == .transactionIDLength(1000))
        #expect(decodeError(bytes("d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t0:1:y1:qe")) == .transactionIDLength(0))
        #expect(decodeError(bytes("d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t8:123456781:y1:qe")) == nil)
    }

    @Test("an unknown method decodes as unknown, with its target if it has one")
    func unknownMethod() throws {
        let plain = try KRPCMessage.decode(bytes("d1:ad2:id20:abcdefghij0123456789e1:q5:hello1:t2:aa1:y1:qe"))
        #expect(plain.query?.method == .unknown(name: "hello", target: nil))
        let targeted = try KRPCMessage.decode(
            bytes("d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456e1:q5:hello1:t2:aa1:y1:qe"))
        #expect(targeted.query?.method == .unknown(name: "hello", target: id("mnopqrstuvwxyz123456")))
    }

    @Test("a reply with 10 000 nodes is refused by the datagram bound, and by the node count bound beyond it")
    func tenThousandNodes() {
        let nodes = [UInt8](repeating: 0x41, count: 26 * 10_000)
        var r = BencodeDictionary()
        r["id"] = .string([UInt8](repeating: 1, count: 20))
        r["nodes"] = .string(nodes)
        let message: BencodeValue = .dictionary(BencodeDictionary([("t", "aa"), ("y", "r"), ("r", .dictionary(r))]))
        let encoded = message.encoded
        #expect(decodeError(encoded) == .datagramTooLong(length: encoded.count, limit: 2048))
        let roomy = KRPCLimits(maxDatagramLength: 1 << 20)
        #expect(decodeError(encoded, limits: roomy) == .tooMany(key: "nodes", count: 10_000, limit: 64))
    }

    @Test("node strings must be whole entries; values and samples are bounded; bad values entries are skipped")
    func listBounds() throws {
        func response(_ pairs: [(String, BencodeValue)]) -> [UInt8] {
            var r = BencodeDictionary(pairs)
            r["id"] = .string([UInt8](repeating: 1, count: 20))
            return BencodeValue.dictionary(BencodeDictionary([("t", "aa"), ("y", "r"), ("r", .dictionary(r))])).encoded
        }
        #expect(
            decodeError(response([("nodes", .string([UInt8](repeating: 0, count: 27)))]))
                == .badLength(key: "nodes", length: 27, expected: "a multiple of 26"))
        #expect(
            decodeError(response([("nodes6", .string([UInt8](repeating: 0, count: 26)))]))
                == .badLength(key: "nodes6", length: 26, expected: "a multiple of 38"))
        let manyValues = BencodeValue.list((0..<201).map { _ in .string([1, 2, 3, 4, 5, 6]) })
        #expect(
            decodeError(response([("values", manyValues)]), limits: KRPCLimits(maxDatagramLength: 4096))
                == .tooMany(key: "values", count: 201, limit: 200))
        let mixed = BencodeValue.list([.string([1, 2, 3, 4, 5, 6]), .string([1, 2, 3]), .integer(5), .string([UInt8](repeating: 1, count: 18))])
        let decoded = try KRPCMessage.decode(response([("values", mixed)]))
        #expect(decoded.response?.values.count == 2)
        #expect(
            decodeError(response([("samples", .string([UInt8](repeating: 0, count: 21)))]))
                == .badLength(key: "samples", length: 21, expected: "a multiple of 20"))
        #expect(
            decodeError(response([("token", .string([UInt8](repeating: 0, count: 65)))]))
                == .badLength(key: "token", length: 65, expected: "at most 64"))
    }

    @Test("not bencode, trailing data and oversized datagrams are refused")
    func garbage() {
        #expect(decodeError([]) != nil)
        #expect(decodeError(bytes("hello")) != nil)
        if case .bencode(.trailingData)? = decodeError(bytes("d1:t2:aa1:y1:r1:rd2:id20:abcdefghij0123456789eeXX")) {
        } else {
            Issue.record("trailing data must be refused")
        }
        #expect(decodeError([UInt8](repeating: 0x64, count: 2049)) == .datagramTooLong(length: 2049, limit: 2048))
    }
}
