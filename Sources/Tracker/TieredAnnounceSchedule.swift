// BEP 12: one announce at a time, to the trackers in tier order; BEP 3: events and intervals.
import PeerBase

/// Which tracker to announce to, when, and with which event: `TrackerTiers` and `AnnounceSchedule` together,
/// with no clock and no I/O of its own.
///
/// Each announce walks the tiers as BEP 12 says: the first tracker of the first tier, on failure the next in
/// that tier, then the next tier. The tracker that answers moves to the front of its tier, so the next
/// announce (due after its `interval`, never sooner than its `min interval`) asks it first within its tier;
/// a tracker of an earlier tier is still asked before it, so a primary tracker that comes back is used again.
/// When every tracker failed, the announce as a whole failed and the schedule backs off.
///
/// `stopped` goes to the tracker that last answered, only (it is the one that counts this client); it is not
/// sent when none ever did. `completed` is sent once (`AnnounceSchedule`).
///
/// A driver calls `start(at:)`, then whenever `nextTimeout` has passed asks `pollAnnounce(at:)` for the
/// tracker and event, sends the announce, and reports the outcome with `announceSucceeded(_:response:at:)` or
/// `announceFailed(_:at:)`. `downloadCompleted(at:)` and `stop(at:)` bring the matching events forward;
/// `isFinished` is true once nothing more will be sent.
public struct TieredAnnounceSchedule: Equatable, Sendable {
    /// The trackers in the order they are tried.
    public private(set) var tiers: TrackerTiers
    /// Events and intervals.
    public private(set) var schedule: AnnounceSchedule
    /// The tracker that answered last: it gets `stopped`.
    public private(set) var working: String?
    /// The announce in flight: to which tracker, with which event.
    public var inFlight: (url: String, event: AnnounceRequest.Event)? { self.attempt.map { ($0.url, $0.event) } }

    private struct Attempt: Equatable, Sendable {
        var url: String
        var event: AnnounceRequest.Event
    }

    private struct Retry: Equatable, Sendable {
        var event: AnnounceRequest.Event
        var due: Instant
    }

    private var attempt: Attempt?
    /// Set when a tracker failed: the same announce is due to the next one at once.
    private var retry: Retry?

    /// - Parameters:
    ///   - tiers: The trackers, already shuffled within each tier.
    ///   - configuration: Intervals and back-off.
    public init(tiers: TrackerTiers, configuration: AnnounceSchedule.Configuration = .init()) {
        self.tiers = tiers
        self.schedule = AnnounceSchedule(configuration: configuration)
    }

    /// When `pollAnnounce(at:)` must next be called, or nil while an announce is in flight or when finished.
    public var nextTimeout: Instant? {
        if self.attempt != nil { return nil }
        return self.retry?.due ?? self.schedule.nextTimeout
    }

    /// True once nothing more will be sent (after `stopped`, or when stopping with nothing to tell).
    public var isFinished: Bool { self.schedule.phase == .finished }

    // MARK: Inputs

    /// Begins: a `started` announce is due at once. With no tracker at all the schedule finishes at once.
    public mutating func start(at now: Instant) {
        self.schedule.start(at: now)
        if self.tiers.isEmpty { self.schedule.stop(at: now) }
    }

    /// The announce to send now, marked in flight, or nil when none is due. Call when `nextTimeout` has
    /// passed (spurious calls return nil); then send it and report the outcome.
    public mutating func pollAnnounce(at now: Instant) -> (url: String, event: AnnounceRequest.Event)? {
        guard self.attempt == nil else { return nil }
        let event: AnnounceRequest.Event
        if let again = self.retry {
            event = again.event
        } else {
            guard let due = self.schedule.pollAnnounce(at: now) else { return nil }
            event = due
        }
        self.retry = nil
        let url: String
        if event == .stopped {
            guard let working = self.working else {
                self.schedule.announceFailed(at: now)  // nobody to tell: finishes
                return nil
            }
            url = working
        } else {
            guard let next = self.tiers.next() else {
                self.tiers.startRound()
                self.schedule.announceFailed(at: now)
                return nil
            }
            url = next
        }
        self.attempt = Attempt(url: url, event: event)
        return (url, event)
    }

    /// Reports that the tracker in flight answered.
    /// - Precondition: `url` is the tracker in flight.
    public mutating func announceSucceeded(_ url: String, interval: Duration?, minInterval: Duration?, at now: Instant) {
        precondition(self.attempt?.url == url, "no announce to \(url) is in flight")
        self.attempt = nil
        self.tiers.markSucceeded(url)
        self.working = url
        self.schedule.announceSucceeded(interval: interval, minInterval: minInterval, at: now)
    }

    /// Reports that the tracker in flight answered (convenience for a parsed response).
    public mutating func announceSucceeded(_ url: String, response: AnnounceResponse, at now: Instant) {
        self.announceSucceeded(url, interval: response.interval, minInterval: response.minInterval, at: now)
    }

    /// Reports that the tracker in flight did not answer or refused. The same announce is due at once to the
    /// next tracker in tier order; when every tracker failed this round, the schedule backs off.
    /// - Precondition: `url` is the tracker in flight.
    public mutating func announceFailed(_ url: String, at now: Instant) {
        precondition(self.attempt?.url == url, "no announce to \(url) is in flight")
        let event = self.attempt!.event
        self.attempt = nil
        self.tiers.markFailed(url)
        if event == .stopped || self.schedule.phase == .stopping {
            self.schedule.announceFailed(at: now)
            return
        }
        if self.tiers.next() != nil {
            self.retry = Retry(event: event, due: now)
        } else {
            self.tiers.startRound()
            self.schedule.announceFailed(at: now)
        }
    }

    /// Reports that the download finished: a `completed` announce becomes due, once.
    public mutating func downloadCompleted(at now: Instant) {
        self.schedule.downloadCompleted(at: now)
    }

    /// Stops: `stopped` becomes due to the tracker that last answered (after the announce in flight, if any);
    /// with no such tracker the schedule finishes at once.
    public mutating func stop(at now: Instant) {
        self.retry = nil
        self.schedule.stop(at: now)
        // Between two trackers of a walk: that announce is given up (stopped follows if anyone answered before).
        if self.attempt == nil, self.schedule.inFlight != nil { self.schedule.announceFailed(at: now) }
    }
}
