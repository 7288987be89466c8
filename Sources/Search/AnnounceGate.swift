// The index node's rules for announces, with no I/O: which it takes, how many of their claims it checks, and
// which keys it stops taking. Times are Unix seconds passed in (announces carry wall-clock times).
import PeerBase

/// Which announces an index node takes, and whose. An announce is refused when its key was refused (most of its
/// checked claims failed), when its time is more than `maxSkew` from the index node's clock (stale), when it is not
/// newer than the key's last one taken (a replay), when the key's last one was taken less than `interval` ago,
/// and for a new key, when its address has `keysPerHost` keys already or the node knows `maxAnnouncers`.
/// Only announces that were taken count against the interval: a flood of refused ones costs its key nothing.
public struct AnnounceGate: Sendable {
    public struct Configuration: Sendable, Equatable {
        /// Seconds between two announces of one key.
        public var interval: Int64 = 60
        /// Seconds an announce's time may be from the index node's clock.
        public var maxSkew: Int64 = 300
        public var keysPerHost = 16
        public var maxAnnouncers = 100_000
        /// Share of an announce's new claims checked: at least `minChecks` (all when fewer), at most `maxChecks`.
        public var checkShare = 0.05
        public var minChecks = 3
        public var maxChecks = 50
        /// A key is refused for `refuseFor` seconds when more than half of its last `ledgerWindow` checks failed
        /// (at least `ledgerMinimum` of them).
        public var ledgerWindow = 20
        public var ledgerMinimum = 3
        public var refuseFor: Int64 = 24 * 3600
        public init() {}
    }

    public enum Refusal: Error, Equatable, Sendable, CustomStringConvertible {
        /// The key's claims failed their checks; refused for this many more seconds.
        case refusedKey(retryAfter: Int64)
        /// The announce's time is this many seconds from the index node's clock.
        case stale(skew: Int64, limit: Int64)
        /// Not newer than the key's last announce taken.
        case replay
        /// The key's last announce was taken less than the interval ago: again after this many seconds.
        case tooFrequent(retryAfter: Int64)
        /// The address announces under too many keys already.
        case tooManyKeys(host: String, limit: Int)
        /// The node knows as many announcers as it keeps.
        case full

        public var description: String {
            switch self {
            case .refusedKey(let s): "this key's claims failed their checks; its announces are refused for \(s) s more"
            case .stale(let skew, let limit):
                "the announce's time is \(skew) s from this node's clock (at most \(limit) s): send a fresh one"
            case .replay: "the announce is not newer than the last one taken from this key (a replay)"
            case .tooFrequent(let s): "one announce a key per interval: the next one is taken in \(s) s"
            case .tooManyKeys(let host, let limit): "\(host) announces under \(limit) keys already"
            case .full: "this index node keeps no more announcers"
            }
        }
    }

    /// What the gate knows of a key.
    public struct Announcer: Sendable, Equatable {
        public var host: String
        /// The time of its last announce taken, and when that was taken (both Unix seconds).
        public var time: Int64
        public var takenAt: Int64
    }

    public let configuration: Configuration
    public private(set) var announcers: [[UInt8]: Announcer] = [:]
    private var ledger = HitLedger<[UInt8]>()

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
        self.ledger.window = configuration.ledgerWindow
        self.ledger.minimum = configuration.ledgerMinimum
        self.ledger.banFor = .seconds(configuration.refuseFor)
    }

    /// Takes an announce of `key` from `host` signed at `time`, or says why not. A taken one is recorded.
    public mutating func admit(key: [UInt8], host: String, time: Int64, now: Int64) -> Refusal? {
        if let until = self.refusedUntil(key, now: now) { return .refusedKey(retryAfter: until - now) }
        let limit = self.configuration.maxSkew
        // Compared without a subtraction of the announce's time, which may be any Int64.
        guard time >= now - limit, time <= now + limit else {
            let (difference, overflow) = time.subtractingReportingOverflow(now)
            return .stale(skew: overflow ? .max : Int64(clamping: difference.magnitude), limit: limit)
        }
        if let last = self.announcers[key] {
            guard time > last.time else { return .replay }
            let next = last.takenAt + self.configuration.interval
            guard now >= next else { return .tooFrequent(retryAfter: next - now) }
        } else {
            let keys = self.announcers.values.count { $0.host == host }
            guard keys < self.configuration.keysPerHost else {
                return .tooManyKeys(host: host, limit: self.configuration.keysPerHost)
            }
            guard self.announcers.count < self.configuration.maxAnnouncers else { return .full }
        }
        self.announcers[key] = Announcer(host: host, time: time, takenAt: now)
        return nil
    }

    /// How many of an announce's `newClaims` to check.
    public func checks(newClaims: Int) -> Int {
        let share = Int((Double(newClaims) * self.configuration.checkShare).rounded(.up))
        return min(newClaims, self.configuration.maxChecks, max(self.configuration.minChecks, share))
    }

    /// Records the outcome of a check of one of `key`'s claims; true when that gets the key refused (the caller
    /// drops its claims).
    public mutating func checked(key: [UInt8], verified: Bool, now: Int64) -> Bool {
        guard self.ledger.record(key, verified: verified, at: Self.instant(now)) else { return false }
        self.announcers[key] = nil
        return true
    }

    /// Until when `key` is refused, if it is.
    public func refusedUntil(_ key: [UInt8], now: Int64) -> Int64? {
        self.ledger.bannedUntil(key, at: Self.instant(now)).map { Int64($0.offset.components.seconds) }
    }

    /// Forgets a key (its claims expired): the next announce from it is a new key's.
    public mutating func forget(_ key: [UInt8]) { self.announcers[key] = nil }

    /// Forgets refusals that ran out.
    public mutating func purge(now: Int64) { self.ledger.purge(at: Self.instant(now)) }

    static func instant(_ seconds: Int64) -> Instant { Instant(offset: .seconds(seconds)) }
}
