// A token bucket in virtual time: the DHT's query and reply limits, the search overlay's per-neighbour limits.

/// A token bucket: holds up to `capacity` tokens, gains `rate` tokens per second.
public struct TokenBucket: Equatable, Sendable {
    public let capacity: Double
    public let rate: Double
    private var tokens: Double
    private var updated: Instant

    /// A full bucket.
    public init(capacity: Double, rate: Double, at now: Instant) {
        precondition(capacity >= 1 && rate > 0)
        self.capacity = capacity
        self.rate = rate
        self.tokens = capacity
        self.updated = now
    }

    private mutating func refill(at now: Instant) {
        guard now > self.updated else { return }
        self.tokens = min(self.capacity, self.tokens + (now - self.updated).seconds * self.rate)
        self.updated = now
    }

    /// Takes a token if one is available.
    public mutating func take(at now: Instant) -> Bool {
        self.refill(at: now)
        guard self.tokens >= 1 else { return false }
        self.tokens -= 1
        return true
    }

    /// True when the bucket would be full at `now` (an idle source that need not be remembered).
    public func isFull(at now: Instant) -> Bool {
        now > self.updated ? self.tokens + (now - self.updated).seconds * self.rate >= self.capacity
            : self.tokens >= self.capacity
    }

    /// When the next token will be there (`now` if one is).
    public func nextToken(after now: Instant) -> Instant {
        var copy = self
        copy.refill(at: now)
        if copy.tokens >= 1 { return now }
        let wait = (1 - copy.tokens) / self.rate
        return now + .nanoseconds(Int64((wait * 1e9).rounded(.up)))
    }
}

extension Duration {
    /// The duration in seconds as a floating-point number.
    /// The duration in milliseconds, as a floating-point number (latencies in reports).
    public var milliseconds: Double { self.seconds * 1000 }

    public var seconds: Double {
        let (s, atto) = self.components
        return Double(s) + Double(atto) * 1e-18
    }
}
