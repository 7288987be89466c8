import Bencode
import PropertyBased
import Testing

@Suite("Bencode properties")
struct PropertyTests {
    @Test("decode(encode(v)) == v")
    func roundTrip() async {
        await propertyCheck(count: 300, input: BencodeGen.anyValue) { value in
            failOnThrow {
                let encoded = value.encoded
                let node = try BencodeDecoder().decode(encoded)
                #expect(node.value == value)
                #expect(node.isCanonicalDeep)
                #expect(node.span == 0..<encoded.count)
                #expect(value.depth <= 4)
            }
        }
    }

    @Test("integers across the full 64-bit range round-trip")
    func integers() async {
        await propertyCheck(count: 500, input: BencodeGen.integer) { n in
            failOnThrow {
                let encoded = BencodeValue.integer(n).encoded
                #expect(encoded == Array("i\(n)e".utf8))
                let decoded = try BencodeDecoder().decode(encoded)
                #expect(decoded.integer == n)
            }
        }
    }

    @Test("encode(decode(bytes)) == bytes for canonical encodings, and every span holds its value's encoding")
    func canonicalBytes() async {
        await propertyCheck(count: 200, input: BencodeGen.anyValue) { value in
            failOnThrow {
                let encoded = value.encoded
                let node = try BencodeDecoder(limits: BencodeLimits(requireSortedKeys: true)).decode(encoded)
                #expect(BencodeEncoder.encode(node.value) == encoded)
                for n in node.allNodes {
                    #expect(Array(encoded[n.span]) == n.value.encoded)
                }
            }
        }
    }

    @Test("decodePrefix finds the end of a value followed by other bytes")
    func prefixEnd() async {
        await propertyCheck(count: 200, input: BencodeGen.anyValue, Gen<UInt8>.value(in: 0...255).array(of: 0...40)) {
            value, extra in
            failOnThrow {
                let encoded = value.encoded
                let (node, end) = try BencodeDecoder().decodePrefix(encoded + extra)
                #expect(end == encoded.count)
                #expect(node.value == value)
                #expect(node.span == 0..<encoded.count)
            }
        }
    }

    @Test("random bytes never crash the decoder; what decodes canonically re-encodes to the same bytes")
    func noise() async {
        await propertyCheck(count: 1000, input: BencodeGen.noise) { input in
            do throws(BencodeError) {
                let node = try BencodeDecoder().decode(input)
                if node.isCanonicalDeep {
                    #expect(node.value.encoded == input)
                }
                #expect(node.span == 0..<input.count)
            } catch {
                #expect(error.offset >= 0 && error.offset <= input.count)
            }
        }
    }

    @Test("every truncation of a valid encoding is refused as unexpectedly ended")
    func truncations() async {
        await propertyCheck(count: 200, input: BencodeGen.anyValue, Gen<Double>.value(in: 0..<1)) { value, cut in
            let encoded = value.encoded
            let length = Int(Double(encoded.count) * cut)  // 0 ..< encoded.count
            let prefix = Array(encoded[..<length])
            let error = decodeError(prefix)
            switch error {
            case .unexpectedEnd(_, let offset)?:
                #expect(offset == length)
            case .stringPastEnd(let declared, let remaining, let offset)?:
                #expect(Int(declared) > remaining)
                #expect(offset < length)
            default:
                Issue.record("\(prefix) should end unexpectedly, got \(String(describing: error))")
            }
            // decodePrefix cannot find a complete value in it either: bencode is prefix-free.
            #expect(throws: BencodeError.self) { try BencodeDecoder().decodePrefix(prefix) }
        }
    }

    @Test("flipping bytes of valid encodings never crashes the decoder")
    func byteFlips() async {
        await propertyCheck(
            count: 500, input: BencodeGen.anyValue, Gen<Int>.value(in: 0...Int.max),
            Gen<UInt8>.value(in: 1...255), Gen<Int>.value(in: 1...3)
        ) { value, position, mask, flips in
            var mutated = value.encoded
            for k in 0..<flips {
                let i = (position &+ k &* 7919) % mutated.count
                mutated[i] ^= mask
            }
            do throws(BencodeError) {
                let node = try BencodeDecoder().decode(mutated)
                #expect(node.span == 0..<mutated.count)
                // Whatever decoded must re-decode from its own canonical encoding.
                let again = try BencodeDecoder().decodeValue(node.value.encoded)
                #expect(again == node.value)
            } catch {
                #expect(error.offset <= mutated.count)
            }
        }
    }
}
