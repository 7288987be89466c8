import PeerBase

/// One-way latency of a link direction. Each direction (A to B, B to A) gets its own latency, drawn once from
/// the distribution by hashing the run's seed with the two addresses, so the same link is equally fast for
/// every datagram (as a path on the Internet roughly is) and nothing has to be stored per link.
public enum LatencyModel: Equatable, Sendable, CustomStringConvertible {
    /// Uniform between `min` and `max`.
    case uniform(min: Duration, max: Duration)
    /// Log-normal with median `median` and shape `sigma` (of the underlying normal), capped at `max`.
    case logNormal(median: Duration, sigma: Double, max: Duration)

    /// The default: 20-200 ms per link direction.
    public static let standard = LatencyModel.uniform(min: .milliseconds(20), max: .milliseconds(200))

    public var description: String {
        switch self {
        case .uniform(let lo, let hi): "uniform \(Self.ms(lo))-\(Self.ms(hi)) ms"
        case .logNormal(let median, let sigma, let cap): "log-normal median \(Self.ms(median)) ms, sigma \(sigma), cap \(Self.ms(cap)) ms"
        }
    }

    /// The latency for uniforms `u1`, `u2` in (0, 1).
    func sample(_ u1: Double, _ u2: Double) -> Duration {
        switch self {
        case .uniform(let lo, let hi):
            let a = Self.seconds(lo)
            let b = Self.seconds(hi)
            return .nanoseconds(Int64(((a + (b - a) * u1) * 1e9).rounded()))
        case .logNormal(let median, let sigma, let cap):
            // Box-Muller: one standard normal from two uniforms.
            let z = (-2 * Self.ln(u1)).squareRoot() * Self.cos(2 * Double.pi * u2)
            let s = min(Self.seconds(median) * Self.exp(sigma * z), Self.seconds(cap))
            return .nanoseconds(Int64((s * 1e9).rounded()))
        }
    }

    /// The latency of the link from `a` to `b` in a run seeded with `seed`.
    func latency(from a: UInt64, to b: UInt64, seed: UInt64) -> Duration {
        var g = SeededGenerator(seed: seed ^ (a &* 0x9E37_79B9_7F4A_7C15) ^ (b &* 0xC2B2_AE3D_27D4_EB4F))
        return self.sample(Self.unit(g.next()), Self.unit(g.next()))
    }

    /// The median round trip (one latency each way on two independent link directions), estimated from
    /// 20 001 sampled pairs with a fixed seed, so it is the same for every run.
    public var medianRoundTrip: Duration {
        var g = SeededGenerator(seed: 0x5EED)
        var rtts: [Duration] = []
        for _ in 0..<20_001 {
            rtts.append(self.sample(Self.unit(g.next()), Self.unit(g.next())) + self.sample(Self.unit(g.next()), Self.unit(g.next())))
        }
        rtts.sort()
        return rtts[rtts.count / 2]
    }

    /// A uniform in (0, 1) from 53 random bits.
    static func unit(_ x: UInt64) -> Double { (Double(x >> 11) + 0.5) / Double(1 << 53) }

    static func seconds(_ d: Duration) -> Double {
        let (s, atto) = d.components
        return Double(s) + Double(atto) / 1e18
    }

    static func ms(_ d: Duration) -> String {
        let v = seconds(d) * 1000
        return v == v.rounded() ? String(Int(v)) : String(v)
    }

    // Foundation-free elementary functions (series are precise enough for latencies).
    static func exp(_ x: Double) -> Double {
        // exp(x) = 2^k * exp(r), |r| <= ln2/2
        let ln2 = 0.693_147_180_559_945_3
        let k = (x / ln2).rounded()
        let r = x - k * ln2
        var term = 1.0
        var sum = 1.0
        for n in 1..<20 {
            term *= r / Double(n)
            sum += term
        }
        return sum * Double(sign: .plus, exponent: Int(k), significand: 1)
    }

    static func ln(_ x: Double) -> Double {
        // x = m * 2^e with m in [1, 2); ln m = 2 atanh((m-1)/(m+1)).
        let e = Double(x.exponent)
        let m = x.significand
        let t = (m - 1) / (m + 1)
        let t2 = t * t
        var term = t
        var sum = 0.0
        var n = 1.0
        while n < 60 {
            sum += term / n
            term *= t2
            n += 2
        }
        return 2 * sum + e * 0.693_147_180_559_945_3
    }

    static func cos(_ x: Double) -> Double {
        // Reduce to [-pi, pi], then Taylor.
        var y = x.truncatingRemainder(dividingBy: 2 * Double.pi)
        if y > Double.pi { y -= 2 * Double.pi }
        if y < -Double.pi { y += 2 * Double.pi }
        let y2 = y * y
        var term = 1.0
        var sum = 1.0
        for n in stride(from: 2, to: 40, by: 2) {
            term *= -y2 / Double((n - 1) * n)
            sum += term
        }
        return sum
    }
}
