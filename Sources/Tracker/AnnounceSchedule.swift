// BEP 3: announce events (started, completed, stopped) and intervals; back-off after failures.
import PeerBase

/// When to announce to a tracker and with which event: a pure schedule, no clock of its own.
///
/// A driver calls `start(at:)`, then whenever `nextAnnounce` has passed asks `pollAnnounce(at:)` for the
/// event to send, and reports the outcome with `announceSucceeded(interval:minInterval:at:)` or
/// `announceFailed(at:)`. `downloadCompleted(at:)` and `stop(at:)` bring the matching events forward.
///
/// - The first announce carries `started` and is retried until the tracker acknowledges it.
/// - `completed` is sent once, and not at all when the torrent was complete before `started` went out
///   (BEP 3: the `left=0` of the started announce says it already).
/// - `stopped` ends the schedule; it is not sent when the tracker never acknowledged `started`, and it is
///   not retried (a leaving client does not wait).
/// - Regular announces follow the tracker's `interval`, never sooner than its `min interval` nor than
///   `Configuration.minimumInterval`. Failures back off: 15 s, 30 s, 60 s … capped at 30 minutes.
public struct AnnounceSchedule: Equatable, Sendable {
    /// Intervals the schedule uses when the tracker does not say, and its bounds.
    public struct Configuration: Equatable, Sendable {
        /// Used when a response has no `interval`.
        public var defaultInterval: Duration
        /// The shortest regular interval accepted, whatever the tracker says.
        public var minimumInterval: Duration
        /// The wait after the first failure; it doubles with each further failure.
        public var backoffBase: Duration
        /// The longest wait after failures.
        public var backoffCap: Duration

        public init(
            defaultInterval: Duration = .seconds(1800),
            minimumInterval: Duration = .seconds(60),
            backoffBase: Duration = .seconds(15),
            backoffCap: Duration = .seconds(1800)
        ) {
            self.defaultInterval = defaultInterval
            self.minimumInterval = minimumInterval
            self.backoffBase = backoffBase
            self.backoffCap = backoffCap
        }
    }

    /// Where the schedule is in the torrent's life with this tracker.
    public enum Phase: Equatable, Sendable {
        /// `start(at:)` has not been called.
        case idle
        /// Announcing regularly.
        case running
        /// `stop(at:)` was called; a `stopped` announce is due or in flight.
        case stopping
        /// Nothing more to send.
        case finished
    }

    public let configuration: Configuration
    public private(set) var phase: Phase = .idle
    /// When the next announce is due; nil before `start`, while one is in flight, and when finished.
    public private(set) var nextAnnounce: Instant?
    /// The event of the announce in flight, if any.
    public private(set) var inFlight: AnnounceRequest.Event?
    /// Failures since the last success.
    public private(set) var consecutiveFailures = 0

    private var startedSent = false
    private var startedAcknowledged = false
    private var completedPending = false
    private var completedQueued = false
    private var lastSuccess: Instant?
    private var trackerMinInterval: Duration?

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    /// The driver's timer: when to call `pollAnnounce(at:)` next (same as `nextAnnounce`).
    public var nextTimeout: Instant? { self.nextAnnounce }

    /// The event the next announce will carry.
    public var pendingEvent: AnnounceRequest.Event {
        if self.phase == .stopping { return .stopped }
        if !self.startedAcknowledged { return .started }
        if self.completedPending { return .completed }
        return .none
    }

    // MARK: Inputs

    /// Begins the schedule: a `started` announce is due at once.
    /// - Precondition: called once, first.
    public mutating func start(at now: Instant) {
        precondition(self.phase == .idle, "start(at:) is called once, first")
        self.phase = .running
        self.nextAnnounce = now
    }

    /// Returns the event to announce now and marks it in flight, or nil when no announce is due.
    /// Call when `nextTimeout` has passed (spurious calls return nil); then send the announce and report
    /// its outcome.
    public mutating func pollAnnounce(at now: Instant) -> AnnounceRequest.Event? {
        guard self.phase == .running || self.phase == .stopping, self.inFlight == nil,
            let due = self.nextAnnounce, due <= now
        else { return nil }
        let event = self.pendingEvent
        if event == .started { self.startedSent = true }
        self.inFlight = event
        self.nextAnnounce = nil
        return event
    }

