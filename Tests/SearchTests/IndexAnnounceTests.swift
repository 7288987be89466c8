import Bencode
import Crypto
import Foundation
import Testing

@testable import Search

/// The index node's announce: signed bytes, read back and checked; and the rules of `AnnounceGate`.
@Suite struct IndexAnnounceTests {
    let key = Curve25519.Signing.PrivateKey()
    let now: Int64 = 1_800_000_000

    static func torrent(_ n: Int, name: String? = nil, seeding: Bool = true) -> IndexAnnounce.Torrent {
        IndexAnnounce.Torrent(infoHash: SearchIndexTests.hash(n), name: name ?? "Torrent.\(n).1080p", size: Int64(n) * 1000,
            files: 1 + n % 3, seeding: seeding)
    }

    func announce(_ torrents: [IndexAnnounce.Torrent], time: Int64? = nil) -> IndexAnnounce {
        IndexAnnounce(publicKey: Array(self.key.publicKey.rawRepresentation), port: 6881, time: time ?? self.now,
            torrents: torrents)
    }

    @Test func aSignedAnnounceReadsBackAsItWasSigned() throws {
        let a = self.announce([Self.torrent(1), Self.torrent(2, name: "Amélie <&> \"x\"", seeding: false)])
        let body = try a.signed(with: self.key)
        #expect(try IndexAnnounce(verifying: body) == a)
        // The payload inside is the canonical bencoding the documentation describes.
        let envelope = try BencodeDecoder().decodeValue(body)
        #expect(envelope["payload"]?.bytes == a.payload)
        let payload = try BencodeDecoder(limits: BencodeLimits(requireSortedKeys: true)).decodeValue(a.payload)
        #expect(payload["torrents"]?.list?[1]["seed"]?.integer == 0)
        #expect(payload["v"]?.integer == 1)
    }

    @Test func aChangedByteOrAnotherKeysSignatureIsABadSignature() throws {
        let a = self.announce([Self.torrent(1)])
        let payload = a.payload
        let signature = Array(try self.key.signature(for: payload))
        func body(_ payload: [UInt8], _ signature: [UInt8]) -> [UInt8] {
            BencodeEncoder.encode(["payload": .string(payload), "signature": .string(signature)])
        }
        #expect(try IndexAnnounce(verifying: body(payload, signature)) == a)
        var flipped = signature
        flipped[10] ^= 1
        #expect(throws: IndexAnnounceError.badSignature) { try IndexAnnounce(verifying: body(payload, flipped)) }
        // The same payload with the port changed: its bytes are no longer what was signed.
        var other = a
        other.port = 6882
        #expect(throws: IndexAnnounceError.badSignature) { try IndexAnnounce(verifying: body(other.payload, signature)) }
        let stranger = Array(try Curve25519.Signing.PrivateKey().signature(for: payload))
        #expect(throws: IndexAnnounceError.badSignature) { try IndexAnnounce(verifying: body(payload, stranger)) }
    }

