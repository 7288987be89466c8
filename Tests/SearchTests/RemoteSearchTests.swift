import Foundation
import Metainfo
import PeerBase
import Testing

@testable import Search

@Suite struct RemoteSearchTests {
    let t0 = Instant.zero

    func hashes(_ range: Range<Int>) -> [[UInt8]] { range.map { n in (0..<20).map { UInt8(truncatingIfNeeded: n >> (8 * ($0 % 3))) } } }

    @Test func aCommonWordStopsAfterTheProbeWhenItBringsEnough() {
        var f = QueryFanout(neighbours: Array(0..<20), at: t0)
        let first = f.poll(at: t0)
        #expect(first == [0, 1, 2])
        f.answered(0, infoHashes: hashes(0..<50), at: t0 + .milliseconds(100))
        f.answered(1, infoHashes: hashes(50..<100), at: t0 + .milliseconds(100))
        #expect(f.stopped == nil)
        f.answered(2, infoHashes: hashes(100..<150), at: t0 + .milliseconds(200))
        #expect(f.stopped == .enoughResults)
        #expect(f.poll(at: t0 + .seconds(2)).isEmpty)
        #expect(f.asked == 3 && f.answered == 3)
    }

    @Test func aRareWordWidensInDoublingWavesUntilEveryoneAnswered() {
        var f = QueryFanout(neighbours: Array(0..<20), at: t0)
        var now = t0
        var waves: [Int] = []
        while f.stopped == nil && now < t0 + .seconds(20) {
            let ask = f.poll(at: now)
            if !ask.isEmpty { waves.append(ask.count) }
            // Each answers with nothing, 100 ms later; the next wave comes once all have answered.
            now = now + .milliseconds(100)
            for k in ask { f.answered(k, infoHashes: [], at: now) }
        }
        #expect(waves == [3, 6, 11])
        #expect(f.stopped == .exhausted)
        #expect(now < t0 + .seconds(1))
    }

    @Test func silentNeighboursWidenOnTheClockAndTimeOut() {
        var c = QueryFanout<Int>.Configuration()
        c.timeout = .seconds(10)
        var f = QueryFanout(neighbours: Array(0..<100), at: t0, configuration: c)
        #expect(f.poll(at: t0).count == 3)
        #expect(f.poll(at: t0 + .milliseconds(1000)).isEmpty)
        #expect(f.poll(at: t0 + .milliseconds(1500)).count == 6)
        #expect(f.deadline == t0 + .milliseconds(3000))
        f.refused(3, at: t0 + .seconds(2))
        #expect(f.refused == 1)
        _ = f.poll(at: t0 + .seconds(10))
        #expect(f.stopped == .timeout)
        #expect(f.deadline == nil)
    }

    @Test func aBusyNeighbourIsAskedOnceMore() {
        var c = QueryFanout<Int>.Configuration()
        c.maxRetries = 1
        var f = QueryFanout(neighbours: [1, 2], at: t0, configuration: c)
        #expect(f.poll(at: t0) == [1, 2])
        f.answered(1, infoHashes: [], at: t0 + .milliseconds(10))
        f.busy(2, after: .seconds(1), at: t0 + .milliseconds(10))
        #expect(f.stopped == nil)
        #expect(f.deadline == t0 + .milliseconds(1010))
        #expect(f.poll(at: t0 + .milliseconds(500)).isEmpty)
        #expect(f.poll(at: t0 + .milliseconds(1010)) == [2])
        // Busy again: not asked a third time.
        f.busy(2, after: .seconds(1), at: t0 + .milliseconds(1020))
        #expect(f.stopped == .exhausted)
        #expect(f.refused == 1 && f.asked == 2)
    }

    @Test func networkPrefixesGroupAddresses() {
        let p = NetworkPrefix()
        #expect(p.of("10.1.2.3") == p.of("10.1.2.200"))
        #expect(p.of("10.1.2.3") != p.of("10.1.3.3"))
        #expect(p.of("2001:db8:1::1") == p.of("2001:db8:1:ffff::2"))
        #expect(NetworkPrefix(v4Bits: 32).of("127.0.0.1") != NetworkPrefix(v4Bits: 32).of("127.0.0.2"))
    }

