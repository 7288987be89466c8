import DHT
import PeerBase
import Testing

@Suite("Write tokens")
struct WriteTokensTests {
    @Test("a token is bound to the IP, survives one rotation and dies at the second")
    func rotation() {
        var rng = SeededGenerator(seed: 1)
        var tokens = WriteTokens(at: at(0), using: &rng)
        let ip = DHTEndpoint.IP.ipv4(1, 2, 3, 4)
        let token = tokens.token(for: ip)
        #expect(token.count == 8)
        #expect(tokens.isValid(token, for: ip))
        #expect(!tokens.isValid(token, for: .ipv4(1, 2, 3, 5)))
        #expect(!tokens.isValid(Array(token.dropLast()), for: ip))
        tokens.rotate(at: at(299), using: &rng)  // early: nothing changes
        #expect(tokens.token(for: ip) == token)
        tokens.rotate(at: at(300), using: &rng)
        #expect(tokens.token(for: ip) != token)
        #expect(tokens.isValid(token, for: ip), "the previous secret is still accepted")
        let second = tokens.token(for: ip)
        tokens.rotate(at: at(600), using: &rng)
        #expect(!tokens.isValid(token, for: ip))
        #expect(tokens.isValid(second, for: ip))
        // A long pause replaces both secrets.
        let third = tokens.token(for: ip)
        tokens.rotate(at: at(2000), using: &rng)
        #expect(!tokens.isValid(third, for: ip))
        #expect(tokens.nextRotation == at(2300))
    }

    @Test("IPv6 requesters get their own tokens")
    func ipv6() {
        var rng = SeededGenerator(seed: 2)
        let tokens = WriteTokens(at: .zero, using: &rng)
        let a = DHTEndpoint.IP.v6(high: 1, low: 2)
        #expect(tokens.isValid(tokens.token(for: a), for: a))
        #expect(!tokens.isValid(tokens.token(for: a), for: .v6(high: 1, low: 3)))
    }
}

@Suite("Peer store")
struct PeerStoreTests {
    @Test("peers per info-hash are bounded; the oldest announce makes room")
    func perHashBound() {
        var store = PeerStore(limits: PeerStore.Limits(maxInfoHashes: 10, maxPeersPerInfoHash: 100))
        let ih = idStarting(1)
        for i in 0..<150 { store.store(v4(1, 1, UInt8(i / 256), UInt8(i % 256)), for: ih, at: at(Double(i))) }
        #expect(store.peerCount == 100)
        let all = store.allPeers(for: ih)
        #expect(!all.contains(v4(1, 1, 0, 49)))
        #expect(all.contains(v4(1, 1, 0, 50)))
        // Re-announcing refreshes instead of adding.
        store.store(v4(1, 1, 0, 50), for: ih, at: at(200))
        #expect(store.peerCount == 100)
    }

    @Test("the number of info-hashes is bounded; the one announced to longest ago goes")
    func hashBound() {
        var store = PeerStore(limits: PeerStore.Limits(maxInfoHashes: 3, maxPeersPerInfoHash: 5))
        for i in 0..<3 { store.store(v4(1, 1, 1, 1), for: idStarting(UInt8(i)), at: at(Double(i))) }
        store.store(v4(1, 1, 1, 2), for: idStarting(0), at: at(5))  // hash 0 is now the freshest
        store.store(v4(1, 1, 1, 1), for: idStarting(9), at: at(6))
        #expect(store.infoHashCount == 3)
        #expect(store.allPeers(for: idStarting(1)).isEmpty)
        #expect(store.allPeers(for: idStarting(0)).count == 2)
        #expect(store.peerCount == 4)
    }

    @Test("peers expire after 30 minutes; replies choose by family and limit")
    func expiryAndChoice() {
        var store = PeerStore()
        let ih = idStarting(7)
        store.store(v4(1, 2, 3, 4), for: ih, at: at(0))
        store.store(v6(1), for: ih, at: at(10))
        for i in 0..<20 { store.store(v4(9, 9, 9, UInt8(i)), for: ih, at: at(20)) }
        var rng = SeededGenerator(seed: 1)
        #expect(store.peers(for: ih, family: .ipv6, limit: 10, using: &rng) == [v6(1)])
        #expect(store.peers(for: ih, family: .ipv4, limit: 5, using: &rng).count == 5)
        #expect(store.peers(for: idStarting(8), family: .ipv4, limit: 5, using: &rng).isEmpty)
        store.expire(at: at(1800))
        #expect(store.peerCount == 21)
        store.expire(at: at(1815))
        #expect(store.peerCount == 20)
        store.expire(at: at(1820))
        #expect(store.infoHashCount == 0 && store.peerCount == 0)
    }

    @Test("samples are a random subset of the stored info-hashes")
    func samples() {
        var store = PeerStore()
        for i in 0..<50 { store.store(v4(1, 1, 1, 1), for: idStarting(UInt8(i)), at: .zero) }
        var rng = SeededGenerator(seed: 5)
        let s = store.sample(count: 20, using: &rng)
        #expect(s.count == 20 && Set(s).count == 20)
        #expect(s.allSatisfy { $0[byte: 0] < 50 })
        #expect(store.sample(count: 100, using: &rng).count == 50)
    }
}

@Suite("Token bucket")
struct TokenBucketTests {
    @Test("a burst, then the rate")
    func bucket() {
        var b = TokenBucket(capacity: 3, rate: 2, at: .zero)
        var taken: [Bool] = []
        for _ in 0..<4 { taken.append(b.take(at: .zero)) }
        #expect(taken == [true, true, true, false])
        #expect(b.nextToken(after: .zero) == at(0.5))
        let early = b.take(at: at(0.4))
        let onTime = b.take(at: at(0.5))
        #expect(!early && onTime)
        #expect(b.isFull(at: at(10)))
    }
}
