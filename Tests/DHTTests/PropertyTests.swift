import Bencode
import DHT
import PeerBase
import PropertyBased
import Testing

/// Random KRPC messages within the decoder's limits, built from a seed.
enum KRPCGen {
    static func bytes(_ rng: inout SeededGenerator, _ range: ClosedRange<Int>) -> [UInt8] {
        let n = range.lowerBound + Int(rng.next() % UInt64(range.count))
        return (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
    }

    static func id(_ rng: inout SeededGenerator) -> NodeID { NodeID.random(using: &rng) }

    static func endpoint(_ rng: inout SeededGenerator) -> DHTEndpoint {
        let port = UInt16(truncatingIfNeeded: rng.next())
        return rng.next() % 2 == 0
            ? DHTEndpoint(ip: .v4(UInt32(truncatingIfNeeded: rng.next())), port: port)
            : DHTEndpoint(ip: .v6(high: rng.next(), low: rng.next()), port: port)
    }

    static func node(_ rng: inout SeededGenerator, family: DHTEndpoint.Family) -> NodeInfo {
        var e = Self.endpoint(&rng)
        while e.family != family { e = Self.endpoint(&rng) }
        return NodeInfo(id: Self.id(&rng), endpoint: e)
    }

    static func text(_ rng: inout SeededGenerator, _ max: Int) -> String {
        String(decoding: (0..<Int(rng.next() % UInt64(max + 1))).map { _ in UInt8(0x61 + rng.next() % 26) }, as: UTF8.self)
    }

    static func value(_ rng: inout SeededGenerator, depth: Int = 2) -> BencodeValue {
        switch rng.next() % (depth > 0 ? 4 : 2) {
        case 0: return .integer(Int64(bitPattern: rng.next()) >> Int64(rng.next() % 64))
        case 1: return .string(Self.bytes(&rng, 0...12))
        case 2: return .list((0..<Int(rng.next() % 4)).map { _ in Self.value(&rng, depth: depth - 1) })
        default:
            var d = BencodeDictionary()
            for _ in 0..<rng.next() % 4 { d[Self.bytes(&rng, 0...3)] = Self.value(&rng, depth: depth - 1) }
            return .dictionary(d)
        }
    }

    static func item(_ rng: inout SeededGenerator) -> DHTItem {
        if rng.next() % 2 == 0 { return .immutable(Self.value(&rng)) }
        return .mutable(
            MutableItem(
                publicKey: Self.bytes(&rng, 32...32), salt: Self.bytes(&rng, 0...8), sequence: Int64(rng.next() >> 1),
                value: Self.value(&rng), signature: Self.bytes(&rng, 64...64)))
    }

    static func method(_ rng: inout SeededGenerator) -> KRPCQuery.Method {
        switch rng.next() % 9 {
        case 0: return .ping
        case 1: return .findNode(target: Self.id(&rng))
        case 2: return .getPeers(infoHash: Self.id(&rng))
        case 3:
            let implied = rng.next() % 2 == 0
            let port = UInt16(truncatingIfNeeded: rng.next())
            return .announcePeer(
                infoHash: Self.id(&rng), port: implied ? port : max(1, port), impliedPort: implied,
                token: Self.bytes(&rng, 0...20))
        case 4: return .get(target: Self.id(&rng), sequence: rng.next() % 2 == 0 ? nil : Int64(bitPattern: rng.next()))
        case 5:
            let item = Self.item(&rng)
            let cas: Int64? = { if case .mutable = item, rng.next() % 2 == 0 { Int64(bitPattern: rng.next()) } else { nil } }()
            return .put(token: Self.bytes(&rng, 0...20), item: item, cas: cas)
        case 6: return .sampleInfohashes(target: Self.id(&rng))
        case 7: return .unknown(name: "x" + Self.text(&rng, 20), target: Self.id(&rng))
        default: return .unknown(name: "y" + Self.text(&rng, 20), target: nil)
        }
    }

    static func response(_ rng: inout SeededGenerator) -> KRPCResponse {
        var r = KRPCResponse(sender: Self.id(&rng))
        func maybe() -> Bool { rng.next() % 2 == 0 }
        if maybe() { r.nodes = (0..<rng.next() % 9).map { _ in Self.node(&rng, family: .ipv4) } }
        if maybe() { r.nodes6 = (0..<rng.next() % 9).map { _ in Self.node(&rng, family: .ipv6) } }
        if maybe() { r.token = Self.bytes(&rng, 0...20) }
        if maybe() { r.values = (0..<rng.next() % 20).map { _ in Self.endpoint(&rng) } }
        if maybe() { r.value = Self.value(&rng) }
        if maybe() { r.publicKey = Self.bytes(&rng, 32...32) }
        if maybe() { r.signature = Self.bytes(&rng, 64...64) }
        if maybe() { r.sequence = Int64(bitPattern: rng.next()) }
        if maybe() { r.samples = (0..<rng.next() % 10).map { _ in Self.id(&rng) } }
        if maybe() { r.sampleCount = Int64(bitPattern: rng.next()) }
        if maybe() { r.interval = Int64(rng.next() % 21601) }
        return r
    }

    static func message(seed: UInt64) -> KRPCMessage {
        var rng = SeededGenerator(seed: seed)
        let kind: KRPCMessage.Kind
        switch rng.next() % 3 {
        case 0:
            let want = Want(rawValue: UInt8(rng.next() % 4))
            kind = .query(KRPCQuery(sender: Self.id(&rng), method: Self.method(&rng), want: want))
        case 1: kind = .response(Self.response(&rng))
        default: kind = .error(code: Int(Int32(truncatingIfNeeded: rng.next())), message: Self.text(&rng, 60))
        }
        return KRPCMessage(
            transactionID: Self.bytes(&rng, 1...8), kind: kind,
            version: rng.next() % 2 == 0 ? nil : Self.bytes(&rng, 0...16), readOnly: rng.next() % 2 == 0,
            requesterAddress: rng.next() % 2 == 0 ? nil : Self.endpoint(&rng))
    }

    static let seed = Gen<UInt64>.value(in: 0...UInt64.max)

    /// Random bytes, biased towards bencode's own characters and KRPC keys.
    static let noise = Gen<UInt8>.oneOf(
        Gen<UInt8>.value(in: 0...255),
        Gen.element(of: Array("ilde0123456789:-tyqrae".utf8)).map { $0! }
    ).array(of: 0...300)
}

@Suite("KRPC properties")
struct PropertyTests {
    @Test("decode(encode(m)) == m for every message within the limits")
    func roundTrip() async {
        await propertyCheck(count: 500, input: KRPCGen.seed) { seed in
            let m = KRPCGen.message(seed: seed)
            let encoded = m.encoded
            guard encoded.count <= KRPCLimits.default.maxDatagramLength else { return }
            #expect((try? KRPCMessage.decode(encoded)) == m, "seed \(seed)")
        }
    }

