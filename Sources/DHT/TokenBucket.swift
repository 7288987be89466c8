// Rate limits in virtual time: the node's replies per source address (amplification). The bucket itself is
// PeerBase's TokenBucket.
import PeerBase

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
