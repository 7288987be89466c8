import Bencode
import Crypto
import DHT
import PeerBase
import Testing

@Suite("BEP 44 items")
struct BEP44Tests {
    static let publicKey = hexBytes("77ff84905a91936367c01360803104f92432fcd904a43511876df5cdf3e7e548")
    static let value: BencodeValue = "Hello World!"

    @Test("test 1 (mutable): signed bytes, target and signature from the BEP")
    func mutableVector() {
        let item = MutableItem(
            publicKey: Self.publicKey, sequence: 1, value: Self.value,
            signature: hexBytes(
                """
                305ac8aeb6c9c151fa120f120ea2cfb923564e11552d06a5d856091e5e853cff
                1260d3f39e4999684aa92eb73ffd136e6f4f3ecbfda0ce53a1608ecd7ae21f01
                """))
        #expect(item.signedBytes == bytes("3:seqi1e1:v12:Hello World!"))
        #expect(item.target == hexID("4a533d47ec9c7d95b1ad75f576cffc641853b750"))
        #expect(item.hasValidSignature)
        var later = item
        later.sequence = 2
        #expect(!later.hasValidSignature)
        var salted = item
        salted.salt = bytes("foobar")
        #expect(!salted.hasValidSignature)
    }

    @Test("test 2 (mutable with salt): signed bytes, target and signature from the BEP")
    func saltedVector() {
        let item = MutableItem(
            publicKey: Self.publicKey, salt: bytes("foobar"), sequence: 1, value: Self.value,
            signature: hexBytes(
                """
                6834284b6b24c3204eb2fea824d82f88883a3d95e8b4a21b8c0ded553d17d17d
                df9a8a7104b1258f30bed3787e6cb896fca78c58f8e03b5f18f14951a87d9a08
                """))
        #expect(item.signedBytes == bytes("4:salt6:foobar3:seqi1e1:v12:Hello World!"))
        #expect(item.target == hexID("411eba73b6f087ca51a3795d9c8c938d365e32c1"))
        #expect(item.hasValidSignature)
        var unsalted = item
        unsalted.salt = []
        #expect(!unsalted.hasValidSignature)
    }

    @Test("test 3 (immutable): the target is the SHA-1 of the bencoded value")
    func immutableVector() {
        #expect(DHTItem.immutable(Self.value).target == hexID("e5f96f6f38320f0f33959cb4d3d656452117aadb"))
        #expect(DHTItem.immutableTarget(for: Self.value) == hexID("e5f96f6f38320f0f33959cb4d3d656452117aadb"))
    }

    @Test("signing with swift-crypto verifies, and the signature covers salt, seq and value")
    func signRoundTrip() throws {
        let key = try Curve25519.Signing.PrivateKey(rawRepresentation: SeededGenerator.bytes(32, seed: 1))
        let item = try MutableItem.signed(value: ["list", 1, ["k": "v"]], sequence: 42, salt: bytes("s"), privateKey: key)
        #expect(item.hasValidSignature)
        #expect(item.publicKey == Array(key.publicKey.rawRepresentation))
        #expect(item.target == MutableItem.target(publicKey: item.publicKey, salt: bytes("s")))
        var tampered = item
        tampered.value = ["list", 2, ["k": "v"]]
        #expect(!tampered.hasValidSignature)
        #expect(throws: DHTError.self) {
            try MutableItem.signed(value: .string([UInt8](repeating: 0, count: 1000)), sequence: 1, privateKey: key)
        }
        #expect(throws: DHTError.self) {
            try MutableItem.signed(value: 1, sequence: 1, salt: [UInt8](repeating: 0, count: 65), privateKey: key)
        }
        #expect(throws: DHTError.self) { try MutableItem.signed(value: 1, sequence: -1, privateKey: key) }
        // A malformed key never verifies (and never traps).
        #expect(!MutableItem(publicKey: [1, 2, 3], sequence: 1, value: 1, signature: item.signature).hasValidSignature)
    }
}

@Suite("Item store")
struct ItemStoreTests {
    let key = try! Curve25519.Signing.PrivateKey(rawRepresentation: SeededGenerator.bytes(32, seed: 7))

