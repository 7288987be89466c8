import PeerBase

/// A token bucket for a byte rate (`--max-up`, `--max-down`).
///
/// Tokens accrue at `rate` bytes per second up to `burst`; a transfer may take more than there is (the
/// balance goes negative, so one 16 KiB block is never split) and the next waits until the debt is repaid.
/// Pure: the driver passes the time.
public struct RateLimiter: Sendable {
    /// Bytes per second; nil is unlimited.
    public let rate: Int64?
    private let burst: Int64
    private var tokens: Int64
    private var last: Instant?

    public init(rate: Int64?, burst: Int64? = nil) {
        precondition(rate.map { $0 > 0 } ?? true, "a rate is positive")
        self.rate = rate
        // A quarter second's worth, and at least two blocks, so that short bursts flow without going idle.
        self.burst = burst ?? max((rate ?? 0) / 4, 32 * 1024)
        self.tokens = self.burst
    }

    private mutating func refill(_ now: Instant) {
        guard let rate = self.rate else { return }
        if let last = self.last {
            let elapsed = now - last
            let (s, atto) = elapsed.components
            let added = s * rate + Int64((Double(atto) / 1e18) * Double(rate))
            self.tokens = min(self.burst, self.tokens + max(0, added))
        }
        self.last = now
    }

    /// Whether a transfer may start now.
    public mutating func canSpend(at now: Instant) -> Bool {
        guard self.rate != nil else { return true }
        self.refill(now)
        return self.tokens > 0
    }

    /// How many bytes may start now (`Int64.max` when unlimited; zero or less means wait).
    public mutating func allowance(at now: Instant) -> Int64 {
        guard self.rate != nil else { return .max }
        self.refill(now)
        return self.tokens
    }

    /// Records a transfer of `bytes` (call after `canSpend` said yes).
    public mutating func spend(_ bytes: Int, at now: Instant) {
        guard self.rate != nil else { return }
        self.refill(now)
        self.tokens -= Int64(bytes)
    }
}
