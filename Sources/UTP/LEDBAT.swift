// BEP 29 "congestion control" (LEDBAT, RFC 6817): a window steered by one-way queueing delay.
import PeerBase

/// The congestion window of one uTP connection: grows while the queueing delay our packets meet stays under
/// `target`, shrinks as it goes over, and halves on a loss (at most once a window).
///
/// The delay is measured as the other side's clock minus ours (`timestamp_difference` in its packets), which has
/// an unknown offset; the lowest value seen lately (`baseDelay`, the minimum of one-minute minima over
/// `historyMinutes`) stands for "no queue", and what is above it is queueing. A clock that drifts moves the base
/// with it within minutes.
public struct LEDBAT: Sendable {
    public struct Configuration: Sendable {
        /// The queueing delay uTP aims at (BEP 29 and libtorrent: 100 ms).
        public var target: Duration = .milliseconds(100)
        /// The most the window grows in one round trip, in bytes (libtorrent's gain: 3 000).
        public var maxGainPerRTT = 3_000
        /// The smallest window: one full packet, so a connection always gets one out.
        public var minWindow = 1_400
        /// The largest window: enough for 100 MB/s at 80 ms.
        public var maxWindow = 8 << 20
        /// Minutes of one-minute delay minima the base delay is the minimum of.
        public var historyMinutes = 3
        public init() {}
    }

    public let configuration: Configuration
    /// `configuration.target` in microseconds, as delays are measured.
    private let target: Double
    /// Bytes that may be in flight.
    public private(set) var window: Int
    /// Slow start: the window grows by what is acknowledged (doubling each round trip) until the first loss or
    /// until the delay nears the target.
    public private(set) var slowStart = true
    /// The latest queueing delay measured (the delay sample minus the base), in microseconds.
    public private(set) var queueingDelay: UInt32 = 0
    private var minima: [UInt32] = []
    private var minuteStarted: Instant?

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
        let (s, atto) = configuration.target.components
        self.target = Double(s) * 1e6 + Double(atto) / 1e12
        self.window = configuration.minWindow * 2
    }

    /// The base delay now (µs of the clock offset plus the path's fixed delay), if there is a sample.
    public var baseDelay: UInt32? {
        self.minima.min(by: Self.before)
    }

    /// A delay sample from the other side (`timestamp_difference`, µs; 0 means it has none yet).
    public mutating func sample(_ delay: UInt32, at now: Instant) {
        guard delay != 0 else { return }
        if let started = self.minuteStarted, now - started < .seconds(60), !self.minima.isEmpty {
            if Self.before(delay, self.minima[self.minima.count - 1]) { self.minima[self.minima.count - 1] = delay }
        } else {
            self.minima.append(delay)
            if self.minima.count > self.configuration.historyMinutes { self.minima.removeFirst() }
            self.minuteStarted = now
        }
        let base = self.baseDelay ?? delay
        self.queueingDelay = delay &- base < 1 << 31 ? delay &- base : 0
    }

    /// Bytes acknowledged by one packet from the other side; `windowLimited`: the sender had a window's worth in
    /// flight (a connection that has less to send does not earn a bigger window).
    ///
    /// Under the target the window grows by at most `maxGainPerRTT` a round trip, in proportion to how far under
    /// it is (BEP 29). Over it, it shrinks in proportion to the excess, by at most half a round trip's worth
    /// (LEDBAT++'s multiplicative decrease): BEP 29's additive decrease of 3 000 bytes a round trip took tens of
    /// round trips to drain what slow start had queued (a mean queueing delay of 180 ms against the target of 100
    /// in the 20 Mbit/s simulation).
    public mutating func acknowledged(_ bytes: Int, windowLimited: Bool) {
        guard bytes > 0 else { return }
        let target = self.target
        let delay = Double(self.queueingDelay)
        if self.slowStart {
            // Out at half the target: the queue grows for another round trip before the delay shows it.
            if delay > target / 2 {
                self.slowStart = false
            } else if windowLimited {
                self.window = min(self.window + bytes, self.configuration.maxWindow)
                return
            }
        }
        let change: Double
        if delay <= target {
            guard windowLimited else { return }
            change = Double(self.configuration.maxGainPerRTT) * (target - delay) / target * Double(bytes)
                / Double(max(self.window, bytes))
        } else {
            change = -Double(bytes) * min(0.5, (delay - target) / target)
        }
        self.window = max(self.configuration.minWindow,
            min(self.configuration.maxWindow, self.window + Int(change.rounded(change < 0 ? .down : .up))))
    }

    /// A packet was lost (three duplicate or selective ACKs past it): the window halves, and slow start ends.
    public mutating func lost() {
        self.slowStart = false
        self.window = max(self.configuration.minWindow, self.window / 2)
    }

    /// Nothing was acknowledged for a whole timeout: one packet at a time until ACKs come again.
    public mutating func timedOut() {
        self.slowStart = false
        self.window = self.configuration.minWindow
    }

    /// Whether a comes before b on a clock that wraps at 2^32.
    static func before(_ a: UInt32, _ b: UInt32) -> Bool { a != b && b &- a < 1 << 31 }
}
