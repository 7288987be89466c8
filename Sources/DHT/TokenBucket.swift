// Rate limits in virtual time: the node's own queries, and its replies per source address (amplification).
import PeerBase

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

/// One token bucket per source IP, in a bounded table: idle sources are forgotten, and when the table is full
/// of busy ones the least recently seen gives way (a flood of spoofed sources cannot grow memory).
struct SourceRateLimiter: Sendable {
    let capacity: Double
    let rate: Double
    let maxSources: Int
    private var buckets: [DHTEndpoint.IP: (bucket: TokenBucket, seen: Instant)] = [:]

    init(capacity: Double, rate: Double, maxSources: Int) {
        self.capacity = capacity
        self.rate = rate
        self.maxSources = max(1, maxSources)
    }

    var count: Int { self.buckets.count }

    /// Takes a token from `ip`'s bucket; false when that source is over its rate.
    mutating func allow(_ ip: DHTEndpoint.IP, at now: Instant) -> Bool {
        if var entry = self.buckets[ip] {
            let ok = entry.bucket.take(at: now)
            entry.seen = now
            self.buckets[ip] = entry
            return ok
        }
        if self.buckets.count >= self.maxSources {
            self.purge(at: now)
            if self.buckets.count >= self.maxSources,
                let oldest = self.buckets.min(by: { a, b in
                    a.value.seen != b.value.seen
                        ? a.value.seen < b.value.seen : a.key.bytes.lexicographicallyPrecedes(b.key.bytes)
                })
            {
                self.buckets[oldest.key] = nil
            }
        }
        var bucket = TokenBucket(capacity: self.capacity, rate: self.rate, at: now)
        _ = bucket.take(at: now)
        self.buckets[ip] = (bucket, now)
        return true
    }

    /// Forgets sources whose bucket has refilled.
    mutating func purge(at now: Instant) {
        self.buckets = self.buckets.filter { !$0.value.bucket.isFull(at: now) }
    }
}

extension Duration {
    /// The duration in seconds as a floating-point number.
    var seconds: Double {
        let (s, atto) = self.components
        return Double(s) + Double(atto) * 1e-18
    }
}