    func signed(_ value: BencodeValue, seq: Int64, salt: [UInt8] = []) -> DHTItem {
        .mutable(try! MutableItem.signed(value: value, sequence: seq, salt: salt, privateKey: self.key))
    }

    @Test("immutable items are stored under their hash; 1000 bytes pass, 1001 are refused with 205")
    func immutable() {
        var store = ItemStore()
        let v: BencodeValue = .string([UInt8](repeating: 1, count: 995))  // "995:" + 995 = 999 bytes
        #expect(store.put(.immutable(v), cas: nil, at: at(0)) == .success(DHTItem.immutableTarget(for: v)))
        #expect(store.item(for: DHTItem.immutableTarget(for: v)) == .immutable(v))
        let exact: BencodeValue = .string([UInt8](repeating: 1, count: 996))
        #expect(exact.encoded.count == 1000)
        #expect((try? store.put(.immutable(exact), cas: nil, at: at(0)).get()) != nil)
        let big: BencodeValue = .string([UInt8](repeating: 1, count: 997))
        let refusal = ItemRefusal.valueTooBig(length: 1001)
        #expect(store.put(.immutable(big), cas: nil, at: at(0)) == .failure(refusal))
        #expect(refusal.code == 205)
    }

    @Test("mutable puts: bad signature 206, long salt 207, older or equal sequence 302, CAS mismatch 301")
    func mutableRules() {
        var store = ItemStore()
        let first = self.signed("one", seq: 5)
        #expect((try? store.put(first, cas: nil, at: at(0)).get()) == first.target)

        guard case .mutable(var forged) = self.signed("two", seq: 6) else { return }
        forged.value = "three"
        #expect(store.put(.mutable(forged), cas: nil, at: at(1)) == .failure(.invalidSignature))
        #expect(ItemRefusal.invalidSignature.code == 206)

        guard case .mutable(var salty) = self.signed("x", seq: 1) else { return }
        salty.salt = [UInt8](repeating: 0, count: 65)
        #expect(store.put(.mutable(salty), cas: nil, at: at(1)) == .failure(.saltTooBig(length: 65)))
        #expect(ItemRefusal.saltTooBig(length: 65).code == 207)

        #expect(store.put(self.signed("old", seq: 4), cas: nil, at: at(1)) == .failure(.sequenceTooOld(offered: 4, stored: 5)))
        #expect(store.put(self.signed("other", seq: 5), cas: nil, at: at(1)) == .failure(.sequenceTooOld(offered: 5, stored: 5)))
        #expect(ItemRefusal.sequenceTooOld(offered: 4, stored: 5).code == 302)
        // The same sequence and value again only refreshes it.
        #expect((try? store.put(first, cas: nil, at: at(2)).get()) != nil)

        #expect(store.put(self.signed("new", seq: 6), cas: 4, at: at(3)) == .failure(.casMismatch(expected: 4, stored: 5)))
        #expect(ItemRefusal.casMismatch(expected: 4, stored: 5).code == 301)
        #expect((try? store.put(self.signed("new", seq: 6), cas: 5, at: at(3)).get()) != nil)
        guard case .mutable(let stored)? = store.item(for: first.target) else {
            Issue.record("the item should be stored")
            return
        }
        #expect(stored.sequence == 6 && stored.value == "new")
        // With nothing stored, cas is ignored (BEP 44: "SHOULD be ignored").
        #expect((try? store.put(self.signed("salted", seq: 1, salt: [1]), cas: 99, at: at(3)).get()) != nil)
    }

    @Test("items expire two hours after their last put; a full store drops the oldest")
    func expiryAndBounds() {
        var store = ItemStore(limits: ItemStore.Limits(maxItems: 3, itemLifetime: .seconds(7200)))
        for i in 0..<3 { _ = store.put(.immutable(.integer(Int64(i))), cas: nil, at: at(Double(i))) }
        _ = store.put(.immutable(3), cas: nil, at: at(10))
        #expect(store.count == 3)
        #expect(store.item(for: DHTItem.immutableTarget(for: 0)) == nil)
        #expect(store.item(for: DHTItem.immutableTarget(for: 3)) != nil)
        store.expire(at: at(7202.5))
        #expect(store.count == 1)
        store.expire(at: at(7210))
        #expect(store.count == 0)
    }
}
