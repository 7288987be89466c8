import Testing

@testable import PeerWire

/// A seeded generator, so that a failing case replays.
private struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

private func hexBytes(_ text: String) -> [UInt8] {
    var out: [UInt8] = []
    var i = text.startIndex
    while i < text.endIndex {
        let j = text.index(i, offsetBy: 2)
        out.append(UInt8(text[i..<j], radix: 16)!)
        i = j
    }
    return out
}

@Suite("RC4")
struct RC4Tests {
    @Test("the published test vectors", arguments: [
        ("Key", "Plaintext", "BBF316E8D940AF0AD3"),
        ("Wiki", "pedia", "1021BF0420"),
        ("Secret", "Attack at dawn", "45A01F645FC35B383552544B9BF5"),
    ])
    func vectors(key: String, plain: String, cipher: String) {
        var c = RC4(key: Array(key.utf8))
        var bytes = Array(plain.utf8)
        c.apply(&bytes)
        #expect(bytes == hexBytes(cipher))
        var d = RC4(key: Array(key.utf8))
        d.apply(&bytes)
        #expect(bytes == Array(plain.utf8))
    }

    @Test("applying in pieces equals applying at once; discard advances the stream")
    func streaming() {
        var whole = RC4(key: Array("stream".utf8))
        var a = [UInt8](repeating: 7, count: 3000)
        whole.apply(&a)
        var parts = RC4(key: Array("stream".utf8))
        parts.discard(1000)
        var b = [UInt8](repeating: 7, count: 2000)
        parts.apply(&b)
        #expect(Array(a[1000...]) == b)
    }
}

@Suite("Message stream encryption")
struct MSETests {
    static let infoHash = (0..<20).map { UInt8($0 * 7) }
    static let other = [UInt8](repeating: 0xEE, count: 20)

    static func lookup(_ hash: [UInt8]) -> [UInt8]? {
        [Self.infoHash, Self.other].first { MSE.skeyHash($0) == hash }
    }

