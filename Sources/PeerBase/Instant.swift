/// A point in virtual time: the time since an arbitrary epoch chosen by the driver.
///
/// Protocol cores never read a clock; drivers convert their clock to `Instant` and pass it in,
/// so that tests and simulations can start at `.zero` and move time by hand.
public struct Instant: Comparable, Hashable, Sendable, CustomStringConvertible {
    /// Time since the epoch.
    public var offset: Duration

    public init(offset: Duration) { self.offset = offset }

    /// The epoch.
    public static let zero = Instant(offset: .zero)

    public static func < (lhs: Instant, rhs: Instant) -> Bool { lhs.offset < rhs.offset }
    public static func + (lhs: Instant, rhs: Duration) -> Instant { Instant(offset: lhs.offset + rhs) }
    public static func - (lhs: Instant, rhs: Instant) -> Duration { lhs.offset - rhs.offset }

    public var description: String {
        let (s, atto) = self.offset.components
        // Whole milliseconds, truncated toward zero, with the sign in front (before the epoch: t=-0.050s).
        let ms = s * 1000 + atto / 1_000_000_000_000_000
        let sign = ms < 0 ? "-" : ""
        let magnitude = ms.magnitude
        let frac = String(magnitude % 1000)
        return "t=\(sign)\(magnitude / 1000).\(String(repeating: "0", count: 3 - frac.count))\(frac)s"
    }
}