    @Test func tooLargeTooManyRowsAndMalformedBodiesAreRefused() throws {
        #expect(throws: IndexAnnounceError.tooLarge(limit: 256 << 10)) {
            try IndexAnnounce(verifying: [UInt8](repeating: 0x64, count: IndexAnnounce.maxBytes + 1))
        }
        let many = try self.announce((1...1001).map { Self.torrent($0) }).signed(with: self.key)
        #expect(many.count < IndexAnnounce.maxBytes)
        #expect(throws: IndexAnnounceError.tooManyTorrents(count: 1001, limit: 1000)) {
            try IndexAnnounce(verifying: many)
        }
        #expect(try IndexAnnounce(verifying: try self.announce((1...1000).map { Self.torrent($0) }).signed(with: self.key))
            .torrents.count == 1000)
        for bad in ["not bencode", "d7:payload3:abc9:signature3:xyze", "le"] {
            #expect(throws: IndexAnnounceError.self) { try IndexAnnounce(verifying: Array(bad.utf8)) }
        }
        // Each field checked, with the row named.
        var a = self.announce([Self.torrent(1)])
        a.torrents[0].infoHash = [1, 2, 3]
        #expect(throws: IndexAnnounceError.malformed("torrents[0].info_hash: expected 20 or 32 bytes")) {
            try IndexAnnounce(verifying: try a.signed(with: self.key))
        }
        a = self.announce([Self.torrent(1)])
        a.port = 0
        #expect(throws: IndexAnnounceError.malformed("port: expected 1 to 65535")) {
            try IndexAnnounce(verifying: try a.signed(with: self.key))
        }
    }

    @Test func aRepeatedHashCountsOnce() throws {
        let a = self.announce([Self.torrent(1), Self.torrent(1, name: "Again"), Self.torrent(2)])
        let read = try IndexAnnounce(verifying: try a.signed(with: self.key))
        #expect(read.torrents.map(\.name) == ["Torrent.1.1080p", "Torrent.2.1080p"])
    }

    @Test func fittingKeepsTheFirstRowsThatFitAndCutsLongNames() throws {
        let long = String(repeating: "é", count: 600)  // 1200 bytes: cut to 1024, on a character boundary
        let rows = (1...1200).map { Self.torrent($0, name: "\(long).\($0)") }
        let (a, body) = try IndexAnnounce.fitting(rows, key: self.key, port: 6881, time: self.now)
        #expect(body.count <= IndexAnnounce.maxBytes)
        #expect(a.torrents.count > 150 && a.torrents.count < 1000)
        #expect(a.torrents.map(\.infoHash) == rows.prefix(a.torrents.count).map(\.infoHash))
        #expect(a.torrents.allSatisfy { $0.name.utf8.count <= 1024 && $0.name.hasPrefix("éé") && !$0.name.contains("\u{FFFD}") })
        #expect(try IndexAnnounce(verifying: body) == a)
        let short = try IndexAnnounce.fitting((1...1500).map { Self.torrent($0) }, key: self.key, port: 1, time: 1)
        #expect(short.announce.torrents.count == 1000)
    }

    @Test func anIndexHitCarriesItsPeersInJSONAndInItsMagnetLink() throws {
        let hit = SearchHit(infoHash: String(repeating: "ab", count: 20), name: "A & B", size: 5, files: 1, paths: [],
            seeders: 1, leechers: 1, sources: ["index"], verified: false, firstSeen: Date(timeIntervalSince1970: 0),
            lastSeen: Date(timeIntervalSince1970: 0), score: 0)
        let h = IndexHit(hit: hit, peers: ["127.0.0.1:6881", "[::1]:6882"])
        #expect(h.magnet == "magnet:?xt=urn:btih:\(hit.infoHash)&dn=A%20%26%20B&x.pe=127.0.0.1:6881&x.pe=%5B::1%5D:6882")
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        let data = try encoder.encode(h)
        let object = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        #expect(object?["peers"] as? [String] == h.peers)
        #expect(object?["magnet"] as? String == h.magnet)
        #expect(object?["info_hash"] as? String == hit.infoHash)
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        #expect(try decoder.decode(IndexHit.self, from: data) == h)
        // A plain hit has no peers key.
        let plain = try JSONSerialization.jsonObject(with: try encoder.encode(hit)) as? [String: Any]
        #expect(plain?["peers"] == nil)
    }

    @Test func removedRowsLeaveTheIndexVerifiedOrNot() throws {
        let index = try SearchIndex(path: nil)
        try index.write([SearchIndexTests.entry(1, "one thing"), SearchIndexTests.entry(2, "two thing", verified: false)])
        try index.remove(infoHashes: [SearchIndexTests.hash(1), SearchIndexTests.hash(2), SearchIndexTests.hash(3)])
        #expect(try index.search(SearchQuery("thing")).isEmpty)
        #expect(try index.statistics().rows == 0)
    }
}

@Suite struct AnnounceGateTests {
    let now: Int64 = 1_800_000_000
    let a: [UInt8] = Array(repeating: 1, count: 32)
    let b: [UInt8] = Array(repeating: 2, count: 32)