    /// Runs both sides against each other, delivering bytes in chunks of random sizes, with `trailing` sent by
    /// the initiator right behind its handshake (as a client pipelines its first messages).
    static func run(seed: UInt64, provide: MSE.Methods, allowed: MSE.Methods, ia: [UInt8], trailing: [UInt8])
        throws -> (a: MSE.Established, b: MSE.Established)
    {
        var rng = SplitMix(state: seed)
        var a = MSEInitiator(infoHash: Self.infoHash, provide: provide, initialPayload: ia, using: &rng)
        var b = MSEResponder(allowed: allowed, using: &rng, lookup: Self.lookup)
        var toB = a.start()
        var toA: [UInt8] = []
        var doneA: MSE.Established?
        var doneB: MSE.Established?
        for _ in 0..<10_000 where doneA == nil || doneB == nil {
            if doneB == nil, !toB.isEmpty {
                let (send, done) = try b.receive(Self.chunk(of: &toB, using: &rng))
                toA += send
                if let done {
                    doneB = done
                    doneB!.payload += toB  // what follows is the caller's
                    toB = []
                }
            }
            if doneA == nil, !toA.isEmpty {
                let (send, done) = try a.receive(Self.chunk(of: &toA, using: &rng))
                toB += send
                if let done {
                    doneA = done
                    doneA!.payload += toA
                    toA = []
                    // The initiator's first messages, sent as soon as it knows the method.
                    var more = trailing
                    if var e = done.encryptor { e.apply(&more); doneA!.encryptor = e }
                    if doneB == nil { toB += more } else { doneB!.payload += Self.decrypted(more, with: &doneB!.decryptor) }
                }
            }
        }
        return (try #require(doneA), try #require(doneB))
    }

    /// The next 1–700 bytes in flight, as one read would deliver them.
    fileprivate static func chunk(of queue: inout [UInt8], using rng: inout SplitMix) -> [UInt8] {
        let n = Int.random(in: 1...min(queue.count, 700), using: &rng)
        defer { queue.removeFirst(n) }
        return Array(queue.prefix(n))
    }

    static func decrypted(_ bytes: [UInt8], with cipher: inout RC4?) -> [UInt8] {
        var b = bytes
        if cipher != nil { cipher!.apply(&b) }
        return b
    }

    struct Case: Sendable, CustomTestStringConvertible {
        var provide: MSE.Methods
        var allowed: MSE.Methods
        var expected: MSE.Methods
        var testDescription: String { "offered \(self.provide.rawValue), accepted \(self.allowed.rawValue)" }
    }

    @Test("both sides agree; the initial payload and what follows reach the responder", arguments: [
        Case(provide: [.plaintext, .rc4], allowed: [.plaintext, .rc4], expected: .plaintext),
        Case(provide: [.rc4], allowed: [.plaintext, .rc4], expected: .rc4),
        Case(provide: [.plaintext, .rc4], allowed: [.rc4], expected: .rc4),
        Case(provide: [.plaintext], allowed: [.plaintext, .rc4], expected: .plaintext),
    ])
    func roundTrip(_ c: Case) throws {
        let (provide, allowed, expected) = (c.provide, c.allowed, c.expected)
        for seed in UInt64(1)...6 {
            let handshake = Array("\u{13}BitTorrent protocol".utf8) + [UInt8](repeating: 1, count: 48)
            let trailing = Array("interested and more".utf8)
            var (a, b) = try Self.run(seed: seed, provide: provide, allowed: allowed,
                ia: seed % 2 == 0 ? handshake : [], trailing: trailing)
            #expect(a.method == expected && b.method == expected)
            #expect(b.infoHash == Self.infoHash)
            #expect(b.payload == (seed % 2 == 0 ? handshake : []) + trailing)
            #expect(a.payload.isEmpty)
            #expect((a.encryptor == nil) == (expected == .plaintext) && (b.decryptor == nil) == (expected == .plaintext))
            // The responder's stream back to the initiator.
            var reply = Array("bitfield".utf8)
            if b.encryptor != nil { b.encryptor!.apply(&reply) }
            #expect(Self.decrypted(reply, with: &a.decryptor) == Array("bitfield".utf8))
            if expected == .rc4 { #expect(reply != Array("bitfield".utf8)) }
        }
    }

    @Test("a handshake for a torrent the responder does not have is refused")
    func unknownTorrent() throws {
        var rng = SplitMix(state: 9)
        var a = MSEInitiator(infoHash: [UInt8](repeating: 1, count: 20), using: &rng)
        var b = MSEResponder(using: &rng, lookup: Self.lookup)
        let (send, _) = try b.receive(a.start())
        let (step3, _) = try a.receive(send)
        #expect(throws: MSE.Failure.unknownTorrent) { try b.receive(step3) }
    }

    @Test("garbage is refused once the padding allowance is spent, not buffered for ever")
    func garbage() throws {
        var rng = SplitMix(state: 3)
        var b = MSEResponder(using: &rng, lookup: Self.lookup)
        let junk = (0..<(96 + 532)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        _ = try b.receive(junk.prefix(96 + 500))
        #expect(throws: MSE.Failure.noSync("HASH('req1', S)")) { try b.receive(junk.suffix(32)) }
    }

    @Test("a corrupted step 3 is refused or goes through, and never traps")
    func corruptedStepThree() throws {
        for seed in UInt64(20)..<40 {
            var rng = SplitMix(state: seed)
            var a = MSEInitiator(infoHash: Self.infoHash, initialPayload: Array(repeating: 7, count: 68), using: &rng)
            var b = MSEResponder(using: &rng, lookup: Self.lookup)
            let (toA, _) = try b.receive(a.start())
            var (step3, _) = try a.receive(toA)
            // Past the two 20-byte hashes lies the RC4 part: flip bits there (VC, crypto_provide, the lengths).
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                let at = Int.random(in: 40..<step3.count, using: &rng)
                step3[at] ^= UInt8.random(in: 1...255, using: &rng)
            }
            let cut = Int.random(in: 0...step3.count, using: &rng)
            do {
                _ = try b.receive(step3[..<cut])
                let (_, done) = try b.receive(step3[cut...] + [UInt8](repeating: 0, count: 600))
                // A flip inside PadC or the initial payload goes unnoticed (RC4 has no integrity), as in every client.
                if let done { #expect(done.infoHash == Self.infoHash) }
            } catch let failure as MSE.Failure {
                #expect([.badVerification, .badPadding(0), .noCommonMethod(offered: 0)].contains { Self.sameKind($0, failure) })
            }
        }
    }

    static func sameKind(_ x: MSE.Failure, _ y: MSE.Failure) -> Bool {
        switch (x, y) {
        case (.badVerification, .badVerification), (.badPadding, .badPadding), (.noCommonMethod, .noCommonMethod): true
        default: false
        }
    }

    @Test("a responder that accepts neither offered method is refused")
    func noCommonMethod() throws {
        #expect(throws: MSE.Failure.noCommonMethod(offered: 1)) {
            try Self.run(seed: 4, provide: [.plaintext], allowed: [.rc4], ia: [], trailing: [])
        }
    }

    @Test("public keys are 96 bytes below the prime, and the shared secrets match")
    func diffieHellman() {
        var rng = SplitMix(state: 5)
        let x = MSE.KeyPair(using: &rng)
        let y = MSE.KeyPair(using: &rng)
        #expect(x.publicKey.count == 96 && y.publicKey.count == 96)
        #expect(x.publicKey != y.publicKey)
        #expect(x.shared(with: y.publicKey[...]) == y.shared(with: x.publicKey[...]))
        let top = MSE.fixed(MSE.prime - 1)
        #expect(top.prefix(8).allSatisfy { $0 == 0xFF } && Array(top.suffix(3)) == [0x09, 0x05, 0x62])
        #expect(MSE.fixed(258) == [UInt8](repeating: 0, count: 94) + [1, 2])
    }
}