    @Test("random bytes never crash the decoder; whatever decodes survives a re-encode")
    func noise() async {
        await propertyCheck(count: 1000, input: KRPCGen.noise) { input in
            guard let m = try? KRPCMessage.decode(input) else { return }
            #expect((try? KRPCMessage.decode(m.encoded)) == m)
        }
    }

    @Test("flipping bytes of valid messages never crashes the decoder")
    func byteFlips() async {
        await propertyCheck(count: 500, input: KRPCGen.seed, Gen<Int>.value(in: 0...Int.max), Gen<UInt8>.value(in: 1...255)) {
            seed, position, mask in
            var bytes = KRPCGen.message(seed: seed).encoded
            guard bytes.count <= 2048 else { return }
            for k in 0..<3 { bytes[(position &+ k &* 7919) % bytes.count] ^= mask }
            guard let m = try? KRPCMessage.decode(bytes) else { return }
            #expect((try? KRPCMessage.decode(m.encoded)) == m)
        }
    }

    @Test("whatever arrives, a node sends at most two datagrams back, each within 1500 bytes")
    func noAmplification() async {
        var node = DHTNode(configuration: .init(nodeID: idStarting(0x11), families: [.ipv4, .ipv6]), at: .zero, seed: 1)
        var rng = SeededGenerator(seed: 9)
        for i in 0..<40 {
            let family: DHTEndpoint.Family = i % 2 == 0 ? .ipv4 : .ipv6
            let n = KRPCGen.node(&rng, family: family)
            node.handle(.ping(n.endpoint), at: .zero)
            if let q = node.pollTransmit(), let t = try? KRPCMessage.decode(q.bytes).transactionID {
                node.receive(KRPCMessage(transactionID: t, kind: .response(KRPCResponse(sender: n.id))).encoded, from: n.endpoint, at: .zero)
            }
        }
        _ = node.sent()
        let populated = node
        await propertyCheck(count: 500, input: KRPCGen.seed) { seed in
            var node = populated
            var rng = SeededGenerator(seed: seed)
            let source = KRPCGen.endpoint(&rng)
            let m = KRPCGen.message(seed: seed)
            node.receive(m.encoded, from: source, at: at(1))
            let out = node.sent()
            #expect(out.count <= 2, "\(m)")
            #expect(out.allSatisfy { $0.bytes.count <= 1500 })
            #expect(out.allSatisfy { $0.destination == source })
        }
    }
}
