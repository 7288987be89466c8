import PeerBase
import Testing
import Tracker

/// `pollAnnounce(at:)`, required to return an announce.
private func poll(_ s: inout TieredAnnounceSchedule, _ t: Double, sourceLocation: SourceLocation = #_sourceLocation)
    throws -> (url: String, event: AnnounceRequest.Event)
{
    let p = s.pollAnnounce(at: at(t))
    return try #require(p, sourceLocation: sourceLocation)
}

@Suite("Tiered announces (BEP 12 order with the announce schedule)")
struct TieredAnnounceScheduleTests {
    static let deadUDP = "udp://127.0.0.1:1"
    static let deadHTTP = "http://127.0.0.1:2/announce"
    static let live = "http://127.0.0.1:3/announce"

    /// Tier 1 holds two dead trackers (in a seeded random order), tier 2 the live one.
    static func deadFirstTier() -> TieredAnnounceSchedule {
        var rng = TestRNG(seed: 7)
        var s = TieredAnnounceSchedule(tiers: TrackerTiers([[deadUDP, deadHTTP], [live]], using: &rng))
        s.start(at: at(0))
        return s
    }

    /// Answers every announce from the dead trackers with a failure until the live one is asked.
    static func walkToLive(_ s: inout TieredAnnounceSchedule, at t: Double) -> [String] {
        var asked: [String] = []
        while let (url, _) = s.pollAnnounce(at: at(t)) {
            asked.append(url)
            if url == live {
                s.announceSucceeded(url, interval: .seconds(1800), minInterval: nil, at: at(t))
                break
            }
            s.announceFailed(url, at: at(t))
        }
        return asked
    }

    @Test("a dead first tier falls back to the second within one announce, without backing off")
    func fallback() throws {
        var s = Self.deadFirstTier()
        let first = try poll(&s, 0)
        #expect(first.event == .started)
        #expect(first.url == s.tiers.tiers[0][0])
        #expect(s.pollAnnounce(at: at(0)) == nil, "one announce in flight at a time")
        #expect(s.nextTimeout == nil)
        s.announceFailed(first.url, at: at(0.1))
        #expect(s.nextTimeout == at(0.1), "the next tracker is due at once")
        let second = try poll(&s, 0.1)
        #expect(second.url == s.tiers.tiers[0][1] && second.event == .started)
        s.announceFailed(second.url, at: at(0.2))
        let third = try poll(&s, 0.2)
        #expect(third.url == Self.live && third.event == .started)
        s.announceSucceeded(third.url, interval: .seconds(1800), minInterval: nil, at: at(0.3))
        #expect(s.working == Self.live)
        #expect(s.schedule.consecutiveFailures == 0)
        #expect(s.nextTimeout == at(1800.3), "the live tracker's interval")
    }

    @Test("every announce walks from the first tier again; the tracker that answered leads its tier")
    func laterAnnounces() {
        var rng = TestRNG(seed: 3)
        let a = "http://a/announce", b = "http://b/announce", c = "http://c/announce"
        var s = TieredAnnounceSchedule(tiers: TrackerTiers([[a, b], [c]], using: &rng))
        s.start(at: at(0))
        let tier1 = s.tiers.tiers[0]
        // First tracker of tier 1 fails, the second answers: it moves to the front.
        _ = s.pollAnnounce(at: at(0))
        s.announceFailed(tier1[0], at: at(0))
        #expect(s.pollAnnounce(at: at(0))?.url == tier1[1])
        s.announceSucceeded(tier1[1], interval: .seconds(100), minInterval: nil, at: at(0))
        #expect(s.tiers.tiers[0] == [tier1[1], tier1[0]])
        // The regular announce goes to it first.
        #expect(s.pollAnnounce(at: at(99)) == nil)
        let next = s.pollAnnounce(at: at(100))
        #expect(next?.url == tier1[1] && next?.event == AnnounceRequest.Event.none)
    }

    @Test("when every tracker fails the announce backs off, then a new round starts from the first tier")
    func allFail() throws {
        var s = Self.deadFirstTier()
        let order = s.tiers.order
        for url in order {
            let p = try poll(&s, 0)
            #expect(p.url == url)
            s.announceFailed(url, at: at(0))
        }
        #expect(s.pollAnnounce(at: at(0)) == nil)
        #expect(s.schedule.consecutiveFailures == 1)
        #expect(s.nextTimeout == at(15), "the schedule's first back-off")
        let again = try poll(&s, 15)
        #expect(again.url == order[0] && again.event == .started, "started until a tracker acknowledges it")
    }

    @Test("stopped goes to the tracker that answered, once; completed is sent once")
    func stoppedAndCompleted() throws {
        var s = Self.deadFirstTier()
        _ = Self.walkToLive(&s, at: 0)
        s.downloadCompleted(at: at(10))
        s.downloadCompleted(at: at(11))
        let done = try poll(&s, 10)
        #expect(done.event == .completed)
        // The dead tier is still asked first (BEP 12), then the live tracker.
        s.announceFailed(done.url, at: at(10))
        while let p = s.pollAnnounce(at: at(10)) {
            #expect(p.event == .completed)
            if p.url == Self.live {
                s.announceSucceeded(p.url, interval: .seconds(1800), minInterval: nil, at: at(10))
                break
            }
            s.announceFailed(p.url, at: at(10))
        }
        #expect(s.pollAnnounce(at: at(20)) == nil, "completed only once")
        s.stop(at: at(30))
        let stop = try poll(&s, 30)
        #expect(stop.url == Self.live && stop.event == .stopped, "stopped skips the dead tier")
        s.announceFailed(stop.url, at: at(31))
        #expect(s.isFinished, "stopped is not retried")
        #expect(s.nextTimeout == nil)
    }

    @Test("stop before any tracker answered sends nothing, also in the middle of a walk")
    func stopUnacknowledged() throws {
        var s = Self.deadFirstTier()
        let first = try poll(&s, 0)
        s.announceFailed(first.url, at: at(0))
        s.stop(at: at(1))
        #expect(s.isFinished)
        #expect(s.pollAnnounce(at: at(1)) == nil)

        var t = Self.deadFirstTier()
        let inFlight = try poll(&t, 0)
        t.stop(at: at(1))
        #expect(!t.isFinished, "waits for the announce in flight")
        t.announceFailed(inFlight.url, at: at(2))
        #expect(t.isFinished, "no tracker ever answered: no stopped")
    }

    @Test("stop while an announce is in flight: stopped follows its answer")
    func stopDuringAnnounce() throws {
        var s = Self.deadFirstTier()
        _ = Self.walkToLive(&s, at: 0)
        let regular = try poll(&s, 1800)
        s.stop(at: at(1800.5))
        #expect(s.pollAnnounce(at: at(1800.5)) == nil)
        s.announceFailed(regular.url, at: at(1801))  // a dead tracker of tier 1: the walk is not continued
        let stop = try poll(&s, 1801)
        #expect(stop == (Self.live, .stopped))
        s.announceSucceeded(stop.url, interval: nil, minInterval: nil, at: at(1802))
        #expect(s.isFinished)
    }

    @Test("no trackers: nothing is ever due")
    func empty() {
        var rng = TestRNG(seed: 1)
        var s = TieredAnnounceSchedule(tiers: TrackerTiers([], using: &rng))
        s.start(at: at(0))
        #expect(s.isFinished)
        #expect(s.pollAnnounce(at: at(0)) == nil)
    }
}