    @Test func resultsMergeRankAndDropWhatFailsVerification() throws {
        var r = RemoteResults(query: try SearchQuery("sintel"), prefix: NetworkPrefix(v4Bits: 32))
        let genuine = RemoteHit(infoHash: hashes(0..<1)[0], name: "Sintel 2010", size: 100, files: 1)
        let fake = RemoteHit(infoHash: hashes(1..<2)[0], name: "Sintel 2010 1080p", size: 100, files: 1)
        let offTopic = RemoteHit(infoHash: hashes(2..<3)[0], name: "Something Else", size: 1, files: 1)
        #expect(r.add([genuine], from: "10.0.0.1").count == 1)
        #expect(r.add([genuine], from: "10.0.0.2").isEmpty)
        #expect(r.add([fake, offTopic], from: "10.0.0.66").count == 1)
        #expect(r.offTopic == 1)
        // Two networks vouch for the genuine hit: it ranks first before any check.
        #expect(r.ranked().map(\.hit) == [genuine, fake])
        let check = r.nextToVerify(top: 10)
        #expect(check.map(\.from) == ["10.0.0.1", "10.0.0.66"])
        #expect(r.nextToVerify(top: 10).isEmpty)
        #expect(r.settle(fake.infoHash, verified: false) == ["10.0.0.66"])
        r.settle(genuine.infoHash, verified: true)
        #expect(r.ranked().map(\.hit) == [genuine])
        #expect(r.ranked()[0].check == .verified)
    }

    @Test func aHitMatchesOnlyTheInfoDictionaryItClaims() throws {
        let info = Array("d6:lengthi100e4:name11:Sintel 201012:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaae".utf8)
        let t = try TorrentMetainfo(infoBytes: info)
        let ih = try #require(t.infoHashes.v1).bytes
        #expect(RemoteResults.matches(RemoteHit(infoHash: ih, name: "Sintel 2010", size: 100, files: 1), info: info))
        #expect(!RemoteResults.matches(RemoteHit(infoHash: ih, name: "Sintel 2011", size: 100, files: 1), info: info))
        #expect(!RemoteResults.matches(RemoteHit(infoHash: ih, name: "Sintel 2010", size: 101, files: 1), info: info))
        var other = ih
        other[0] ^= 1
        #expect(!RemoteResults.matches(RemoteHit(infoHash: other, name: "Sintel 2010", size: 100, files: 1), info: info))
    }

    @Test func aNeighbourWhoseHitsKeepFailingIsBannedForADay() {
        var ledger = HitLedger<String>()
        var banned = [ledger.record("liar", verified: false, at: t0)]
        banned.append(ledger.record("liar", verified: false, at: t0))
        banned.append(ledger.record("liar", verified: false, at: t0))
        #expect(banned == [false, false, true])
        #expect(ledger.isBanned("liar", at: t0 + .seconds(3600)))
        #expect(!ledger.isBanned("liar", at: t0 + .seconds(24 * 3600)))
        // An honest node with an odd dead hit is not banned.
        var honestBanned = false
        for i in 0..<20 { honestBanned = honestBanned || ledger.record("honest", verified: i % 5 != 0, at: t0) }
        #expect(!honestBanned)
    }

    @Test func messagesRoundTripAndGarbageIsRefused() throws {
        let hit = RemoteHit(infoHash: hashes(0..<1)[0], name: String(repeating: "é", count: 150), size: 5, files: 2, seeders: 3)
        let messages: [SearchMessage] = [
            .query(id: 0x0102_0304_0506_0708, text: "big buck bunny", max: 50),
            .busy(id: 7, retryAfter: 5),
            .metadataRequest(id: 9, infoHash: hit.infoHash, piece: 2),
            .metadata(id: 9, infoHash: hit.infoHash, piece: 0, total: 100, bytes: Array(repeating: 1, count: 100)),
            .metadataReject(id: 9, infoHash: hit.infoHash, piece: 1),
        ]
        for m in messages { #expect(try SearchMessage(decoding: m.encoded()) == m) }
        // A long name is cut at a character boundary to 200 bytes.
        guard case .hits(_, let back) = try SearchMessage(decoding: SearchMessage.hits(id: 1, [hit]).encoded()) else {
            Issue.record("not hits")
            return
        }
        #expect(back[0].name == String(repeating: "é", count: 100))
        // 50 hits of the longest names fit in one message.
        let many = (0..<80).map { RemoteHit(infoHash: hashes($0..<($0 + 1))[0], name: String(repeating: "x", count: 300), size: 1 << 40, files: 1 << 20, seeders: 1 << 20) }
        #expect(SearchMessage.hits(id: 1, many).encoded().count <= SearchMessage.maxSize)
        for junk in ["", "de", "d1:y1:qe", "d1:t8:abcdefgh1:y1:ze", "d1:q0:1:t8:abcdefgh1:y1:qe"] {
            #expect(throws: SearchWireError.self) { try SearchMessage(decoding: Array(junk.utf8)) }
        }
        #expect(throws: SearchWireError.self) { try SearchMessage(decoding: [UInt8](repeating: 0x64, count: SearchMessage.maxSize + 1)) }
    }
}