    @Test func aStaleTimeAReplayAndASecondAnnounceWithinTheMinuteAreRefused() {
        var gate = AnnounceGate()
        #expect(gate.configuration.interval == 60)
        #expect(gate.admit(key: self.a, host: "h", time: self.now - 301, now: self.now) == .stale(skew: 301, limit: 300))
        #expect(gate.admit(key: self.a, host: "h", time: self.now + 301, now: self.now) == .stale(skew: 301, limit: 300))
        // Any time an announce may carry, without an overflow.
        #expect(gate.admit(key: self.a, host: "h", time: .min, now: self.now) == .stale(skew: .max, limit: 300))
        #expect(gate.admit(key: self.a, host: "h", time: .max, now: self.now) == .stale(skew: .max - self.now, limit: 300))
        #expect(gate.admit(key: self.a, host: "h", time: self.now - 10, now: self.now) == nil)
        // The same announce again, or an older one: a replay, also after the interval.
        #expect(gate.admit(key: self.a, host: "h", time: self.now - 10, now: self.now + 61) == .replay)
        #expect(gate.admit(key: self.a, host: "h", time: self.now - 20, now: self.now + 61) == .replay)
        // A newer one within the minute: too frequent, again after the rest of it; refusals do not restart it.
        #expect(gate.admit(key: self.a, host: "h", time: self.now + 1, now: self.now + 1) == .tooFrequent(retryAfter: 59))
        #expect(gate.admit(key: self.a, host: "h", time: self.now + 59, now: self.now + 59) == .tooFrequent(retryAfter: 1))
        #expect(gate.admit(key: self.a, host: "h", time: self.now + 60, now: self.now + 60) == nil)
        // Another key is not held up by this one; 300 s off is still fresh.
        #expect(gate.admit(key: self.b, host: "h", time: self.now - 239, now: self.now + 61) == nil)
    }

    @Test func oneAddressHasAFewKeysAtMost() {
        var c = AnnounceGate.Configuration()
        c.keysPerHost = 2
        var gate = AnnounceGate(configuration: c)
        for k in 0..<2 { #expect(gate.admit(key: [UInt8(k)], host: "h", time: self.now, now: self.now) == nil) }
        #expect(gate.admit(key: [9], host: "h", time: self.now, now: self.now) == .tooManyKeys(host: "h", limit: 2))
        #expect(gate.admit(key: [9], host: "other", time: self.now, now: self.now) == nil)
        // A key it has already goes on announcing.
        #expect(gate.admit(key: [0], host: "h", time: self.now + 60, now: self.now + 60) == nil)
    }

    @Test func checksAreFivePercentOfTheNewClaimsAtLeastThreeAtMostFifty() {
        let gate = AnnounceGate()
        #expect([0, 1, 2, 3, 10, 59, 61, 100, 1000, 5000].map { gate.checks(newClaims: $0) } == [0, 1, 2, 3, 3, 3, 4, 5, 50, 50])
    }

    @Test func aKeyWhoseChecksFailIsRefusedForADayAndForgotten() {
        var gate = AnnounceGate()
        #expect(gate.admit(key: self.a, host: "h", time: self.now, now: self.now) == nil)
        let outcomes = [
            gate.checked(key: self.a, verified: true, now: self.now),
            gate.checked(key: self.a, verified: false, now: self.now),
            gate.checked(key: self.a, verified: false, now: self.now + 1),
        ]
        #expect(outcomes == [false, false, true])
        #expect(gate.announcers[self.a] == nil)
        #expect(gate.admit(key: self.a, host: "h", time: self.now + 100, now: self.now + 100)
            == .refusedKey(retryAfter: 86_400 - 99))
        #expect(gate.admit(key: self.a, host: "h", time: self.now + 86_401, now: self.now + 86_401) == nil)
        // Failures among many good checks are not enough.
        var fine = AnnounceGate()
        let refused = (0..<20).map { fine.checked(key: self.b, verified: $0 % 4 != 0, now: self.now) }
        #expect(!refused.contains(true))
    }
}
