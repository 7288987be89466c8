import PeerBase
import Testing
import Tracker

@Suite("Announce schedule")
struct AnnounceScheduleTests {
    /// A schedule whose `started` announce has been acknowledged at `t` with `interval`.
    static func running(at t: Double = 0, interval: Duration? = .seconds(1800), minInterval: Duration? = nil)
        -> AnnounceSchedule
    {
        var s = AnnounceSchedule()
        s.start(at: at(t))
        _ = s.pollAnnounce(at: at(t))
        s.announceSucceeded(interval: interval, minInterval: minInterval, at: at(t))
        return s
    }

    @Test("started first, then regular announces at the tracker's interval")
    func startedThenRegular() {
        var s = AnnounceSchedule()
        #expect(s.pollAnnounce(at: at(0)) == nil)
        s.start(at: at(0))
        #expect(s.nextTimeout == at(0))
        #expect(s.pollAnnounce(at: at(0)) == .started)
        #expect(s.pollAnnounce(at: at(0)) == nil, "one announce in flight at a time")
        #expect(s.inFlight == .started)
        s.announceSucceeded(interval: .seconds(1800), minInterval: .seconds(900), at: at(2))
        #expect(s.nextAnnounce == at(1802))
        #expect(s.pollAnnounce(at: at(1801)) == nil)
        #expect(s.pollAnnounce(at: at(1802)) == AnnounceRequest.Event.none)
    }

    @Test(
        "the wait follows interval, min interval, the floor and the default",
        arguments: [
            (Duration?.some(.seconds(1800)), Duration?.none, 1800),
            (.some(.seconds(600)), .some(.seconds(900)), 900),
            (.some(.seconds(5)), .none, 60),
            (.none, .none, 1800),
        ] as [(Duration?, Duration?, Int64)])
    func waits(_ interval: Duration?, _ minInterval: Duration?, _ expected: Int64) {
        let s = Self.running(interval: interval, minInterval: minInterval)
        #expect(s.nextAnnounce == at(Double(expected)))
    }

    @Test("failures back off 15, 30, 60 … s, capped at 30 minutes; a success resets")
    func backoff() throws {
        var s = AnnounceSchedule()
        s.start(at: at(0))
        var now = at(0)
        var waits: [Int64] = []
        for _ in 0..<10 {
            #expect(s.pollAnnounce(at: now) == .started, "started is retried until acknowledged")
            s.announceFailed(at: now)
            let next = try #require(s.nextAnnounce)
            waits.append((next - now).components.seconds)
            now = next
        }
        #expect(waits == [15, 30, 60, 120, 240, 480, 960, 1800, 1800, 1800])
        #expect(s.consecutiveFailures == 10)
        _ = s.pollAnnounce(at: now)
        s.announceSucceeded(interval: .seconds(300), minInterval: nil, at: now)
        #expect(s.consecutiveFailures == 0)
        #expect(s.nextAnnounce == now + .seconds(300))
    }

    @Test("completed is sent once, at once")
    func completedOnce() {
        var s = Self.running()
        s.downloadCompleted(at: at(100))
        #expect(s.pendingEvent == .completed)
        #expect(s.pollAnnounce(at: at(100)) == .completed)
        s.announceSucceeded(interval: .seconds(1800), minInterval: nil, at: at(101))
        s.downloadCompleted(at: at(200))
        #expect(s.nextAnnounce == at(1901))
        #expect(s.pollAnnounce(at: at(1901)) == AnnounceRequest.Event.none)
    }

    @Test("a failed completed announce is retried as completed")
    func completedRetried() {
        var s = Self.running()
        s.downloadCompleted(at: at(100))
        #expect(s.pollAnnounce(at: at(100)) == .completed)
        s.announceFailed(at: at(100))
        #expect(s.nextAnnounce == at(115))
        #expect(s.pollAnnounce(at: at(115)) == .completed)
    }

    @Test("no completed when the torrent was complete before started went out")
    func completeAtStart() {
        var s = AnnounceSchedule()
        s.start(at: at(0))
        s.downloadCompleted(at: at(0))
        #expect(s.pollAnnounce(at: at(0)) == .started)
        s.announceSucceeded(interval: .seconds(60), minInterval: nil, at: at(0))
        #expect(s.pollAnnounce(at: at(60)) == AnnounceRequest.Event.none)
    }

    @Test("completed waits for the announce in flight")
    func completedWhileInFlight() {
        var s = Self.running()
        #expect(s.pollAnnounce(at: at(1800)) == AnnounceRequest.Event.none)
        s.downloadCompleted(at: at(1801))
        #expect(s.nextAnnounce == nil)
        s.announceSucceeded(interval: .seconds(1800), minInterval: nil, at: at(1802))
        #expect(s.nextAnnounce == at(1802))
        #expect(s.pollAnnounce(at: at(1802)) == .completed)
    }

    @Test("stopped ends the schedule")
    func stopped() {
        var s = Self.running()
        s.stop(at: at(50))
        #expect(s.phase == .stopping)
        #expect(s.pollAnnounce(at: at(50)) == .stopped)
        s.announceSucceeded(interval: .seconds(1800), minInterval: nil, at: at(51))
        #expect(s.phase == .finished)
        #expect(s.nextAnnounce == nil)
        #expect(s.pollAnnounce(at: at(10_000)) == nil)
    }

    @Test("a failed stopped is not retried")
    func stoppedFails() {
        var s = Self.running()
        s.stop(at: at(50))
        _ = s.pollAnnounce(at: at(50))
        s.announceFailed(at: at(51))
        #expect(s.phase == .finished)
        #expect(s.nextTimeout == nil)
    }

    @Test("no stopped when the tracker never acknowledged started")
    func stopBeforeStarted() {
        var s = AnnounceSchedule()
        s.start(at: at(0))
        #expect(s.pollAnnounce(at: at(0)) == .started)
        s.stop(at: at(1))
        #expect(s.phase == .stopping)
        s.announceFailed(at: at(2))
        #expect(s.phase == .finished)

        var idle = AnnounceSchedule()
        idle.stop(at: at(0))
        #expect(idle.phase == .finished)
    }

    @Test("stop during an in-flight started sends stopped after it is acknowledged")
    func stopAfterInFlightStarted() {
        var s = AnnounceSchedule()
        s.start(at: at(0))
        _ = s.pollAnnounce(at: at(0))
        s.stop(at: at(1))
        s.announceSucceeded(interval: .seconds(1800), minInterval: nil, at: at(2))
        #expect(s.pollAnnounce(at: at(2)) == .stopped)
    }

    @Test("an early announce waits for min interval since the last answer")
    func requestAnnounce() {
        var s = Self.running(at: 0, interval: .seconds(1800), minInterval: .seconds(300))
        s.requestAnnounce(at: at(100))
        #expect(s.nextAnnounce == at(300))
        s.requestAnnounce(at: at(1000))
        #expect(s.nextAnnounce == at(300), "never later than already due")
        var t = Self.running(at: 0, interval: .seconds(1800), minInterval: nil)
        t.requestAnnounce(at: at(100))
        #expect(t.nextAnnounce == at(100))
    }
}