    /// Reports that the announce in flight got an answer. Call with the response's intervals.
    /// - Precondition: an announce is in flight.
    public mutating func announceSucceeded(interval: Duration?, minInterval: Duration?, at now: Instant) {
        guard let event = self.inFlight else { preconditionFailure("no announce is in flight") }
        self.inFlight = nil
        self.consecutiveFailures = 0
        self.lastSuccess = now
        self.trackerMinInterval = minInterval
        switch event {
        case .started: self.startedAcknowledged = true
        case .completed: self.completedPending = false
        case .stopped:
            self.finish()
            return
        case .none: break
        }
        if self.phase == .stopping || self.completedPending {
            self.nextAnnounce = now
            return
        }
        var wait = max(interval ?? self.configuration.defaultInterval, self.configuration.minimumInterval)
        if let m = minInterval { wait = max(wait, m) }
        self.nextAnnounce = now + wait
    }

    /// Reports that the announce in flight got an answer (convenience for a parsed response).
    public mutating func announceSucceeded(_ response: AnnounceResponse, at now: Instant) {
        self.announceSucceeded(interval: response.interval, minInterval: response.minInterval, at: now)
    }

    /// Reports that the announce in flight failed (no answer, or a failure reason). The next try backs off.
    /// - Precondition: an announce is in flight.
    public mutating func announceFailed(at now: Instant) {
        guard let event = self.inFlight else { preconditionFailure("no announce is in flight") }
        self.inFlight = nil
        self.consecutiveFailures += 1
        if event == .stopped {
            self.finish()
            return
        }
        if self.phase == .stopping {
            if self.startedAcknowledged {
                self.nextAnnounce = now
            } else {
                self.finish()
            }
            return
        }
        self.nextAnnounce = now + self.backoff(failures: self.consecutiveFailures)
    }

    /// Reports that the download finished: a `completed` announce becomes due, once.
    public mutating func downloadCompleted(at now: Instant) {
        guard self.phase == .running, self.startedSent, !self.completedQueued else { return }
        self.completedQueued = true
        self.completedPending = true
        if self.inFlight == nil && self.startedAcknowledged && self.consecutiveFailures == 0 {
            self.nextAnnounce = now
        }
    }

    /// Asks for an announce as soon as the tracker allows (for example when short of peers):
    /// at `now`, or when the tracker's `min interval` since the last answer has passed.
    /// Does nothing while backing off after failures or when not running.
    public mutating func requestAnnounce(at now: Instant) {
        guard self.phase == .running, self.inFlight == nil, self.consecutiveFailures == 0,
            let due = self.nextAnnounce
        else { return }
        var earliest = now
        if let last = self.lastSuccess, let m = self.trackerMinInterval { earliest = max(now, last + m) }
        self.nextAnnounce = min(due, earliest)
    }

    /// Stops: a `stopped` announce becomes due (after the one in flight, if any), or the schedule simply
    /// finishes when the tracker never acknowledged `started`.
    public mutating func stop(at now: Instant) {
        switch self.phase {
        case .idle:
            self.finish()
        case .running:
            self.phase = .stopping
            if self.inFlight != nil { return }
            if self.startedAcknowledged {
                self.nextAnnounce = now
            } else {
                self.finish()
            }
        case .stopping, .finished:
            return
        }
    }

    // MARK: Internals

    private mutating func finish() {
        self.phase = .finished
        self.nextAnnounce = nil
    }

    private func backoff(failures: Int) -> Duration {
        var wait = self.configuration.backoffBase
        for _ in 1..<max(1, failures) {
            wait = wait * 2
            if wait >= self.configuration.backoffCap { return self.configuration.backoffCap }
        }
        return min(wait, self.configuration.backoffCap)
    }
}
